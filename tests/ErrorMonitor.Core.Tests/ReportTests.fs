module internal ErrorMonitor.Core.Tests.ReportTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open ErrorMonitor.Core
open ErrorMonitor.Core.Tests.Generators

let private limits = Limits.defaults

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
                    | Ok r ->
                        Events.build
                            Config.defaults
                            (Config.maskingRule Config.defaults)
                            limits
                            None
                            (Report.toCapture r DateTimeOffset.UnixEpoch)
                        |> fun e -> e.Hash
                    | Error e -> failwithf "%A" e

                hash a = hash b)

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
