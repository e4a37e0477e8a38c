namespace ErrorMonitor.Web

open System
open System.IO
open System.Net
open System.Text
open System.Text.Json
open System.Threading.Tasks
open Microsoft.AspNetCore.Antiforgery
open Microsoft.AspNetCore.Authorization
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.Routing
open Microsoft.Extensions.Configuration
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Logging
open ErrorMonitor
open ErrorMonitor.Core

/// What the pages need: the engine, and who may look.
type BrowseOptions =
    {
        /// The engine whose store is shown.
        Engine: Engine
        /// Who may browse and delete; None means the default: requests from the local machine only, unless
        /// the endpoints carry ASP.NET Core authorization (then that decides).
        Permission: Func<HttpContext, bool> option
    }

/// The pages and JSON API as Giraffe-shaped handlers. The C# routes map to these same handlers.
[<RequireQualifiedAccess>]
module Browse =

    let private prefix (b: BrowseOptions) = b.Engine.Settings.UrlPrefix.TrimEnd '/'

    let private html (status: int) (node: Giraffe.ViewEngine.HtmlElements.XmlNode) : HttpHandler =
        fun _ ctx ->
            task {
                ctx.Response.StatusCode <- status
                ctx.Response.ContentType <- "text/html; charset=utf-8"
                ctx.Response.Headers.["Cache-Control"] <- "no-store"
                Ingest.noSniff ctx

                ctx.Response.Headers.["Content-Security-Policy"] <-
                    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

                do! ctx.Response.WriteAsync(Views.render node)
                return Some ctx
            }

    let private jsonBytes (write: Utf8JsonWriter -> unit) : byte array =
        use ms = new MemoryStream()

        (use w = new Utf8JsonWriter(ms)
         write w)

        ms.ToArray()

    let private json (status: int) (contentType: string) (write: Utf8JsonWriter -> unit) : HttpHandler =
        fun _ ctx ->
            task {
                ctx.Response.StatusCode <- status
                ctx.Response.ContentType <- contentType
                ctx.Response.Headers.["Cache-Control"] <- "no-store"
                Ingest.noSniff ctx
                do! ctx.Response.Body.WriteAsync(jsonBytes write)
                return Some ctx
            }

    let private problem (status: int) (title: string) (detail: string) : HttpHandler =
        Ingest.problem status title detail None

    /// The app's AllowedHosts (host filtering's setting), which local-only mode accepts too.
    let private allowedHosts (ctx: HttpContext) : string list =
        match ctx.RequestServices.GetService<IConfiguration>() with
        | null -> []
        | config -> LocalOnly.allowedHostsOf config.["AllowedHosts"]

    /// "Local machine only" (Core's LocalOnly rule on what the connection and the headers say).
    let private isLocal (ctx: HttpContext) =
        let c = ctx.Connection

        LocalOnly.allows
            (allowedHosts ctx)
            {
                RemoteIsLoopback = not (isNull c.RemoteIpAddress) && IPAddress.IsLoopback c.RemoteIpAddress
                NoAddresses = isNull c.RemoteIpAddress && isNull c.LocalIpAddress // in-process test servers
                Host =
                    if ctx.Request.Host.HasValue then
                        ctx.Request.Host.Value
                    else
                        ""
                HeaderNames = ctx.Request.Headers.Keys |> List.ofSeq
            }

    let private hasAuthorization (ctx: HttpContext) =
        match ctx.GetEndpoint() with
        | null -> false
        | e -> not (isNull (e.Metadata.GetMetadata<IAuthorizeData>()))

    /// True when this request may browse: the permission function if set; else ASP.NET Core authorization
    /// if the endpoint has it (it has already run); else the request must come from the local machine.
    let internal allowed (b: BrowseOptions) (ctx: HttpContext) : bool =
        match b.Permission with
        | Some f ->
            try
                f.Invoke ctx
            with _ ->
                false
        | None -> hasAuthorization ctx || isLocal ctx

    /// Refuses (403) requests that may not browse.
    let internal guard (b: BrowseOptions) : HttpHandler =
        fun next ctx ->
            if allowed b ctx then
                next ctx
            elif ctx.Request.Path.Value.Contains("/api/", StringComparison.Ordinal) then
                problem 403 "Forbidden" "Browsing errors is not allowed from here." earlyReturn ctx
            else
                html
                    403
                    (Views.message (prefix b) "Forbidden" "Browsing errors is allowed from the local machine only.")
                    earlyReturn
                    ctx

    let private antiforgery (ctx: HttpContext) : Views.Antiforgery option =
        match ctx.RequestServices.GetService<IAntiforgery>() with
        | null -> None
        | af ->
            let t = af.GetAndStoreTokens ctx

            Some
                {
                    FieldName = t.FormFieldName
                    Token = t.RequestToken
                }

    let private query (ctx: HttpContext) (name: string) =
        match ctx.Request.Query.TryGetValue name with
        | true, v -> Some(string v)
        | _ -> None

    /// The list a request asks for (`status`, `q`, `sort`), or the parameter at fault and why.
    let private queryOf (ctx: HttpContext) : Result<ListQuery, string * string> =
        match Triage.parseStatusFilter (query ctx "status"), Triage.parseSort (query ctx "sort") with
        | Error why, _ -> Error("status", why)
        | _, Error why -> Error("sort", why)
        | Ok status, Ok sort ->
            Ok
                {
                    Status = status
                    Sort = sort
                    Search =
                        match query ctx "q" with
                        | Some q when not (String.IsNullOrWhiteSpace q) -> q.Trim()
                        | _ -> null
                    Release = Triage.parseNameFilter (query ctx "release") |> Option.toObj
                    Environment = Triage.parseNameFilter (query ctx "environment") |> Option.toObj
                    Project = Triage.parseNameFilter (query ctx "project") |> Option.toObj
                }

    /// The page a request asks for of a list: by a cursor from a Newer/Older link when it has one (keyset: a
    /// deep page costs what page 1 costs), else by its number. Ignored groups whose time ran out are made
    /// unresolved first.
    let private pageOf (b: BrowseOptions) (ctx: HttpContext) (q: ListQuery) : Task<Page<ErrorRecord>> =
        task {
            let number = Paging.parsePage (query ctx "page")
            let size = b.Engine.Settings.DefaultListSize
            do! b.Engine.Store.ExpireIgnoresAsync(b.Engine.Now(), ctx.RequestAborted)

            let cursor =
                match query ctx "after" |> Option.bind (Paging.parseCursor CursorDirection.Older) with
                | Some c -> Some c
                | None -> query ctx "before" |> Option.bind (Paging.parseCursor CursorDirection.Newer)

            match cursor with
            | Some c when number > 1 || c.Direction = CursorDirection.Newer ->
                let! rows = b.Engine.Store.ListFromAsync(q, c, size + 1, ctx.RequestAborted)
                return Paging.ofCursor number size c.Direction (List.ofSeq rows)
            | _ ->
                let! rows =
                    b.Engine.Store.ListAsync(q, Paging.offset number size, size + 1, ctx.RequestAborted)

                return Paging.ofFetched number size (List.ofSeq rows)
        }

    /// The Newer and Older links of a page of a list (the rule is Core's).
    let private links (b: BrowseOptions) (q: ListQuery) (page: Page<ErrorRecord>) : string option * string option =
        Paging.links (prefix b) (Triage.viewParameters q) (fun (r: ErrorRecord) -> Triage.sortKey q.Sort r, r.Hash) page

    let private banner (b: BrowseOptions) =
        match b.Engine.Queue.Dropped with
        | 0L -> None
        | n -> Some(sprintf "%d occurrences were dropped because ErrorMonitor's queue was full." n)

    /// The series of a group (`hash`) or of all groups (null): the last `hours` hours and the last `days` days.
    let private historyOf
        (b: BrowseOptions)
        (ctx: HttpContext)
        (hash: string)
        (hours: int)
        (days: int)
        : Task<Bucket[] * Bucket[]> =
        task {
            let now = b.Engine.Now()

            let from = min (History.dailyFrom now days) (History.hourlyFrom now hours)

            let! h = b.Engine.Store.HistoryAsync(hash, from, ctx.RequestAborted)
            return History.hourly now hours h.Hours, History.daily now days h.Days h.Hours
        }

    /// The charts of a history: hours, then days.
    let private charts (name: string) (what: string) (hourly: Bucket[], daily: Bucket[]) =
        [
            Views.chart (name + "-hours") (sprintf "%s, last %d hours" what hourly.Length) (History.chart false hourly)
            Views.chart (name + "-days") (sprintf "%s, last %d days" what daily.Length) (History.chart true daily)
        ]

    /// The list page: unresolved groups, most recently seen first, unless the URL asks for another view;
    /// `APP_DEFAULT_LIST_SIZE` a page.
    let internal list (b: BrowseOptions) : HttpHandler =
        fun next ctx ->
            task {
                let q =
                    match queryOf ctx with
                    | Ok q -> q
                    | Error _ -> ListQuery.Unresolved

                let! page = pageOf b ctx q
                let newer, older = links b q page
                let here = ctx.Request.Path.Value + ctx.Request.QueryString.Value
                let now = b.Engine.Now()
                let! all = historyOf b ctx null 24 14

                let! hours =
                    b.Engine.Store.HoursAsync(
                        page.Items |> List.map (fun r -> r.Hash) |> Array.ofList,
                        History.hourlyFrom now 24,
                        ctx.RequestAborted
                    )

                let sparks =
                    page.Items
                    |> List.map (fun r ->
                        let buckets =
                            match hours.TryGetValue r.Hash with
                            | true, bs -> bs
                            | _ -> [||]

                        r.Hash, History.chart false (History.hourly now 24 buckets))
                    |> readOnlyDict

                return!
                    html
                        200
                        (Views.list
                            (prefix b)
                            now
                            (antiforgery ctx)
                            (banner b)
                            q
                            here
                            newer
                            older
                            page
                            (charts "all" "All errors" all)
                            sparks)
                        next
                        ctx
            }

    let private find (b: BrowseOptions) (ctx: HttpContext) (hash: string) : Task<ErrorRecord option> =
        task {
            if not (Fingerprint.isValid hash) then
                return None
            else
                let! r = b.Engine.Store.GetAsync(hash, ctx.RequestAborted)
                return if isNull (box r) then None else Some r
        }

    /// The detail page of one group; 404 when unknown.
    let internal detail (b: BrowseOptions) (hash: string) : HttpHandler =
        fun next ctx ->
            task {
                match! find b ctx hash with
                | Some r ->
                    let! history = historyOf b ctx r.Hash 24 30
                    let! samples = b.Engine.Store.SamplesAsync(r.Hash, ctx.RequestAborted)
                    let samples = List.ofSeq samples

                    // ?sample=ID shows that sample; none (or one no longer kept) shows the newest.
                    let shown =
                        match Int64.TryParse(string ctx.Request.Query.["sample"]) with
                        | true, id -> samples |> List.tryFind (fun s -> s.Id = id)
                        | _ -> None

                    return!
                        html
                            200
                            (Views.detail
                                (prefix b)
                                (b.Engine.Now())
                                (antiforgery ctx)
                                r
                                (charts "group" "This error" history)
                                samples
                                shown)
                            next
                            ctx
                | None ->
                    return!
                        html 404 (Views.message (prefix b) "Not found" "There is no error group with this id.") next ctx
            }

    /// True when a form post carries a valid antiforgery token; else the page that says why.
    let private validForm (b: BrowseOptions) (ctx: HttpContext) : Task<Result<unit, HttpHandler>> =
        task {
            let af = ctx.RequestServices.GetService<IAntiforgery>()

            let! valid =
                task {
                    if isNull af then
                        return false
                    else
                        try
                            do! af.ValidateRequestAsync ctx
                            return true
                        with :? AntiforgeryValidationException ->
                            return false
                }

            if valid then
                return Ok()
            else
                let why =
                    if isNull af then
                        "Changing a group needs ASP.NET Core antiforgery: call builder.Services.AddAntiforgery()."
                    else
                        "The form's antiforgery token is missing or invalid: reload the page and try again."

                return Error(html 400 (Views.message (prefix b) "Bad request" why))
        }

    /// Runs `handler` for a form post with a valid antiforgery token; refuses any other method (405, saying `what`
    /// needs a POST) and a missing or invalid token (400).
    let private formPost (b: BrowseOptions) (what: string) (handler: HttpHandler) : HttpHandler =
        fun next ctx ->
            task {
                if not (HttpMethods.IsPost ctx.Request.Method) then
                    ctx.Response.Headers.Allow <- "POST"
                    return! html 405 (Views.message (prefix b) "Method not allowed" what) next ctx
                else
                    match! validForm b ctx with
                    | Error refuse -> return! refuse next ctx
                    | Ok() -> return! handler next ctx
            }

    /// Where a form goes back to: its `back` field when it is a page under the prefix, else the list.
    let private backTo (b: BrowseOptions) (form: IFormCollection) : string =
        let back = string form.["back"]

        if
            back.StartsWith(prefix b + "/", StringComparison.Ordinal)
            && not (back.StartsWith("//", StringComparison.Ordinal))
            && not (back.Contains '\\')
        then
            back
        else
            prefix b + "/"

    /// A status change from a form's fields: `status`, and with ignored, `ignoreHours` or `ignoreCount`.
    let private formChange (b: BrowseOptions) (form: IFormCollection) (status: GroupStatus) : StatusChange =
        let number (name: string) =
            match Int64.TryParse(string form.[name]) with
            | true, n when n >= 1L -> Some n
            | _ -> None

        {
            Status = status
            IgnoreUntil =
                match status, number "ignoreHours" with
                | GroupStatus.Ignored, Some h when h <= 24L * 366L -> Nullable(b.Engine.Now().AddHours(float h))
                | _ -> Nullable()
            IgnoreCount =
                match status, number "ignoreCount" with
                | GroupStatus.Ignored, Some n -> Nullable n
                | _ -> Nullable()
        }

    /// Changes the status of one group or of the groups selected in the list (a form post with a valid
    /// antiforgery token: fields `hash` (one or many), `status` (unresolved, resolved, ignored or delete), and
    /// `back`), then goes back to the page it came from.
    let internal changeStatus (b: BrowseOptions) (hash: string) : HttpHandler =
        formPost b "Changing a group needs a POST from its buttons."
        <| fun next ctx ->
            task {
                let! form = ctx.Request.ReadFormAsync ctx.RequestAborted

                let hashes =
                    (if String.IsNullOrEmpty hash then
                         form.["hash"] |> Seq.map string |> List.ofSeq
                     else
                         [ hash ])
                    |> List.filter Fingerprint.isValid
                    |> List.distinct
                    |> List.truncate 1000

                let action = string form.["status"]

                match action, Triage.parseStatus action with
                | "delete", _ ->
                    for h in hashes do
                        let! _ = b.Engine.Store.DeleteAsync(h, ctx.RequestAborted)
                        ()

                    ctx.Response.Redirect(backTo b form)
                    return Some ctx
                | _, Some status ->
                    let change = formChange b form status

                    for h in hashes do
                        let! _ = b.Engine.Store.SetStatusAsync(h, change, ctx.RequestAborted)
                        ()

                    ctx.Response.Redirect(backTo b form)
                    return Some ctx
                | _ ->
                    return!
                        html
                            400
                            (Views.message
                                (prefix b)
                                "Bad request"
                                "The status must be unresolved, resolved, ignored or delete.")
                            next
                            ctx
            }

    /// Deletes a group (POST with a valid antiforgery token), then goes back to the list.
    let internal delete (b: BrowseOptions) (hash: string) : HttpHandler =
        formPost b "Deleting needs a POST from the delete button."
        <| fun next ctx ->
            task {
                if Fingerprint.isValid hash then
                    let! _ = b.Engine.Store.DeleteAsync(hash, ctx.RequestAborted)
                    ()

                ctx.Response.Redirect(prefix b + "/")
                return Some ctx
            }

    let private writeItem (w: Utf8JsonWriter) (r: ErrorRecord) = RecordJson.fields w r

    /// The list as JSON: items, page, pageSize, hasNext (an older page), hasPrevious (a newer page), and the
    /// next / previous URLs (with cursors).
    let internal apiList (b: BrowseOptions) : HttpHandler =
        fun next ctx ->
            task {
                match queryOf ctx with
                | Error(field, why) -> return! Ingest.problem 400 "Bad Request" why (Some field) next ctx
                | Ok q ->
                    let! page = pageOf b ctx q

                    return!
                        json
                            200
                            "application/json; charset=utf-8"
                            (fun w ->
                                w.WriteStartObject()
                                w.WriteStartArray "items"

                                for r in page.Items do
                                    w.WriteStartObject()
                                    writeItem w r
                                    w.WriteEndObject()

                                w.WriteEndArray()
                                w.WriteNumber("page", page.Number)
                                w.WriteNumber("pageSize", page.Size)
                                w.WriteBoolean("hasNext", page.HasOlder)
                                w.WriteBoolean("hasPrevious", page.HasNewer)
                                let newer, older = links b q page

                                let api (href: string) =
                                    href.Replace(prefix b + "/?", prefix b + "/api/errors?")

                                match older with
                                | Some o -> w.WriteString("next", api o)
                                | None -> w.WriteNull "next"

                                match newer with
                                | Some n -> w.WriteString("previous", api n)
                                | None -> w.WriteNull "previous"

                                w.WriteEndObject())
                            next
                            ctx
            }

    /// A status change from a JSON body `{"status", "ignoreUntil"?, "ignoreCount"?}`, or the field at fault.
    let private parseChange (body: string) : Result<StatusChange, string * string> =
        try
            use doc = JsonDocument.Parse body
            let root = doc.RootElement

            if root.ValueKind <> JsonValueKind.Object then
                Error("body", "the body must be a JSON object")
            else
                let prop (name: string) =
                    match root.TryGetProperty name with
                    | true, v when v.ValueKind <> JsonValueKind.Null -> Some v
                    | _ -> None

                match prop "status" with
                | Some v when
                    v.ValueKind = JsonValueKind.String
                    && (Triage.parseStatus (v.GetString())).IsSome
                    ->
                    let status = (Triage.parseStatus (v.GetString())).Value

                    let until =
                        match prop "ignoreUntil" with
                        | None -> Ok(Nullable())
                        | Some t when t.ValueKind = JsonValueKind.String ->
                            match
                                DateTimeOffset.TryParse(
                                    t.GetString(),
                                    Globalization.CultureInfo.InvariantCulture,
                                    Globalization.DateTimeStyles.AssumeUniversal
                                )
                            with
                            | true, at -> Ok(Nullable(at.ToUniversalTime()))
                            | _ -> Error("ignoreUntil", "ignoreUntil must be an ISO 8601 time")
                        | Some _ -> Error("ignoreUntil", "ignoreUntil must be an ISO 8601 time")

                    let count =
                        match prop "ignoreCount" with
                        | None -> Ok(Nullable())
                        | Some n when n.ValueKind = JsonValueKind.Number ->
                            match n.TryGetInt64() with
                            | true, c -> Ok(Nullable c)
                            | _ -> Error("ignoreCount", "ignoreCount must be a whole number of at least 1")
                        | Some _ -> Error("ignoreCount", "ignoreCount must be a whole number of at least 1")

                    match until, count with
                    | Error e, _
                    | _, Error e -> Error e
                    | Ok u, Ok c ->
                        Triage.validate
                            {
                                Status = status
                                IgnoreUntil = u
                                IgnoreCount = c
                            }
                | _ -> Error("status", "status must be unresolved, resolved or ignored")
        with :? JsonException ->
            Error("body", "the body is not valid JSON")

    /// Changes a group's status from the API: `POST {prefix}/api/errors/{hash}/status` with a JSON body (only
    /// `application/json`, which a browser cannot send cross-site without a preflight these routes never
    /// grant); 200 with the item as changed, 404 for an unknown group, 415 for another content type, 400 naming
    /// the field at fault.
    let internal apiStatus (b: BrowseOptions) (hash: string) : HttpHandler =
        fun next ctx ->
            task {
                let mediaType =
                    match Net.Http.Headers.MediaTypeHeaderValue.TryParse(ctx.Request.ContentType) with
                    | true, m -> m.MediaType
                    | _ -> ""

                if not (String.Equals(mediaType, "application/json", StringComparison.OrdinalIgnoreCase)) then
                    return!
                        Ingest.problem 415 "Unsupported Media Type" "The body must be application/json." None next ctx
                else
                    use reader = new StreamReader(ctx.Request.Body, Text.Encoding.UTF8)
                    let! body = reader.ReadToEndAsync ctx.RequestAborted

                    match parseChange body with
                    | Error(field, why) -> return! Ingest.problem 400 "Bad Request" why (Some field) next ctx
                    | Ok change ->
                        let! changed =
                            if Fingerprint.isValid hash then
                                b.Engine.Store.SetStatusAsync(hash, change, ctx.RequestAborted)
                            else
                                Task.FromResult Unchecked.defaultof<ErrorRecord>

                        if isNull (box changed) then
                            return!
                                problem
                                    404
                                    "Not Found"
                                    (sprintf "There is no error group with hash '%s'." hash)
                                    next
                                    ctx
                        else
                            return!
                                json
                                    200
                                    "application/json; charset=utf-8"
                                    (fun w ->
                                        w.WriteStartObject()
                                        writeItem w changed
                                        w.WriteEndObject())
                                    next
                                    ctx
            }

    /// Answers `found` with a known group; 404 problem details for an unknown one.
    let private ofGroup (b: BrowseOptions) (hash: string) (found: ErrorRecord -> HttpHandler) : HttpHandler =
        fun next ctx ->
            task {
                match! find b ctx hash with
                | Some r -> return! found r next ctx
                | None ->
                    return! problem 404 "Not Found" (sprintf "There is no error group with hash '%s'." hash) next ctx
            }

    /// 200 with a JSON object that `write` fills.
    let private jsonObject (write: Utf8JsonWriter -> unit) : HttpHandler =
        json 200 "application/json; charset=utf-8" (fun w ->
            w.WriteStartObject()
            write w
            w.WriteEndObject())

    /// One group as JSON, with requestData (an object) and traceback; 404 problem details when unknown.
    let internal apiDetail (b: BrowseOptions) (hash: string) : HttpHandler =
        ofGroup b hash (fun r ->
            fun next ctx ->
                task {
                    let! hourly, daily = historyOf b ctx r.Hash 24 30

                    let series (name: string) (buckets: Bucket[]) (w: Utf8JsonWriter) =
                        w.WriteStartArray name

                        for bucket in buckets do
                            w.WriteStartObject()
                            w.WriteString("start", RecordJson.time bucket.Start)
                            w.WriteNumber("count", bucket.Count)
                            w.WriteEndObject()

                        w.WriteEndArray()

                    return!
                        jsonObject
                            (fun w ->
                                writeItem w r
                                w.WriteStartObject "history"
                                series "hourly" hourly w
                                series "daily" daily w
                                w.WriteEndObject()
                                RecordJson.requestData w r.RequestData
                                RecordJson.breadcrumbs w r.RequestData
                                w.WriteString("traceback", r.Traceback))
                            next
                            ctx
                })

    /// A group's samples as JSON, newest first (`GET {prefix}/api/errors/{hash}/occurrences`): each its id,
    /// occurredAt and message; 404 problem details when the group is unknown.
    let internal apiSamples (b: BrowseOptions) (hash: string) : HttpHandler =
        ofGroup b hash (fun r ->
            fun next ctx ->
                task {
                    let! samples = b.Engine.Store.SamplesAsync(r.Hash, ctx.RequestAborted)

                    return!
                        jsonObject
                            (fun w ->
                                w.WriteString("hash", r.Hash)
                                w.WriteStartArray "items"

                                for s in samples do
                                    w.WriteStartObject()
                                    RecordJson.sample w false s
                                    w.WriteEndObject()

                                w.WriteEndArray())
                            next
                            ctx
                })

    /// One sample as JSON, with its requestData (an object) and traceback
    /// (`GET {prefix}/api/errors/{hash}/occurrences/{id}`); 404 problem details when the group or the sample is
    /// unknown (a sample past the bound is gone).
    let internal apiSample (b: BrowseOptions) (hash: string) : HttpHandler =
        ofGroup b hash (fun r ->
            fun next ctx ->
                task {
                    let id =
                        match ctx.Request.RouteValues.TryGetValue "id" with
                        | true, v when not (isNull v) ->
                            match Int64.TryParse(string v) with
                            | true, i -> Some i
                            | _ -> None
                        | _ -> None

                    let! samples = b.Engine.Store.SamplesAsync(r.Hash, ctx.RequestAborted)

                    match id |> Option.bind (fun i -> samples |> Seq.tryFind (fun s -> s.Id = i)) with
                    | Some s ->
                        return!
                            jsonObject
                                (fun w ->
                                    w.WriteString("hash", r.Hash)
                                    RecordJson.sample w true s)
                                next
                                ctx
                    | None ->
                        return!
                            problem
                                404
                                "Not Found"
                                (sprintf "Error group '%s' keeps no occurrence with this id." hash)
                                next
                                ctx
                })

    /// Every route of the pages, once: its path under the prefix (`{hash}` a parameter), the methods it answers,
    /// whether anyone may call it (the capture route and its script) or only who may browse, and its handler
    /// given the `{hash}` value. The endpoint mapping and the Giraffe-shaped router both read this table, so
    /// they answer the same paths with the same methods.
    let private routes
        : (string * string list * bool * (BrowseOptions -> Ingest.KeyLimiter -> string -> HttpHandler)) list =
        [
            "/api/errors", [ "POST"; "OPTIONS" ], true, (fun b limiter _ -> Ingest.post b.Engine limiter)
            "/client.js", [ "GET"; "HEAD" ], true, (fun _ _ _ -> Ingest.clientScript)
            "/api/{projectId}/envelope",
            [ "POST"; "OPTIONS" ],
            true,
            (fun b limiter _ -> SentryIngest.post b.Engine limiter false)
            "/api/{projectId}/store",
            [ "POST"; "OPTIONS" ],
            true,
            (fun b limiter _ -> SentryIngest.post b.Engine limiter true)
            "/", [ "GET" ], false, (fun b _ _ -> list b)
            "/api/errors", [ "GET" ], false, (fun b _ _ -> apiList b)
            "/api/errors/{hash}", [ "GET" ], false, (fun b _ hash -> apiDetail b hash)
            "/api/errors/{hash}/occurrences", [ "GET" ], false, (fun b _ hash -> apiSamples b hash)
            "/api/errors/{hash}/occurrences/{id}", [ "GET" ], false, (fun b _ hash -> apiSample b hash)
            "/delete/{hash}", [ "GET"; "POST" ], false, (fun b _ hash -> delete b hash)
            "/api/errors/{hash}/status", [ "POST" ], false, (fun b _ hash -> apiStatus b hash)
            "/status/{hash}", [ "GET"; "POST" ], false, (fun b _ hash -> changeStatus b hash)
            "/status", [ "GET"; "POST" ], false, (fun b _ _ -> changeStatus b "")
            "/{hash}", [ "GET" ], false, (fun b _ hash -> detail b hash)
        ]

    let private handlerOf (b: BrowseOptions) (isOpen: bool) (handler: HttpHandler) : HttpHandler =
        if isOpen then handler else guard b >=> handler

    /// Maps the routes as ASP.NET Core endpoints in a group at the prefix (the C# facade's MapErrorMonitor).
    let internal mapEndpoints (endpoints: IEndpointRouteBuilder) (b: BrowseOptions) : RouteGroupBuilder =
        let group = endpoints.MapGroup(prefix b)
        let limiter = Ingest.limiterFor b.Engine

        for path, methods, isOpen, make in routes do
            let run =
                RequestDelegate(fun ctx ->
                    let hash =
                        match ctx.Request.RouteValues.TryGetValue "hash" with
                        | true, v when not (isNull v) -> string v
                        | _ -> ""

                    handlerOf b isOpen (make b limiter hash) earlyReturn ctx :> Task)

            group.MapMethods(path, methods, run) |> ignore

        group

    /// The segments of a path under the prefix, or None for a path outside it.
    let private segmentsUnder (b: BrowseOptions) (path: string) : string array option =
        let p = prefix b

        let rest =
            if path = p then
                Some ""
            elif path.StartsWith(p + "/", StringComparison.Ordinal) then
                Some(path.Substring(p.Length + 1))
            else
                None

        rest |> Option.map (fun r -> r.TrimEnd('/').Split('/'))

    /// The values of a route's parameters (`{hash}`, `{id}`) when `segments` match its path (literal segments
    /// exactly, a parameter any non-empty segment), else None.
    let private matchRoute (path: string) (segments: string array) : (string * string) list option =
        let template = path.TrimStart('/').Split('/')

        if template.Length <> segments.Length then
            None
        else
            Array.zip template segments
            |> Array.fold
                (fun found (t, s) ->
                    match found with
                    | None -> None
                    | Some values when t.StartsWith '{' && t.EndsWith '}' ->
                        if s = "" then
                            None
                        else
                            Some((t.Trim('{', '}'), s) :: values)
                    | Some values -> if t = s then Some values else None)
                (Some [])

    /// The pages as one Giraffe-shaped handler, for F# apps that route without endpoints: answers the paths
    /// under the prefix with the methods the endpoints answer, passes on (skips) everything else.
    let router (b: BrowseOptions) : HttpHandler =
        let limiter = Ingest.limiterFor b.Engine

        fun next ctx ->
            match segmentsUnder b ctx.Request.Path.Value with
            | None -> skipPipeline
            | Some segments ->
                routes
                |> List.tryPick (fun (path, methods, isOpen, make) ->
                    if methods |> List.exists (fun m -> HttpMethods.Equals(m, ctx.Request.Method)) then
                        matchRoute path segments
                        |> Option.map (fun values ->
                            // As endpoint routing would: the parameters become route values.
                            for name, value in values do
                                ctx.Request.RouteValues.[name] <- value

                            let hash = values |> List.tryFind (fst >> (=) "hash") |> Option.map snd
                            handlerOf b isOpen (make b limiter (defaultArg hash "")))
                    else
                        None)
                |> function
                    | Some handler -> handler next ctx
                    | None -> skipPipeline

    /// An error handler of Giraffe's shape (`exn -> ILogger -> HttpHandler`) that records the exception, logs
    /// it, and answers 500.
    let errorHandler (engine: Engine) : exn -> ILogger -> HttpHandler =
        fun ex logger ->
            fun _ ctx ->
                task {
                    engine.RecordDeferred(ex, ctx)
                    Log.UnhandledException logger ex

                    if not ctx.Response.HasStarted then
                        ctx.Response.Clear()
                        ctx.Response.StatusCode <- 500
                        ctx.Response.ContentType <- "text/plain; charset=utf-8"
                        do! ctx.Response.WriteAsync "An error occurred."

                    return Some ctx
                }
