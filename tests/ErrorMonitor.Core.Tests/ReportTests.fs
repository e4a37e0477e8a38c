module internal ErrorMonitor.Core.Tests.ReportTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open ErrorMonitor.Core
open ErrorMonitor.Core.Tests.Generators

let private limits = Limits.defaults

/// A report's occurrence, as the capture route builds it.
let private event (r: ClientReport) =
    Report.event Config.defaults (Config.maskingRule Config.defaults) limits "Production" r DateTimeOffset.UnixEpoch

let private names (frames: Frame list) =
    frames |> List.map (fun f -> f.Type, f.Method)

[<Tests>]
let tests =
    testList
        "error reports"
        [
            test "Chromium and Firefox stacks of the same code give the same frames, whatever the host and query" {
                let chromium =
                    "TypeError: x is undefined\n    at handleClick (https://a.example.com/js/app.js?v=2:10:15)\n    at async load (https://a.example.com/js/app.js:3:1)\n    at https://a.example.com/js/boot.js:1:1"

                let firefox =
                    "handleClick@https://cdn.example.net/js/app.js:10:15\nload@https://cdn.example.net/js/app.js:3:1\n@https://cdn.example.net/js/boot.js:1:1"

                let expected =
                    [ "/js/app.js", "handleClick"; "/js/app.js", "load"; "/js/boot.js", "<anonymous>" ]

                Expect.equal (names (Report.parseStack limits chromium)) expected "Chromium"
                Expect.equal (names (Report.parseStack limits firefox)) expected "Firefox"
                let first = (Report.parseStack limits chromium).Head
                Expect.equal (first.Line, first.Column) (Some 10, Some 15) "line and column kept"
            }

            test "a qualified function name splits into type and method" {
                let f =
                    Report.parseStack limits "    at Shop.Orders.Save (/srv/app/orders.js:4:2)"
                    |> List.exactlyOne

                Expect.equal (f.Type, f.Method) ("Shop.Orders", "Save") "split"
            }

            property "parsing never throws, and problems name their field"
            <| Prop.forAll
                (arb (Gen.oneof [ plainWord; Gen.constant "{\"type\":1}"; Gen.constant "[]"; Gen.constant "{" ]))
                (fun text ->
                    match Report.parse limits text with
                    | Ok _ -> true
                    | Error e -> not (isNull e.Field) && e.Problem <> "")

            property "a report's stack never splits its group by line numbers"
            <| Prop.forAll (arb (Gen.zip (Gen.choose (1, 9000)) (Gen.choose (1, 9000)))) (fun (a, b) ->
                let stack (line: int) =
                    sprintf "Error: boom\n    at run (https://x.example.com/app.js:%d:3)" line

                let hash line =
                    match
                        Report.parse
                            limits
                            (sprintf
                                "{\"type\":\"Error\",\"message\":\"m %d\",\"stack\":%s}"
                                line
                                (Text.Json.JsonSerializer.Serialize(stack line)))
                    with
                    | Ok r -> (event r).Hash
                    | Error e -> failwithf "%A" e

                hash a = hash b)

            test "a lone surrogate in any text field is refused, naming the field" {
                let cases =
                    [
                        "type", """{"type":"E\ud800","message":"m"}"""
                        "message", """{"type":"E","message":"m\udc00"}"""
                        "url", """{"type":"E","message":"m","url":"/a\ud800"}"""
                        "frames[0].function", """{"type":"E","message":"m","frames":[{"function":"f\ud800"}]}"""
                        "stack", """{"type":"E","message":"m","stack":"at f (\udbff)"}"""
                        "context", """{"type":"E","message":"m","context":{"k\ud800":"v"}}"""
                        "context", """{"type":"E","message":"m","context":{"k":["\ud800"]}}"""
                    ]

                for field, json in cases do
                    match Report.parse limits json with
                    | Error e ->
                        Expect.equal e.Field field json
                        Expect.stringContains e.Problem "Unicode" json
                    | Ok _ -> failtestf "accepted %s" json

                match Report.parse limits """{"type":"E","message":"a pair is fine: \ud83d\ude00"}""" with
                | Ok r -> Expect.stringContains r.Message "😀" "a surrogate pair decodes"
                | Error e -> failtestf "%A" e
            }

            test "a relative url's query is read and masked like an absolute one's" {
                let event (url: string) =
                    match Report.parse limits (sprintf """{"type":"E","message":"m","url":"%s"}""" url) with
                    | Ok r -> event r
                    | Error e -> failwithf "%A" e

                let relative = event "/login?user=ann&password=hunter2&next=%2Fhome"
                Expect.isFalse (relative.RequestData.Contains "hunter2") "the password in a relative url is masked"
                Expect.stringContains relative.RequestData "\"user\":\"ann\"" "other arguments kept"
                Expect.equal relative.Path "/login" "its path"
                let absolute = event "https://shop.example/login?password=hunter2"
                Expect.isFalse (absolute.RequestData.Contains "hunter2") "absolute, as before"
            }

            test "fields of the wrong type are named" {
                let field json =
                    match Report.parse limits json with
                    | Error e -> e.Field
                    | Ok _ -> "accepted"

                Expect.equal (field "{\"message\":\"m\"}") "type" "missing type"
                Expect.equal (field "{\"type\":\"E\"}") "message" "missing message"
                Expect.equal (field "{\"type\":\"E\",\"message\":\"m\",\"url\":3}") "url" "url"

                Expect.equal
                    (field "{\"type\":\"E\",\"message\":\"m\",\"frames\":[{\"column\":-1}]}")
                    "frames[0].column"
                    "column"

                Expect.equal (field "{\"type\":\"E\",\"message\":\"m\",\"frames\":{}}") "frames" "frames"
                Expect.equal (field "nope") "" "not JSON"
            }
        ]
