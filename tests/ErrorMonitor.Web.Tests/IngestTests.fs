/// The capture route over real HTTP: reports from other services and browsers.
module internal ErrorMonitor.Web.Tests.IngestTests

open System
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

let key = "ingest-key-0123456789abcdef"

/// An app whose capture route takes `key`.
let ingestApp (extra: (string * string) list) =
    start ([ "APP_ERROR_INGEST_KEY", key ] @ extra) (fun s -> s.AddErrorMonitor() |> ignore) (fun app ->
        app.MapErrorMonitor() |> ignore)

let private chromiumStack =
    "TypeError: Cannot read properties of undefined (reading 'id')\n    at handleClick (https://shop.example.com/static/app.js?v=3:10:15)\n    at HTMLButtonElement.<anonymous> (https://shop.example.com/static/app.js?v=3:42:7)\n    at dispatch (https://shop.example.com/static/vendor.js:1:2345)"

let private firefoxStack =
    "handleClick@https://cdn.example.net/static/app.js:10:15\nHTMLButtonElement.<anonymous>@https://cdn.example.net/static/app.js:42:7\ndispatch@https://cdn.example.net/static/vendor.js:1:2345\n"

/// Posts a report; returns the status and the body.
let post (app: RunningApp) (withKey: string option) (body: string) =
    task {
        use req = new HttpRequestMessage(HttpMethod.Post, "/dev/error/api/errors")
        req.Content <- new StringContent(body, Encoding.UTF8, "application/json")
        withKey |> Option.iter (fun k -> req.Headers.Add("X-ErrorMonitor-Key", k))
        use! resp = app.Client.SendAsync req
        let! text = resp.Content.ReadAsStringAsync()
        return resp.StatusCode, text, resp.Headers
    }

let private report (fields: (string * obj) list) = JsonSerializer.Serialize(dict fields)

[<Tests>]
let tests =
    testSequenced
    <| testList
        "capture route"
        [
            testTask' "the same JavaScript error from two pages and two browsers is one group, with parsed frames"
            <| fun () ->
                task {
                    use! app = ingestApp []

                    let send (stack: string) (url: string) =
                        task {
                            let! status, body, _ =
                                post
                                    app
                                    (Some key)
                                    (report
                                        [
                                            "type", box "TypeError"
                                            "message",
                                            box (sprintf "Cannot read properties of undefined (reading 'id') at %s" url)
                                            "stack", box stack
                                            "url", box url
                                            "userAgent", box "Mozilla/5.0"
                                            "release", box "1.4.2"
                                            "context", box (dict [ "cartId", box 7; "password", box "CTX-PW" ])
                                        ])

                            Expect.equal status HttpStatusCode.Accepted "202"
                            use doc = JsonDocument.Parse body
                            return doc.RootElement.GetProperty("hash").GetString()
                        }

                    let! a = send chromiumStack "https://shop.example.com/cart?id=1"
                    let! b = send chromiumStack "https://shop.example.com/checkout"
                    let! c = send firefoxStack "https://shop.example.com/cart"
                    Expect.equal b a "two pages, one group"
                    Expect.equal c a "Chromium and Firefox stacks of the same functions, one group"
                    do! app.Monitor.FlushAsync()
                    let! r = app.Store.GetAsync(a, Threading.CancellationToken.None)
                    Expect.equal r.Count 3L "three occurrences"
                    Expect.equal r.ExceptionName "TypeError" "type"

                    Expect.stringContains
                        r.Traceback
                        "at /static/app.js.handleClick()"
                        "frames parsed, by function and file"

                    Expect.stringContains r.RequestData "\"release\":\"1.4.2\"" "release kept"
                    Expect.isFalse (r.RequestData.Contains "CTX-PW") "context masked"

                    let! status, other, _ =
                        post
                            app
                            (Some key)
                            (report
                                [
                                    "type", box "Error"
                                    "message", box "worker failed"
                                    "frames",
                                    box [| dict [ "function", box "Jobs.Run"; "file", box "jobs.py"; "line", box 12 ] |]
                                ])

                    Expect.equal status HttpStatusCode.Accepted "frames given as objects"
                    Expect.isFalse (other.Contains a) "a different group"
                }

            testTask' "every bad input gets its status and a clear problem body, and stores nothing"
            <| fun () ->
                task {
                    use! app =
                        ingestApp [ "APP_ERROR_INGEST_RATE", "8"; "APP_ERROR_INGEST_MAX_BYTES", "2048" ]

                    let valid = report [ "type", box "Error"; "message", box "m" ]

                    let cases =
                        [
                            "no key", None, valid, HttpStatusCode.Unauthorized, None
                            "a wrong key", Some "not-the-key-0123456789", valid, HttpStatusCode.Unauthorized, None
                            "invalid JSON", Some key, "{\"type\": ", HttpStatusCode.BadRequest, Some ""
                            "not an object", Some key, "[1,2]", HttpStatusCode.BadRequest, Some ""
                            "a type of the wrong type",
                            Some key,
                            report [ "type", box 5; "message", box "m" ],
                            HttpStatusCode.BadRequest,
                            Some "type"
                            "no message",
                            Some key,
                            report [ "type", box "Error" ],
                            HttpStatusCode.BadRequest,
                            Some "message"
                            "an empty type",
                            Some key,
                            report [ "type", box " "; "message", box "m" ],
                            HttpStatusCode.BadRequest,
                            Some "type"
                            "a frame line that is text",
                            Some key,
                            report
                                [ "type", box "E"; "message", box "m"; "frames", box [| dict [ "line", box "ten" ] |] ],
                            HttpStatusCode.BadRequest,
                            Some "frames[0].line"
                            "context not an object",
                            Some key,
                            report [ "type", box "E"; "message", box "m"; "context", box "x" ],
                            HttpStatusCode.BadRequest,
                            Some "context"
                            "an oversize body",
                            Some key,
                            report [ "type", box "E"; "message", box (String('x', 5000)) ],
                            HttpStatusCode.RequestEntityTooLarge,
                            None
                        ]

                    for name, k, body, expected, field in cases do
                        let! status, text, _ = post app k body
                        Expect.equal status expected name
                        use doc = JsonDocument.Parse text

                        Expect.equal
                            (doc.RootElement.GetProperty("status").GetInt32())
                            (int expected)
                            (name + ": problem details")

                        match field with
                        | Some f ->
                            Expect.equal
                                (doc.RootElement.GetProperty("field").GetString())
                                f
                                (name + ": names the field")
                        | None -> ()

                    do! app.Monitor.FlushAsync()
                    let! none = records app.Store
                    Expect.isEmpty none "nothing stored"

                    // 8 reports a minute: the keyed requests above used 8 already (401s are not counted).
                    let! status, _, headers = post app (Some key) valid
                    Expect.equal status HttpStatusCode.TooManyRequests "past the rate"
                    Expect.isTrue (headers.RetryAfter <> null) "with Retry-After"
                    do! app.Monitor.FlushAsync()
                    let! still = records app.Store
                    Expect.isEmpty still "still nothing stored"
                }

            testTask'
                "a report claiming a server exception's type and frames gets a group of its own and changes nothing"
            <| fun () ->
                task {
                    use! app =
                        start [ "APP_ERROR_INGEST_KEY", key ] (fun s -> s.AddErrorMonitor() |> ignore) (fun app ->
                            app.UseErrorMonitor() |> ignore
                            app.MapErrorMonitor() |> ignore

                            app.MapGet(
                                "/checkout",
                                Func<string>(fun () -> raise (InvalidOperationException "the app's own message"))
                            )
                            |> ignore)

                    let! _ = app.Client.GetAsync "/checkout"
                    do! app.Monitor.FlushAsync()
                    let! before = records app.Store
                    let own = List.exactlyOne before

                    // What an attacker reads off the server's group: its type and its frames.
                    let frames =
                        own.Traceback.Split('\n')
                        |> Array.choose (fun l ->
                            let l = l.Trim()

                            if l.StartsWith "at " then
                                let name = l.Substring(3).Split('(').[0].Split(" in ").[0].Trim()
                                Some(dict [ "function", box name ])
                            else
                                None)

                    let! status, body, _ =
                        post
                            app
                            (Some key)
                            (report
                                [
                                    "type", box own.ExceptionName
                                    "message", box "<script>phish()</script> call 555-0100"
                                    "frames", box frames
                                    "url", box "https://evil.example/x"
                                ])

                    Expect.equal status HttpStatusCode.Accepted body
                    do! app.Monitor.FlushAsync()
                    let! after = records app.Store
                    Expect.equal after.Length 2 "two groups: the app's and the report's"
                    let mine = after |> List.find (fun r -> r.Hash = own.Hash)
                    Expect.equal mine.Message own.Message "the app's message is untouched"
                    Expect.equal mine.Traceback own.Traceback "the app's traceback is untouched"
                    Expect.equal mine.RequestData own.RequestData "the app's request data is untouched"
                    Expect.equal mine.Count 1L "the app's count is untouched"
                }

            testTask' "lone surrogates are a 400 naming the field; JSON answers carry nosniff; HEAD client.js answers"
            <| fun () ->
                task {
                    use! app = ingestApp []

                    for field, json in
                        [
                            "type", """{"type":"E\ud800","message":"m"}"""
                            "message", """{"type":"E","message":"\udfff"}"""
                            "frames[0].file",
                            """{"type":"E","message":"m","frames":[{"function":"f","file":"\ud800x"}]}"""
                        ] do
                        let! status, body, headers = post app (Some key) json
                        Expect.equal status HttpStatusCode.BadRequest (field + ": " + body)
                        use doc = JsonDocument.Parse body
                        Expect.equal (doc.RootElement.GetProperty("field").GetString()) field "names the field"

                        Expect.sequenceEqual
                            (headers.GetValues "X-Content-Type-Options")
                            [ "nosniff" ]
                            "problem: nosniff"

                    let! status, body, headers = post app (Some key) """{"type":"E","message":"fine"}"""
                    Expect.equal status HttpStatusCode.Accepted body
                    Expect.sequenceEqual (headers.GetValues "X-Content-Type-Options") [ "nosniff" ] "202: nosniff"
                    use! list = app.Client.GetAsync "/dev/error/api/errors"
                    Expect.sequenceEqual (list.Headers.GetValues "X-Content-Type-Options") [ "nosniff" ] "API: nosniff"
                    use head = new HttpRequestMessage(HttpMethod.Head, "/dev/error/client.js")
                    use! headResp = app.Client.SendAsync head
                    Expect.equal headResp.StatusCode HttpStatusCode.OK "HEAD client.js"
                    do! app.Monitor.FlushAsync()
                    let! stored = records app.Store

                    Expect.equal
                        (stored |> List.map (fun r -> r.Message))
                        [ "fine" ]
                        "only the valid report, no crash recorded"
                }

            testTask'
                "Retry-After is the time left in the key's window; a key's new groups an hour are bounded; a report's stored size too"
            <| fun () ->
                task {
                    let clock = ManualClock(DateTimeOffset(2026, 12, 1, 8, 0, 0, TimeSpan.Zero))

                    use! app =
                        start
                            [
                                "APP_ERROR_INGEST_KEY", key
                                "APP_ERROR_INGEST_RATE", "4"
                                "APP_ERROR_INGEST_GROUPS_PER_HOUR", "3"
                            ]
                            (fun s -> s.AddErrorMonitor(fun o -> o.TimeProvider <- clock) |> ignore)
                            (fun app -> app.MapErrorMonitor() |> ignore)

                    let send (typeName: string) (stack: string) =
                        post app (Some key) (report [ "type", box typeName; "message", box "m"; "stack", box stack ])

                    let retryAfter (headers: Headers.HttpResponseHeaders) =
                        headers.RetryAfter.Delta
                        |> Option.ofNullable
                        |> Option.map (fun d -> int d.TotalSeconds)

                    // Three groups fill the hour's allowance; a fourth is refused until the hour ends.
                    for t in [ "A"; "B"; "C" ] do
                        let! status, body, _ = send t ""
                        Expect.equal status HttpStatusCode.Accepted body

                    clock.Advance(TimeSpan.FromSeconds 20.0)
                    let! status, _, headers = send "D" ""
                    Expect.equal status HttpStatusCode.TooManyRequests "a fourth group in the hour"
                    Expect.equal (retryAfter headers) (Some 3580) "until the hour's end"

                    // The rate: 4 a minute, and the 4th request above was the last one; 45 s into the minute, 15 s are left.
                    clock.Advance(TimeSpan.FromSeconds 25.0)
                    let! status, _, headers = send "A" ""
                    Expect.equal status HttpStatusCode.TooManyRequests "a fifth report in the minute"
                    Expect.equal (retryAfter headers) (Some 15) "the time left in the minute, not 60"

                    // A new minute: a group already seen passes, a new one still waits for the hour.
                    clock.Advance(TimeSpan.FromSeconds 16.0)
                    let! status, body, _ = send "B" ""
                    Expect.equal status HttpStatusCode.Accepted body
                    let! status, _, _ = send "E" ""
                    Expect.equal status HttpStatusCode.TooManyRequests "still three groups this hour"

                    // A new hour: a new group, with a 200 KB stack, is stored bounded.
                    clock.Advance(TimeSpan.FromHours 1.0)

                    let big =
                        String.Join(
                            "\n",
                            [ 1..4000 ]
                            |> List.map (fun i -> sprintf "    at f%d (https://x.example/app.js:%d:1)" i i)
                        )

                    let! status, body, _ = send "F" big
                    Expect.equal status HttpStatusCode.Accepted body
                    do! app.Monitor.FlushAsync()
                    let! stored = records app.Store

                    Expect.equal
                        (stored |> List.map (fun r -> r.ExceptionName) |> List.sort)
                        [ "A"; "B"; "C"; "F" ]
                        "D and E were not stored"

                    let f = stored |> List.find (fun r -> r.ExceptionName = "F")
                    Expect.isLessThanOrEqual f.Traceback.Length (65536 + 64) "a report's traceback is bounded to 64 KB"
                    Expect.isLessThanOrEqual f.RequestData.Length (32768 + 64) "and its request data to 32 KB"
                }

            testTask' "without a key configured the route is off; CORS answers configured origins only"
            <| fun () ->
                task {
                    use! off =
                        start [] (fun s -> s.AddErrorMonitor() |> ignore) (fun app -> app.MapErrorMonitor() |> ignore)

                    let! status, _, _ =
                        post off (Some key) (report [ "type", box "E"; "message", box "m" ])

                    Expect.equal status HttpStatusCode.NotFound "off"

                    use! app = ingestApp [ "APP_ERROR_INGEST_CORS_ORIGINS", "https://shop.example.com" ]

                    let preflight (origin: string) =
                        task {
                            use req = new HttpRequestMessage(HttpMethod.Options, "/dev/error/api/errors")
                            req.Headers.Add("Origin", origin)
                            req.Headers.Add("Access-Control-Request-Method", "POST")
                            use! resp = app.Client.SendAsync req

                            return
                                resp.StatusCode,
                                (match resp.Headers.TryGetValues "Access-Control-Allow-Origin" with
                                 | true, v -> Seq.head v
                                 | _ -> "")
                        }

                    let! okStatus, okOrigin = preflight "https://shop.example.com"
                    Expect.equal okStatus HttpStatusCode.NoContent "preflight answered"
                    Expect.equal okOrigin "https://shop.example.com" "allowed origin"
                    let! _, otherOrigin = preflight "https://evil.example.org"
                    Expect.equal otherOrigin "" "other origins get no CORS header"
                    let! script = app.Client.GetStringAsync "/dev/error/client.js"
                    Expect.stringContains script "unhandledrejection" "the browser script is served"
                }
        ]
