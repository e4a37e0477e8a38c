namespace ErrorMonitor.Web

open System
open System.Runtime.ExceptionServices
open System.Threading
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Http
open Microsoft.Extensions.Hosting

/// Records every unhandled exception of the requests after it and lets it continue unchanged, so the
/// app's own error handling still runs and the response is what it would be without ErrorMonitor. It never
/// throws again: a failed request's task is handed on as it is (a rethrow would cost a second throw).
type internal ErrorMonitorMiddleware(next: RequestDelegate, engine: Engine) =
    // Capture off (APP_ERROR_ENABLED=false): no body is recorded.
    let bodyLimit =
        if engine.Settings.Enabled then
            engine.Settings.RequestBody
        else
            0

    // `Task.Exception` makes a new AggregateException each time it is read: read once.
    let record (faults: AggregateException) (ctx: HttpContext) =
        for ex in faults.InnerExceptions do
            engine.RecordDeferred(ex, ctx)

    let recordFault =
        Func<Task, obj, Task>(fun t state ->
            let faults = if t.IsFaulted then t.Exception else null

            if not (isNull faults) then
                let ctx = state :?> HttpContext
                // A recorded body the app did not read to its end is read first (APP_ERROR_REQUEST_BODY).
                let filled = BodyRecorder.fillAsync ctx

                if filled.IsCompleted then
                    record faults ctx
                    t
                else
                    filled
                        .ContinueWith(
                            (fun (_: Task) ->
                                record faults ctx
                                t),
                            CancellationToken.None,
                            TaskContinuationOptions.ExecuteSynchronously,
                            TaskScheduler.Default
                        )
                        .Unwrap()
            else
                t)

    /// Runs the rest of the pipeline, recording what it throws. With APP_ERROR_REQUEST_BODY, a request whose
    /// body may be recorded reads it through a recording body (`BodyRecorder.wrap`); others are left alone.
    member _.InvokeAsync(ctx: HttpContext) : Task =
        if bodyLimit > 0 then
            BodyRecorder.wrap bodyLimit ctx

        let pending =
            try
                next.Invoke ctx
            with ex ->
                Task.FromException ex

        if pending.IsCompletedSuccessfully then
            pending
        elif pending.IsCompleted then
            // Failed already (thrown before the first await, as most failures are): recorded at once, without a
            // continuation to schedule and unwrap.
            recordFault.Invoke(pending, ctx)
        else
            pending
                .ContinueWith(
                    recordFault,
                    box ctx,
                    CancellationToken.None,
                    TaskContinuationOptions.ExecuteSynchronously,
                    TaskScheduler.Default
                )
                .Unwrap()

/// Adding the capture middleware to a pipeline (the middleware type is internal, so it is added as a delegate).
[<RequireQualifiedAccess>]
module internal Middleware =

    /// Adds the capture middleware of `engine` to `app`.
    let useIn (app: IApplicationBuilder) (engine: Engine) : IApplicationBuilder =
        app.Use(
            Func<RequestDelegate, RequestDelegate>(fun next ->
                let middleware = ErrorMonitorMiddleware(next, engine)
                RequestDelegate(fun ctx -> middleware.InvokeAsync ctx))
        )

/// Runs an engine's background writer for the lifetime of the host; on stop, writes what is pending within
/// APP_ERROR_SHUTDOWN_TIMEOUT and spills the rest.
type internal EngineHostedService(engine: Engine) =
    interface IHostedService with
        member _.StartAsync(ct: CancellationToken) =
            task {
                do! engine.CheckStoreAsync ct
                engine.Start()
            }

        member _.StopAsync(_: CancellationToken) =
            engine.StopAsync engine.Settings.ShutdownTimeout

/// The store's health for ASP.NET Core health checks: healthy while writes succeed.
type internal ErrorMonitorHealthCheck(engine: Engine) =
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
