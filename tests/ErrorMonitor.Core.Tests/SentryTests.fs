module internal ErrorMonitor.Core.Tests.SentryTests

open System
open System.Text
open Expecto
open ErrorMonitor.Core

let private at = DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero)

let private bytes (text: string) =
    ArraySegment<byte>(Encoding.UTF8.GetBytes text)

let private parse (json: string) =
    match Json.parse Limits.reports json with
    | Ok d -> d
    | Error e -> failwith e

let private eventOf (json: string) =
    match Sentry.event 30 "7" "sentry.test/1" (parse json) at with
    | Ok e -> e
    | Error e -> failwith e

let private python =
    """{"event_id":"e1","platform":"python","release":"api@2.0.0","environment":"production",
"exception":{"values":[
 {"type":"KeyError","value":"'sku'","module":"builtins","stacktrace":{"frames":[
   {"module":"shop.cart","function":"load","filename":"shop/cart.py","lineno":10,"in_app":true}]}},
 {"type":"ValueError","value":"cart 1042 broken","module":"builtins","stacktrace":{"frames":[
   {"module":"django.core.handlers","function":"inner","filename":"django/core/handlers/exception.py","lineno":55,"in_app":false},
   {"module":"shop.views","function":"checkout","filename":"shop/views.py","lineno":88,"in_app":true}]}}]},
"request":{"url":"https://shop.example.com/checkout?token=abc&page=2","method":"POST","headers":{"Authorization":"Bearer xyz","X-Trace":"t"},
 "data":{"card":"4111 1111 1111 1111","password":"pw-1","qty":2},"cookies":"sessionid=s1; theme=dark"},
"user":{"id":"42","username":"ada"},"tags":[["region","eu"]],"extra":{"api_secret":"sec-2"},
"breadcrumbs":{"values":[{"timestamp":1764590400.5,"category":"query","message":"SELECT 1","level":"info"}]}}"""

[<Tests>]
let tests =
    testList
        "sentry protocol"
        [
            test "an envelope's items, with and without a length (the payload then ends at the newline)" {
                let text =
                    "{\"event_id\":\"x\"}\n{\"type\":\"event\",\"length\":7}\n{\"a\":1}\n{\"type\":\"session\"}\n{\"s\":2}\n{\"type\":\"attachment\",\"length\":3}\nA\nB"

                match Sentry.envelope Limits.reports (bytes text) with
                | Ok(_, items) ->
                    Expect.equal [ for i in items -> i.Type ] [ "event"; "session"; "attachment" ] "three items"

                    let payload (i: SentryItem) =
                        Encoding.UTF8.GetString(i.Payload.Array, i.Payload.Offset, i.Payload.Count)

                    Expect.equal
                        [ for i in items -> payload i ]
                        [ "{\"a\":1}"; "{\"s\":2}"; "A\nB" ]
                        "payloads by length or line"
                | Error e -> failtest e

                for bad in [ "not json\n"; "{}\n[1]\n{}"; "{}\n{\"type\":\"event\",\"length\":99}\n{}" ] do
                    Expect.isError (Sentry.envelope Limits.reports (bytes bad)) bad
            }

            test "an event's exception chain, frames, request, user, release, environment, tags, extra and breadcrumbs" {
                let e = eventOf python
                Expect.equal e.EventId "e1" "the event id"
                Expect.equal e.Capture.Release "api@2.0.0" "release"
                Expect.equal e.Capture.Environment "production" "environment"

                match e.Capture.Subject with
                | Subject.Exception x ->
                    Expect.equal x.TypeName "ValueError" "the last value is the outermost"
                    Expect.equal x.Message "cart 1042 broken" "its message"
                    Expect.equal [ for f in x.Frames -> f.Method ] [ "checkout"; "inner" ] "innermost call first"
                    Expect.equal (x.Frames.Head.Line) (Some 88) "line"

                    Expect.equal
                        [ for i in x.Inner -> i.TypeName ]
                        [ "KeyError" ]
                        "the earlier value is its inner exception"
                | other -> failtestf "%A" other

                let r = Expect.wantSome e.Capture.Request "a request"
                Expect.equal (r.Method, r.Host, r.Path) ("POST", "shop.example.com", "/checkout") "from the url"
                Expect.contains r.Query ("token", "abc") "query from the url"
                Expect.contains r.Cookies ("theme", "dark") "cookies from the header text"
                Expect.equal r.UserName (Some "ada") "the user"

                let built =
                    Events.build Config.defaults (Config.maskingRule Config.defaults) Limits.reports None e.Capture

                for secret in [ "xyz"; "4111 1111 1111 1111"; "pw-1"; "sec-2"; "abc"; "s1" ] do
                    Expect.isFalse (built.RequestData.Contains secret) (secret + " masked")

                Expect.stringContains built.RequestData "\"region\":\"eu\"" "tags kept"
                Expect.stringContains built.RequestData "SELECT 1" "breadcrumbs kept"
                Expect.stringContains built.RequestData "\"project\":\"7\"" "the project"
            }

            test
                "grouping: in-app frames by module and function, not lines or messages; the SDK's fingerprint overrides" {
                let key (json: string) = (eventOf json).GroupKey
                let a = key python
                Expect.equal (key (python.Replace("\"lineno\":88", "\"lineno\":91"))) a "a moved line"
                Expect.equal (key (python.Replace("cart 1042 broken", "cart 7 broken"))) a "another message"

                Expect.notEqual
                    (key (python.Replace("\"function\":\"checkout\"", "\"function\":\"pay\"")))
                    a
                    "another function"
                // Not in-app: a framework frame does not group.
                Expect.equal
                    (key (python.Replace("\"function\":\"inner\"", "\"function\":\"outer\"")))
                    a
                    "framework frames"

                let custom =
                    key (
                        python.Replace(
                            "\"event_id\":\"e1\"",
                            "\"event_id\":\"e1\",\"fingerprint\":[\"{{ default }}\",\"eu\"]"
                        )
                    )

                Expect.notEqual custom a "a fingerprint makes its own group"
                Expect.stringContains custom a "{{ default }} is the default key"
            }

            test "a message groups by its template; the browser SDK's typeless exception value by its message" {
                let m (json: string) = eventOf json

                let one =
                    m """{"logentry":{"message":"order %s failed","params":["1"],"formatted":"order 1 failed"}}"""

                let two =
                    m """{"logentry":{"message":"order %s failed","params":["2"],"formatted":"order 2 failed"}}"""

                Expect.equal one.GroupKey two.GroupKey "one template, one group"

                match one.Capture.Subject with
                | Subject.Message text -> Expect.equal text "order 1 failed" "shown formatted"
                | other -> failtestf "%A" other

                let browser =
                    m
                        """{"message":"checkout clicked","exception":{"values":[{"value":"checkout clicked","stacktrace":{"frames":[{"function":"f"}]}}]}}"""

                match browser.Capture.Subject with
                | Subject.Message text -> Expect.equal text "checkout clicked" "a message, not a blank type"
                | other -> failtestf "%A" other

                Expect.isError (Sentry.event 30 "1" "x" (Data.Array []) at) "an event must be an object"
            }

            test "the auth header's key, and the rate-limit header" {
                Expect.equal
                    (Sentry.authKey "Sentry sentry_version=7, sentry_client=x/1, sentry_key=abc")
                    (Some "abc")
                    "header"

                Expect.equal (Sentry.authKey "sentry_key=abc,sentry_version=7") (Some "abc") "without the prefix"
                Expect.isNone (Sentry.authKey "Bearer abc") "another scheme"
                Expect.equal (Sentry.rateLimits 60) "60:error:key" "errors only"
            }
        ]
