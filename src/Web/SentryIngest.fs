namespace ErrorMonitor.Web

open System
open System.IO
open System.IO.Compression
open System.Text
open System.Threading.Tasks
open Microsoft.AspNetCore.Http
open ErrorMonitor.Core

/// The Sentry SDKs' endpoints: `POST {prefix}/api/{projectId}/envelope/` (current SDKs) and
/// `POST {prefix}/api/{projectId}/store/` (one JSON event, older SDKs), keyed by the capture route's ingest keys
/// (the DSN's public key), with the capture route's limits.
[<RequireQualifiedAccess>]
module internal SentryIngest =

    /// What the request may send besides the CORS-safe headers.
    let private corsHeaders =
        "Content-Type, Content-Encoding, X-Sentry-Auth, Authorization"

    /// A query parameter's value, when it is there and not blank.
    let private queryValue (ctx: HttpContext) (name: string) : string option =
        match ctx.Request.Query.TryGetValue name with
        | true, v when not (String.IsNullOrWhiteSpace(string v)) -> Some(string v)
        | _ -> None

    /// A field of the request's auth header (`X-Sentry-Auth`, else `Authorization: Sentry ...`), if any.
    let private authField (ctx: HttpContext) (field: string) : string option =
        let header (name: string) =
            match ctx.Request.Headers.TryGetValue name with
            | true, v -> Sentry.authField field (string v)
            | _ -> None

        header "X-Sentry-Auth" |> Option.orElse (header "Authorization")

    /// The key of a request: in the auth header, or `sentry_key` in the query (the browser SDK's way).
    let private givenKey (ctx: HttpContext) : string option =
        authField ctx "sentry_key" |> Option.orElse (queryValue ctx "sentry_key")

    /// The SDK's name: `sentry_client` ("sentry.python/2.19.0") in the auth header or the query, else the user agent.
    let private sdkName (ctx: HttpContext) : string =
        authField ctx "sentry_client"
        |> Option.orElse (queryValue ctx "sentry_client")
        |> Option.defaultValue (ctx.Request.Headers.UserAgent.ToString())
        |> Text.truncate 200

    /// The body, decompressed (gzip, deflate, br or none), at most `max` bytes after decompression: a compression
    /// bomb stops at the limit. None when it is larger; Error for an encoding it cannot read or a broken stream.
    let private readBody (ctx: HttpContext) (max: int) : Task<Result<ArraySegment<byte> option, string>> =
        task {
            let encoding =
                ctx.Request.Headers.ContentEncoding.ToString().Trim().ToLowerInvariant()

            let source: Result<Stream, string> =
                match encoding with
                | ""
                | "identity" -> Ok ctx.Request.Body
                | "gzip"
                | "x-gzip" -> Ok(new GZipStream(ctx.Request.Body, CompressionMode.Decompress, true))
                | "deflate" -> Ok(new ZLibStream(ctx.Request.Body, CompressionMode.Decompress, true))
                | "br" -> Ok(new BrotliStream(ctx.Request.Body, CompressionMode.Decompress, true))
                | other -> Error(sprintf "Content-Encoding '%s' is not supported (gzip, deflate, br or none)" other)

            match source with
            | Error e -> return Error e
            | Ok stream ->
                try
                    let! body = Ingest.readBoundedBytes stream max ctx.RequestAborted

                    if not (obj.ReferenceEquals(stream, ctx.Request.Body)) then
                        stream.Dispose()

                    return Ok body
                with
                | :? InvalidDataException as ex -> return Error("the body could not be decompressed: " + ex.Message)
                | :? IOException as ex when encoding <> "" ->
                    return Error("the body could not be decompressed: " + ex.Message)
        }

    /// An answer: 200 with the event id.
    let private accepted (id: string) : HttpHandler =
        fun _ ctx ->
            task {
                ctx.Response.StatusCode <- 200
                ctx.Response.ContentType <- "application/json"
                Ingest.noSniff ctx
                do! ctx.Response.WriteAsync(sprintf "{\"id\":\"%s\"}" (Text.Json.JsonEncodedText.Encode(id).ToString()))
                return Some ctx
            }

    /// A 429 for errors only: `Retry-After` and `X-Sentry-Rate-Limits` (the SDKs keep sending sessions and client
    /// reports, which are never refused).
    let private limited (wait: TimeSpan) (detail: string) : HttpHandler =
        fun next ctx ->
            ctx.Response.Headers.["X-Sentry-Rate-Limits"] <-
                Microsoft.Extensions.Primitives.StringValues(Sentry.rateLimits (KeyLimits.retryAfterSeconds wait))

            Ingest.tooMany wait detail next ctx

    /// `POST {prefix}/api/{projectId}/envelope/` (`store`: false) or `.../store/` (`store`: true).
    let post (engine: Engine) (limiter: Ingest.KeyLimiter) (store: bool) : HttpHandler =
        fun next ctx ->
            task {
                let settings = engine.Settings
                Ingest.corsFor corsHeaders settings ctx |> ignore

                let projectId =
                    match ctx.Request.RouteValues.TryGetValue "projectId" with
                    | true, v when not (isNull v) -> string v
                    | _ -> ""

                if settings.Ingest.Keys.IsEmpty then
                    return!
                        Ingest.problem
                            404
                            "Not Found"
                            "The Sentry endpoint is off: set APP_ERROR_INGEST_KEY (the DSN's key) to turn it on."
                            None
                            next
                            ctx
                elif HttpMethods.IsOptions ctx.Request.Method then
                    ctx.Response.StatusCode <- 204
                    return Some ctx
                elif
                    projectId = ""
                    || not (projectId |> Seq.forall Char.IsAsciiDigit)
                    || projectId.Length > 18
                then
                    return!
                        Ingest.problem
                            400
                            "Bad Request"
                            "The project id in the DSN must be a number."
                            (Some "projectId")
                            next
                            ctx
                else
                    match givenKey ctx with
                    | None ->
                        return!
                            Ingest.problem
                                401
                                "Unauthorized"
                                "A sentry_key is required (X-Sentry-Auth header or sentry_key query parameter)."
                                None
                                next
                                ctx
                    | Some given ->
                        match Ingest.keyMatching settings given with
                        | None ->
                            return!
                                Ingest.problem
                                    403
                                    "Forbidden"
                                    "The sentry_key is not one of this app's keys."
                                    None
                                    next
                                    ctx
                        | Some key ->
                            match! readBody ctx settings.Ingest.MaxBytes with
                            | Error why -> return! Ingest.problem 400 "Bad Request" why None next ctx
                            | Ok None ->
                                return!
                                    Ingest.problem
                                        413
                                        "Payload Too Large"
                                        (sprintf
                                            "A request may be at most %d bytes (decompressed)."
                                            settings.Ingest.MaxBytes)
                                        None
                                        next
                                        ctx
                            | Ok(Some body) ->
                                let parsed =
                                    if store then
                                        Ok(Data.Object [], [ { Type = "event"; Payload = body } ])
                                    else
                                        Sentry.envelope Limits.reports body

                                match parsed with
                                | Error why ->
                                    return!
                                        Ingest.problem 400 "Bad Request" ("Not an envelope: " + why + ".") None next ctx
                                | Ok(header, items) ->
                                    let headerId =
                                        match header with
                                        | Data.Object fields ->
                                            match fields |> List.tryFind (fun (k, _) -> k = "event_id") with
                                            | Some(_, Data.String id) -> id
                                            | _ -> ""
                                        | _ -> ""

                                    let events = items |> List.filter (fun i -> i.Type = "event")

                                    if events.IsEmpty then
                                        // Sessions, client reports, transactions, attachments: accepted, ignored.
                                        return! accepted headerId next ctx
                                    else
                                        match limiter.AdmitRequest key with
                                        | Error wait ->
                                            return!
                                                limited
                                                    wait
                                                    (sprintf
                                                        "At most %d reports a minute for this key."
                                                        settings.Ingest.RatePerMinute)
                                                    next
                                                    ctx
                                        | Ok() ->
                                            let sdk = sdkName ctx
                                            let mutable outcome = Ok headerId

                                            for item in events do
                                                match outcome with
                                                | Ok _ ->
                                                    match
                                                        Json.parseWithout
                                                            Limits.reports
                                                            Sentry.Ignored
                                                            (ReadOnlyMemory<byte>(
                                                                item.Payload.Array,
                                                                item.Payload.Offset,
                                                                item.Payload.Count
                                                            ))
                                                        |> Result.bind (fun d ->
                                                            Sentry.event
                                                                settings.Breadcrumbs
                                                                projectId
                                                                sdk
                                                                d
                                                                (engine.Now()))
                                                    with
                                                    | Error why -> outcome <- Error(Choice1Of2 why)
                                                    | Ok ev ->
                                                        match
                                                            engine.RecordSentry(
                                                                ev,
                                                                (fun hash -> limiter.AdmitGroup(key, hash))
                                                            )
                                                        with
                                                        | ReportOutcome.Refused wait ->
                                                            outcome <- Error(Choice2Of2 wait)
                                                        | _ ->
                                                            outcome <-
                                                                Ok(if ev.EventId <> "" then ev.EventId else headerId)
                                                | Error _ -> ()

                                            match outcome with
                                            | Ok id -> return! accepted id next ctx
                                            | Error(Choice1Of2 why) ->
                                                return!
                                                    Ingest.problem
                                                        400
                                                        "Bad Request"
                                                        ("Not an event: " + why + ".")
                                                        None
                                                        next
                                                        ctx
                                            | Error(Choice2Of2 wait) ->
                                                return!
                                                    limited
                                                        wait
                                                        (sprintf
                                                            "At most %d distinct groups an hour for this key."
                                                            settings.Ingest.GroupsPerHour)
                                                        next
                                                        ctx
            }
