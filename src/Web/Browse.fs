namespace ErrorMonitor.Web

open System
open System.IO
open System.Net
open System.Text
open System.Text.Json
open System.Threading.Tasks
open Microsoft.AspNetCore.Antiforgery
open Microsoft.AspNetCore.Authorization
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.Routing
open Microsoft.Extensions.Configuration
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Logging
open ErrorMonitor
open ErrorMonitor.Core

/// What the pages need: the engine, and who may look.
type BrowseOptions =
    {
        /// The engine whose store is shown.
        Engine: Engine
        /// Who may browse and delete; None means the default: requests from the local machine only, unless
        /// the endpoints carry ASP.NET Core authorization (then that decides).
        Permission: Func<HttpContext, bool> option
    }

/// The pages and JSON API as Giraffe-shaped handlers. The C# routes map to these same handlers.
[<RequireQualifiedAccess>]
module Browse =

    let private prefix (b: BrowseOptions) = b.Engine.Settings.UrlPrefix.TrimEnd '/'

    let private html (status: int) (node: Giraffe.ViewEngine.HtmlElements.XmlNode) : HttpHandler =
        fun _ ctx ->
            task {
                ctx.Response.StatusCode <- status
                ctx.Response.ContentType <- "text/html; charset=utf-8"
                ctx.Response.Headers.["Cache-Control"] <- "no-store"
                Ingest.noSniff ctx

                ctx.Response.Headers.["Content-Security-Policy"] <-
                    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

                do! ctx.Response.WriteAsync(Views.render node)
                return Some ctx
            }

    let private jsonBytes (write: Utf8JsonWriter -> unit) : byte array =
        use ms = new MemoryStream()

        (use w = new Utf8JsonWriter(ms)
         write w)

        ms.ToArray()

    let private json (status: int) (contentType: string) (write: Utf8JsonWriter -> unit) : HttpHandler =
        fun _ ctx ->
            task {
                ctx.Response.StatusCode <- status
                ctx.Response.ContentType <- contentType
                ctx.Response.Headers.["Cache-Control"] <- "no-store"
                Ingest.noSniff ctx
                do! ctx.Response.Body.WriteAsync(jsonBytes write)
                return Some ctx
            }

    let private problem (status: int) (title: string) (detail: string) : HttpHandler =
        Ingest.problem status title detail None

    /// The app's AllowedHosts (host filtering's setting), which local-only mode accepts too.
    let private allowedHosts (ctx: HttpContext) : string list =
        match ctx.RequestServices.GetService<IConfiguration>() with
        | null -> []
        | config -> LocalOnly.allowedHostsOf config.["AllowedHosts"]

    /// "Local machine only" (Core's LocalOnly rule on what the connection and the headers say).
    let private isLocal (ctx: HttpContext) =
        let c = ctx.Connection

        LocalOnly.allows
            (allowedHosts ctx)
            {
                RemoteIsLoopback = not (isNull c.RemoteIpAddress) && IPAddress.IsLoopback c.RemoteIpAddress
                NoAddresses = isNull c.RemoteIpAddress && isNull c.LocalIpAddress // in-process test servers
                Host =
                    if ctx.Request.Host.HasValue then
                        ctx.Request.Host.Value
                    else
                        ""
                HeaderNames = ctx.Request.Headers.Keys |> List.ofSeq
            }

    let private hasAuthorization (ctx: HttpContext) =
        match ctx.GetEndpoint() with
        | null -> false
        | e -> not (isNull (e.Metadata.GetMetadata<IAuthorizeData>()))

    /// True when this request may browse: the permission function if set; else ASP.NET Core authorization
    /// if the endpoint has it (it has already run); else the request must come from the local machine.
    let internal allowed (b: BrowseOptions) (ctx: HttpContext) : bool =
        match b.Permission with
        | Some f ->
            try
                f.Invoke ctx
            with _ ->
                false
        | None -> hasAuthorization ctx || isLocal ctx

    /// Refuses (403) requests that may not browse.
    let internal guard (b: BrowseOptions) : HttpHandler =
        fun next ctx ->
            if allowed b ctx then
                next ctx
            elif ctx.Request.Path.Value.Contains("/api/", StringComparison.Ordinal) then
                problem 403 "Forbidden" "Browsing errors is not allowed from here." earlyReturn ctx
            else
                html
                    403
                    (Views.message (prefix b) "Forbidden" "Browsing errors is allowed from the local machine only.")
                    earlyReturn
                    ctx

    let private antiforgery (ctx: HttpContext) : Views.Antiforgery option =
        match ctx.RequestServices.GetService<IAntiforgery>() with
        | null -> None
        | af ->
            let t = af.GetAndStoreTokens ctx

            Some
                {
                    FieldName = t.FormFieldName
                    Token = t.RequestToken
                }

    let private query (ctx: HttpContext) (name: string) =
        match ctx.Request.Query.TryGetValue name with
        | true, v -> Some(string v)
        | _ -> None

    /// The page a request asks for: by a cursor from a Newer/Older link when it has one (keyset: a deep
    /// page costs what page 1 costs), else by its number.
    let private pageOf (b: BrowseOptions) (ctx: HttpContext) : Task<Page<ErrorRecord>> =
        task {
            let number = Paging.parsePage (query ctx "page")
            let size = b.Engine.Settings.DefaultListSize

            let cursor =
                match query ctx "after" |> Option.bind (Paging.parseCursor CursorDirection.Older) with
                | Some c -> Some c
                | None -> query ctx "before" |> Option.bind (Paging.parseCursor CursorDirection.Newer)

            match cursor with
            | Some c when number > 1 || c.Direction = CursorDirection.Newer ->
                let! rows = b.Engine.Store.ListFromAsync(c, size + 1, ctx.RequestAborted)
                return Paging.ofCursor number size c.Direction (List.ofSeq rows)
            | _ ->
                let! rows =
                    b.Engine.Store.ListAsync(Paging.offset number size, size + 1, ctx.RequestAborted)

                return Paging.ofFetched number size (List.ofSeq rows)
        }

    /// The Newer and Older links of a page (the rule is Core's).
    let private links (b: BrowseOptions) (page: Page<ErrorRecord>) : string option * string option =
        Paging.links (prefix b) (fun (r: ErrorRecord) -> r.LastSeen, r.Hash) page

    let private banner (b: BrowseOptions) =
        match b.Engine.Queue.Dropped with
        | 0L -> None
        | n -> Some(sprintf "%d occurrences were dropped because ErrorMonitor's queue was full." n)

    /// The list page: newest last-seen first, `APP_DEFAULT_LIST_SIZE` a page.
    let internal list (b: BrowseOptions) : HttpHandler =
        fun next ctx ->
            task {
                let! page = pageOf b ctx
                let newer, older = links b page

                return!
                    html
                        200
                        (Views.list (prefix b) (b.Engine.Now()) (antiforgery ctx) (banner b) newer older page)
                        next
                        ctx
            }

    let private find (b: BrowseOptions) (ctx: HttpContext) (hash: string) : Task<ErrorRecord option> =
        task {
            if not (Fingerprint.isValid hash) then
                return None
            else
                let! r = b.Engine.Store.GetAsync(hash, ctx.RequestAborted)
                return if isNull (box r) then None else Some r
        }

    /// The detail page of one group; 404 when unknown.
    let internal detail (b: BrowseOptions) (hash: string) : HttpHandler =
        fun next ctx ->
            task {
                match! find b ctx hash with
                | Some r -> return! html 200 (Views.detail (prefix b) (b.Engine.Now()) (antiforgery ctx) r) next ctx
                | None ->
                    return!
                        html 404 (Views.message (prefix b) "Not found" "There is no error group with this id.") next ctx
            }

    /// Deletes a group (POST with a valid antiforgery token), then goes back to the list.
    let internal delete (b: BrowseOptions) (hash: string) : HttpHandler =
        fun next ctx ->
            task {
                if not (HttpMethods.IsPost ctx.Request.Method) then
                    ctx.Response.Headers.Allow <- "POST"

                    return!
                        html
                            405
                            (Views.message
                                (prefix b)
                                "Method not allowed"
                                "Deleting needs a POST from the delete button.")
                            next
                            ctx
                else
                    let af = ctx.RequestServices.GetService<IAntiforgery>()

                    let! valid =
                        task {
                            if isNull af then
                                return false
                            else
                                try
                                    do! af.ValidateRequestAsync ctx
                                    return true
                                with :? AntiforgeryValidationException ->
                                    return false
                        }

                    if not valid then
                        let why =
                            if isNull af then
                                "Deleting needs ASP.NET Core antiforgery: call builder.Services.AddAntiforgery()."
                            else
                                "The form's antiforgery token is missing or invalid: reload the page and try again."

                        return! html 400 (Views.message (prefix b) "Bad request" why) next ctx
                    else
                        if Fingerprint.isValid hash then
                            let! _ = b.Engine.Store.DeleteAsync(hash, ctx.RequestAborted)
                            ()

                        ctx.Response.Redirect(prefix b + "/")
                        return Some ctx
            }

    let private writeItem (w: Utf8JsonWriter) (r: ErrorRecord) = RecordJson.fields w r

    /// The list as JSON: items, page, pageSize, hasNext (an older page), hasPrevious (a newer page), and the
    /// next / previous URLs (with cursors).
    let internal apiList (b: BrowseOptions) : HttpHandler =
        fun next ctx ->
            task {
                let! page = pageOf b ctx

                return!
                    json
                        200
                        "application/json; charset=utf-8"
                        (fun w ->
                            w.WriteStartObject()
                            w.WriteStartArray "items"

                            for r in page.Items do
                                w.WriteStartObject()
                                writeItem w r
                                w.WriteEndObject()

                            w.WriteEndArray()
                            w.WriteNumber("page", page.Number)
                            w.WriteNumber("pageSize", page.Size)
                            w.WriteBoolean("hasNext", page.HasOlder)
                            w.WriteBoolean("hasPrevious", page.HasNewer)
                            let newer, older = links b page

                            let api (href: string) =
                                href.Replace(prefix b + "/?", prefix b + "/api/errors?")

                            match older with
                            | Some o -> w.WriteString("next", api o)
                            | None -> w.WriteNull "next"

                            match newer with
                            | Some n -> w.WriteString("previous", api n)
                            | None -> w.WriteNull "previous"

                            w.WriteEndObject())
                        next
                        ctx
            }

    /// One group as JSON, with requestData (an object) and traceback; 404 problem details when unknown.
    let internal apiDetail (b: BrowseOptions) (hash: string) : HttpHandler =
        fun next ctx ->
            task {
                match! find b ctx hash with
                | Some r ->
                    return!
                        json
                            200
                            "application/json; charset=utf-8"
                            (fun w ->
                                w.WriteStartObject()
                                writeItem w r
                                w.WritePropertyName "requestData"

                                try
                                    use doc = JsonDocument.Parse r.RequestData
                                    doc.RootElement.WriteTo w
                                with _ ->
                                    w.WriteStartObject()
                                    w.WriteString("raw", r.RequestData)
                                    w.WriteEndObject()

                                w.WriteString("traceback", r.Traceback)
                                w.WriteEndObject())
                            next
                            ctx
                | None ->
                    return! problem 404 "Not Found" (sprintf "There is no error group with hash '%s'." hash) next ctx
            }

    /// Every route of the pages, once: its path under the prefix (`{hash}` a parameter), the methods it answers,
    /// whether anyone may call it (the capture route and its script) or only who may browse, and its handler
    /// given the `{hash}` value. The endpoint mapping and the Giraffe-shaped router both read this table, so
    /// they answer the same paths with the same methods.
    let private routes
        : (string * string list * bool * (BrowseOptions -> Ingest.KeyLimiter -> string -> HttpHandler)) list =
        [
            "/api/errors", [ "POST"; "OPTIONS" ], true, (fun b limiter _ -> Ingest.post b.Engine limiter)
            "/client.js", [ "GET"; "HEAD" ], true, (fun _ _ _ -> Ingest.clientScript)
            "/", [ "GET" ], false, (fun b _ _ -> list b)
            "/api/errors", [ "GET" ], false, (fun b _ _ -> apiList b)
            "/api/errors/{hash}", [ "GET" ], false, (fun b _ hash -> apiDetail b hash)
            "/delete/{hash}", [ "GET"; "POST" ], false, (fun b _ hash -> delete b hash)
            "/{hash}", [ "GET" ], false, (fun b _ hash -> detail b hash)
        ]

    let private handlerOf (b: BrowseOptions) (isOpen: bool) (handler: HttpHandler) : HttpHandler =
        if isOpen then handler else guard b >=> handler

    /// Maps the routes as ASP.NET Core endpoints in a group at the prefix (the C# facade's MapErrorMonitor).
    let internal mapEndpoints (endpoints: IEndpointRouteBuilder) (b: BrowseOptions) : RouteGroupBuilder =
        let group = endpoints.MapGroup(prefix b)
        let limiter = Ingest.limiterFor b.Engine

        for path, methods, isOpen, make in routes do
            let run =
                RequestDelegate(fun ctx ->
                    let hash =
                        match ctx.Request.RouteValues.TryGetValue "hash" with
                        | true, v when not (isNull v) -> string v
                        | _ -> ""

                    handlerOf b isOpen (make b limiter hash) earlyReturn ctx :> Task)

            group.MapMethods(path, methods, run) |> ignore

        group

    /// The segments of a path under the prefix, or None for a path outside it.
    let private segmentsUnder (b: BrowseOptions) (path: string) : string array option =
        let p = prefix b

        let rest =
            if path = p then
                Some ""
            elif path.StartsWith(p + "/", StringComparison.Ordinal) then
                Some(path.Substring(p.Length + 1))
            else
                None

        rest |> Option.map (fun r -> r.TrimEnd('/').Split('/'))

    /// The `{hash}` value when `segments` match a route's path (literal segments exactly), else None.
    let private matchRoute (path: string) (segments: string array) : string option =
        let template = path.TrimStart('/').Split('/')

        if template.Length <> segments.Length then
            None
        else
            Array.zip template segments
            |> Array.fold
                (fun found (t, s) ->
                    match found with
                    | None -> None
                    | Some hash when t = "{hash}" -> if s = "" then None else Some s
                    | Some hash -> if t = s then Some hash else None)
                (Some "")

    /// The pages as one Giraffe-shaped handler, for F# apps that route without endpoints: answers the paths
    /// under the prefix with the methods the endpoints answer, passes on (skips) everything else.
    let router (b: BrowseOptions) : HttpHandler =
        let limiter = Ingest.limiterFor b.Engine

        fun next ctx ->
            match segmentsUnder b ctx.Request.Path.Value with
            | None -> skipPipeline
            | Some segments ->
                routes
                |> List.tryPick (fun (path, methods, isOpen, make) ->
                    if methods |> List.exists (fun m -> HttpMethods.Equals(m, ctx.Request.Method)) then
                        matchRoute path segments
                        |> Option.map (fun hash -> handlerOf b isOpen (make b limiter hash))
                    else
                        None)
                |> function
                    | Some handler -> handler next ctx
                    | None -> skipPipeline

    /// An error handler of Giraffe's shape (`exn -> ILogger -> HttpHandler`) that records the exception, logs
    /// it, and answers 500.
    let errorHandler (engine: Engine) : exn -> ILogger -> HttpHandler =
        fun ex logger ->
            fun _ ctx ->
                task {
                    engine.RecordDeferred(ex, ctx)
                    Log.UnhandledException logger ex

                    if not ctx.Response.HasStarted then
                        ctx.Response.Clear()
                        ctx.Response.StatusCode <- 500
                        ctx.Response.ContentType <- "text/plain; charset=utf-8"
                        do! ctx.Response.WriteAsync "An error occurred."

                    return Some ctx
                }
