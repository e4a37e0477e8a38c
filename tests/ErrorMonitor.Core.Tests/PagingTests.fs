module ErrorMonitor.Core.Tests.PagingTests

open Expecto
open FsCheck
open FsCheck.FSharp
open ErrorMonitor.Core
open ErrorMonitor.Core.Tests.Generators

[<Tests>]
let tests =
    testList
        "paging"
        [
            property "pages agree with List.chunkBySize"
            <| Prop.forAll
                (arb (
                    Gen.zip3
                        (Gen.choose (0, 120) |> Gen.map (fun n -> [ 1..n ]))
                        (Gen.choose (1, 25))
                        (Gen.choose (1, 12))
                ))
                (fun (items, size, number) ->
                    let chunks = List.chunkBySize size items
                    let page = Paging.ofList number size items
                    let expected = if number <= chunks.Length then chunks.[number - 1] else []

                    page.Items = expected
                    && page.HasNewer = (number > 1)
                    && page.HasOlder = (number < chunks.Length))

            test "a page that is not a positive number is page 1" {
                for raw in [ None; Some ""; Some "abc"; Some "0"; Some "-4"; Some "1.5" ] do
                    Expect.equal (Paging.parsePage raw) 1 (sprintf "%A" raw)

                Expect.equal (Paging.parsePage (Some "7")) 7 "seven"
            }

            test "deep pages do not overflow" {
                Expect.equal
                    (Paging.offset System.Int32.MaxValue 1000)
                    (int64 (System.Int32.MaxValue - 1) * 1000L)
                    "64-bit"
            }

            test "the subject follows the seed's three forms" {
                Expect.equal
                    (Notification.subject "Server Error" (Some("GET", "http://h/x")) "System.Exception")
                    "[Server Error] [GET] http://h/x System.Exception"
                    "with prefix"

                Expect.equal
                    (Notification.subject "" (Some("POST", "http://h/x")) "System.Exception")
                    "[POST] http://h/x System.Exception"
                    "without prefix"

                Expect.equal
                    (Notification.subject "Jobs" None "System.Exception")
                    "[Jobs] System.Exception"
                    "no request"
            }

            property "a subject is always one line"
            <| Prop.forAll (arb (Gen.zip plainWord plainWord)) (fun (p, u) ->
                let s = Notification.subject p (Some("GET", u + "\r\n" + u)) "E\nX"
                not (s.Contains "\n" || s.Contains "\r"))
        ]
