namespace ErrorMonitor.Web

open System
open System.Runtime.ExceptionServices
open System.Threading
open System.Threading.Tasks
open Microsoft.AspNetCore.Http
open Microsoft.Extensions.Hosting

/// Records every unhandled exception of the requests after it and lets it continue unchanged, so the
/// app's own error handling still runs and the response is what it would be without ErrorMonitor.
type ErrorMonitorMiddleware(next: RequestDelegate, engine: Engine) =

    let awaitAndRecord (ctx: HttpContext) (pending: Task) : Task =
        task {
            try
                do! pending
            with ex ->
                engine.Record(ex, ctx) |> ignore
                ExceptionDispatchInfo.Throw ex
        }

    /// Runs the rest of the pipeline, recording what it throws.
    member _.InvokeAsync(ctx: HttpContext) : Task =
        let pending =
            try
                next.Invoke ctx
            with ex ->
                engine.Record(ex, ctx) |> ignore
                ExceptionDispatchInfo.Throw ex
                Task.CompletedTask

        if pending.IsCompletedSuccessfully then
            pending
        else
            awaitAndRecord ctx pending

/// Runs an engine's background writer for the lifetime of the host, and writes what is pending on stop.
type EngineHostedService(engine: Engine) =
    /// How long a graceful stop may spend writing what is pending. Default 5 s.
    member val FlushTimeout = TimeSpan.FromSeconds 5.0 with get, set

    interface IHostedService with
        member _.StartAsync(_: CancellationToken) =
            engine.Start()
            Task.CompletedTask

        member this.StopAsync(_: CancellationToken) = engine.StopAsync this.FlushTimeout
