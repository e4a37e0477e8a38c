namespace ErrorMonitor.Web

open System
open System.Threading.Tasks
open Microsoft.AspNetCore.Http

/// Giraffe's handler shapes, declared here because the Giraffe package is not available: the same type
/// abbreviations, so ErrorMonitor's handlers compose with Giraffe's `>=>` unchanged.
[<AutoOpen>]
module HttpHandlers =

    /// The result of a handler: Some context to go on, None to stop.
    type HttpFuncResult = Task<HttpContext option>

    /// The rest of the pipeline.
    type HttpFunc = HttpContext -> HttpFuncResult

    /// A handler: given what comes next, a function of the request.
    type HttpHandler = HttpFunc -> HttpFunc

    /// A pipeline that ends the request successfully.
    let earlyReturn: HttpFunc = Some >> Task.FromResult

    /// A pipeline that skips: no handler answered.
    let skipPipeline: HttpFuncResult = Task.FromResult None

    /// Runs `handler1`, then `handler2` on what it passes on.
    let compose (handler1: HttpHandler) (handler2: HttpHandler) : HttpHandler =
        fun final ->
            let func = final |> handler2 |> handler1
            fun ctx -> if ctx.Response.HasStarted then final ctx else func ctx

    /// Alias of `compose`.
    let (>=>) = compose

    /// Writes `body` as text/plain and ends the request.
    let text (body: string) : HttpHandler =
        fun _ ctx ->
            task {
                ctx.Response.ContentType <- "text/plain; charset=utf-8"
                do! ctx.Response.WriteAsync body
                return Some ctx
            }

    /// Sets the response status code.
    let setStatusCode (code: int) : HttpHandler =
        fun next ctx ->
            ctx.Response.StatusCode <- code
            next ctx

    /// A handler as an ASP.NET Core RequestDelegate (for endpoint routing).
    let toRequestDelegate (handler: HttpHandler) : RequestDelegate =
        let func = handler earlyReturn
        RequestDelegate(fun ctx -> func ctx :> Task)

    /// Runs the first handler that answers (Giraffe's `choose`).
    let choose (handlers: HttpHandler list) : HttpHandler =
        fun next ->
            let funcs = handlers |> List.map (fun h -> h next)

            fun ctx ->
                task {
                    let mutable result = None
                    let mutable rest = funcs

                    while result.IsNone && not rest.IsEmpty do
                        let! r = rest.Head ctx
                        result <- r
                        rest <- rest.Tail

                    return result
                }

    /// Answers only requests for exactly `path` (Giraffe's `route`).
    let route (path: string) : HttpHandler =
        fun next ctx ->
            if String.Equals(ctx.Request.Path.Value, path, StringComparison.Ordinal) then
                next ctx
            else
                skipPipeline

    /// Answers only requests with one of `methods` (Giraffe's GET, POST, ...).
    let methods (allowed: string list) : HttpHandler =
        fun next ctx ->
            if allowed |> List.exists (fun m -> HttpMethods.Equals(m, ctx.Request.Method)) then
                next ctx
            else
                skipPipeline
