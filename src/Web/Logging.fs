namespace ErrorMonitor.Web

open System
open System.Collections.Generic
open Microsoft.AspNetCore.Http
open Microsoft.Extensions.Logging

/// The name ErrorMonitor's health check is registered under.
[<AutoOpen>]
module internal HealthCheckNames =
    [<Literal>]
    let HealthCheckName = "errormonitor"

/// One category's logger of the logging integration: entries with an exception at Error and above become
/// occurrences (once, whoever else saw the exception), entries at or above APP_ERROR_LOG_LEVEL without one become
/// messages grouped by their template. ErrorMonitor's own entries (its category, and anything logged on the flows
/// of its background work) are never recorded.
type internal MonitorLogger(category: string, engine: unit -> Engine voption, accessor: IHttpContextAccessor) =
    // The engine logs under this one category (an app's own "ErrorMonitor.*" namespaces are the app's).
    let own = category = "ErrorMonitor"

    // The framework's own entries (the host's "Request starting", routing's "Executing endpoint", …) are not kept
    // as breadcrumbs: every request logs them, so a successful request would pay for them; the app's entries are.
    let framework =
        category.StartsWith("Microsoft.", StringComparison.Ordinal)
        || category.StartsWith("System.", StringComparison.Ordinal)

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
            not own
            && level <> LogLevel.None
            && match engine () with
               | ValueSome e ->
                   e.Settings.LogLevel < 6
                   && (int level >= min 4 e.Settings.LogLevel
                       || (e.Settings.Breadcrumbs > 0 && level >= LogLevel.Information && not framework))
               | ValueNone -> false

        member this.Log<'TState>
            (level: LogLevel, _: EventId, state: 'TState, ex: exn, formatter: Func<'TState, exn, string>)
            =
            if not own && level <> LogLevel.None then
                match engine () with
                | ValueSome e when e.Settings.LogLevel < 6 ->
                    // Cheap tests first: most entries (the host's Information entries of every request) end here.
                    let withException = not (isNull ex) && int level >= 4
                    let asMessage = isNull ex && int level >= e.Settings.LogLevel

                    let crumb =
                        e.Settings.Breadcrumbs > 0 && level >= LogLevel.Information && not framework

                    if (withException || asMessage || crumb) && not Engine.Inside then
                        let http = if isNull accessor then null else accessor.HttpContext

                        if (withException || asMessage) && not (MonitorLogger.OwnHealth(box state)) then
                            let text =
                                if isNull formatter then
                                    string (box state)
                                else
                                    formatter.Invoke(state, ex)

                            e.RecordLog(
                                (if withException then ex else null),
                                text,
                                MonitorLogger.Template(box state, text),
                                category,
                                string level,
                                http
                            )
                            |> ignore

                        // A breadcrumb for what is recorded next in this request (or flow); formatted only then.
                        if crumb then
                            (Breadcrumbs.ring e.Settings.Breadcrumbs http)
                                .Add(
                                    {
                                        Time = DateTimeOffset.UtcNow
                                        Level = string level
                                        Category = category
                                        Text =
                                            Func<string>(fun () ->
                                                if isNull formatter then
                                                    string (box state)
                                                else
                                                    formatter.Invoke(state, ex))
                                    }
                                )
                | _ -> ()

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
                            engine <- ValueSome(resolve.Invoke())
                        with _ ->
                            failed <- true
                    finally
                        MonitorLoggerProvider.resolving <- false

                engine)

    interface ILoggerProvider with
        member _.CreateLogger(category: string) =
            MonitorLogger((if isNull category then "" else category), current, accessor)

        member _.Dispose() = ()
