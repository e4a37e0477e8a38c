namespace ErrorMonitor.Web

open System
open System.IO
open System.Security.Cryptography
open System.Text
open System.Text.Json
open System.Collections.Generic
open System.Threading.Tasks
open Microsoft.AspNetCore.Http
open ErrorMonitor.Core

/// The capture route: `POST {prefix}/api/errors` takes error reports from other services and browsers, and
/// `GET {prefix}/client.js` is the script a page includes to send its own.
[<RequireQualifiedAccess>]
module internal Ingest =

    /// Says that an answer is exactly the type it names (no sniffing by browsers): every answer of the pages,
    /// the JSON API and the capture route carries it.
    let noSniff (ctx: HttpContext) =
        ctx.Response.Headers.XContentTypeOptions <- "nosniff"

    let private problemBody (status: int) (title: string) (detail: string) (field: string option) : byte array =
        let buffer = Buffers.ArrayBufferWriter<byte>()

        (use w = new Utf8JsonWriter(buffer)
         w.WriteStartObject()
         w.WriteString("type", sprintf "https://httpstatuses.io/%d" status)
         w.WriteString("title", title)
         w.WriteNumber("status", status)
         w.WriteString("detail", detail)

         match field with
         | Some f -> w.WriteString("field", f)
         | None -> ()

         w.WriteEndObject())

        buffer.WrittenSpan.ToArray()

    /// A problem-details answer (RFC 9457), naming the field at fault when there is one.
    let problem (status: int) (title: string) (detail: string) (field: string option) : HttpHandler =
        fun _ ctx ->
            task {
                ctx.Response.StatusCode <- status
                ctx.Response.ContentType <- "application/problem+json"
                noSniff ctx
                do! ctx.Response.Body.WriteAsync(problemBody status title detail field)
                return Some ctx
            }

    /// `given` if it is one of the configured keys (compared in constant time).
    let keyMatching (settings: Settings) (given: string) : string option =
        let given = Encoding.UTF8.GetBytes(if isNull given then "" else given)

        settings.Ingest.Keys
        |> List.tryFind (fun k ->
            CryptographicOperations.FixedTimeEquals(ReadOnlySpan(Encoding.UTF8.GetBytes k), ReadOnlySpan given))

    /// The key the request carries, if it is one of the configured keys.
    let private matchingKey (settings: Settings) (ctx: HttpContext) : string option =
        match ctx.Request.Headers.TryGetValue Report.KeyHeader with
        | true, v -> keyMatching settings (string v)
        | _ -> None

    /// CORS for configured origins: the answer's headers (the request may send `headers`), and the preflight.
    let corsFor (headers: string) (settings: Settings) (ctx: HttpContext) : bool =
        match ctx.Request.Headers.Origin.ToString() with
        | "" -> false
        | origin when
            settings.Ingest.CorsOrigins
            |> List.exists (fun o -> String.Equals(o, origin, StringComparison.OrdinalIgnoreCase))
            ->
            ctx.Response.Headers.AccessControlAllowOrigin <- Microsoft.Extensions.Primitives.StringValues origin
            ctx.Response.Headers.Vary <- "Origin"
            ctx.Response.Headers.AccessControlAllowMethods <- "POST"
            ctx.Response.Headers.AccessControlAllowHeaders <- Microsoft.Extensions.Primitives.StringValues headers
            ctx.Response.Headers.AccessControlMaxAge <- "600"
            true
        | _ -> false

    let private cors = corsFor ("Content-Type, " + Report.KeyHeader)

    /// Reads at most `max` bytes of `stream`; None when it holds more (it stops reading there, so a decompressing
    /// stream stops at the limit too).
    let readBoundedBytes
        (stream: Stream)
        (max: int)
        (ct: Threading.CancellationToken)
        : Task<ArraySegment<byte> option> =
        task {
            use ms = new MemoryStream()
            let buffer = Array.zeroCreate<byte> 16384
            let mutable fin = false
            let mutable over = false

            while not fin do
                let! n = stream.ReadAsync(buffer, 0, buffer.Length, ct)

                if n = 0 then
                    fin <- true
                elif ms.Length + int64 n > int64 max then
                    over <- true
                    fin <- true
                else
                    ms.Write(buffer, 0, n)

            return
                if over then
                    None
                else
                    Some(ArraySegment<byte>(ms.GetBuffer(), 0, int ms.Length))
        }

    /// Reads at most `max` bytes of the body as text; None when it is longer.
    let private readBounded (ctx: HttpContext) (max: int) : Task<string option> =
        task {
            let declared = ctx.Request.ContentLength

            if declared.HasValue && declared.Value > int64 max then
                return None
            else
                let! bytes = readBoundedBytes ctx.Request.Body max ctx.RequestAborted

                return
                    bytes
                    |> Option.map (fun b -> Encoding.UTF8.GetString(b.Array, b.Offset, b.Count))
        }

    /// The capture route's per-key limits (Core's KeyLimits: reports a minute, new groups an hour), with each
    /// key's current windows kept in memory (one entry a configured key).
    type internal KeyLimiter(settings: Settings, now: unit -> DateTimeOffset) =
        let gate = obj ()
        let requests = Dictionary<string, RateWindow>()
        let groups = Dictionary<string, GroupWindow>()

        // Runs a Core decision on `key`'s current window in `windows`, keeping the window it admits.
        let admit (windows: Dictionary<string, 'W>) (key: string) (decide: 'W option -> Result<'W, TimeSpan>) =
            lock gate (fun () ->
                let current =
                    match windows.TryGetValue key with
                    | true, w -> Some w
                    | _ -> None

                match decide current with
                | Ok w ->
                    windows.[key] <- w
                    Ok()
                | Error wait -> Error wait)

        /// One more report for `key`, or the time until its minute ends.
        member _.AdmitRequest(key: string) : Result<unit, TimeSpan> =
            admit
                requests
                key
                (KeyLimits.admitRequest settings.Ingest.RatePerMinute (TimeSpan.FromMinutes 1.0) (now ()))

        /// A report of group `hash` for `key`, or the time until its hour ends.
        member _.AdmitGroup(key: string, hash: string) : Result<unit, TimeSpan> =
            admit groups key (KeyLimits.admitGroup settings.Ingest.GroupsPerHour (TimeSpan.FromHours 1.0) (now ()) hash)

    /// The per-key limits of an engine's capture route.
    let limiterFor (engine: Engine) : KeyLimiter = KeyLimiter(engine.Settings, engine.Now)

    let tooMany (wait: TimeSpan) (detail: string) : HttpHandler =
        fun next ctx ->
            ctx.Response.Headers.RetryAfter <- string (KeyLimits.retryAfterSeconds wait)
            problem 429 "Too Many Requests" detail None next ctx

    /// `POST {prefix}/api/errors`: 202 with the group's hash, or a problem naming what is wrong (401 no or
    /// wrong key, 413 too large, 400 invalid JSON or field, 429 past the rate); 404 when no key is set.
    let post (engine: Engine) (limiter: KeyLimiter) : HttpHandler =
        fun next ctx ->
            task {
                let settings = engine.Settings
                cors settings ctx |> ignore

                if settings.Ingest.Keys.IsEmpty then
                    return!
                        problem
                            404
                            "Not Found"
                            "The capture route is off: set APP_ERROR_INGEST_KEY to turn it on."
                            None
                            next
                            ctx
                elif HttpMethods.IsOptions ctx.Request.Method then
                    ctx.Response.StatusCode <- 204
                    return Some ctx
                else
                    match matchingKey settings ctx with
                    | None ->
                        return!
                            problem
                                401
                                "Unauthorized"
                                (sprintf "A valid ingest key is required in the %s header." Report.KeyHeader)
                                None
                                next
                                ctx
                    | Some key ->
                        match limiter.AdmitRequest key with
                        | Error wait ->
                            return!
                                tooMany
                                    wait
                                    (sprintf "At most %d reports a minute for this key." settings.Ingest.RatePerMinute)
                                    next
                                    ctx
                        | Ok() ->
                            match! readBounded ctx settings.Ingest.MaxBytes with
                            | None ->
                                return!
                                    problem
                                        413
                                        "Payload Too Large"
                                        (sprintf "A report may be at most %d bytes." settings.Ingest.MaxBytes)
                                        None
                                        next
                                        ctx
                            | Some body ->
                                match Report.parse Limits.reports body with
                                | Error e ->
                                    let where =
                                        if e.Field = "" then
                                            "The report"
                                        else
                                            sprintf "Field '%s'" e.Field

                                    return!
                                        problem
                                            400
                                            "Bad Request"
                                            (sprintf "%s %s." where e.Problem)
                                            (Some e.Field)
                                            next
                                            ctx
                                | Ok report ->
                                    match engine.RecordReport(report, (fun hash -> limiter.AdmitGroup(key, hash))) with
                                    | ReportOutcome.Refused wait ->
                                        return!
                                            tooMany
                                                wait
                                                (sprintf
                                                    "At most %d distinct groups an hour for this key."
                                                    settings.Ingest.GroupsPerHour)
                                                next
                                                ctx
                                    | ReportOutcome.Recorded hash ->
                                        ctx.Response.StatusCode <- 202
                                        ctx.Response.ContentType <- "application/json"
                                        noSniff ctx
                                        do! ctx.Response.WriteAsync(sprintf "{\"hash\":\"%s\"}" hash)
                                        return Some ctx
                                    | ReportOutcome.NotRecorded ->
                                        return!
                                            problem 503 "Service Unavailable" "Capture is off or failed." None next ctx
            }

    /// The browser script: reports `window.onerror` and `unhandledrejection` to the capture route with the key
    /// of its script tag, batching and de-duplicating repeats, never throwing into the page.
    let script =
        """/* ErrorMonitor client: <script src="/dev/error/client.js" data-key="KEY"></script> */
(function () {
  "use strict";
  try {
    var tag = document.currentScript;
    var key = tag && tag.getAttribute("data-key");
    var endpoint = (tag && tag.getAttribute("data-endpoint")) || (tag ? tag.src.replace(/client\.js(\?.*)?$/, "api/errors") : "");
    var release = tag && tag.getAttribute("data-release");
    if (!key || !endpoint) { return; }
    var queue = [], seen = {}, timer = null, sentInPage = 0, maxInPage = 100;
    var send = function () {
      timer = null;
      var batch = queue.splice(0, queue.length);
      for (var i = 0; i < batch.length; i++) {
        try {
          fetch(endpoint, {
            method: "POST", keepalive: true, credentials: "omit",
            headers: { "Content-Type": "application/json", "__KEY_HEADER__": key },
            body: JSON.stringify(batch[i])
          })["catch"](function () {});
        } catch (e) { /* never into the page */ }
      }
    };
    var report = function (type, message, stack) {
      try {
        var id = type + "|" + message + "|" + String(stack || "").split("\n").slice(0, 3).join("|");
        if (seen[id] || sentInPage >= maxInPage) { return; }
        seen[id] = true; sentInPage++;
        queue.push({
          type: String(type || "Error").slice(0, 256), message: String(message || "").slice(0, 8192),
          stack: String(stack || "").slice(0, 65536), url: String(location.href).slice(0, 2048),
          userAgent: String(navigator.userAgent).slice(0, 1024), release: release || undefined
        });
        if (!timer) { timer = setTimeout(send, 1000); }
      } catch (e) { /* never into the page */ }
    };
    window.addEventListener("error", function (ev) {
      var err = ev && ev.error;
      report(err && err.name || "Error", err && err.message || (ev && ev.message) || "", err && err.stack || "");
    });
    window.addEventListener("unhandledrejection", function (ev) {
      var r = ev && ev.reason;
      if (r instanceof Error) { report(r.name || "Error", r.message, r.stack); }
      else { report("UnhandledRejection", typeof r === "string" ? r : JSON.stringify(r), ""); }
    });
    window.addEventListener("pagehide", function () { if (queue.length) { send(); } });
  } catch (e) { /* never into the page */ }
})();
"""
        |> fun text -> text.Replace("__KEY_HEADER__", Report.KeyHeader)

    /// `GET` (and `HEAD`) `{prefix}/client.js`.
    let clientScript: HttpHandler =
        fun _ ctx ->
            task {
                ctx.Response.ContentType <- "text/javascript; charset=utf-8"
                noSniff ctx
                ctx.Response.Headers.CacheControl <- "public, max-age=3600"
                do! ctx.Response.WriteAsync script
                return Some ctx
            }
