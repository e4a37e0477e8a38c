namespace ErrorMonitor.Core

open System
open System.Text.Json

/// An app-supplied grouping: given the exception (if any) and the request (if any), a group key, or None
/// to use the default fingerprint.
type internal FingerprintFunction = ExceptionInfo option -> RequestContext option -> string option

/// Everything known about one occurrence before it is masked and formatted.
type internal Capture =
    {
        /// The request it happened in, if any.
        Request: RequestContext option
        /// The exception or message.
        Subject: Subject
        /// Extra context (scope extras, context builders), masked like the rest.
        Extra: (string * Data) list
        /// When it happened (UTC), from the shell's clock.
        OccurredAt: DateTimeOffset
        /// The release it happened in (`Triage.releaseName` applies); empty when unknown.
        Release: string
        /// The environment it happened in; empty when unknown.
        Environment: string
    }

/// Building an occurrence: mask, then format, then fingerprint. Pure and total.
[<RequireQualifiedAccess>]
module internal Events =

    /// The exception name recorded for a captured message.
    [<Literal>]
    let MessageName = "Message"

    let private boundPairs (maxValue: int) (maxEntries: int) (pairs: (string * string) list) =
        // Most requests are within every bound: keep the list as it is then.
        // A list the shell already bounded ends in the marker saying how many it left out: that entry does not
        // count toward the limit.
        let marked =
            pairs.Length = maxEntries + 1
            && fst (List.last pairs) = Limits.Markers.MoreEntriesKey

        let within =
            (pairs.Length <= maxEntries || marked)
            && pairs
               |> List.forall (fun (k, v) -> (isNull k || k.Length <= 256) && (isNull v || v.Length <= maxValue))

        if within then
            pairs
        else

            let kept =
                pairs
                |> List.truncate maxEntries
                |> List.map (fun (k, v) -> Text.truncate 256 k, Text.truncate maxValue v)

            let omitted = pairs.Length - kept.Length

            if omitted > 0 then
                kept
                @ [ Limits.Markers.MoreEntriesKey, Limits.Markers.moreEntries (Some omitted) ]
            else
                kept

    let rec private boundData (limits: Limits) (depth: int) (d: Data) : Data =
        match d with
        | _ when depth > limits.MaxDataDepth -> Data.String Limits.Markers.NestedTooDeep
        | Data.String s -> Data.String(Text.truncate limits.MaxFieldValue s)
        | Data.Array items ->
            let kept =
                items
                |> List.truncate limits.MaxEntries
                |> List.map (boundData limits (depth + 1))

            Data.Array(
                if items.Length > kept.Length then
                    kept @ [ Data.String Limits.Markers.MoreItems ]
                else
                    kept
            )
        | Data.Object fields ->
            let kept =
                fields
                |> List.truncate limits.MaxEntries
                |> List.map (fun (k, v) -> Text.truncate 256 k, boundData limits (depth + 1) v)

            Data.Object(
                if fields.Length > kept.Length then
                    kept
                    @ [ Limits.Markers.MoreEntriesKey, Data.String(Limits.Markers.moreEntries None) ]
                else
                    kept
            )
        | other -> other

    /// Applies the size limits to a request, with visible markers where something was cut.
    let boundRequest (limits: Limits) (r: RequestContext) : RequestContext =
        let field = boundPairs limits.MaxFieldValue limits.MaxEntries

        { r with
            Method = Text.truncate 32 r.Method
            Host = Text.truncate 512 r.Host
            Path = Text.truncate 2048 r.Path
            Query = field r.Query
            Headers = boundPairs limits.MaxHeaderValue limits.MaxEntries r.Headers
            Form = field r.Form
            Cookies = field r.Cookies
            RouteValues = field r.RouteValues
            UserName = r.UserName |> Option.map (Text.truncate 256)
            TraceId = r.TraceId |> Option.map (Text.truncate 128)
            Body =
                r.Body
                |> Option.map (function
                    | Body.Json d -> Body.Json(boundData limits 0 d)
                    | Body.Text t -> Body.Text(Text.truncate limits.MaxBody t))
            Custom =
                match boundData limits 0 (Data.Object r.Custom) with
                | Data.Object f -> f
                | _ -> []
        }

    /// The URL of a (masked) request, its query rebuilt from the masked query values.
    let url (r: RequestContext) : string =
        let sb = Buffers.Builder()
        // A report's relative URL has neither scheme nor host: it stays relative.
        if r.Scheme <> "" || r.Host <> "" then
            sb.Append(r.Scheme).Append("://").Append(r.Host) |> ignore

        sb.Append(r.Path) |> ignore

        r.Query
        |> List.iteri (fun i (k, v) ->
            sb
                .Append(if i = 0 then '?' else '&')
                .Append(Net.WebUtility.UrlEncode k)
                .Append('=')
                .Append(Net.WebUtility.UrlEncode v)
            |> ignore)

        sb.ToString()

    /// Writes the request data of a record: a JSON object of the masked request and extra context (the
    /// breadcrumbs beside them, not among the context).
    let private writeRequestData (w: Utf8JsonWriter) (request: RequestContext option) (extra: (string * Data) list) =
        let str (s: string) = if isNull s then "" else s
        w.WriteStartObject()

        match request with
        | None -> ()
        | Some r ->
            w.WriteString("url", str (url r))
            w.WriteString("method", str r.Method)
            w.WritePropertyName "headers"
            Json.writePairs w r.Headers
            w.WritePropertyName "args"
            Json.writePairs w r.Query
            w.WritePropertyName "form"
            Json.writePairs w r.Form
            w.WritePropertyName "cookies"
            Json.writePairs w r.Cookies
            w.WritePropertyName "route"
            Json.writePairs w r.RouteValues

            match r.UserName with
            | Some u -> w.WriteString("user", str u)
            | None -> ()

            match r.TraceId with
            | Some t -> w.WriteString("traceId", str t)
            | None -> ()

            match r.Body with
            | Some(Body.Json d) ->
                w.WritePropertyName "body"
                Json.write w d
            | Some(Body.Text t) -> w.WriteString("body", str t)
            | None -> ()

        let mutable context = false

        for k, v in extra do
            if k = LogCapture.BreadcrumbsKey then
                w.WritePropertyName k
                Json.write w v
            else
                context <- true

        if context then
            w.WritePropertyName "context"
            Json.write w (Data.Object(extra |> List.filter (fun (k, _) -> k <> LogCapture.BreadcrumbsKey)))

        w.WriteEndObject()

    /// The request data of a record as JSON text (see `writeRequestData`).
    let requestDataText (request: RequestContext option) (extra: (string * Data) list) : string =
        Json.text (fun w -> writeRequestData w request extra)

    /// The request line an occurrence is listed by (bounded like `boundRequest`; the path masked as free text):
    /// method, host, path.
    let private requestLine (settings: Settings) (rule: MaskingRule) (request: RequestContext option) =
        match request with
        | Some r ->
            struct (Text.truncate 32 r.Method,
                    Text.truncate 512 r.Host,
                    Masking.freeText rule settings.MaskWith (Text.truncate 2048 r.Path))
        | None -> struct ("", "", "")

    /// The masked subject: the exception tree (None for a message), its name and message.
    let private subjectOf (settings: Settings) (rule: MaskingRule) (limits: Limits) (capture: Capture) =
        match capture.Subject with
        | Subject.Exception e ->
            let masked = Masking.exceptionInfo rule settings.MaskWith e
            struct (Some masked, masked.TypeName, masked.Message)
        | Subject.Message m ->
            let m = Text.truncate limits.MaxMessage (Masking.freeText rule settings.MaskWith m)
            struct (None, MessageName, m)

    /// The hash of a masked subject when the app gives no key of its own (computed only then).
    let private defaultHash (exceptionInfo: ExceptionInfo option) (message: string) =
        match exceptionInfo with
        | Some masked -> Fingerprint.ofException masked
        | None -> Fingerprint.ofMessage message

    /// The occurrence from its parts (the one place its fields are put together).
    let private eventOf
        (capture: Capture)
        (hash: string)
        (struct (method, host, path))
        (data: string)
        (name: string)
        (message: string)
        (traceback: string)
        : ErrorEvent =
        {
            Hash = hash
            Host = host
            Path = path
            Method = method
            RequestData = data
            ExceptionName = name
            Message = message
            Traceback = traceback
            OccurredAt = capture.OccurredAt
            Release = Triage.releaseName capture.Release
            Environment = Triage.releaseName capture.Environment
            Project = ""
        }

    /// Builds the occurrence: masks every keyed value, formats the traceback, computes the fingerprint.
    let build
        (settings: Settings)
        (rule: MaskingRule)
        (limits: Limits)
        (fingerprint: FingerprintFunction option)
        (capture: Capture)
        : ErrorEvent =
        let request =
            capture.Request
            |> Option.map (boundRequest limits >> Masking.request rule settings.MaskWith)

        let extra =
            match boundData limits 0 (Data.Object capture.Extra) with
            | Data.Object f ->
                Masking.entries rule f
                |> List.map (fun (k, v) ->
                    k,
                    // Breadcrumbs are log messages: masked as free text (key=value, JSON or form text in them).
                    if k = LogCapture.BreadcrumbsKey then
                        Masking.dataText rule settings.MaskWith v
                    else
                        Masking.dataSecrets settings.MaskWith v)
            | _ -> []

        let struct (exceptionInfo, name, message) = subjectOf settings rule limits capture

        let traceback =
            match exceptionInfo with
            | Some masked -> Traceback.format limits masked
            | None -> message

        let hash =
            match fingerprint with
            | Some f ->
                match
                    (try
                        f exceptionInfo request
                     with _ ->
                         None)
                with
                | Some key -> Fingerprint.ofKey key
                | None -> defaultHash exceptionInfo message
            | None -> defaultHash exceptionInfo message

        let data = Text.truncate limits.MaxRequestData (requestDataText request extra)

        // A cut JSON text is no longer JSON: keep a valid object that says so instead.
        let data =
            if data.Length > limits.MaxRequestData then
                Json.serialize (
                    Data.Object
                        [ "truncated", Data.String(sprintf "request data over %d characters" limits.MaxRequestData) ]
                )
            else
                data

        eventOf capture hash (requestLine settings rule capture.Request) data name message traceback

    /// The occurrence without its details (request data `{}`, no traceback), grouped by the app's `key` if it has
    /// one: what `build` with a fingerprint of that key gives, less the details, at a fraction of the work (no
    /// request masking, JSON or traceback). For a new group whose details would not be kept (the queue holds
    /// its bound of groups with details): its count and times are exact, a later occurrence brings the details.
    let header (settings: Settings) (rule: MaskingRule) (limits: Limits) (key: string option) (capture: Capture) =
        let struct (exceptionInfo, name, message) = subjectOf settings rule limits capture

        let hash =
            match key with
            | Some k -> Fingerprint.ofKey k
            | None -> defaultHash exceptionInfo message

        eventOf capture hash (requestLine settings rule capture.Request) "{}" name message ""

    /// Merges two deltas of the same group (an older batch put back, and a newer one; or a pending batch and
    /// a new occurrence): counts add, the first time is the earliest, the latest time the latest, and the
    /// details are the newer batch's when it has them, else the older's: the same as applying both in turn.
    let merge (older: GroupDelta) (newer: GroupDelta) : GroupDelta =
        let at = Instants.later older.Latest.OccurredAt newer.Latest.OccurredAt

        let pick =
            if newer.Detailed || not older.Detailed then
                newer.Latest
            else
                older.Latest

        {
            Latest =
                if pick.OccurredAt = at then
                    pick
                else
                    { pick with OccurredAt = at }
            FirstAt = Instants.earlier older.FirstAt newer.FirstAt
            Count = older.Count + newer.Count
            Detailed = older.Detailed || newer.Detailed
            Hours = History.add older.Hours newer.Hours
            Users = Users.add older.Users newer.Users
        }

    /// One occurrence as a delta of its own.
    let single (e: ErrorEvent) : GroupDelta =
        {
            Latest = e
            FirstAt = e.OccurredAt
            Count = 1L
            Detailed = true
            Hours = History.one e.OccurredAt 1L
            Users = [||]
        }

    /// A count-only delta: `count` repeats of a group between `firstAt` and `lastAt` (`hours` of them an hour,
    /// `users` their distinct users), whose details were stored recently. `header` is an event of the group; its
    /// request data and traceback are left out.
    let countOnly
        (header: ErrorEvent)
        (count: int64)
        (firstAt: DateTimeOffset)
        (lastAt: DateTimeOffset)
        (hours: Bucket[])
        (users: string[])
        : GroupDelta =
        {
            Latest =
                // A header already without details (`header`'s) at that time is taken as it is.
                if
                    header.RequestData = "{}"
                    && header.Traceback = ""
                    && header.OccurredAt.EqualsExact lastAt
                then
                    header
                else
                    { header with
                        RequestData = "{}"
                        Traceback = ""
                        OccurredAt = lastAt
                    }
            FirstAt = firstAt
            Count = count
            Detailed = false
            Hours = hours
            Users = users
        }

    /// Merges an occurrence into a pending delta of the same group (the coalescing rule).
    let coalesce (delta: GroupDelta option) (e: ErrorEvent) : GroupDelta =
        match delta with
        | None -> single e
        | Some d -> merge d (single e)

    /// The record a store holds after applying a delta to what it had (the upsert rule every store follows). Its
    /// users: a new group's are the batch's; an existing group's stay as they were here, since only the store
    /// knows which keys it holds: it adds the batch's keys while it holds fewer than `Users.Bound` and counts them
    /// (`Users.count`).
    let apply (existing: ErrorRecord option) (d: GroupDelta) : ErrorRecord =
        match existing with
        | None ->
            {
                Hash = d.Latest.Hash
                Host = d.Latest.Host
                Path = d.Latest.Path
                Method = d.Latest.Method
                RequestData = d.Latest.RequestData
                ExceptionName = d.Latest.ExceptionName
                Message = d.Latest.Message
                Traceback = d.Latest.Traceback
                Count = d.Count
                CreatedOn = d.FirstAt
                LastSeen = d.Latest.OccurredAt
                Status = GroupStatus.Unresolved
                Regressions = 0L
                LastRegression = Nullable()
                IgnoreUntil = Nullable()
                IgnoreUntilCount = Nullable()
                Users = Users.count (int64 d.Users.Length)
                FirstRelease = d.Latest.Release
                LastRelease = d.Latest.Release
                Environment = d.Latest.Environment
                RegressionRelease = ""
                Project = d.Latest.Project
            }
        | Some r ->
            let t = Triage.recur r d.Count d.FirstAt d.Latest.OccurredAt d.Latest.Release
            // The release and environment follow the latest occurrence; an older batch (one put back after an
            // outage) changes only the first release, when it is older than the group.
            let newer = d.Latest.OccurredAt >= r.LastSeen

            { r with
                Status = t.Status
                Regressions = t.Regressions
                LastRegression = t.LastRegression
                RegressionRelease = t.RegressionRelease
                FirstRelease =
                    if d.FirstAt < r.CreatedOn then
                        d.Latest.Release
                    else
                        r.FirstRelease
                LastRelease = if newer then d.Latest.Release else r.LastRelease
                Environment = if newer then d.Latest.Environment else r.Environment
                IgnoreUntil = t.IgnoreUntil
                IgnoreUntilCount = t.IgnoreUntilCount
                RequestData = if d.Detailed then d.Latest.RequestData else r.RequestData
                Message = if d.Detailed then d.Latest.Message else r.Message
                Traceback = if d.Detailed then d.Latest.Traceback else r.Traceback
                Count = r.Count + d.Count
                CreatedOn = if d.FirstAt < r.CreatedOn then d.FirstAt else r.CreatedOn
                LastSeen =
                    if d.Latest.OccurredAt > r.LastSeen then
                        d.Latest.OccurredAt
                    else
                        r.LastSeen
            }
