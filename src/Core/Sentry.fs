namespace ErrorMonitor.Core

open System
open System.Globalization
open System.Text

/// One item of a Sentry envelope: its type ("event", "session", "client_report", ...) and its payload's bytes.
type internal SentryItem =
    {
        Type: string
        Payload: ArraySegment<byte>
    }

/// An event the Sentry endpoint takes: the occurrence's parts, its group key (before the source is mixed in), its
/// event id (empty when it has none) and the names kept with it.
type internal SentryEvent =
    {
        Capture: Capture
        /// The group key: the SDK's `fingerprint` (with `{{ default }}` the default key), else the default: the
        /// exception chain's types with their in-app frames' module and function (no line numbers), or for a
        /// message its template (digits, GUIDs and hex runs normalised).
        GroupKey: string
        EventId: string
        /// The DSN's project id: groups of different projects never mix.
        Project: string
        /// The event's user (`username`, else `email`, `id`, `ip_address`), counted among the users affected.
        User: string option
    }

/// The Sentry SDKs' protocol (envelopes, the store endpoint's single event, authentication), read into
/// ErrorMonitor's own parts: pure, no I/O. What is not an error (sessions, client reports, transactions,
/// attachments) is read past and ignored.
[<RequireQualifiedAccess>]
module internal Sentry =

    /// The source name of events from Sentry SDKs (their groups never mix with the app's own).
    [<Literal>]
    let Source = "sentry"

    /// The source of an event of project `project`: groups of two projects never mix either.
    let sourceOf (project: string) = Source + "/" + project

    /// A field of an `X-Sentry-Auth` (or `Authorization: Sentry ...`) header ("sentry_key", "sentry_client"), if
    /// it has one.
    let authField (name: string) (header: string) : string option =
        if String.IsNullOrWhiteSpace header then
            None
        else
            let text = header.Trim()

            let text =
                if text.StartsWith("Sentry ", StringComparison.OrdinalIgnoreCase) then
                    text.Substring 7
                else
                    text

            text.Split(',')
            |> Array.tryPick (fun part ->
                match part.Split('=', 2) with
                | [| k; v |] when k.Trim() = name && v.Trim() <> "" -> Some(v.Trim())
                | _ -> None)

    /// The key of an `X-Sentry-Auth` (or `Authorization: Sentry ...`) header's `sentry_key`, if any.
    let authKey (header: string) : string option = authField "sentry_key" header

    /// The top-level event fields ErrorMonitor does not use (read past, never converted).
    let Ignored =
        set
            [
                "modules"
                "debug_meta"
                "sdk"
                "_meta"
                "threads"
                "spans"
                "measurements"
                "transaction_info"
                "_metrics_summary"
                "sampling"
            ]

    /// The `X-Sentry-Rate-Limits` value of a refusal: errors only, for `seconds`, for this key.
    let rateLimits (seconds: int) : string = sprintf "%d:error:key" seconds

    let private newline (bytes: ArraySegment<byte>) (from: int) =
        let i = Array.IndexOf(bytes.Array, 10uy, bytes.Offset + from, bytes.Count - from)
        if i < 0 then -1 else i - bytes.Offset

    let private slice (bytes: ArraySegment<byte>) (start: int) (count: int) =
        ArraySegment<byte>(bytes.Array, bytes.Offset + start, count)

    let private text (bytes: ArraySegment<byte>) =
        Encoding.UTF8.GetString(bytes.Array, bytes.Offset, bytes.Count)

    let private field (name: string) (d: Data) : Data option =
        match d with
        | Data.Object fields -> fields |> List.tryFind (fun (k, _) -> k = name) |> Option.map snd
        | _ -> None

    let private str (name: string) (d: Data) : string option =
        match field name d with
        | Some(Data.String s) when s <> "" -> Some s
        | Some(Data.Number n) -> Some(n.ToString(CultureInfo.InvariantCulture))
        | _ -> None

    let private num (name: string) (d: Data) : int option =
        match field name d with
        | Some(Data.Number n) when n >= 0.0 && n < 1e9 -> Some(int n)
        | _ -> None

    /// The header's fields of an envelope (its first line), and its items. Error with the reason when the bytes
    /// are not an envelope (a header or item header that is not a JSON object, a length past the end).
    let envelope (limits: Limits) (bytes: ArraySegment<byte>) : Result<Data * SentryItem list, string> =
        let headerEnd =
            match newline bytes 0 with
            | -1 -> bytes.Count
            | i -> i

        match Json.parse limits (text (slice bytes 0 headerEnd)) with
        | Ok(Data.Object _ as header) ->
            let rec items (at: int) (acc: SentryItem list) =
                // Blank lines between items (and a trailing newline) are allowed.
                if at >= bytes.Count then
                    Ok(List.rev acc)
                elif bytes.Array.[bytes.Offset + at] = 10uy then
                    items (at + 1) acc
                else
                    let lineEnd =
                        match newline bytes at with
                        | -1 -> bytes.Count
                        | i -> i

                    match Json.parse limits (text (slice bytes at (lineEnd - at))) with
                    | Ok(Data.Object _ as itemHeader) ->
                        let kind = defaultArg (str "type" itemHeader) ""
                        let start = min bytes.Count (lineEnd + 1)

                        match num "length" itemHeader with
                        | Some length when start + length > bytes.Count ->
                            Error(sprintf "item %d (%s) says %d bytes; the envelope ends before" acc.Length kind length)
                        | Some length ->
                            items
                                (start + length)
                                ({
                                    Type = kind
                                    Payload = slice bytes start length
                                 }
                                 :: acc)
                        | None ->
                            // Without a length the payload ends at the next newline (or the envelope's end).
                            let payloadEnd =
                                match newline bytes start with
                                | -1 -> bytes.Count
                                | i -> i

                            items
                                payloadEnd
                                ({
                                    Type = kind
                                    Payload = slice bytes start (payloadEnd - start)
                                 }
                                 :: acc)
                    | _ -> Error(sprintf "item %d's header is not a JSON object" acc.Length)

            items (min bytes.Count (headerEnd + 1)) []
            |> Result.map (fun found -> header, found)
        | _ -> Error "the envelope's first line is not a JSON object"

    /// A list field given as a list or as `{"values": [...]}`.
    let private values (d: Data option) : Data list =
        match d with
        | Some(Data.Array items) -> items
        | Some(Data.Object _ as o) ->
            match field "values" o with
            | Some(Data.Array items) -> items
            | _ -> []
        | _ -> []

    /// Pairs from an object (`{"k": "v"}`) or a list of pairs (`[["k", "v"]]`); other values as JSON text.
    let private pairs (d: Data option) : (string * string) list =
        let value (v: Data) =
            match v with
            | Data.String s -> s
            | Data.Null -> ""
            | other -> Json.serialize other

        match d with
        | Some(Data.Object fields) -> fields |> List.map (fun (k, v) -> k, value v)
        | Some(Data.Array items) ->
            items
            |> List.choose (fun item ->
                match item with
                | Data.Array [ Data.String k; v ] -> Some(k, value v)
                | _ -> None)
        | _ -> []

    /// A time given as ISO 8601 text or as seconds since the epoch.
    let private time (d: Data option) : DateTimeOffset option =
        match d with
        | Some(Data.Number seconds) when seconds > 0.0 && seconds < 1e11 ->
            Some(DateTimeOffset.UnixEpoch.AddMilliseconds(seconds * 1000.0))
        | Some(Data.String s) ->
            match
                DateTimeOffset.TryParse(
                    s,
                    CultureInfo.InvariantCulture,
                    DateTimeStyles.AssumeUniversal ||| DateTimeStyles.AdjustToUniversal
                )
            with
            | true, t -> Some t
            | _ -> None
        | _ -> None

    /// One exception value of an event as plain data (its frames innermost call first, as .NET prints them:
    /// Sentry lists them oldest call first) and the group material of its in-app frames.
    let private exceptionValue (v: Data) : ExceptionInfo * string =
        let frames =
            match field "stacktrace" v with
            | Some st -> values (field "frames" st)
            | None -> []

        let read (f: Data) : Frame =
            let file = str "filename" f |> Option.orElse (str "abs_path" f)

            {
                Type = str "module" f |> Option.orElse file |> Option.defaultValue ""
                Method = str "function" f |> Option.defaultValue "?"
                File = file
                Line = num "lineno" f
                Column = num "colno" f
            }

        let inApp =
            frames
            |> List.filter (fun f -> field "in_app" f = Some(Data.Bool true))
            |> fun kept -> if kept.IsEmpty then frames else kept

        let typeName =
            match str "type" v, str "module" v with
            | Some t, Some m when not (t.Contains '.') && m <> "builtins" && m <> "__builtin__" -> m + "." + t
            | Some t, _ -> t
            | None, _ -> ""

        let material =
            let sb = StringBuilder()
            sb.Append("type ").Append(typeName).Append('\n') |> ignore

            if inApp.IsEmpty then
                sb.Append("message ").Append(Text.normalise (defaultArg (str "value" v) "")).Append('\n')
                |> ignore
            else
                for f in inApp do
                    let r = read f

                    sb.Append("at ").Append(r.Type).Append('.').Append(r.Method).Append('\n')
                    |> ignore

            sb.ToString()

        {
            TypeName = typeName
            Message = defaultArg (str "value" v) ""
            Frames = frames |> List.rev |> List.map read
            FramesOmitted = 0
            Data = []
            Inner = []
            InnerOmitted = 0
        },
        material

    /// The event's text: `logentry` (formatted, else its template) or `message` (text, or an object like
    /// `logentry`); and its template (for grouping).
    let private messageOf (event: Data) : (string * string) option =
        let ofEntry (d: Data) =
            match d with
            | Data.String s when s <> "" -> Some(s, s)
            | Data.Object _ ->
                match str "formatted" d, str "message" d with
                | Some f, Some m -> Some(f, m)
                | Some f, None -> Some(f, f)
                | None, Some m -> Some(m, m)
                | None, None -> None
            | _ -> None

        field "logentry" event
        |> Option.bind ofEntry
        |> Option.orElse (field "message" event |> Option.bind ofEntry)

    /// The request an event describes (`request`), as the capture route's request data.
    let private requestOf (event: Data) (user: string option) : RequestContext option =
        match field "request" event with
        | Some(Data.Object _ as r) ->
            let url = defaultArg (str "url" r) ""

            let uri =
                match Uri.TryCreate(url, UriKind.Absolute) with
                | true, u when u.Scheme = "http" || u.Scheme = "https" -> Some u
                | _ -> None

            // The query from `query_string` (text or pairs), else from the url.
            let query =
                match field "query_string" r with
                | Some(Data.String q) -> Text.queryPairs q
                | other -> pairs other
                |> function
                    | [] ->
                        match uri with
                        | Some u -> Text.queryPairs u.Query
                        | None -> []
                    | given -> given

            let cookies =
                match field "cookies" r with
                | Some(Data.String c) ->
                    c.Split(';', StringSplitOptions.RemoveEmptyEntries)
                    |> Array.map (fun p ->
                        match p.Split('=', 2) with
                        | [| k; v |] -> k.Trim(), v.Trim()
                        | other -> other.[0].Trim(), "")
                    |> List.ofArray
                | other -> pairs other

            Some
                {
                    Method = defaultArg (str "method" r) ""
                    Scheme = uri |> Option.map (fun u -> u.Scheme) |> Option.defaultValue "http"
                    Host = uri |> Option.map (fun u -> u.Authority) |> Option.defaultValue ""
                    Path =
                        uri
                        |> Option.map (fun u -> u.AbsolutePath)
                        |> Option.defaultValue (url.Split('?').[0])
                    Query = query
                    Headers = pairs (field "headers" r)
                    Form = []
                    Cookies = cookies
                    RouteValues = []
                    UserName = user
                    TraceId = None
                    Body =
                        match field "data" r with
                        | None
                        | Some Data.Null -> None
                        | Some(Data.String s) -> Some(Body.Text s)
                        | Some d -> Some(Body.Json d)
                    Custom = []
                }
        | _ -> None

    /// An event (its JSON read into data) as an occurrence's parts, received at `at` in project `projectId`;
    /// `crumbs` is the most breadcrumbs kept (APP_ERROR_BREADCRUMBS). Error with the reason when it is not an
    /// event object.
    let event
        (crumbs: int)
        (projectId: string)
        (sdk: string)
        (event: Data)
        (at: DateTimeOffset)
        : Result<SentryEvent, string> =
        match event with
        | Data.Object _ ->
            let user =
                match field "user" event with
                | Some(Data.Object _ as u) ->
                    str "username" u
                    |> Option.orElse (str "email" u)
                    |> Option.orElse (str "id" u)
                    |> Option.orElse (str "ip_address" u)
                | _ -> None

            let exceptions = values (field "exception" event)
            let outermost = List.tryLast exceptions

            let hasType = outermost |> Option.bind (str "type") |> Option.isSome

            let message = messageOf event

            let subject, defaultKey =
                if hasType then
                    // The last value is the outermost; each earlier one the inner exception of the next.
                    let read = exceptions |> List.map exceptionValue

                    let chained =
                        read
                        |> List.fold
                            (fun (inner: ExceptionInfo option) (e, _) ->
                                Some(
                                    match inner with
                                    | Some i -> { e with Inner = [ i ] }
                                    | None -> e
                                ))
                            None
                        |> Option.get

                    let material = read |> List.rev |> List.map snd |> String.concat ""
                    Subject.Exception chained, "exception\n" + material
                else
                    // A message (the browser SDK's captureMessage adds a value without a type: its message groups).
                    let shown, template =
                        match message with
                        | Some m -> m
                        | None ->
                            let v = outermost |> Option.bind (str "value") |> Option.defaultValue ""
                            v, v

                    Subject.Message shown, "message\n" + Text.normalise template

            let groupKey =
                match field "fingerprint" event with
                | Some(Data.Array parts) when not parts.IsEmpty ->
                    parts
                    |> List.map (fun p ->
                        match p with
                        | Data.String "{{ default }}"
                        | Data.String "{{default}}" -> defaultKey
                        | Data.String s -> s
                        | other -> Json.serialize other)
                    |> String.concat "\n"
                    |> fun k -> "fingerprint\n" + k
                | _ -> defaultKey

            let breadcrumbs =
                values (field "breadcrumbs" event)
                |> List.choose (fun b ->
                    match b with
                    | Data.Object _ ->
                        let text =
                            str "message" b
                            |> Option.orElse (field "data" b |> Option.map Json.serialize)
                            |> Option.defaultValue ""

                        Some(
                            LogCapture.crumbData
                                (time (field "timestamp" b) |> Option.defaultValue at)
                                (defaultArg (str "level" b) "info")
                                (str "category" b |> Option.orElse (str "type" b) |> Option.defaultValue "")
                                text
                        )
                    | _ -> None)
                |> fun all -> List.skip (max 0 (all.Length - crumbs)) all

            let context =
                [
                    "sentry",
                    Data.Object
                        [
                            "project", Data.String projectId
                            "sdk", Data.String sdk
                            match str "platform" event with
                            | Some p -> "platform", Data.String p
                            | None -> ()
                            match str "level" event with
                            | Some l -> "level", Data.String l
                            | None -> ()
                            match str "server_name" event with
                            | Some s -> "serverName", Data.String s
                            | None -> ()
                            match str "logger" event with
                            | Some l -> "logger", Data.String l
                            | None -> ()
                        ]
                    match field "tags" event with
                    | Some t when not (pairs (Some t)).IsEmpty -> "tags", Json.ofPairs (pairs (Some t))
                    | _ -> ()
                    match field "extra" event with
                    | Some(Data.Object(_ :: _) as e) -> "extra", e
                    | _ -> ()
                    match field "contexts" event with
                    | Some(Data.Object(_ :: _) as c) -> "contexts", c
                    | _ -> ()
                    match field "user" event with
                    | Some(Data.Object(_ :: _) as u) -> "user", u
                    | _ -> ()
                    if not breadcrumbs.IsEmpty then
                        LogCapture.BreadcrumbsKey, Data.Array breadcrumbs
                ]

            Ok
                {
                    Capture =
                        {
                            Request = requestOf event user
                            Subject = subject
                            Extra = context
                            OccurredAt = at
                            Release = defaultArg (str "release" event) ""
                            Environment = defaultArg (str "environment" event) ""
                        }
                    GroupKey = groupKey
                    EventId = defaultArg (str "event_id" event) ""
                    Project = projectId
                    User = user
                }
        | _ -> Error "the event is not a JSON object"
