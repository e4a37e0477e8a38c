namespace ErrorMonitor.Core

open System
open System.Text.RegularExpressions

/// Which store keeps the records.
[<RequireQualifiedAccess>]
type internal StoreKind =
    /// An SQLite file next to the app (default).
    | Sqlite
    /// In memory, for tests and demos: lost on restart.
    | Memory
    /// A PostgreSQL database shared by many app instances.
    | Postgres

/// How the built-in email notifier talks to its SMTP server.
[<RequireQualifiedAccess>]
type internal SmtpSecurity =
    /// Plain SMTP (port 25 by default).
    | None
    /// STARTTLS after connecting (port 587 by default).
    | StartTls
    /// TLS from the first byte (port 465 by default).
    | Tls

/// Notification channels and the notification policy.
type internal NotifySettings =
    {
        /// APP_ERROR_SMTP_HOST: turns the email notifier on (with APP_ERROR_SEND_NOTIFICATION). Default none.
        SmtpHost: string option
        /// APP_ERROR_SMTP_PORT. Default 25, 587 or 465 by security.
        SmtpPort: int
        /// APP_ERROR_SMTP_USER: authenticates when set. Default none.
        SmtpUser: string option
        /// APP_ERROR_SMTP_PASSWORD. Default none.
        SmtpPassword: string option
        /// APP_ERROR_SMTP_SECURITY: none | starttls | tls. Default starttls.
        SmtpSecurity: SmtpSecurity
        /// APP_ERROR_WEBHOOK_URL: turns the webhook notifier on (with APP_ERROR_SEND_NOTIFICATION). Default none.
        WebhookUrl: string option
        /// APP_ERROR_BASE_URL: the app's public address, for links to detail pages. Default none.
        BaseUrl: string option
        /// APP_ERROR_NOTIFY_EVERY_OCCURRENCE: the seed's behaviour, a notification a written batch. Default false.
        EveryOccurrence: bool
        /// APP_ERROR_NOTIFY_QUIET_PERIOD: a group quiet this long notifies again when it comes back. Default 24 h.
        QuietPeriod: TimeSpan
        /// APP_ERROR_NOTIFY_INTERVAL: at most one notification a group, and the window of the overall cap. Default 30 min.
        Interval: TimeSpan
        /// APP_ERROR_NOTIFY_MAX_PER_INTERVAL: notifications an interval in all; then one summary. Default 10.
        MaxPerInterval: int
        /// APP_ERROR_TICKET_PER_REGRESSION: raise a ticket again for a regression. Default false (once a group).
        TicketPerRegression: bool
        /// APP_ERROR_TICKET_EVERY_OCCURRENCE: the seed's behaviour, a ticket a written batch (an ignored group
        /// raises none). Default false (once a group).
        TicketEveryOccurrence: bool
        /// APP_ERROR_NOTIFY_TIMEOUT: how long one notifier or ticketing call may take. Default 10 s.
        Timeout: TimeSpan
    }

/// The capture route: other services and browsers reporting errors over HTTP.
type internal IngestSettings =
    {
        /// APP_ERROR_INGEST_KEY: one or several keys; none turns the route off. Default none.
        Keys: string list
        /// APP_ERROR_INGEST_MAX_BYTES: the largest report accepted. Default 262,144 (256 KB).
        MaxBytes: int
        /// APP_ERROR_INGEST_RATE: reports a minute per key; past it, 429. Default 600.
        RatePerMinute: int
        /// APP_ERROR_INGEST_CORS_ORIGINS: origins whose pages may report (browsers). Default none.
        CorsOrigins: string list
        /// APP_ERROR_INGEST_GROUPS_PER_HOUR: distinct groups a key may report in an hour; reports of a new group
        /// past it get 429 (what one key can make the database store is bounded). Default 100.
        GroupsPerHour: int
    }

/// ErrorMonitor's settings, read from the seed's APP_ERROR_* keys.
type internal Settings =
    {
        /// APP_ERROR_ENABLED: false turns capture off entirely. Default true.
        Enabled: bool
        /// APP_ERROR_SEND_NOTIFICATION: send notifications. Default false.
        SendNotification: bool
        /// APP_ERROR_RECIPIENT_EMAIL: who gets notification emails. Default none.
        RecipientEmails: string list
        /// APP_ERROR_SUBJECT_PREFIX: prefix of the notification subject. Default "".
        SubjectPrefix: string
        /// APP_ERROR_MASK_WITH: text that replaces masked values. Default "**************".
        MaskWith: string
        /// APP_ERROR_MASKED_KEY_HAS: a key containing one of these (any case) is masked; empty disables the
        /// key rule. Default ["password"; "secret"].
        MaskedKeyHas: string list
        /// APP_ERROR_MASKED_KEYS: names masked when a key's normal form is one or ends with one (Masking.nameRule).
        /// Default: Masking.defaultNames (token, apikey, auth, session, …); None turns the rule off.
        MaskedKeys: string list
        /// APP_ERROR_URL_PREFIX: where the pages are served. Default "/dev/error".
        UrlPrefix: string
        /// APP_ERROR_EMAIL_SENDER: the From address of notification emails. Default none.
        EmailSender: string option
        /// APP_DEFAULT_LIST_SIZE: groups per list page. Default 20.
        DefaultListSize: int
        /// APP_ERROR_STORE: sqlite | memory | postgres. Default sqlite.
        Store: StoreKind
        /// APP_ERROR_TABLE: the table name. Default "app_error".
        TableName: string
        /// Notification channels and policy.
        Notify: NotifySettings
        /// APP_ERROR_MAX_PENDING_GROUPS: distinct groups held in memory while the store is slow or down; past
        /// it, occurrences of new groups are counted as dropped. Default 10,000.
        MaxPendingGroups: int
        /// APP_ERROR_SHUTDOWN_TIMEOUT: how long a graceful stop may spend writing what is pending. Default 5 s.
        ShutdownTimeout: TimeSpan
        /// APP_ERROR_FLUSH_INTERVAL: the least time between two writes to the store under a storm (a failure
        /// after a quiet spell is written at once), and how often pending occurrences are saved to the spill
        /// file while the store is down, so a hard kill loses about this much. Default 200 ms.
        FlushInterval: TimeSpan
        /// APP_ERROR_DETAILS_INTERVAL: how often a group's stored request data and traceback are refreshed
        /// from a new occurrence while it keeps failing; repeats in between only add to its count and last-seen
        /// time, which stay exact. Each refresh takes a sample (APP_ERROR_SAMPLES_PER_GROUP); 0s: every
        /// occurrence is a candidate. Default 30 s.
        DetailsInterval: TimeSpan
        /// APP_ERROR_RETENTION: groups not seen for this long are removed. Default 90 days.
        Retention: TimeSpan
        /// APP_ERROR_MAX_GROUPS: past this many groups, the least recently seen are removed. Default 100,000.
        MaxGroups: int
        /// APP_ERROR_SAMPLES_PER_GROUP: recent occurrences a group keeps as samples besides its first (a sample is
        /// taken when its details are refreshed), 1 to 1,000. Default 10.
        SamplesPerGroup: int
        /// APP_ERROR_SPILL_FILE: where unwritten occurrences wait for the next start; relative to the content
        /// root; "none" turns spilling off. Default "errormonitor.spill.jsonl".
        SpillFile: string option
        /// APP_ERROR_LOG_LEVEL: the logging integration's threshold, as Microsoft.Extensions.Logging numbers it
        /// (0 Trace, 1 Debug, 2 Information, 3 Warning, 4 Error, 5 Critical): entries at or above it without an
        /// exception are recorded as messages, grouped by their template; entries with an exception at Error and
        /// above are recorded as occurrences. 6 (None) turns the integration off. Default 4 (Error).
        LogLevel: int
        /// APP_ERROR_BREADCRUMBS: the last log entries (Information and up) of the failing request, or outside a
        /// request of the current async flow, kept with an occurrence (0 to 1,000; 0 keeps none). Default 30.
        Breadcrumbs: int
        /// APP_ERROR_RELEASE: the release every occurrence is recorded in (at most 200 characters); None: the
        /// app's entry assembly's informational version (the shell reads it). Default None.
        Release: string option
        /// APP_ERROR_REQUEST_BODY: the largest request body recorded with an occurrence, in bytes (JSON, form and
        /// text bodies; a larger one is noted, not recorded): 0 (none, the default), 1,000 (small), 10,000
        /// (medium), or 131,072 (always: half the request data's own bound).
        RequestBody: int
        /// The capture route.
        Ingest: IngestSettings
    }

/// One problem with the configuration, naming its key.
type internal ConfigError =
    {
        /// The configuration key at fault.
        Key: string
        /// What is wrong with it.
        Problem: string
    }

/// Reading, validating and writing settings as flat key/value pairs.
[<RequireQualifiedAccess>]
module internal Config =

    [<Literal>]
    let EnabledKey = "APP_ERROR_ENABLED"

    [<Literal>]
    let SendNotificationKey = "APP_ERROR_SEND_NOTIFICATION"

    [<Literal>]
    let RecipientEmailKey = "APP_ERROR_RECIPIENT_EMAIL"

    [<Literal>]
    let SubjectPrefixKey = "APP_ERROR_SUBJECT_PREFIX"

    [<Literal>]
    let MaskWithKey = "APP_ERROR_MASK_WITH"

    [<Literal>]
    let MaskedKeyHasKey = "APP_ERROR_MASKED_KEY_HAS"

    [<Literal>]
    let MaskedKeysKey = "APP_ERROR_MASKED_KEYS"

    [<Literal>]
    let UrlPrefixKey = "APP_ERROR_URL_PREFIX"

    [<Literal>]
    let EmailSenderKey = "APP_ERROR_EMAIL_SENDER"

    [<Literal>]
    let DefaultListSizeKey = "APP_DEFAULT_LIST_SIZE"

    [<Literal>]
    let StoreKey = "APP_ERROR_STORE"

    [<Literal>]
    let TableKey = "APP_ERROR_TABLE"

    [<Literal>]
    let MaxPendingGroupsKey = "APP_ERROR_MAX_PENDING_GROUPS"

    [<Literal>]
    let ShutdownTimeoutKey = "APP_ERROR_SHUTDOWN_TIMEOUT"

    [<Literal>]
    let FlushIntervalKey = "APP_ERROR_FLUSH_INTERVAL"

    [<Literal>]
    let DetailsIntervalKey = "APP_ERROR_DETAILS_INTERVAL"

    [<Literal>]
    let SpillFileKey = "APP_ERROR_SPILL_FILE"

    [<Literal>]
    let RetentionKey = "APP_ERROR_RETENTION"

    [<Literal>]
    let MaxGroupsKey = "APP_ERROR_MAX_GROUPS"

    [<Literal>]
    let LogLevelKey = "APP_ERROR_LOG_LEVEL"

    [<Literal>]
    let BreadcrumbsKey = "APP_ERROR_BREADCRUMBS"

    [<Literal>]
    let ReleaseKey = "APP_ERROR_RELEASE"

    [<Literal>]
    let RequestBodyKey = "APP_ERROR_REQUEST_BODY"

    /// APP_ERROR_REQUEST_BODY's values and the most bytes each records.
    let RequestBodies = [ "none", 0; "small", 1000; "medium", 10000; "always", 131072 ]

    /// The names of APP_ERROR_LOG_LEVEL's values, in Microsoft.Extensions.Logging's order (its numbers).
    let LogLevels =
        [ "trace"; "debug"; "information"; "warning"; "error"; "critical"; "none" ]

    [<Literal>]
    let SamplesPerGroupKey = "APP_ERROR_SAMPLES_PER_GROUP"

    [<Literal>]
    let IngestKeyKey = "APP_ERROR_INGEST_KEY"

    [<Literal>]
    let IngestMaxBytesKey = "APP_ERROR_INGEST_MAX_BYTES"

    [<Literal>]
    let IngestRateKey = "APP_ERROR_INGEST_RATE"

    [<Literal>]
    let IngestCorsKey = "APP_ERROR_INGEST_CORS_ORIGINS"

    [<Literal>]
    let IngestGroupsKey = "APP_ERROR_INGEST_GROUPS_PER_HOUR"

    [<Literal>]
    let SmtpHostKey = "APP_ERROR_SMTP_HOST"

    [<Literal>]
    let SmtpPortKey = "APP_ERROR_SMTP_PORT"

    [<Literal>]
    let SmtpUserKey = "APP_ERROR_SMTP_USER"

    [<Literal>]
    let SmtpPasswordKey = "APP_ERROR_SMTP_PASSWORD"

    [<Literal>]
    let SmtpSecurityKey = "APP_ERROR_SMTP_SECURITY"

    [<Literal>]
    let WebhookUrlKey = "APP_ERROR_WEBHOOK_URL"

    [<Literal>]
    let BaseUrlKey = "APP_ERROR_BASE_URL"

    [<Literal>]
    let EveryOccurrenceKey = "APP_ERROR_NOTIFY_EVERY_OCCURRENCE"

    [<Literal>]
    let QuietPeriodKey = "APP_ERROR_NOTIFY_QUIET_PERIOD"

    [<Literal>]
    let IntervalKey = "APP_ERROR_NOTIFY_INTERVAL"

    [<Literal>]
    let MaxPerIntervalKey = "APP_ERROR_NOTIFY_MAX_PER_INTERVAL"

    [<Literal>]
    let TicketPerRegressionKey = "APP_ERROR_TICKET_PER_REGRESSION"

    [<Literal>]
    let TicketEveryOccurrenceKey = "APP_ERROR_TICKET_EVERY_OCCURRENCE"

    [<Literal>]
    let NotifyTimeoutKey = "APP_ERROR_NOTIFY_TIMEOUT"

    /// The defaults of the seed (and of this project's own keys).
    let defaults =
        {
            Enabled = true
            SendNotification = false
            RecipientEmails = []
            SubjectPrefix = ""
            MaskWith = "**************"
            MaskedKeyHas = [ "password"; "secret" ]
            MaskedKeys = Masking.defaultNames
            UrlPrefix = "/dev/error"
            EmailSender = None
            DefaultListSize = 20
            Store = StoreKind.Sqlite
            TableName = "app_error"
            Notify =
                {
                    SmtpHost = None
                    SmtpPort = 587
                    SmtpUser = None
                    SmtpPassword = None
                    SmtpSecurity = SmtpSecurity.StartTls
                    WebhookUrl = None
                    BaseUrl = None
                    EveryOccurrence = false
                    QuietPeriod = TimeSpan.FromHours 24.0
                    Interval = TimeSpan.FromMinutes 30.0
                    MaxPerInterval = 10
                    TicketPerRegression = false
                    TicketEveryOccurrence = false
                    Timeout = TimeSpan.FromSeconds 10.0
                }
            MaxPendingGroups = 10000
            ShutdownTimeout = TimeSpan.FromSeconds 5.0
            FlushInterval = TimeSpan.FromMilliseconds 200.0
            DetailsInterval = TimeSpan.FromSeconds 30.0
            Retention = TimeSpan.FromDays 90.0
            MaxGroups = 100000
            SamplesPerGroup = Samples.DefaultRecent
            SpillFile = Some "errormonitor.spill.jsonl"
            LogLevel = 4
            Breadcrumbs = 30
            Release = None
            RequestBody = 0
            Ingest =
                {
                    Keys = []
                    MaxBytes = 262144
                    RatePerMinute = 600
                    CorsOrigins = []
                    GroupsPerHour = 100
                }
        }

    /// A duration: "90s", "30m", "24h", "2d", a TimeSpan ("00:30:00", "1.00:00:00"), or a number of seconds.
    let parseDuration (text: string) : TimeSpan option =
        let t = if isNull text then "" else text.Trim().ToLowerInvariant()

        let number (s: string) =
            match Double.TryParse(s, Globalization.NumberStyles.Float, Globalization.CultureInfo.InvariantCulture) with
            | true, v when v >= 0.0 && not (Double.IsInfinity v) -> Some v
            | _ -> None

        let unit (suffix: string) (make: float -> TimeSpan) =
            if t.EndsWith suffix then
                number (t.Substring(0, t.Length - suffix.Length)) |> Option.map make
            else
                None

        [
            unit "ms" TimeSpan.FromMilliseconds
            unit "s" TimeSpan.FromSeconds
            unit "m" TimeSpan.FromMinutes
            unit "h" TimeSpan.FromHours
            unit "d" TimeSpan.FromDays
            (match TimeSpan.TryParse(t, Globalization.CultureInfo.InvariantCulture) with
             | true, v when t.Contains ':' && v >= TimeSpan.Zero -> Some v
             | _ -> None)
            number t |> Option.map TimeSpan.FromSeconds
        ]
        |> List.tryPick id

    /// Word that turns a list setting off (the seed's `None`).
    let private noneWords = set [ "none"; "null"; "false" ]

    let private tableName =
        Regex(@"^[A-Za-z_][A-Za-z0-9_]{0,62}$", RegexOptions.CultureInvariant)

    /// SQLite's keywords and PostgreSQL's reserved words: a table named after one would break every statement
    /// (the stores write the name unquoted), so APP_ERROR_TABLE refuses them.
    let reservedWords =
        set (
            ("ABORT ACTION ADD AFTER ALL ALTER ALWAYS ANALYZE AND AS ASC ATTACH AUTOINCREMENT BEFORE BEGIN BETWEEN BY "
             + "CASCADE CASE CAST CHECK COLLATE COLUMN COMMIT CONFLICT CONSTRAINT CREATE CROSS CURRENT CURRENT_DATE "
             + "CURRENT_TIME CURRENT_TIMESTAMP DATABASE DEFAULT DEFERRABLE DEFERRED DELETE DESC DETACH DISTINCT DO DROP "
             + "EACH ELSE END ESCAPE EXCEPT EXCLUDE EXCLUSIVE EXISTS EXPLAIN FAIL FILTER FIRST FOLLOWING FOR FOREIGN FROM "
             + "FULL GENERATED GLOB GROUP GROUPS HAVING IF IGNORE IMMEDIATE IN INDEX INDEXED INITIALLY INNER INSERT "
             + "INSTEAD INTERSECT INTO IS ISNULL JOIN KEY LAST LEFT LIKE LIMIT MATCH MATERIALIZED NATURAL NO NOT NOTHING "
             + "NOTNULL NULL NULLS OF OFFSET ON OR ORDER OTHERS OUTER OVER PARTITION PLAN PRAGMA PRECEDING PRIMARY QUERY "
             + "RAISE RANGE RECURSIVE REFERENCES REGEXP REINDEX RELEASE RENAME REPLACE RESTRICT RETURNING RIGHT ROLLBACK "
             + "ROW ROWS SAVEPOINT SELECT SET TABLE TEMP TEMPORARY THEN TIES TO TRANSACTION TRIGGER UNBOUNDED UNION "
             + "UNIQUE UPDATE USING VACUUM VALUES VIEW VIRTUAL WHEN WHERE WINDOW WITH WITHOUT "
             + "ANALYSE ANY ARRAY ASYMMETRIC AUTHORIZATION BINARY BOTH COLLATION CONCURRENTLY CURRENT_CATALOG "
             + "CURRENT_ROLE CURRENT_SCHEMA CURRENT_USER FALSE FETCH FREEZE GRANT ILIKE LATERAL LEADING LOCALTIME "
             + "LOCALTIMESTAMP ONLY OVERLAPS PLACING SESSION_USER SIMILAR SOME SYMMETRIC SYSTEM_USER TABLESAMPLE "
             + "TRAILING TRUE USER VARIADIC VERBOSE")
                .Split(' ', StringSplitOptions.RemoveEmptyEntries)
        )

    let private lookup (values: Map<string, string>) (key: string) : string option =
        values
        |> Map.tryFindKey (fun k _ -> String.Equals(k, key, StringComparison.OrdinalIgnoreCase))
        |> Option.map (fun k -> values.[k])

    /// A list setting: `KEY` as one value or comma-separated values, or `KEY:0`, `KEY:1`, … (how
    /// IConfiguration flattens arrays). None when the key is absent; Some [] when it says none.
    let readList (values: Map<string, string>) (key: string) : string list option =
        let prefix = key + ":"

        let indexed =
            values
            |> Map.toList
            |> List.choose (fun (k, v) ->
                if k.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) then
                    match Int32.TryParse(k.Substring prefix.Length) with
                    | true, i -> Some(i, v)
                    | _ -> None
                else
                    None)
            |> List.sortBy fst
            |> List.map snd

        let split (v: string) =
            v.Split(',', StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries)
            |> List.ofArray
            |> List.map (fun s -> s.Trim([| '('; ')'; '['; ']'; '\''; '"' |]).Trim())
            |> List.filter (fun s -> s <> "")

        match lookup values key, indexed with
        | _, (_ :: _ as items) -> Some(items |> List.map (fun s -> s.Trim()) |> List.filter (fun s -> s <> ""))
        | Some v, [] when noneWords.Contains(v.Trim().ToLowerInvariant()) || v.Trim() = "" -> Some []
        | Some v, [] -> Some(split v)
        | None, [] -> None

    let private parseBool (key: string) (v: string) : Result<bool, ConfigError> =
        match v.Trim().ToLowerInvariant() with
        | "true"
        | "1"
        | "yes"
        | "on" -> Ok true
        | "false"
        | "0"
        | "no"
        | "off" -> Ok false
        | _ ->
            Error
                {
                    Key = key
                    Problem = sprintf "expected true or false, got '%s'" v
                }

    /// Reads and validates settings, telling `note` every key it reads (every read is unconditional, so reading
    /// an empty map names every key: that is how `keys` is derived).
    let private parseNoting (note: string -> unit) (values: Map<string, string>) : Result<Settings, ConfigError list> =
        let errors = ResizeArray<ConfigError>()

        let get key =
            note key
            lookup values key

        let readList (values: Map<string, string>) (key: string) =
            note key
            readList values key

        let bool key fallback =
            match get key with
            | None -> fallback
            | Some v ->
                match parseBool key v with
                | Ok b -> b
                | Error e ->
                    errors.Add e
                    fallback

        let enabled = bool EnabledKey defaults.Enabled
        let send = bool SendNotificationKey defaults.SendNotification

        let recipients =
            readList values RecipientEmailKey
            |> Option.defaultValue defaults.RecipientEmails

        for r in recipients do
            if not (r.Contains '@') then
                errors.Add
                    {
                        Key = RecipientEmailKey
                        Problem = sprintf "'%s' is not an email address" r
                    }

        let sender =
            match get EmailSenderKey with
            | Some v when v.Trim() <> "" -> Some(v.Trim())
            | _ -> None

        match sender with
        | Some s when not (s.Contains '@') ->
            errors.Add
                {
                    Key = EmailSenderKey
                    Problem = sprintf "'%s' is not an email address" s
                }
        | _ -> ()

        if send && not (List.isEmpty recipients) && sender.IsNone then
            errors.Add
                {
                    Key = EmailSenderKey
                    Problem =
                        sprintf
                            "is required when %s is true and %s names recipients"
                            SendNotificationKey
                            RecipientEmailKey
                }

        let prefix =
            match get UrlPrefixKey with
            | None -> defaults.UrlPrefix
            | Some v ->
                let v = v.Trim()

                if not (v.StartsWith "/") then
                    errors.Add
                        {
                            Key = UrlPrefixKey
                            Problem = sprintf "must start with '/', got '%s'" v
                        }

                    defaults.UrlPrefix
                elif
                    v
                    |> Seq.exists (fun c -> c = '?' || c = '#' || Char.IsWhiteSpace c || Char.IsControl c)
                then
                    errors.Add
                        {
                            Key = UrlPrefixKey
                            Problem = sprintf "must be a plain path (no '?', '#' or spaces), got '%s'" v
                        }

                    defaults.UrlPrefix
                else
                    let trimmed = v.TrimEnd '/'
                    if trimmed = "" then "/" else trimmed

        let listSize =
            match get DefaultListSizeKey with
            | None -> defaults.DefaultListSize
            | Some v ->
                match Int32.TryParse(v.Trim()) with
                | true, n when n >= 1 && n <= 1000 -> n
                | _ ->
                    errors.Add
                        {
                            Key = DefaultListSizeKey
                            Problem = sprintf "must be a whole number from 1 to 1000, got '%s'" v
                        }

                    defaults.DefaultListSize

        let store =
            match get StoreKey |> Option.map (fun v -> v.Trim().ToLowerInvariant()) with
            | None
            | Some "" -> defaults.Store
            | Some "sqlite" -> StoreKind.Sqlite
            | Some "memory" -> StoreKind.Memory
            | Some("postgres" | "postgresql") -> StoreKind.Postgres
            | Some other ->
                errors.Add
                    {
                        Key = StoreKey
                        Problem = sprintf "must be sqlite, memory or postgres, got '%s'" other
                    }

                defaults.Store

        let logLevel =
            match get LogLevelKey |> Option.map (fun v -> v.Trim().ToLowerInvariant()) with
            | None
            | Some "" -> defaults.LogLevel
            | Some v ->
                match List.tryFindIndex ((=) v) LogLevels with
                | Some i -> i
                | None ->
                    errors.Add
                        {
                            Key = LogLevelKey
                            Problem = sprintf "must be one of %s, got '%s'" (String.Join(", ", LogLevels)) v
                        }

                    defaults.LogLevel

        let requestBody =
            match get RequestBodyKey |> Option.map (fun v -> v.Trim().ToLowerInvariant()) with
            | None
            | Some "" -> defaults.RequestBody
            | Some v ->
                match RequestBodies |> List.tryFind (fun (name, _) -> name = v) with
                | Some(_, bytes) -> bytes
                | None ->
                    errors.Add
                        {
                            Key = RequestBodyKey
                            Problem =
                                sprintf
                                    "must be one of %s, got '%s'"
                                    (String.Join(", ", RequestBodies |> List.map fst))
                                    v
                        }

                    defaults.RequestBody

        let release =
            match get ReleaseKey |> Option.map (fun v -> v.Trim()) with
            | None
            | Some "" -> defaults.Release
            | Some v when v.Length > 200 ->
                errors.Add
                    {
                        Key = ReleaseKey
                        Problem = sprintf "must be at most 200 characters, got %d" v.Length
                    }

                defaults.Release
            | Some v -> Some v

        let table =
            match get TableKey with
            | None -> defaults.TableName
            | Some v when reservedWords.Contains(v.Trim().ToUpperInvariant()) ->
                errors.Add
                    {
                        Key = TableKey
                        Problem = sprintf "must not be an SQL keyword (SQLite or PostgreSQL), got '%s'" v
                    }

                defaults.TableName
            | Some v when tableName.IsMatch(v.Trim()) -> v.Trim()
            | Some v ->
                errors.Add
                    {
                        Key = TableKey
                        Problem = sprintf "must be a plain SQL identifier (letters, digits, '_'), got '%s'" v
                    }

                defaults.TableName

        let optional key =
            match get key with
            | Some v when v.Trim() <> "" -> Some(v.Trim())
            | _ -> None

        // A duration: positive, or (`zero`) also 0.
        let durationFrom (zero: bool) key (fallback: TimeSpan) =
            match get key with
            | None -> fallback
            | Some v ->
                match parseDuration v with
                | Some d when d > TimeSpan.Zero || (zero && d = TimeSpan.Zero) -> d
                | _ ->
                    errors.Add
                        {
                            Key = key
                            Problem =
                                sprintf
                                    "must be a %s duration such as 30s, 30m, 24h or 00:30:00, got '%s'"
                                    (if zero then "positive or zero (0s)" else "positive")
                                    v
                        }

                    fallback

        let duration = durationFrom false

        let whole key (low: int) (high: int) (fallback: int) =
            match get key with
            | None -> fallback
            | Some v ->
                match Int32.TryParse(v.Trim()) with
                | true, n when n >= low && n <= high -> n
                | _ ->
                    errors.Add
                        {
                            Key = key
                            Problem = sprintf "must be a whole number from %d to %d, got '%s'" low high v
                        }

                    fallback

        let security =
            match get SmtpSecurityKey |> Option.map (fun v -> v.Trim().ToLowerInvariant()) with
            | None
            | Some "" -> defaults.Notify.SmtpSecurity
            | Some "none" -> SmtpSecurity.None
            | Some "starttls" -> SmtpSecurity.StartTls
            | Some("tls" | "ssl") -> SmtpSecurity.Tls
            | Some other ->
                errors.Add
                    {
                        Key = SmtpSecurityKey
                        Problem = sprintf "must be none, starttls or tls, got '%s'" other
                    }

                defaults.Notify.SmtpSecurity

        let defaultPort =
            match security with
            | SmtpSecurity.None -> 25
            | SmtpSecurity.StartTls -> 587
            | SmtpSecurity.Tls -> 465

        let absoluteUrl key =
            match optional key with
            | None -> None
            | Some v ->
                match Uri.TryCreate(v, UriKind.Absolute) with
                | true, u when u.Scheme = "http" || u.Scheme = "https" -> Some v
                | _ ->
                    errors.Add
                        {
                            Key = key
                            Problem = sprintf "must be an absolute http or https URL, got '%s'" v
                        }

                    None

        let notify =
            {
                SmtpHost = optional SmtpHostKey
                SmtpPort = whole SmtpPortKey 1 65535 defaultPort
                SmtpUser = optional SmtpUserKey
                SmtpPassword = get SmtpPasswordKey |> Option.filter (fun v -> v <> "")
                SmtpSecurity = security
                WebhookUrl = absoluteUrl WebhookUrlKey
                BaseUrl = absoluteUrl BaseUrlKey |> Option.map (fun u -> u.TrimEnd '/')
                EveryOccurrence = bool EveryOccurrenceKey defaults.Notify.EveryOccurrence
                QuietPeriod = duration QuietPeriodKey defaults.Notify.QuietPeriod
                Interval = duration IntervalKey defaults.Notify.Interval
                MaxPerInterval = whole MaxPerIntervalKey 1 1000000 defaults.Notify.MaxPerInterval
                TicketPerRegression = bool TicketPerRegressionKey defaults.Notify.TicketPerRegression
                TicketEveryOccurrence = bool TicketEveryOccurrenceKey defaults.Notify.TicketEveryOccurrence
                Timeout = duration NotifyTimeoutKey defaults.Notify.Timeout
            }

        if send && notify.SmtpHost.IsSome && List.isEmpty recipients then
            errors.Add
                {
                    Key = RecipientEmailKey
                    Problem = sprintf "is required when %s is true and %s is set" SendNotificationKey SmtpHostKey
                }

        let ingestKeys = readList values IngestKeyKey |> Option.defaultValue []

        for k in ingestKeys do
            if k.Length < 16 then
                errors.Add
                    {
                        Key = IngestKeyKey
                        Problem = "each key must be at least 16 characters long (a guessable key is no key)"
                    }

        let origins = readList values IngestCorsKey |> Option.defaultValue []

        for o in origins do
            match Uri.TryCreate(o, UriKind.Absolute) with
            | true, u when
                (u.Scheme = "http" || u.Scheme = "https")
                && u.AbsolutePath = "/"
                && o.TrimEnd('/') = o
                ->
                ()
            | _ ->
                errors.Add
                    {
                        Key = IngestCorsKey
                        Problem = sprintf "'%s' is not an origin such as https://shop.example.com" o
                    }

        let ingest =
            {
                Keys = ingestKeys
                MaxBytes = whole IngestMaxBytesKey 1024 67108864 defaults.Ingest.MaxBytes
                RatePerMinute = whole IngestRateKey 1 10000000 defaults.Ingest.RatePerMinute
                CorsOrigins = origins
                GroupsPerHour = whole IngestGroupsKey 1 10000000 defaults.Ingest.GroupsPerHour
            }

        let settings =
            {
                Enabled = enabled
                SendNotification = send
                RecipientEmails = recipients
                SubjectPrefix = get SubjectPrefixKey |> Option.defaultValue defaults.SubjectPrefix
                MaskWith = get MaskWithKey |> Option.defaultValue defaults.MaskWith
                MaskedKeyHas = readList values MaskedKeyHasKey |> Option.defaultValue defaults.MaskedKeyHas
                MaskedKeys = readList values MaskedKeysKey |> Option.defaultValue defaults.MaskedKeys
                UrlPrefix = prefix
                EmailSender = sender
                DefaultListSize = listSize
                Store = store
                TableName = table
                Notify = notify
                MaxPendingGroups = whole MaxPendingGroupsKey 1 10000000 defaults.MaxPendingGroups
                ShutdownTimeout = duration ShutdownTimeoutKey defaults.ShutdownTimeout
                FlushInterval = duration FlushIntervalKey defaults.FlushInterval
                DetailsInterval = durationFrom true DetailsIntervalKey defaults.DetailsInterval
                Retention = duration RetentionKey defaults.Retention
                MaxGroups = whole MaxGroupsKey 1 100000000 defaults.MaxGroups
                SamplesPerGroup = whole SamplesPerGroupKey 1 1000 defaults.SamplesPerGroup
                SpillFile =
                    match get SpillFileKey |> Option.map (fun v -> v.Trim()) with
                    | None -> defaults.SpillFile
                    | Some v when noneWords.Contains(v.ToLowerInvariant()) || v = "" -> None
                    | Some v -> Some v
                LogLevel = logLevel
                Breadcrumbs = whole BreadcrumbsKey 0 1000 defaults.Breadcrumbs
                Release = release
                RequestBody = requestBody
                Ingest = ingest
            }

        if errors.Count = 0 then
            Ok settings
        else
            Error(List.ofSeq errors)

    /// Reads settings from flat key/value pairs (keys compared without case) and validates them. Every problem
    /// is reported, each naming its key.
    let parse (values: Map<string, string>) : Result<Settings, ConfigError list> = parseNoting ignore values

    /// Every key the settings are read from, in the order `parse` reads them: derived from `parse` itself, so a
    /// key it reads is always listed (the facade takes exactly these keys from appsettings and the environment).
    let keys: string list =
        let asked = ResizeArray<string>()
        parseNoting asked.Add Map.empty |> ignore
        asked |> Seq.distinct |> List.ofSeq

    /// Settings as flat key/value pairs that `parse` reads back to the same settings.
    let toMap (s: Settings) : Map<string, string> =
        let list key (items: string list) =
            match items with
            | [] -> [ key, "none" ]
            | _ -> items |> List.mapi (fun i v -> sprintf "%s:%d" key i, v)

        [
            [ EnabledKey, (if s.Enabled then "true" else "false") ]
            [ SendNotificationKey, (if s.SendNotification then "true" else "false") ]
            list RecipientEmailKey s.RecipientEmails
            [ SubjectPrefixKey, s.SubjectPrefix ]
            [ MaskWithKey, s.MaskWith ]
            list MaskedKeyHasKey s.MaskedKeyHas
            list MaskedKeysKey s.MaskedKeys
            [ UrlPrefixKey, s.UrlPrefix ]
            (match s.EmailSender with
             | Some e -> [ EmailSenderKey, e ]
             | None -> [])
            [ DefaultListSizeKey, string s.DefaultListSize ]
            [
                StoreKey,
                (match s.Store with
                 | StoreKind.Sqlite -> "sqlite"
                 | StoreKind.Memory -> "memory"
                 | StoreKind.Postgres -> "postgres")
            ]
            [ TableKey, s.TableName ]
            (s.Notify.SmtpHost |> Option.map (fun h -> SmtpHostKey, h) |> Option.toList)
            [ SmtpPortKey, string s.Notify.SmtpPort ]
            (s.Notify.SmtpUser |> Option.map (fun u -> SmtpUserKey, u) |> Option.toList)
            (s.Notify.SmtpPassword
             |> Option.map (fun p -> SmtpPasswordKey, p)
             |> Option.toList)
            [
                SmtpSecurityKey,
                (match s.Notify.SmtpSecurity with
                 | SmtpSecurity.None -> "none"
                 | SmtpSecurity.StartTls -> "starttls"
                 | SmtpSecurity.Tls -> "tls")
            ]
            (s.Notify.WebhookUrl |> Option.map (fun u -> WebhookUrlKey, u) |> Option.toList)
            (s.Notify.BaseUrl |> Option.map (fun u -> BaseUrlKey, u) |> Option.toList)
            [ EveryOccurrenceKey, (if s.Notify.EveryOccurrence then "true" else "false") ]
            [ QuietPeriodKey, s.Notify.QuietPeriod.ToString("c", Globalization.CultureInfo.InvariantCulture) ]
            [ IntervalKey, s.Notify.Interval.ToString("c", Globalization.CultureInfo.InvariantCulture) ]
            [ MaxPerIntervalKey, string s.Notify.MaxPerInterval ]
            [ TicketPerRegressionKey, (if s.Notify.TicketPerRegression then "true" else "false") ]
            [ TicketEveryOccurrenceKey, (if s.Notify.TicketEveryOccurrence then "true" else "false") ]
            [ NotifyTimeoutKey, s.Notify.Timeout.ToString("c", Globalization.CultureInfo.InvariantCulture) ]
            [ MaxPendingGroupsKey, string s.MaxPendingGroups ]
            [ ShutdownTimeoutKey, s.ShutdownTimeout.ToString("c", Globalization.CultureInfo.InvariantCulture) ]
            [ FlushIntervalKey, s.FlushInterval.ToString("c", Globalization.CultureInfo.InvariantCulture) ]
            [ DetailsIntervalKey, s.DetailsInterval.ToString("c", Globalization.CultureInfo.InvariantCulture) ]
            [ RetentionKey, s.Retention.ToString("c", Globalization.CultureInfo.InvariantCulture) ]
            [ MaxGroupsKey, string s.MaxGroups ]
            [ SamplesPerGroupKey, string s.SamplesPerGroup ]
            [ SpillFileKey, defaultArg s.SpillFile "none" ]
            [ LogLevelKey, LogLevels.[s.LogLevel] ]
            [ BreadcrumbsKey, string s.Breadcrumbs ]
            (s.Release |> Option.map (fun r -> ReleaseKey, r) |> Option.toList)
            [
                RequestBodyKey,
                RequestBodies
                |> List.tryFind (fun (_, bytes) -> bytes = s.RequestBody)
                |> Option.map fst
                |> Option.defaultValue "none"
            ]
            (s.Ingest.Keys |> List.mapi (fun i k -> sprintf "%s:%d" IngestKeyKey i, k))
            [ IngestMaxBytesKey, string s.Ingest.MaxBytes ]
            [ IngestRateKey, string s.Ingest.RatePerMinute ]
            [ IngestGroupsKey, string s.Ingest.GroupsPerHour ]
            (s.Ingest.CorsOrigins
             |> List.mapi (fun i o -> sprintf "%s:%d" IngestCorsKey i, o))
        ]
        |> List.concat
        |> Map.ofList

    /// One message naming every key at fault.
    let describe (errors: ConfigError list) : string =
        errors
        |> List.map (fun e -> sprintf "%s %s" e.Key e.Problem)
        |> String.concat "; "
        |> sprintf "ErrorMonitor configuration is invalid: %s."

    /// The masking rule the settings describe.
    let maskingRule (s: Settings) : MaskingRule =
        Masking.either (Masking.keyRule s.MaskedKeyHas s.MaskWith) (Masking.nameRule s.MaskedKeys s.MaskWith)
