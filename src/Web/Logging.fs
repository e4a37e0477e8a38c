namespace ErrorMonitor.Web

open System
open System.Collections.Generic
open Microsoft.AspNetCore.Http
open Microsoft.Extensions.Logging
open ErrorMonitor.Core

/// The name ErrorMonitor's health check is registered under.
[<AutoOpen>]
module internal HealthCheckNames =
    [<Literal>]
    let HealthCheckName = "errormonitor"

/// One category's logger of the logging integration, deciding by `LogCapture`'s rules: entries with an exception
/// at Error and above become occurrences (once, whoever else saw the exception), entries at or above
/// APP_ERROR_LOG_LEVEL without one become messages grouped by their template, entries at Information and up are
/// kept as breadcrumbs. ErrorMonitor's own entries (its category, its health check's, and anything logged on the
/// flows of its background work) are never recorded.
type internal MonitorLogger(category: string, engine: unit -> Engine voption, accessor: IHttpContextAccessor) =
    /// A text value of a structured entry's state (null when it has none).
    static member Value(state: obj, key: string) : string =
        match state with
        | :? IReadOnlyList<KeyValuePair<string, obj>> as pairs ->
            let mutable found = null

            for kv in pairs do
                if kv.Key = key then
                    match kv.Value with
                    | :? string as t -> found <- t
                    | _ -> ()

            found
        | _ -> null

    /// The message template of a structured entry ("{OriginalFormat}"), else the formatted text.
    static member Template(state: obj, formatted: string) : string =
        match MonitorLogger.Value(state, "{OriginalFormat}") with
        | null -> formatted
        | t -> t

    /// An entry about ErrorMonitor's own health check (the health check service logs an unhealthy check at Error):
    /// the store failing is already logged and shown; recording it would add a group for every check.
    static member OwnHealth(state: obj) : bool =
        MonitorLogger.Value(state, "HealthCheckName") = HealthCheckName

    interface ILogger with
        member _.BeginScope<'TState>(_: 'TState) : IDisposable = null

        member _.IsEnabled(level: LogLevel) =
            match engine () with
            | ValueSome e -> LogCapture.wants e.Settings category (int level)
            | ValueNone -> false

        member this.Log<'TState>
            (level: LogLevel, _: EventId, state: 'TState, ex: exn, formatter: Func<'TState, exn, string>)
            =
            match engine () with
            | ValueSome e ->
                // Cheap tests first: most entries (the host's Information entries of every request) end here.
                let record = LogCapture.records e.Settings category (int level) (not (isNull ex))
                let crumb = LogCapture.keepsCrumb e.Settings category (int level)

                if (record || crumb) && not Engine.Inside then
                    let http = if isNull accessor then null else accessor.HttpContext

                    let format () =
                        if isNull formatter then
                            string (box state)
                        else
                            formatter.Invoke(state, ex)

                    // An exception recorded already (the host logs the one the middleware recorded) is not
                    // formatted at all: the entry would record nothing.
                    if record && not (e.Recorded(ex, http)) && not (MonitorLogger.OwnHealth(box state)) then
                        let text = format ()

                        e.RecordLog(ex, text, MonitorLogger.Template(box state, text), category, string level, http)
                        |> ignore

                    // A breadcrumb for what is recorded next in this request (or flow); formatted only then.
                    if crumb then
                        (Breadcrumbs.ring e.Settings.Breadcrumbs http)
                            .Add(
                                {
                                    Time = DateTimeOffset.UtcNow
                                    Level = string level
                                    Category = category
                                    Text = Func<string>(format)
                                }
                            )
            | ValueNone -> ()

/// The logging integration's provider (alias "ErrorMonitor" in logging configuration). The engine is resolved on
/// the first entry, not when the provider is made (the engine's own logger comes from the logging this provider
/// is part of); entries logged while it is being made, or when it cannot be made (a bad configuration, which
/// stops start-up on its own), are not recorded.
[<ProviderAlias("ErrorMonitor")>]
type internal MonitorLoggerProvider(resolve: Func<Engine>, accessor: IHttpContextAccessor) =
    let gate = obj ()
    let mutable engine: Engine voption = ValueNone
    let mutable failed = false

    [<ThreadStatic; DefaultValue>]
    static val mutable private resolving: bool

    let current () : Engine voption =
        if engine.IsSome || failed || MonitorLoggerProvider.resolving then
            engine
        else
            lock gate (fun () ->
                if engine.IsNone && not failed then
                    MonitorLoggerProvider.resolving <- true

                    try
                        try
                            let e = resolve.Invoke()
                            e.LoggerFindsRequests(not (isNull accessor))
                            engine <- ValueSome e
                        with _ ->
                            failed <- true
                    finally
                        MonitorLoggerProvider.resolving <- false

                engine)

    interface ILoggerProvider with
        member _.CreateLogger(category: string) =
            MonitorLogger((if isNull category then "" else category), current, accessor)

        member _.Dispose() = ()
