module internal ErrorMonitor.Core.Tests.PagingTests

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

            property "walking Older then Newer links with cursors gives the pages of List.chunkBySize"
            <| Prop.forAll (arb (Gen.zip (Gen.choose (0, 90)) (Gen.choose (1, 12)))) (fun (n, size) ->
                // Rows newest first: (last seen, hash), with ties on last seen ordered by hash.
                let rows =
                    [
                        for i in 0 .. n - 1 ->
                            System
                                .DateTimeOffset(2026, 1, 1, 0, 0, 0, System.TimeSpan.Zero)
                                .AddSeconds(float (1000 - i / 3)),
                            Fingerprint.sha256Hex (string i)
                    ]
                    |> List.sortBy (fun (t, h) -> -t.UtcTicks, h)

                let fetch (c: PageCursor) count =
                    let beyond =
                        rows
                        |> List.filter (fun (t: System.DateTimeOffset, h) -> Paging.beyond c t.UtcTicks h)

                    if c.Direction = CursorDirection.Older then
                        List.truncate count beyond
                    else
                        List.skip (max 0 (beyond.Length - count)) beyond

                let chunks = List.chunkBySize size rows
                let first = Paging.ofList 1 size rows

                let forward =
                    List.unfold
                        (fun (p: Page<_>) ->
                            if p.HasOlder then
                                let (t: System.DateTimeOffset), h = List.last p.Items

                                let c =
                                    (Paging.parseCursor CursorDirection.Older (Paging.formatCursor t.UtcTicks h))
                                        .Value

                                let next =
                                    Paging.ofCursor (p.Number + 1) size CursorDirection.Older (fetch c (size + 1))

                                Some(next, next)
                            else
                                None)
                        first

                let pages = first :: forward

                let backward =
                    pages
                    |> List.tail
                    |> List.map (fun p ->
                        let (t: System.DateTimeOffset), h = List.head p.Items

                        let c =
                            (Paging.parseCursor CursorDirection.Newer (Paging.formatCursor t.UtcTicks h)).Value

                        (Paging.ofCursor (p.Number - 1) size CursorDirection.Newer (fetch c (size + 1))).Items)

                (pages |> List.map (fun p -> p.Items)) = (if chunks.IsEmpty then [ [] ] else chunks)
                && backward =
                    (if chunks.IsEmpty then
                         []
                     else
                         List.take (chunks.Length - 1) chunks))

            test "Newer and Older links carry the cursor of the page's edge rows; the link to page 1 needs none" {
                let t = System.DateTimeOffset(2026, 1, 1, 0, 0, 0, System.TimeSpan.Zero)
                let h (i: int) = Fingerprint.sha256Hex (string i)

                let page n =
                    Paging.ofFetched n 2 [ (t.UtcTicks, h 1); (t.UtcTicks, h 2); (t.UtcTicks, h 3) ]

                let view = "&status=resolved&sort=count"
                let newer, older = Paging.links "/dev/error" view id (page 3)

                Expect.equal
                    newer
                    (Some(sprintf "/dev/error/?page=2&before=%s%s" (Paging.formatCursor t.UtcTicks (h 1)) view))
                    "newer"

                Expect.equal
                    older
                    (Some(sprintf "/dev/error/?page=4&after=%s%s" (Paging.formatCursor t.UtcTicks (h 2)) view))
                    "older"

                Expect.equal
                    (fst (Paging.links "/dev/error" view id (page 2)))
                    (Some("/dev/error/?page=1" + view))
                    "page 1"

                Expect.equal (fst (Paging.links "/dev/error" view id (page 1))) None "no newer page"
            }

            test "a cursor that is not one is ignored" {
                for text in
                    [
                        ""
                        "abc"
                        "12.xyz"
                        "x." + Fingerprint.sha256Hex "a"
                        "-5." + Fingerprint.sha256Hex "a"
                        "99999999999999999999." + Fingerprint.sha256Hex "a"
                    ] do
                    Expect.isNone (Paging.parseCursor CursorDirection.Older text) text
            }

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
