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
                engine.RecordDeferred(ex, ctx)
                ExceptionDispatchInfo.Throw ex
        }

    /// Runs the rest of the pipeline, recording what it throws.
    member _.InvokeAsync(ctx: HttpContext) : Task =
        let pending =
            try
                next.Invoke ctx
            with ex ->
                engine.RecordDeferred(ex, ctx)
                ExceptionDispatchInfo.Throw ex
                Task.CompletedTask

        if pending.IsCompletedSuccessfully then
            pending
        else
            awaitAndRecord ctx pending

/// Runs an engine's background writer for the lifetime of the host; on stop, writes what is pending within
/// APP_ERROR_SHUTDOWN_TIMEOUT and spills the rest.
type EngineHostedService(engine: Engine) =
    interface IHostedService with
        member _.StartAsync(_: CancellationToken) =
            engine.Start()
            Task.CompletedTask

        member _.StopAsync(_: CancellationToken) =
            engine.StopAsync engine.Settings.ShutdownTimeout

/// The store's health for ASP.NET Core health checks: healthy while writes succeed.
type ErrorMonitorHealthCheck(engine: Engine) =
    interface Microsoft.Extensions.Diagnostics.HealthChecks.IHealthCheck with
        member _.CheckHealthAsync(_, _) =
            let data =
                dict
                    [
                        "pendingGroups", box engine.Queue.Length
                        "dropped", box engine.Queue.Dropped
                        "failedWrites", box engine.Writer.Failures
                    ]
                |> Collections.Generic.Dictionary
                :> Collections.Generic.IReadOnlyDictionary<string, obj>

            let result =
                if engine.Writer.Failures = 0 then
                    Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult.Healthy(
                        "ErrorMonitor's store accepts writes",
                        data
                    )
                else
                    Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult.Unhealthy(
                        sprintf
                            "ErrorMonitor's store failed %d writes in a row; occurrences wait in memory"
                            engine.Writer.Failures,
                        null,
                        data
                    )

            Task.FromResult result
