/// The Sentry SDKs' endpoints over real HTTP: the Sentry .NET SDK (NuGet `Sentry`) pointed at a real Kestrel app,
/// and the protocol's edges (keys, compression, sizes, envelopes of other items, rate limits).
module internal ErrorMonitor.Web.Tests.SentryTests

open System
open System.IO
open System.IO.Compression
open System.Net
open System.Net.Http
open System.Text
open System.Text.Json
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Http
open Microsoft.Extensions.DependencyInjection
open Expecto
open ErrorMonitor
open ErrorMonitor.Web.Tests.TestApp

/// A key as Sentry makes them (32 hex digits): the browser SDK's DSN parser takes letters, digits and `_` only.
let private key = "0123456789abcdef0123456789abcdef"

/// An app whose Sentry endpoints take `key` (the capture route's ingest key).
let private sentryApp (extra: (string * string) list) =
    start ([ "APP_ERROR_INGEST_KEY", key ] @ extra) (fun s -> s.AddErrorMonitor() |> ignore) (fun app ->
        app.MapErrorMonitor() |> ignore)

/// The DSN of an app: `http://KEY@HOST/dev/error/PROJECT`.
let private dsn (app: RunningApp) (k: string) (project: int) =
    let u = Uri app.BaseUrl
    sprintf "http://%s@%s:%d/dev/error/%d" k u.Host u.Port project

/// The groups the JSON API lists (every status), once `count` of them are there (written in the background).
let private groups (app: RunningApp) (count: int) =
    task {
        let read () =
            task {
                let! body = app.Client.GetStringAsync "/dev/error/api/errors?status=all"
                use doc = JsonDocument.Parse body
                return [ for i in doc.RootElement.GetProperty("items").EnumerateArray() -> i.Clone() ]
            }

        let waited = Diagnostics.Stopwatch.StartNew()
        do! app.Monitor.FlushAsync()
        let! first = read ()
        let mutable found = first

        while found.Length < count && waited.Elapsed < TimeSpan.FromSeconds 30.0 do
            do! app.Monitor.FlushAsync()
            let! again = read ()
            found <- again

        return found
    }

let private detail (app: RunningApp) (hash: string) =
    task {
        let! body = app.Client.GetStringAsync("/dev/error/api/errors/" + hash)
        return JsonDocument.Parse(body).RootElement.Clone()
    }

/// Thrown and caught, so it has a stack trace: an InvalidOperationException around an ArgumentException.
let private nested () : exn =
    try
        try
            raise (ArgumentException "the amount must be positive")
        with inner ->
            raise (InvalidOperationException("charging order 1042 failed", inner))
    with outer ->
        outer

/// Posts raw bytes to a Sentry endpoint of the app with the given headers.
let private send (app: RunningApp) (path: string) (headers: (string * string) list) (body: byte[]) =
    task {
        use req = new HttpRequestMessage(HttpMethod.Post, path)
        req.Content <- new ByteArrayContent(body)

        for k, v in headers do
            if k = "Content-Encoding" then
                req.Content.Headers.ContentEncoding.Add v
            elif k = "Content-Type" then
                req.Content.Headers.ContentType <- Headers.MediaTypeHeaderValue.Parse v
            else
                req.Headers.TryAddWithoutValidation(k, v) |> ignore

        use! resp = app.Client.SendAsync req
        let! text = resp.Content.ReadAsStringAsync()
        return resp.StatusCode, text, resp.Headers
    }

let private auth (k: string) =
    "X-Sentry-Auth", sprintf "Sentry sentry_version=7, sentry_client=test-harness/1.0, sentry_key=%s" k

let private gzip (bytes: byte[]) =
    use ms = new MemoryStream()

    (use z = new GZipStream(ms, CompressionLevel.Optimal, true)
     z.Write(bytes, 0, bytes.Length))

    ms.ToArray()

let private envelopeOf (event: string) =
    Encoding.UTF8.GetBytes(
        sprintf
            "{\"event_id\":\"0123456789abcdef0123456789abcdef\"}\n{\"type\":\"event\",\"length\":%d}\n%s\n"
            (Encoding.UTF8.GetByteCount event)
            event
    )

[<Tests>]
let tests =
    testSequenced
    <| testList
        "sentry"
        [
            testTask'
                "the Sentry .NET SDK reports a nested exception and a message with scope user, tags, release and environment; secrets on the scope masked"
            <| fun () ->
                task {
                    use! app = sentryApp []

                    do!
                        task {
                            use _sdk =
                                Sentry.SentrySdk.Init(fun o ->
                                    o.Dsn <- dsn app key 1
                                    o.Release <- "checkout@3.1.4"
                                    o.Environment <- "staging"
                                    o.AutoSessionTracking <- false
                                    o.SendDefaultPii <- true
                                    o.IsGlobalModeEnabled <- true)

                            Sentry.SentrySdk.ConfigureScope(fun scope ->
                                scope.User <- Sentry.SentryUser(Username = "ada", Email = "ada@example.com")
                                scope.SetTag("region", "eu-west")
                                scope.SetExtra("password", "hunter2-correct-horse")
                                scope.SetExtra("cart", 3))

                            Sentry.SentrySdk.CaptureException(nested ()) |> ignore
                            Sentry.SentrySdk.CaptureMessage("cache miss for key 7731") |> ignore
                            let! flushed = Sentry.SentrySdk.FlushAsync(TimeSpan.FromSeconds 10.0)
                            ()
                        }

                    let! all = groups app 2

                    let byName (name: string) =
                        all |> List.tryFind (fun g -> g.GetProperty("exceptionName").GetString() = name)

                    let failure =
                        Expect.wantSome
                            (byName "System.InvalidOperationException")
                            (sprintf "the exception's group: %A" all)

                    let message = Expect.wantSome (byName "Message") "the message's group"
                    Expect.equal (failure.GetProperty("message").GetString()) "charging order 1042 failed" "its message"
                    Expect.equal (failure.GetProperty("lastRelease").GetString()) "checkout@3.1.4" "the SDK's release"
                    Expect.equal (failure.GetProperty("environment").GetString()) "staging" "the SDK's environment"
                    Expect.equal (failure.GetProperty("users").GetInt64()) 1L "the scope's user counted"
                    Expect.equal (message.GetProperty("message").GetString()) "cache miss for key 7731" "the message"

                    let! d = detail app (failure.GetProperty("hash").GetString())
                    let traceback = d.GetProperty("traceback").GetString()
                    Expect.stringContains traceback "System.ArgumentException" "the inner exception"
                    Expect.stringContains traceback "the amount must be positive" "its message"
                    Expect.stringContains traceback "nested" "the frames of the test's own code"
                    let data = d.GetProperty("requestData")
                    let context = data.GetProperty("context")
                    Expect.equal (context.GetProperty("tags").GetProperty("region").GetString()) "eu-west" "tags kept"
                    let extra = context.GetProperty("extra")

                    Expect.equal
                        (extra.GetProperty("password").GetString())
                        "**************"
                        "a secret on the scope masked"

                    Expect.equal (extra.GetProperty("cart").GetDouble()) 3.0 "other extras kept"
                    let sentry = context.GetProperty("sentry")
                    Expect.equal (sentry.GetProperty("project").GetString()) "1" "the project id kept"
                    Expect.equal (failure.GetProperty("project").GetString()) "1" "the group's project"

                    for query, expected in [ "&project=1", 2; "&project=2", 0 ] do
                        let! body = app.Client.GetStringAsync("/dev/error/api/errors?status=all" + query)
                        use doc = JsonDocument.Parse body

                        Expect.equal
                            (doc.RootElement.GetProperty("items").GetArrayLength())
                            expected
                            ("filtered" + query)

                    Expect.stringContains (sentry.GetProperty("sdk").GetString()) "sentry.dotnet" "the SDK's name kept"

                    // The same exception again: the same group.
                    do!
                        task {
                            use _sdk =
                                Sentry.SentrySdk.Init(fun o ->
                                    o.Dsn <- dsn app key 1
                                    o.AutoSessionTracking <- false)

                            Sentry.SentrySdk.CaptureException(nested ()) |> ignore
                            let! _ = Sentry.SentrySdk.FlushAsync(TimeSpan.FromSeconds 10.0)
                            ()
                        }

                    do! app.Monitor.FlushAsync()
                    let! again = detail app (failure.GetProperty("hash").GetString())
                    Expect.equal (again.GetProperty("count").GetInt64()) 2L "grouped with the first"
                    let db = Text.Encoding.Latin1.GetString(File.ReadAllBytes app.DbPath)
                    Expect.isFalse (db.Contains "hunter2-correct-horse") "the secret is not in the database"
                }

            testTask'
                "the endpoints answer 401 without a key, 403 for a wrong one, 413 past the limit after decompression, 400 for a broken envelope, 200 for sessions and client reports"
            <| fun () ->
                task {
                    use! app =
                        sentryApp
                            [
                                "APP_ERROR_INGEST_MAX_BYTES", "65536"
                                "APP_ERROR_INGEST_CORS_ORIGINS", "https://shop.example.com"
                            ]

                    let event =
                        """{"event_id":"aa","exception":{"values":[{"type":"ValueError","value":"bad"}]}}"""

                    let path = "/dev/error/api/1/envelope/"
                    let! none, _, _ = send app path [] (envelopeOf event)
                    Expect.equal none HttpStatusCode.Unauthorized "no key"
                    let! wrong, _, _ = send app path [ auth "not-the-key" ] (envelopeOf event)
                    Expect.equal wrong HttpStatusCode.Forbidden "a wrong key"

                    let! inQuery, body, _ =
                        send app (path + "?sentry_key=" + key + "&sentry_version=7") [] (envelopeOf event)

                    Expect.equal inQuery HttpStatusCode.OK "the key in the query (the browser SDK's way)"
                    Expect.stringContains body "\"id\":\"aa\"" "answers the event id"

                    // 10 MB of zeros gzip to about 10 KB: the limit applies to what they decompress to.
                    let bomb = gzip (Array.zeroCreate<byte>(10 * 1024 * 1024))
                    Expect.isLessThan bomb.Length 65536 "the compressed body is small"
                    let! big, _, _ = send app path [ auth key; "Content-Encoding", "gzip" ] bomb
                    Expect.equal big HttpStatusCode.RequestEntityTooLarge "stopped at the limit"

                    let! broken, problem, _ =
                        send app path [ auth key ] (Encoding.UTF8.GetBytes "not an envelope\n{}")

                    Expect.equal broken HttpStatusCode.BadRequest "a broken envelope"
                    Expect.stringContains problem "envelope" "says why"

                    let sessions =
                        Encoding.UTF8.GetBytes(
                            "{}\n{\"type\":\"session\"}\n{\"sid\":\"x\",\"status\":\"ok\"}\n{\"type\":\"client_report\"}\n{\"discarded_events\":[]}\n"
                        )

                    let! ok, _, _ = send app path [ auth key ] sessions
                    Expect.equal ok HttpStatusCode.OK "sessions and client reports accepted"

                    let! store, _, _ =
                        send
                            app
                            "/dev/error/api/1/store/"
                            [ auth key; "Content-Encoding", "gzip" ]
                            (gzip (Encoding.UTF8.GetBytes event))

                    Expect.equal store HttpStatusCode.OK "the store endpoint takes one gzipped event"
                    use preflight = new HttpRequestMessage(HttpMethod.Options, path)
                    preflight.Headers.Add("Origin", "https://shop.example.com")
                    preflight.Headers.Add("Access-Control-Request-Method", "POST")
                    use! pre = app.Client.SendAsync preflight
                    Expect.equal pre.StatusCode HttpStatusCode.NoContent "a preflight of a configured origin"

                    Expect.equal
                        (String.Join(",", pre.Headers.GetValues "Access-Control-Allow-Origin"))
                        "https://shop.example.com"
                        "allowed"

                    let! project, _, _ =
                        send app "/dev/error/api/abc/envelope/" [ auth key ] (envelopeOf event)

                    Expect.equal project HttpStatusCode.BadRequest "a project id that is not a number"
                    let! all = groups app 1
                    Expect.equal all.Length 1 "both events in one group"
                    Expect.equal (all.Head.GetProperty("count").GetInt64()) 2L "counted twice"
                }

            testTask'
                "past the key's rate: 429 with Retry-After and X-Sentry-Rate-Limits for errors; sessions still accepted"
            <| fun () ->
                task {
                    use! app = sentryApp [ "APP_ERROR_INGEST_RATE", "2" ]
                    let path = "/dev/error/api/5/envelope/"
                    let event = """{"message":"rate test"}"""

                    for _ in 1..2 do
                        let! ok, _, _ = send app path [ auth key ] (envelopeOf event)
                        Expect.equal ok HttpStatusCode.OK "within the rate"

                    let! refused, _, headers = send app path [ auth key ] (envelopeOf event)
                    Expect.equal refused HttpStatusCode.TooManyRequests "past the rate"
                    Expect.isTrue (headers.Contains "Retry-After") "Retry-After"
                    let limits = String.Join(",", headers.GetValues "X-Sentry-Rate-Limits")
                    Expect.stringContains limits ":error:key" "errors only, for this key"

                    let! session, _, _ =
                        send app path [ auth key ] (Encoding.UTF8.GetBytes "{}\n{\"type\":\"session\"}\n{}\n")

                    Expect.equal session HttpStatusCode.OK "sessions are never refused"
                }

            testTask'
                "the Sentry Python SDK (Debian's python3-sentry-sdk) reports a chained exception (a local password not stored) and a message, with user, tags, release and environment"
            <| fun () ->
                task {
                    use! app = sentryApp []

                    // The same script records the Python envelope the load benchmark replays.
                    let script =
                        Path.Combine(__SOURCE_DIRECTORY__, "..", "..", "benchmarks", "sentry", "checkout.py")
                        |> Path.GetFullPath

                    let psi = Diagnostics.ProcessStartInfo("/usr/bin/python3")
                    psi.ArgumentList.Add script
                    psi.ArgumentList.Add(dsn app key 3)
                    psi.RedirectStandardError <- true
                    psi.RedirectStandardOutput <- true
                    use p = Diagnostics.Process.Start psi
                    let! err = p.StandardError.ReadToEndAsync()
                    do! p.WaitForExitAsync()
                    Expect.equal p.ExitCode 0 (sprintf "the script ran (is python3-sentry-sdk installed?): %s" err)

                    let! all = groups app 2

                    let byName (name: string) =
                        all |> List.tryFind (fun g -> g.GetProperty("exceptionName").GetString() = name)

                    let failure =
                        Expect.wantSome (byName "ValueError") (sprintf "the exception's group: %A" all)

                    let message = Expect.wantSome (byName "Message") "the message's group"
                    Expect.equal (failure.GetProperty("message").GetString()) "cart 1042 broken" "its message"
                    Expect.equal (failure.GetProperty("lastRelease").GetString()) "api@2.0.0" "the release"
                    Expect.equal (failure.GetProperty("environment").GetString()) "production" "the environment"
                    Expect.equal (failure.GetProperty("users").GetInt64()) 1L "the user counted"
                    Expect.equal (message.GetProperty("message").GetString()) "queue depth 17 over limit" "the message"
                    let! d = detail app (failure.GetProperty("hash").GetString())
                    let traceback = d.GetProperty("traceback").GetString()
                    Expect.stringContains traceback "KeyError" "the chained exception"
                    Expect.stringContains traceback "checkout" "the script's frames"
                    let context = d.GetProperty("requestData").GetProperty("context")
                    Expect.equal (context.GetProperty("tags").GetProperty("region").GetString()) "us" "tags"

                    Expect.equal
                        (context.GetProperty("extra").GetProperty("db_password").GetString())
                        "**************"
                        "a secret masked"

                    Expect.stringContains
                        (context.GetProperty("sentry").GetProperty("sdk").GetString())
                        "python"
                        "the SDK"

                    let db = Text.Encoding.Latin1.GetString(File.ReadAllBytes app.DbPath)

                    for secret in [ "py-local-secret-5"; "py-secret-9" ] do
                        Expect.isFalse
                            (db.Contains secret)
                            (secret + " is not in the database (frame variables are not kept)")
                }

            testTask'
                "the Sentry browser SDK (npm @sentry/browser, bundled with esbuild) in Chromium reports an uncaught error, an unhandled rejection and a message, each its own group with its frames; the key in the query"
            <| fun () ->
                task {
                    let bundle =
                        Path.Combine(__SOURCE_DIRECTORY__, "..", "sentry-browser", "dist", "sentry.js")
                        |> Path.GetFullPath

                    Expect.isTrue
                        (File.Exists bundle)
                        (sprintf "%s is missing: ./test.sh bundles it (npm install in tests/sentry-browser)" bundle)

                    let page (dsn: string) =
                        sprintf
                            """<!doctype html><html><head><title>shop</title><script src="/sentry.js"></script></head><body><script>
Sentry.init({ dsn: "%s", release: "web@5.1.0", environment: "browser-test", sendClientReports: false });
Sentry.setUser({ username: "linus" });
Sentry.setTag("page", "cart");
Sentry.setExtra("api_token", "tok-secret-7");
function handleClick() { throw new TypeError("cart.items is undefined"); }
async function pay() { throw new RangeError("quantity out of range"); }
setTimeout(handleClick, 0);
setTimeout(function () { pay(); }, 50);
Sentry.captureMessage("checkout clicked");
document.title = "sent";
</script></body></html>"""
                            dsn

                    use! app =
                        start [ "APP_ERROR_INGEST_KEY", key ] (fun s -> s.AddErrorMonitor() |> ignore) (fun app ->
                            app.MapErrorMonitor() |> ignore

                            app.MapGet("/sentry.js", Func<IResult>(fun () -> Results.File(bundle, "text/javascript")))
                            |> ignore

                            app.MapGet(
                                "/shop",
                                Func<HttpContext, IResult>(fun ctx ->
                                    let u = Uri(sprintf "http://%s" ctx.Request.Host.Value)

                                    Results.Content(
                                        page (sprintf "http://%s@%s:%d/dev/error/2" key u.Host u.Port),
                                        "text/html"
                                    ))
                            )
                            |> ignore)

                    use! browser = BrowserTests.Browser.LaunchAsync()
                    let! tab = browser.NewPageAsync()
                    let! _ = tab.GotoAsync(app.BaseUrl + "/shop")
                    let! all = groups app 3

                    let byName (name: string) =
                        all |> List.tryFind (fun g -> g.GetProperty("exceptionName").GetString() = name)

                    let failure =
                        Expect.wantSome (byName "TypeError") (sprintf "the uncaught error's group: %A" all)

                    let rejection =
                        Expect.wantSome (byName "RangeError") (sprintf "the unhandled rejection's group: %A" all)

                    Expect.equal all.Length 3 "three groups: the error, the rejection, the message"

                    let message =
                        Expect.wantSome (byName "Message") (sprintf "a message, not a blank type: %A" all)

                    Expect.equal (failure.GetProperty("message").GetString()) "cart.items is undefined" "its message"
                    Expect.equal (failure.GetProperty("lastRelease").GetString()) "web@5.1.0" "the release"
                    Expect.equal (failure.GetProperty("environment").GetString()) "browser-test" "the environment"
                    Expect.equal (message.GetProperty("message").GetString()) "checkout clicked" "the message"
                    let! d = detail app (failure.GetProperty("hash").GetString())
                    Expect.stringContains (d.GetProperty("traceback").GetString()) "handleClick" "the page's frames"
                    let! r = detail app (rejection.GetProperty("hash").GetString())
                    Expect.stringContains (r.GetProperty("traceback").GetString()) "pay" "the rejection's frames"
                    let context = d.GetProperty("requestData").GetProperty("context")

                    Expect.equal
                        (context.GetProperty("extra").GetProperty("api_token").GetString())
                        "**************"
                        "a token masked"

                    Expect.stringContains
                        (context.GetProperty("sentry").GetProperty("sdk").GetString())
                        "javascript"
                        "the SDK"
                }

            testTask'
                "malformed envelopes and events are refused with 400, unknown items accepted; nothing is stored, the app answers on"
            <| fun () ->
                task {
                    use! app = sentryApp []
                    let path = "/dev/error/api/9/envelope/"

                    let refused =
                        [
                            "an empty body", ""
                            "a header that is not JSON", "{oops\n"
                            "a header that is an array", "[1]\n{\"type\":\"event\"}\n{}\n"
                            "an item header that is not an object", "{}\n\"event\"\n{}\n"
                            "a length past the end", "{}\n{\"type\":\"event\",\"length\":4096}\n{}\n"
                            "an event that is not JSON", "{}\n{\"type\":\"event\"}\n{not json\n"
                            "an event that is an array", "{}\n{\"type\":\"event\"}\n[1,2]\n"
                        ]

                    for name, body in refused do
                        let! status, problem, _ = send app path [ auth key ] (Encoding.UTF8.GetBytes body)
                        Expect.equal status HttpStatusCode.BadRequest name
                        Expect.stringContains problem "\"status\":400" (name + ": a problem body")

                    let! unknown, _, _ =
                        send
                            app
                            path
                            [ auth key ]
                            (Encoding.UTF8.GetBytes "{}\n{\"type\":\"profile_chunk\",\"length\":2}\n{}\n")

                    Expect.equal unknown HttpStatusCode.OK "an unknown item type is accepted and ignored"

                    let! encoding, _, _ =
                        send app path [ auth key; "Content-Encoding", "zstd" ] [| 1uy; 2uy |]

                    Expect.equal encoding HttpStatusCode.BadRequest "an encoding it cannot read"

                    let! broken, _, _ =
                        send app path [ auth key; "Content-Encoding", "gzip" ] [| 31uy; 139uy; 8uy; 0uy; 1uy |]

                    Expect.equal broken HttpStatusCode.BadRequest "a broken gzip stream"
                    let! all = groups app 0
                    Expect.isEmpty all "nothing stored"
                    let! home = app.Client.GetAsync "/dev/error/api/errors"
                    Expect.equal home.StatusCode HttpStatusCode.OK "the app answers on"
                }
        ]
