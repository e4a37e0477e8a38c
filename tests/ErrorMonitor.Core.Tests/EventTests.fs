module internal ErrorMonitor.Core.Tests.EventTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open ErrorMonitor.Core
open ErrorMonitor.Core.Tests.Generators

let private at = DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero)
let private settings = Config.defaults
let private rule = Config.maskingRule settings

let private isSensitive (k: string) =
    let l = k.ToLowerInvariant()
    sensitiveWords |> List.exists (fun w -> l.Contains w)

/// Replaces every value under a sensitive key by a recognisable token.
let private tagPairs (ps: (string * string) list) =
    ps
    |> List.mapi (fun i (k, v) -> k, (if isSensitive k then sprintf "S3CR3T-%d" i else v))

let private tagRequest (r: RequestContext) =
    let tagObject fields =
        match tagLeaves isSensitive (Data.Object fields) with
        | Data.Object f -> f
        | _ -> []

    { r with
        Query = tagPairs r.Query
        Headers = tagPairs r.Headers @ [ "Authorization", "Basic S3CR3T-auth" ]
        Form = tagPairs r.Form
        Cookies = tagPairs r.Cookies
        RouteValues = tagPairs r.RouteValues
        Body =
            r.Body
            |> Option.map (function
                | Body.Json d -> Body.Json(tagLeaves isSensitive d)
                | b -> b)
        Custom = tagObject r.Custom
    }

let private exceptionEvent (req: RequestContext option) =
    let e =
        {
            TypeName = "System.Exception"
            Message = "boom"
            Frames = []
            FramesOmitted = 0
            Data = []
            Inner = []
            InnerOmitted = 0
        }

    Events.build
        settings
        rule
        Limits.defaults
        None
        {
            Request = req
            Subject = Subject.Exception e
            Extra = []
            OccurredAt = at
            Release = "1.0.0"
            Environment = "Test"
        }

[<Tests>]
let tests =
    testList
        "occurrences"
        [
            testProperty
                "Instants.later and earlier give what max and min give, ties (one instant at two offsets) included"
            <| fun (ticks: int64) (step: int16) (offsetMinutes: int16) ->
                let t = DateTimeOffset(at.UtcTicks + (ticks &&& 0x3FFFFFFFL), TimeSpan.Zero)
                let u = t.AddTicks(int64 step % 3L)
                // The same instant or a neighbour, written at another offset (whole minutes within ±14 h).
                let u = u.ToOffset(TimeSpan.FromMinutes(float (int offsetMinutes % 840)))

                let same (a: DateTimeOffset) (b: DateTimeOffset) = a.EqualsExact b

                same (Instants.later t u) (max t u)
                && same (Instants.later u t) (max u t)
                && same (Instants.earlier t u) (min t u)
                && same (Instants.earlier u t) (min u t)

            property "no masked value reaches the request data or the traceback"
            <| Prop.forAll (arb request) (fun r ->
                let e = exceptionEvent (Some(tagRequest r))
                not (e.RequestData.Contains "S3CR3T" || e.Traceback.Contains "S3CR3T"))

            property "an occurrence's header is the whole occurrence less its details, with or without a key"
            <| Prop.forAll
                (arb (
                    Gen.zip3
                        (Gen.optionOf request)
                        (Gen.oneof [ Gen.map Subject.Exception (exceptionOf 2); Gen.map Subject.Message plainWord ])
                        (Gen.optionOf plainWord)
                ))
                (fun (req, subject, key) ->
                    // A path with secrets in it (masked as free text in both).
                    let req =
                        req
                        |> Option.map (fun r ->
                            { r with
                                Path = r.Path + "/password=hunter2/" + String('x', 3000)
                            })

                    let c =
                        {
                            Request = req
                            Subject = subject
                            Extra = [ "note", Data.String "kept out of the header" ]
                            OccurredAt = at
                            Release = "1.0.0"
                            Environment = "Test"
                        }

                    let whole =
                        Events.build settings rule Limits.defaults (key |> Option.map (fun k -> fun _ _ -> Some k)) c

                    let header = Events.header settings rule Limits.defaults key c
                    let expected = (Events.countOnly whole 1L at at [||] [||]).Latest

                    header = expected
                    && not (header.Path.Contains "hunter2")
                    && header.RequestData = "{}"
                    && header.Traceback = "")

            property
                "string pairs are written as their data tree is (a repeated key an array of its values, null empty)"
            <| Prop.forAll (arb (Gen.zip pairs (Gen.elements [ 0; 1; 2 ]))) (fun (ps, change) ->
                let ps =
                    match change, ps with
                    | 1, (k, _) :: _ -> ps @ [ k, "again" ]
                    | 2, _ -> ps @ [ null, null ]
                    | _ -> ps

                Json.text (fun w -> Json.writePairs w ps) = Json.serialize (Json.ofPairs ps))

            property "request data is always valid JSON"
            <| Prop.forAll (arb request) (fun r ->
                let e = exceptionEvent (Some r)
                Result.isOk (Json.parse Limits.defaults e.RequestData))

            property "coalesced occurrences add up to their number once applied"
            <| Prop.forAll (arb (Gen.zip (Gen.choose (1, 50)) (Gen.choose (0, 40)))) (fun (n, existing) ->
                let e = exceptionEvent None

                let events =
                    [
                        for i in 1..n ->
                            { e with
                                OccurredAt = at.AddSeconds(float i)
                            }
                    ]

                let delta =
                    events |> List.fold (fun d ev -> Some(Events.coalesce d ev)) None |> Option.get

                let before =
                    if existing = 0 then
                        None
                    else
                        Some
                            { Events.apply None { delta with Count = int64 existing } with
                                CreatedOn = at.AddDays -1.0
                            }

                let after = Events.apply before delta

                after.Count = int64 (n + existing)
                && after.LastSeen = at.AddSeconds(float n)
                && after.CreatedOn = (if existing = 0 then at.AddSeconds 1.0 else at.AddDays -1.0))

            property "count-only batches add exact counts and times and keep the last stored details"
            <| Prop.forAll
                (arb (Gen.listOf (Gen.zip (Gen.elements [ true; false ]) (Gen.choose (1, 1000)))))
                (fun batches ->
                    let e = exceptionEvent None

                    // The first batch is detailed (a group is first written with its details), then any mix.
                    let deltas =
                        (true, 0) :: batches
                        |> List.mapi (fun i (detailed, seconds) ->
                            let ev =
                                { e with
                                    RequestData = sprintf """{"n":%d}""" i
                                    Traceback = sprintf "trace %d" i
                                    OccurredAt = at.AddSeconds(float seconds)
                                }

                            if detailed then
                                { Events.single ev with
                                    Count = int64 (i + 1)
                                }
                            else
                                Events.countOnly
                                    ev
                                    (int64 (i + 1))
                                    (at.AddSeconds(float seconds - 1.0))
                                    ev.OccurredAt
                                    (History.one ev.OccurredAt (int64 (i + 1)))
                                    [||])

                    let oneByOne =
                        deltas |> List.fold (fun r d -> Some(Events.apply r d)) None |> Option.get

                    let merged = Events.apply None (List.reduce Events.merge deltas)

                    let lastDetailed =
                        deltas |> List.filter (fun d -> d.Detailed) |> List.last |> (fun d -> d.Latest)

                    oneByOne.Count = List.sumBy (fun d -> d.Count) deltas
                    && merged.Count = oneByOne.Count
                    && oneByOne.LastSeen = (deltas |> List.map (fun d -> d.Latest.OccurredAt) |> List.max)
                    && merged.LastSeen = oneByOne.LastSeen
                    && merged.CreatedOn = oneByOne.CreatedOn
                    // Applied in turn or merged first, a store shows the last detailed batch's details.
                    && oneByOne.RequestData = lastDetailed.RequestData
                    && oneByOne.Traceback = lastDetailed.Traceback
                    && merged.RequestData = lastDetailed.RequestData
                    && merged.Traceback = lastDetailed.Traceback)

            test "a count-only batch of a missing group inserts it without details" {
                let e = exceptionEvent None

                let r =
                    Events.apply None (Events.countOnly e 5L at (at.AddSeconds 2.0) (History.one at 5L) [||])

                Expect.equal r.Count 5L "counted"
                Expect.equal r.RequestData "{}" "no request data"
                Expect.equal r.Traceback "" "no traceback"
                Expect.equal r.Message e.Message "its message"
                Expect.equal r.LastSeen (at.AddSeconds 2.0) "last seen"
            }

            test "an app's fingerprint function decides the group" {
                let byPath: FingerprintFunction = fun _ r -> r |> Option.map (fun r -> r.Path)

                let build path =
                    Events.build
                        settings
                        rule
                        Limits.defaults
                        (Some byPath)
                        {
                            Request =
                                Some
                                    {
                                        Method = "GET"
                                        Scheme = "http"
                                        Host = "h"
                                        Path = path
                                        Query = []
                                        Headers = []
                                        Form = []
                                        Cookies = []
                                        RouteValues = []
                                        UserName = None
                                        TraceId = None
                                        Body = None
                                        Custom = []
                                    }
                            Subject = Subject.Message "m"
                            Extra = []
                            OccurredAt = at
                            Release = "1.0.0"
                            Environment = "Test"
                        }

                Expect.notEqual (build "/a").Hash (build "/b").Hash "grouped by path"
                Expect.equal (build "/a").Hash (build "/a").Hash "same path, same group"
                Expect.isTrue (Fingerprint.isValid (build "/a").Hash) "still a fingerprint"
            }
        ]

[<Tests>]
let spillTests =
    testList
        "spill file"
        [
            property "pending groups written to the spill file read back the same"
            <| Prop.forAll
                (arb (
                    Gen.listOf (Gen.zip plainWord (Gen.choose (1, 100000)))
                    |> Gen.map (List.truncate 20)
                ))
                (fun items ->
                    let deltas =
                        items
                        |> List.mapi (fun i (word, count) ->
                            {
                                Latest =
                                    {
                                        Hash = Fingerprint.sha256Hex (string i)
                                        Host = "h"
                                        Path = "/" + word
                                        Method = "GET"
                                        RequestData = sprintf """{"w":"%s\n"}""" word
                                        ExceptionName = "E"
                                        Message = word + "\n\"quoted\""
                                        Traceback = "line1\nline2"
                                        OccurredAt = at.AddSeconds(float count)
                                        Release = if i % 2 = 0 then "" else "2.0." + word
                                        Environment = if i % 3 = 0 then "" else "Staging"
                                        Project = if i % 4 = 0 then "12" else ""
                                    }
                                FirstAt = at
                                Count = int64 count
                                Detailed = count % 2 = 0
                                // Some span two hours.
                                Hours =
                                    if count > 1 && count % 3 = 0 then
                                        History.add
                                            (History.one at 1L)
                                            (History.one (at.AddHours 1.0) (int64 count - 1L))
                                    else
                                        History.one at (int64 count)
                                Users =
                                    if count % 2 = 0 then
                                        [| Users.key word; Users.key (word + "2") |]
                                    else
                                        [||]
                            })

                    Spill.parse (Spill.serialize deltas) = (deltas, 0))

            test "a torn last line is skipped and counted" {
                let d =
                    {
                        Latest = (exceptionEvent None)
                        FirstAt = at
                        Count = 3L
                        Detailed = true
                        Hours = History.one at 3L
                        Users = [||]
                    }

                let text = Spill.serialize [ d; d ]
                let torn = text.Substring(0, text.Length - 10)
                Expect.equal (Spill.parse torn) ([ d ], 1) "one group read, one line skipped"
            }
        ]

[<Tests>]
let journalTests =
    let delta (i: int) (count: int64) =
        {
            Latest =
                { (exceptionEvent None) with
                    Hash = Fingerprint.sha256Hex (string i)
                }
            FirstAt = at
            Count = count
            Detailed = i % 2 = 0
            Hours = History.one at count
            Users = [||]
        }

    let text (lines: string list) =
        String.Join("", lines |> List.map (fun l -> l + "\n"))

    /// Wrong forms of `line`, a whole line of a one-digit segment, with what is wrong with each.
    let badWholeLines (line: string) =
        let json = line.Substring 4

        [
            "segment 0", "S 0 " + json
            "a negative segment", "S -4 " + json
            "not a number", "S x " + json
            "no number", "S  " + json
            "no JSON", "S 4"
            "torn JSON", line.Substring(0, line.Length - 3)
            "more after the JSON", line + " {}"
        ]

    testList
        "journal"
        [
            test "the segments past the store's mark are what is not stored, merged by group" {
                let content =
                    Journal.parse (
                        text
                            [
                                Journal.header "abc-1"
                                Journal.segment 1L (delta 1 2L)
                                Journal.segment 2L (delta 1 3L)
                                Journal.segment 2L (delta 2 1L)
                                Journal.segment 3L (delta 1 5L)
                                Journal.segment 4L (delta 3 7L)
                            ]
                    )

                Expect.equal content.Id (Some "abc-1") "id"
                Expect.equal content.Bad 0 "all read"
                Expect.equal (Journal.lastSegment content) 4L "last segment"

                let counts (mark: int64) =
                    Journal.unstored mark content
                    |> List.map (fun d -> d.Latest.Hash, d.Count)
                    |> List.sort

                let h i = Fingerprint.sha256Hex (string i)
                Expect.equal (counts 0L) (List.sort [ h 1, 10L; h 2, 1L; h 3, 7L ]) "nothing stored"
                Expect.equal (counts 2L) (List.sort [ h 1, 5L; h 3, 7L ]) "up to segment 2 stored"
                Expect.equal (counts 4L) [] "all stored"
            }

            testProperty
                "segments merged by group are each group's deltas applied in segment order (then in the order given), in hash order"
            <| fun (items: (byte * byte * byte) list) ->
                // (segment, group, seconds): a group's delta in a segment, later in time the later it comes.
                let segments =
                    items
                    |> List.mapi (fun i (k, g, s) ->
                        let d = delta (int g % 7) (int64 s + 1L)
                        let when' = at.AddSeconds(float i)

                        int64 (k % 5uy) + 1L,
                        { d with
                            Latest =
                                { d.Latest with
                                    OccurredAt = when'
                                    Message = sprintf "m%d" i
                                }
                            Hours = History.one when' d.Count
                        })

                let expected =
                    segments
                    |> List.sortBy fst // stable: the order given within a segment
                    |> List.groupBy (fun (_, d) -> d.Latest.Hash)
                    |> List.map (fun (_, ds) -> ds |> List.map snd |> List.reduce Events.merge)
                    |> List.sortWith (fun a b -> String.CompareOrdinal(a.Latest.Hash, b.Latest.Hash))

                Journal.merged segments = expected

            test "written lines keep the mark for stores that cannot; a torn last line is skipped and counted" {
                let full =
                    text
                        [
                            Journal.header "j"
                            Journal.segment 1L (delta 1 2L)
                            Journal.written 1L
                            Journal.segment 2L (delta 2 4L)
                        ]

                let content = Journal.parse (full.Substring(0, full.Length - 12))
                Expect.equal content.Written 1L "the written mark"
                Expect.equal content.Bad 1 "the torn line"
                Expect.equal (Journal.unstored content.Written content) [] "segment 2 was torn: nothing else"
            }

            test "an older version's spill file (no header) is read as one segment, none of it stored" {
                let content = Journal.parse (Spill.serialize [ delta 1 2L; delta 2 3L ])
                Expect.isNone content.Id "no id"
                Expect.equal (content.Segments |> List.map fst) [ 1L; 1L ] "segment 1"
                Expect.equal (Journal.unstored 0L content |> List.sumBy (fun d -> d.Count)) 5L "all of it"
            }

            test "a compacted journal reads back the same segments" {
                let segments = [ 3L, [ delta 1 2L; delta 2 1L ]; 5L, [ delta 1 4L ] ]

                let content =
                    Journal.parse (Journal.compacted "k" (segments |> List.map (fun (k, ds) -> k, Seq.ofList ds)))

                Expect.equal content.Id (Some "k") "id"

                Expect.equal
                    content.Segments
                    [
                        for k, ds in segments do
                            for d in ds -> k, d
                    ]
                    "segments"
            }

            test "a count-only group's short line reads back with the header of its group's last whole line" {
                let whole = delta 1 2L
                let later = at.AddHours 2.0

                let counted =
                    Events.countOnly
                        whole.Latest
                        5L
                        (at.AddMinutes 30.0)
                        later
                        (Array.append (History.one (at.AddMinutes 30.0) 2L) (History.one later 3L))
                        [| Users.key "ada"; Users.key "bob" |]

                let line = Journal.counted 2L counted
                Expect.isLessThan line.Length 200 "a short line"
                Expect.isFalse (line.Contains whole.Latest.Message) "no header in it"

                let content =
                    Journal.parse (text [ Journal.header "j"; Journal.segment 1L whole; line ])

                Expect.equal content.Bad 0 "all read"
                Expect.equal content.Segments [ 1L, whole; 2L, counted ] "the same deltas"

                let merged = Journal.unstored 0L content
                Expect.equal (merged |> List.map (fun d -> d.Count)) [ 7L ] "merged by group"
                Expect.equal (merged.Head.Hours |> Array.sumBy (fun b -> b.Count)) 7L "hours add up"

                let noUsers =
                    Journal.counted
                        3L
                        { counted with
                            Users = [||]
                            Hours = [||]
                        }

                Expect.equal
                    (Journal.parse (text [ Journal.header "j"; Journal.segment 1L whole; noUsers ])).Segments.[1]
                    (3L,
                     { counted with
                         Users = [||]
                         Hours = History.one later 5L
                     })
                    "no users; hours that do not add up fall in the latest's hour"
            }

            test "a group gets the short line only when it is count-only and the file holds its whole line" {
                let whole = delta 2 2L
                let countOnly = { whole with Detailed = false }
                Expect.isTrue ((Journal.line true 1L countOnly).StartsWith "C ") "count-only, whole line in the file"
                Expect.isTrue ((Journal.line false 1L countOnly).StartsWith "S ") "count-only, no whole line yet"
                Expect.isTrue ((Journal.line true 1L whole).StartsWith "S ") "with details"
            }

            test "a short line without its group's whole line before it, or with bad numbers, is not read" {
                let whole = delta 1 2L
                let counted = Events.countOnly whole.Latest 3L at at (History.one at 3L) [||]
                let line = Journal.counted 2L counted

                let bad (lines: string list) =
                    (Journal.parse (text (Journal.header "j" :: lines))).Bad

                Expect.equal (bad [ line; Journal.segment 3L whole ]) 1 "the whole line after it"
                Expect.equal (bad [ Journal.segment 1L (delta 2 1L); line ]) 1 "another group's whole line"
                Expect.equal (bad [ Journal.segment 1L whole; line.Replace(" 3 ", " 0 ") ]) 1 "a zero count"
                Expect.equal (bad [ Journal.segment 1L whole; line.Replace(" -", " NotAKey") ]) 1 "a bad user key"
                Expect.equal (bad [ Journal.segment 1L whole; line.Substring(0, line.Length - 4) ]) 1 "torn"
                Expect.equal (bad [ Journal.segment 1L whole; line ]) 0 "the line itself reads"
            }

            test "lines written as bytes read back as the same groups, however long, whatever their text" {
                let odd =
                    { (delta 1 2L) with
                        Latest =
                            { (delta 1 2L).Latest with
                                Message = "é ✓ \"quoted\"\r\nnext line \u2028 😀 \\ end"
                                // Longer than any buffer the journal writes through.
                                Traceback = String('t', 300_000) + "\n  at the bottom"
                            }
                    }

                let small = delta 2 3L

                let counted =
                    Events.countOnly small.Latest 4L at at (History.one at 4L) [| Users.key "ada" |]

                let buffer = System.Buffers.ArrayBufferWriter<byte>(16)

                let lines =
                    [ false, 7L, odd; false, 8L, small; true, 12345678901L, counted ]
                    |> List.map (fun (whole, n, d) ->
                        buffer.ResetWrittenCount()
                        Journal.writeLine buffer whole n d
                        Text.Encoding.UTF8.GetString buffer.WrittenSpan)

                Expect.isTrue (lines |> List.forall (fun l -> not (l.Contains '\n'))) "one line each"
                Expect.isTrue (lines.[0].StartsWith "S 7 {") "a whole line, its number"
                Expect.isTrue (lines.[2].StartsWith "C 12345678901 ") "a short line, its number"
                Expect.equal lines.[2] (Journal.counted 12345678901L counted) "the short line's text"
                let content = Journal.parse (text (Journal.header "j" :: lines))
                Expect.equal content.Bad 0 "all read"
                Expect.equal content.Segments [ 7L, odd; 8L, small; 12345678901L, counted ] "the same groups"
                Expect.equal (Journal.segment 8L small) lines.[1] "the text form is the same line"
            }

            test "a whole line with a bad number or torn JSON is not read" {
                let line = Journal.segment 4L (delta 1 2L)

                let bad (lines: string list) =
                    (Journal.parse (text (Journal.header "j" :: lines))).Bad

                Expect.equal (bad [ line ]) 0 "the line itself reads"

                for what, wrong in badWholeLines line do
                    Expect.equal (bad [ wrong ]) 1 what
            }

            test "whole lines read from their bytes are the groups their text reads as, of the segments asked for" {
                let odd =
                    { (delta 3 5L) with
                        Latest =
                            { (delta 3 5L).Latest with
                                Message = "é ✓ \"quoted\"\r\nnext \u2028 😀"
                                OccurredAt = at.AddTicks 1234567L
                            }
                        FirstAt = at.AddTicks 7L
                    }

                let seven = Journal.segment 7L odd
                let eight = Journal.segment 8L (delta 4 1L)
                let nine = Journal.segment 9L (delta 5 1L)

                let short =
                    Journal.counted 8L (Events.countOnly (delta 4 1L).Latest 2L at at [||] [||])

                let bytes (lines: string list) =
                    ReadOnlyMemory(Text.Encoding.UTF8.GetBytes(text lines))

                let struct (read, bad) =
                    Journal.readWholeLines (bytes [ Journal.written 6L; seven; eight; nine ]) 7L 8L

                Expect.equal bad 0 "all read"
                Expect.equal read [ 7L, odd; 8L, delta 4 1L ] "segments 7 and 8, not 9; the mark passed over"

                Expect.equal
                    read
                    ((Journal.parse (text [ Journal.header "j"; seven; eight ])).Segments)
                    "what the text reads as, times to the tick"

                let unreadable (lines: string list) =
                    let struct (_, bad) = Journal.readWholeLines (bytes lines) 1L 10L
                    bad

                Expect.equal (unreadable [ eight ]) 0 "the line itself reads"

                // The lines the text reader does not read either.
                for what, wrong in badWholeLines eight do
                    Expect.equal (unreadable [ wrong ]) 1 what

                Expect.equal (unreadable [ short ]) 1 "a short line of an asked segment (it needs its header)"
                Expect.equal (unreadable [ Journal.header "j" ]) 1 "not a segment's line"
                let struct (_, outside) = Journal.readWholeLines (bytes [ "S 11 {torn" ]) 1L 10L
                Expect.equal outside 0 "a line of a segment not asked for is not read"
                // No newline after the last line: it is read all the same.
                let struct (last, _) =
                    Journal.readWholeLines (ReadOnlyMemory(Text.Encoding.UTF8.GetBytes seven)) 7L 7L

                Expect.equal last [ 7L, odd ] "a last line without its newline"
            }

            test "ids are short plain keys" {
                Expect.isTrue (Journal.isValidId "0f3a-9") "plain"
                Expect.isFalse (Journal.isValidId "") "empty"
                Expect.isFalse (Journal.isValidId "a b") "space"
                Expect.isFalse (Journal.isValidId (String('a', 65))) "long"
            }
        ]
