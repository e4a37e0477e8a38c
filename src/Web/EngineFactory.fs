namespace ErrorMonitor.Web

open System
open System.Collections.Generic
open System.IO
open Microsoft.AspNetCore.Http
open Microsoft.Data.Sqlite
open Microsoft.Extensions.Logging
open ErrorMonitor
open ErrorMonitor.Core
open ErrorMonitor.Web.Stores

/// What an engine is built from: the configuration's APP_ERROR_* values and the parts an app may bring. The
/// facade fills it from options, configuration and dependency injection; every part may stay null (its default).
[<Sealed; AllowNullLiteral>]
type internal EngineSources() =
    /// The APP_ERROR_* keys and their values (lists as KEY:0, KEY:1, ...).
    member val Values: IReadOnlyDictionary<string, string> = Dictionary<string, string>() with get, set
    /// ConnectionStrings:ErrorMonitor.
    member val ConnectionString: string = null with get, set
    /// The app's content root, for relative file names.
    member val ContentRoot: string = null with get, set
    /// A masking function (null keeps a value, any text masks it), or null for APP_ERROR_MASKED_KEY_HAS.
    member val Masking: Func<string, string> = null with get, set
    /// A fingerprint function (null falls back to the default), or null.
    member val Fingerprint: Func<exn, HttpContext, string> = null with get, set
    /// The app's context builder, or null.
    member val ContextBuilder: IContextBuilder = Unchecked.defaultof<IContextBuilder> with get, set
    /// The app's own store, or null for APP_ERROR_STORE.
    member val Store: IErrorStore = Unchecked.defaultof<IErrorStore> with get, set
    /// Notifiers besides the built-in email and webhook ones.
    member val Notifiers: seq<INotifier> = Seq.empty with get, set
    /// Ticketing plug-ins.
    member val Ticketing: seq<ITicketing> = Seq.empty with get, set
    /// Where "now" comes from, or null for the system clock.
    member val Clock: TimeProvider = null with get, set
    /// Where ErrorMonitor logs its own failures, or null.
    member val Logger: ILogger = null with get, set
    /// The host's environment name (Production, Development, ...), or null for DOTNET_ENVIRONMENT /
    /// ASPNETCORE_ENVIRONMENT, else Production.
    member val EnvironmentName: string = null with get, set
    /// The host's meter factory, or null for a meter of the engine's own.
    member val MeterFactory: Diagnostics.Metrics.IMeterFactory = null with get, set

/// Building an engine from flat configuration and app-supplied parts (used by the C# facade and F# apps).
[<RequireQualifiedAccess>]
module internal EngineFactory =

    /// The default SQLite connection string: a file next to the app.
    [<Literal>]
    let DefaultSqlite = "Data Source=errormonitor.db"

    /// The store the settings choose. A relative SQLite file is placed in `contentRoot`.
    let store (settings: Settings) (connectionString: string) (contentRoot: string) : IErrorStore =
        match settings.Store with
        | StoreKind.Memory -> MemoryStore(settings.SamplesPerGroup) :> IErrorStore
        | StoreKind.Sqlite ->
            let b =
                try
                    SqliteConnectionStringBuilder(
                        if String.IsNullOrWhiteSpace connectionString then
                            DefaultSqlite
                        else
                            connectionString
                    )
                with ex ->
                    raise (
                        ErrorMonitorConfigException(
                            sprintf
                                "ConnectionStrings:ErrorMonitor is not a valid SQLite connection string: %s"
                                ex.Message
                        )
                    )

            if
                b.DataSource <> ":memory:"
                && not (Path.IsPathRooted b.DataSource)
                && not (String.IsNullOrEmpty contentRoot)
            then
                b.DataSource <- Path.Combine(contentRoot, b.DataSource)

            SqliteStore(b.ConnectionString, settings.TableName, settings.SamplesPerGroup) :> IErrorStore
        | StoreKind.Postgres ->
            if String.IsNullOrWhiteSpace connectionString then
                raise (
                    ErrorMonitorConfigException(
                        "APP_ERROR_STORE=postgres needs ConnectionStrings:ErrorMonitor (an Npgsql connection string)"
                    )
                )

            try
                PostgresStore.Create(connectionString, settings.TableName, settings.SamplesPerGroup) :> IErrorStore
            with ex ->
                raise (
                    ErrorMonitorConfigException(
                        sprintf
                            "ConnectionStrings:ErrorMonitor is not a valid PostgreSQL connection string: %s"
                            ex.Message
                    )
                )

    /// A masking rule from a C# delegate: null keeps the value, any text masks it with that text.
    let maskingOf (f: Func<string, string>) : MaskingRule =
        fun key ->
            match f.Invoke key with
            | null -> MaskDecision.Keep
            | text -> MaskDecision.MaskWith text

    /// A fingerprint function from a C# delegate: null falls back to the default fingerprint. The delegate
    /// gets the exception (null for messages) and the request (null outside one).
    let fingerprintOf (f: Func<exn, HttpContext, string>) : exn -> HttpContext -> string option =
        fun e http -> Option.ofObj (f.Invoke(e, http))

    /// One HTTP client for every webhook notifier of the process.
    let private webhookClient =
        lazy (new Net.Http.HttpClient(Timeout = TimeSpan.FromSeconds 30.0))

    /// The release occurrences are recorded in: APP_ERROR_RELEASE, else the entry assembly's informational
    /// version (the SDK's "1.2.3+commit"), else its version; empty when there is none.
    let release (settings: Settings) : string =
        match settings.Release with
        | Some r -> r
        | None ->
            match Reflection.Assembly.GetEntryAssembly() with
            | null -> ""
            | a ->
                match
                    Reflection.CustomAttributeExtensions.GetCustomAttribute<
                        Reflection.AssemblyInformationalVersionAttribute
                     >
                        a
                with
                | null ->
                    match a.GetName().Version with
                    | null -> ""
                    | v -> string v
                | v -> v.InformationalVersion
            |> Triage.releaseName

    /// The environment occurrences are recorded in: the host's, else DOTNET_ENVIRONMENT or ASPNETCORE_ENVIRONMENT,
    /// else Production (as the host's own default).
    let environment (hostName: string) : string =
        [
            hostName
            Environment.GetEnvironmentVariable "DOTNET_ENVIRONMENT"
            Environment.GetEnvironmentVariable "ASPNETCORE_ENVIRONMENT"
            "Production"
        ]
        |> List.find (String.IsNullOrWhiteSpace >> not)
        |> Triage.releaseName

    /// Parses settings; throws ErrorMonitorConfigException naming every key at fault.
    let settings (values: IReadOnlyDictionary<string, string>) : Settings =
        let map =
            values
            |> Seq.filter (fun kv -> not (isNull kv.Value))
            |> Seq.map (fun kv -> kv.Key, kv.Value)
            |> Map.ofSeq

        match Config.parse map with
        | Ok s -> s
        | Error errors -> raise (ErrorMonitorConfigException(Config.describe errors))

    /// Builds an engine from flat configuration (APP_ERROR_* keys) and the app's parts (a null part means its
    /// default). Throws ErrorMonitorConfigException naming the key at fault.
    let create (sources: EngineSources) : Engine =
        let values = sources.Values
        let connectionString = sources.ConnectionString
        let contentRoot = sources.ContentRoot
        let masking = sources.Masking
        let fingerprint = sources.Fingerprint
        let contextBuilder = sources.ContextBuilder
        let customStore = sources.Store
        let clock = sources.Clock
        let logger = sources.Logger
        let s = settings values

        let builtIn: INotifier list =
            [
                if s.Notify.SmtpHost.IsSome then
                    EmailNotifier(s.Notify) :> INotifier
                match s.Notify.WebhookUrl with
                | Some url -> WebhookNotifier(url, webhookClient.Value) :> INotifier
                | None -> ()
            ]

        let some (xs: seq<'T>) =
            if isNull (box xs) then
                []
            else
                xs |> Seq.filter (box >> isNull >> not) |> List.ofSeq

        Engine
            {
                Settings = s
                Limits = Limits.defaults
                Masking =
                    if isNull masking then
                        Config.maskingRule s
                    else
                        maskingOf masking
                Fingerprint =
                    if isNull fingerprint then
                        None
                    else
                        Some(fingerprintOf fingerprint)
                ContextBuilder =
                    if isNull (box contextBuilder) then
                        None
                    else
                        Some contextBuilder
                Store =
                    if isNull (box customStore) then
                        store s connectionString contentRoot
                    else
                        customStore
                Clock = if isNull clock then TimeProvider.System else clock
                Logger =
                    if isNull logger then
                        Abstractions.NullLogger.Instance :> ILogger
                    else
                        logger
                SpillPath =
                    s.SpillFile
                    |> Option.map (fun f ->
                        if IO.Path.IsPathRooted f || String.IsNullOrEmpty contentRoot then
                            f
                        else
                            IO.Path.Combine(contentRoot, f))
                Notifiers = builtIn @ some sources.Notifiers
                Ticketing = some sources.Ticketing
                Metrics = new Metrics(sources.MeterFactory)
                Release = release s
                Environment = environment sources.EnvironmentName
            }
