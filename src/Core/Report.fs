namespace ErrorMonitor.Core

open System
open System.Text.Json
open System.Text.RegularExpressions

/// An error report sent over HTTP by another service or a browser.
type internal ClientReport =
    {
        /// The error's type, e.g. "TypeError".
        Type: string
        /// Its message.
        Message: string
        /// Its frames: given, or parsed from a stack string.
        Frames: Frame list
        /// The page or endpoint where it happened.
        Url: string option
        /// The HTTP method, if any.
        Method: string option
        /// The browser's user agent, if any.
        UserAgent: string option
        /// The release of the sending app, if any.
        Release: string option
        /// Any context, as keyed data (masked like the rest).
        Context: (string * Data) list
    }

/// A report that cannot be taken: the field at fault and why.
type internal ReportError =
    {
        /// The JSON field at fault ("" for the document itself).
        Field: string
        /// What is wrong with it.
        Problem: string
    }

/// Reading error reports: JSON validation with errors that name the field, and stack-string parsing.
[<RequireQualifiedAccess>]
module internal Report =

    // Chromium, Node: "    at fn (https://x/app.js:10:5)", "    at https://x/app.js:10:5", "    at async fn (...)".
    let private chromium =
        Regex(
            @"^\s*at\s+(?:async\s+)?(?:(?<fn>[^\s(][^(]*?)\s+\()?(?<file>[^()\s]+?):(?<line>\d+)(?::(?<col>\d+))?\)?\s*$",
            RegexOptions.CultureInvariant,
            TimeSpan.FromMilliseconds 100.0
        )

    // Firefox, Safari: "fn@https://x/app.js:10:5", "@https://x/app.js:10:5".
    let private firefox =
        Regex(
            @"^\s*(?<fn>[^@\s]*)@(?<file>.+?):(?<line>\d+)(?::(?<col>\d+))?\s*$",
            RegexOptions.CultureInvariant,
            TimeSpan.FromMilliseconds 100.0
        )

    /// A script's address without origin, query or fragment: the same file groups the same on every host.
    let scriptPath (file: string) : string =
        let f = if isNull file then "" else file
        let f = f.Split([| '?'; '#' |]).[0]

        match Uri.TryCreate(f, UriKind.Absolute) with
        | true, u when u.Scheme = "http" || u.Scheme = "https" -> u.AbsolutePath
        | _ -> f

    let private frameOf (fn: string) (file: string) (line: string) (col: string) : Frame =
        let fn =
            if String.IsNullOrWhiteSpace fn then
                "<anonymous>"
            else
                fn.Trim()

        let dot = fn.LastIndexOf '.'

        // "Namespace.Type.Method" (a .NET or Java frame) splits into type and method; a JavaScript function
        // ("handleClick", "HTMLButtonElement.<anonymous>") belongs to its script.
        let typeName, methodName =
            if dot > 0 && dot < fn.Length - 1 && not (fn.Contains '<') then
                fn.Substring(0, dot), fn.Substring(dot + 1)
            else
                scriptPath file, fn

        let number (s: string) =
            match Int32.TryParse s with
            | true, n when n > 0 -> Some n
            | _ -> None

        {
            Type = typeName
            Method = methodName
            File = Some file
            Line = number line
            Column = number col
        }

    /// Frames of a JavaScript stack string, in Chromium's or Firefox's format; lines that are neither (the
    /// message line, native frames) are skipped. Bounded by the frame limit.
    let parseStack (limits: Limits) (stack: string) : Frame list =
        try
            (if isNull stack then "" else stack).Split('\n')
            |> Seq.truncate (limits.MaxFrames * 2 + 1)
            |> Seq.choose (fun raw ->
                let line = Text.truncate 2048 (raw.TrimEnd '\r')

                seq {
                    chromium
                    firefox
                }
                |> Seq.map (fun r -> r.Match line)
                |> Seq.tryFind (fun m -> m.Success)
                |> Option.map (fun m ->
                    frameOf
                        m.Groups.["fn"].Value
                        m.Groups.["file"].Value
                        m.Groups.["line"].Value
                        m.Groups.["col"].Value))
            |> Seq.truncate limits.MaxFrames
            |> List.ofSeq
        with :? RegexMatchTimeoutException ->
            []

    let private fail field problem : Result<'T, ReportError> =
        Error { Field = field; Problem = problem }

    /// A JSON string's value, bounded; an error naming the field when it is not valid Unicode (an escaped lone
    /// surrogate such as "\ud800", which JSON allows and .NET strings cannot carry through UTF-8).
    let private stringValue (field: string) (max: int) (v: JsonElement) : Result<string, ReportError> =
        let invalid () =
            fail field "must be valid Unicode text (it holds a lone surrogate)"

        match
            (try
                Some(v.GetString())
             with :? InvalidOperationException ->
                 None)
        with
        | Some s when Text.isValidUnicode s -> Ok(Text.truncate max s)
        | _ -> invalid ()

    let private optionalString (root: JsonElement) (name: string) (max: int) : Result<string option, ReportError> =
        match root.TryGetProperty name with
        | false, _ -> Ok None
        | true, v when v.ValueKind = JsonValueKind.Null -> Ok None
        | true, v when v.ValueKind = JsonValueKind.String -> stringValue name max v |> Result.map Some
        | true, _ -> fail name "must be a string"

    let private requiredString (root: JsonElement) (name: string) (max: int) : Result<string, ReportError> =
        match optionalString root name max with
        | Ok(Some s) when name <> "type" || s.Trim() <> "" -> Ok s
        | Ok(Some _) -> fail name "must not be empty"
        | Ok None -> fail name "is required"
        | Error e -> Error e

    let private frames (limits: Limits) (root: JsonElement) : Result<Frame list option, ReportError> =
        match root.TryGetProperty "frames" with
        | false, _ -> Ok None
        | true, v when v.ValueKind = JsonValueKind.Null -> Ok None
        | true, v when v.ValueKind <> JsonValueKind.Array -> fail "frames" "must be an array of objects"
        | true, v ->
            let items = v.EnumerateArray() |> Seq.truncate limits.MaxFrames |> List.ofSeq

            let one (i: int) (f: JsonElement) : Result<Frame, ReportError> =
                let field (name: string) = sprintf "frames[%d].%s" i name

                if f.ValueKind <> JsonValueKind.Object then
                    fail (sprintf "frames[%d]" i) "must be an object"
                else
                    let text (name: string) =
                        match f.TryGetProperty name with
                        | false, _ -> Ok None
                        | true, x when x.ValueKind = JsonValueKind.Null -> Ok None
                        | true, x when x.ValueKind = JsonValueKind.String ->
                            stringValue (field name) 1024 x |> Result.map Some
                        | true, _ -> fail (field name) "must be a string"

                    let number (name: string) =
                        match f.TryGetProperty name with
                        | false, _ -> Ok None
                        | true, x when x.ValueKind = JsonValueKind.Null -> Ok None
                        | true, x when x.ValueKind = JsonValueKind.Number ->
                            match x.TryGetInt32() with
                            | true, n when n >= 0 -> Ok(Some n)
                            | _ -> fail (field name) "must be a whole number"
                        | true, _ -> fail (field name) "must be a number"

                    match text "function", text "file", number "line", number "column" with
                    | Ok fn, Ok file, Ok line, Ok col ->
                        let f = frameOf (defaultArg fn "") (defaultArg file "") "" ""

                        Ok
                            { f with
                                File = file
                                Line = line |> Option.filter (fun n -> n > 0)
                                Column = col |> Option.filter (fun n -> n > 0)
                            }
                    | Error e, _, _, _
                    | _, Error e, _, _
                    | _, _, Error e, _
                    | _, _, _, Error e -> Error e

            items
            |> List.mapi one
            |> List.fold
                (fun acc r ->
                    match acc, r with
                    | Ok xs, Ok f -> Ok(f :: xs)
                    | Error e, _ -> Error e
                    | _, Error e -> Error e)
                (Ok [])
            |> Result.map (List.rev >> Some)

    /// Reads a report: a JSON object with `type` and `message` (required), `frames` or `stack`, and optional
    /// `url`, `method`, `userAgent`, `release`, `context` (an object). Every value is bounded.
    let parse (limits: Limits) (json: string) : Result<ClientReport, ReportError> =
        let doc =
            try
                Ok(JsonDocument.Parse((if isNull json then "" else json), JsonDocumentOptions(MaxDepth = 64)))
            with ex ->
                fail "" (sprintf "is not valid JSON: %s" ex.Message)

        match doc with
        | Error e -> Error e
        | Ok doc ->
            use doc = doc
            let root = doc.RootElement

            if root.ValueKind <> JsonValueKind.Object then
                fail "" "must be a JSON object"
            else
                let context =
                    match root.TryGetProperty "context" with
                    | false, _ -> Ok []
                    | true, v when v.ValueKind = JsonValueKind.Null -> Ok []
                    | true, v when v.ValueKind = JsonValueKind.Object ->
                        match
                            (try
                                Json.parse limits (v.GetRawText())
                             with _ ->
                                 Error "unreadable")
                        with
                        | Ok(Data.Object fields) when Json.isValidUnicode (Data.Object fields) -> Ok fields
                        // An object that parsed above and not here holds text .NET cannot read: a lone surrogate.
                        | _ -> fail "context" "must be valid Unicode text (it holds a lone surrogate)"
                    | true, _ -> fail "context" "must be a JSON object"

                let stack = optionalString root "stack" limits.MaxTraceback

                match
                    requiredString root "type" 256,
                    requiredString root "message" limits.MaxMessage,
                    frames limits root,
                    stack,
                    optionalString root "url" 2048,
                    optionalString root "method" 32,
                    optionalString root "userAgent" 1024,
                    optionalString root "release" 256,
                    context
                with
                | Ok t, Ok m, Ok fs, Ok st, Ok url, Ok meth, Ok ua, Ok rel, Ok ctx ->
                    Ok
                        {
                            Type = t.Trim()
                            Message = m
                            Frames =
                                match fs, st with
                                | Some given, _ -> given
                                | None, Some s -> parseStack limits s
                                | None, None -> []
                            Url = url
                            Method = meth
                            UserAgent = ua
                            Release = rel
                            Context = ctx
                        }
                | Error e, _, _, _, _, _, _, _, _
                | _, Error e, _, _, _, _, _, _, _
                | _, _, Error e, _, _, _, _, _, _
                | _, _, _, Error e, _, _, _, _, _
                | _, _, _, _, Error e, _, _, _, _
                | _, _, _, _, _, Error e, _, _, _
                | _, _, _, _, _, _, Error e, _, _
                | _, _, _, _, _, _, _, Error e, _
                | _, _, _, _, _, _, _, _, Error e -> Error e

    /// The report as an occurrence's parts: the exception, the request it came from, and its context.
    let toCapture (environment: string) (report: ClientReport) (at: DateTimeOffset) : ErrorMonitor.Core.Capture =
        // An absolute URL as it is; a relative one ("/login?password=...") against a placeholder origin, so its
        // query is read (and masked) as an absolute one's is. Only what is not a URL at all stays as text.
        let parsed (url: string) =
            match Uri.TryCreate(url, UriKind.Absolute) with
            | true, u when u.Scheme = Uri.UriSchemeHttp || u.Scheme = Uri.UriSchemeHttps -> Some(u, false)
            | _ ->
                match Uri.TryCreate(Uri "http://relative.invalid/", url) with
                | true, u when url.StartsWith "/" -> Some(u, true)
                | _ -> None

        let request =
            report.Url
            |> Option.bind (fun url ->
                match parsed url with
                | Some(u, relative) ->
                    Some
                        {
                            Method = defaultArg report.Method "GET"
                            Scheme = if relative then "" else u.Scheme
                            Host = if relative then "" else u.Authority
                            Path = u.AbsolutePath
                            Query =
                                u.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries)
                                |> Array.map (fun kv ->
                                    match kv.Split('=', 2) with
                                    | [| k; v |] ->
                                        Uri.UnescapeDataString k, Uri.UnescapeDataString(v.Replace('+', ' '))
                                    | parts -> Uri.UnescapeDataString parts.[0], "")
                                |> List.ofArray
                            Headers = report.UserAgent |> Option.map (fun ua -> "User-Agent", ua) |> Option.toList
                            Form = []
                            Cookies = []
                            RouteValues = []
                            UserName = None
                            TraceId = None
                            Body = None
                            Custom = []
                        }
                | _ -> None)

        let extra =
            [
                match report.Release with
                | Some r -> "release", Data.String r
                | None -> ()
                match report.Url with
                | Some u when request.IsNone -> "url", Data.String u
                | _ -> ()
            ]
            @ report.Context

        {
            Request = request
            Subject =
                Subject.Exception
                    {
                        TypeName = report.Type
                        Message = report.Message
                        Frames = report.Frames
                        FramesOmitted = 0
                        Data = []
                        Inner = []
                        InnerOmitted = 0
                    }
            Extra = extra
            OccurredAt = at
            Release = report.Release |> Option.defaultValue ""
            Environment = environment
        }

    /// The header that carries a report's ingest key: read by the capture route, written by client.js and
    /// ErrorMonitorClient.
    [<Literal>]
    let KeyHeader = "X-ErrorMonitor-Key"

    /// The source name of reports from the capture route.
    [<Literal>]
    let Source = "capture-route"

    /// A report's occurrence: built like any other (masked, bounded, fingerprinted), but keyed by its source too,
    /// so a report (whose key is public in the pages that load client.js) can never land in, or overwrite, a
    /// group the app recorded itself, whatever type and frames it claims.
    /// Its release is the report's own (none when it gives none: a front end may be deployed apart from the app);
    /// its environment the app's (`environment`).
    let event
        (settings: Settings)
        (rule: MaskingRule)
        (limits: Limits)
        (environment: string)
        (report: ClientReport)
        (at: DateTimeOffset)
        =
        let e = Events.build settings rule limits None (toCapture environment report at)

        { e with
            Hash = Fingerprint.withSource Source e.Hash
        }
