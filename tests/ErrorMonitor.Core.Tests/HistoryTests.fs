module internal ErrorMonitor.Core.Tests.HistoryTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open ErrorMonitor.Core

let private t0 = DateTimeOffset(2026, 6, 1, 23, 59, 30, TimeSpan.Zero)

let private total (bs: Bucket seq) = bs |> Seq.sumBy (fun b -> b.Count)

[<Tests>]
let tests =
    testList
        "history"
        [
            test "an occurrence counts in the hour it happened in (UTC, whatever the offset it was given in)" {
                let local = DateTimeOffset(2026, 6, 2, 1, 15, 0, TimeSpan.FromHours 2.0)
                let b = (History.one local 3L).[0]
                Expect.equal b.Start (DateTimeOffset(2026, 6, 1, 23, 0, 0, TimeSpan.Zero)) "the UTC hour"
                Expect.equal b.Count 3L "its count"
            }

            testProperty "coalescing keeps every hour's count exactly: merged deltas add up hour by hour"
            <| fun (offsets: (byte * byte) list) ->
                // Occurrences at minutes after t0 (across midnight and several hours), merged in any grouping.
                let times =
                    offsets |> List.map (fun (m, n) -> t0.AddMinutes(float m * 3.0), int64 n + 1L)

                let merged =
                    times |> List.map (fun (t, n) -> History.one t n) |> List.fold History.add [||]

                let expected =
                    times
                    |> List.groupBy (fun (t, _) -> History.hourOf t)
                    |> List.map (fun (h, xs) -> h, xs |> List.sumBy snd)
                    |> List.sortBy fst

                List.ofArray merged |> List.map (fun b -> b.Start, b.Count) = expected

            testProperty "buckets summed are one a start, oldest first, each the total of its start's counts"
            <| fun (items: (byte * byte) list) ->
                let buckets =
                    items
                    |> List.map (fun (h, n) ->
                        {
                            Start = t0.AddHours(float (h % 30uy))
                            Count = int64 n
                        })

                let expected =
                    buckets
                    |> List.groupBy (fun b -> b.Start)
                    |> List.map (fun (s, bs) -> s, total bs)
                    |> List.sortBy fst

                History.sum buckets |> List.ofArray |> List.map (fun b -> b.Start, b.Count) = expected

            test "a series has every hour, oldest first, zero where nothing happened, and ignores what is outside" {
                let now = t0.AddMinutes 1.0 // 00:00:30 the next day
                let buckets = Array.append (History.one t0 2L) (History.one (t0.AddHours -5.0) 7L)
                let outside = History.one (t0.AddHours -30.0) 100L
                let s = History.hourly now 24 (Array.append buckets outside)
                Expect.equal s.Length 24 "24 hours"

                Expect.equal
                    s.[23].Start
                    (DateTimeOffset(2026, 6, 2, 0, 0, 0, TimeSpan.Zero))
                    "ends with the current hour"

                Expect.equal
                    s.[0].Start
                    (DateTimeOffset(2026, 6, 1, 1, 0, 0, TimeSpan.Zero))
                    "starts 23 hours before it"

                Expect.equal s.[22].Count 2L "23:00"
                Expect.equal s.[17].Count 7L "18:00"
                Expect.equal (total s) 9L "nothing from outside the span"

                Expect.isTrue
                    (s
                     |> Array.pairwise
                     |> Array.forall (fun (a, b) -> b.Start - a.Start = TimeSpan.FromHours 1.0))
                    "consecutive hours"
            }

            test "daily series add the daily buckets and the hours not yet added to their day" {
                let now = t0

                let days =
                    [|
                        {
                            Start = History.dayOf (t0.AddDays -20.0)
                            Count = 40L
                        }
                    |]

                let hours = Array.append (History.one t0 2L) (History.one (t0.AddHours -23.0) 5L)
                let s = History.daily now 30 days hours
                Expect.equal s.Length 30 "30 days"
                Expect.equal s.[29].Start (History.dayOf t0) "ends today"
                Expect.equal s.[29].Count 7L "today's hours"
                Expect.equal s.[9].Count 40L "the day 20 days ago"
                Expect.equal (total s) 47L "everything in the span"
            }

            test "the axis top is a round number at least the largest bar" {
                for n, top in [ 0L, 1L; 1L, 1L; 3L, 5L; 7L, 10L; 11L, 20L; 200L, 200L; 201L, 500L; 999L, 1000L ] do
                    Expect.equal (History.roundUp n) top (sprintf "%d" n)
            }

            test "a chart's summary says the total, the span and the busiest bar" {
                let s =
                    History.hourly t0 24 (Array.append (History.one t0 1200L) (History.one (t0.AddHours -2.0) 3L))

                let c = History.chart false s
                Expect.equal c.Total 1203L "total"
                Expect.equal c.Top 2000L "top"
                Expect.equal c.Labels.[23] "23:00" "label of the last hour"
                Expect.equal c.Summary "1,203 occurrences in the last 24 hours; most (1,200) at 23:00 UTC." "summary"
                let empty = History.chart true (History.daily t0 14 [||] [||])
                Expect.equal empty.Summary "0 occurrences in the last 14 days." "an empty chart"
                Expect.equal empty.Top 1L "an empty chart's axis"
            }

            test "hours that a journal line holds read back; hours that do not add up fall back to the latest's hour" {
                let e =
                    {
                        Hash = Fingerprint.sha256Hex "h"
                        Host = "h"
                        Path = "/"
                        Method = "GET"
                        RequestData = "{}"
                        ExceptionName = "E"
                        Message = "m"
                        Traceback = ""
                        OccurredAt = t0
                        Release = ""
                        Environment = ""
                        Project = ""
                    }

                let d =
                    {
                        Latest = e
                        FirstAt = t0.AddHours -1.0
                        Count = 5L
                        Detailed = true
                        Hours = History.add (History.one (t0.AddHours -1.0) 2L) (History.one t0 3L)
                        Users = [| Users.key "ada"; Users.key "grace" |]
                    }

                Expect.equal (Spill.parse (Spill.line d)) ([ d ], 0) "round trip"
                let wrong = (Spill.line d).Replace("\"count\":5", "\"count\":6")
                let back, _ = Spill.parse wrong
                Expect.equal back.Head.Hours (History.one t0 6L) "the latest's hour holds them all"
            }
        ]

let private trace =
    String.Join(
        "\n",
        [
            "System.InvalidOperationException: declined"
            "   at System.ThrowHelper.Throw() in /_/src/ThrowHelper.cs:line 10"
            "   at Shop.Orders.OrderService.Checkout(Int32 id) in /app/OrderService.cs:line 42"
            "   at Shop.Orders.OrderService..ctor() in /app/OrderService.cs:line 7"
            "   at Microsoft.AspNetCore.Routing.EndpointMiddleware.Invoke()"
            "   at Microsoft.AspNetCore.Builder.Next()"
            "   at ErrorMonitor.Web.Middleware.Invoke()"
        ]
    )

[<Tests>]
let culpritTests =
    testList
        "culprit"
        [
            test "the culprit is the top frame of the app's own code, its type's short name and method" {
                Expect.equal (Traceback.culprit trace) (Some "OrderService.Checkout") "skips the runtime's frame"

                let ctor =
                    trace.Replace(
                        "   at Shop.Orders.OrderService.Checkout(Int32 id) in /app/OrderService.cs:line 42\n",
                        ""
                    )

                Expect.equal (Traceback.culprit ctor) (Some "OrderService..ctor") "a constructor keeps its dot"
                Expect.equal (Traceback.culprit "System.Exception: x\n   at System.A.B()") None "no app frame"
                Expect.equal (Traceback.culprit null) None "no traceback"
            }

            test "framework frames in runs of two or more are folded; the rest, lone framework frames too, stay in line" {
                let runs = Traceback.runs trace
                Expect.equal (runs |> List.map fst) [ false; true ] "text with the app's frames, then a folded run"
                Expect.equal (snd runs.[1]).Length 3 "the three framework frames at the bottom"

                Expect.stringContains
                    (String.Join("\n", snd runs.[0]))
                    "System.ThrowHelper.Throw"
                    "a lone framework frame stays"

                Expect.equal (runs |> List.collect snd) (List.ofArray (trace.Split '\n')) "every line, in order"
            }
        ]

[<Tests>]
let sampleTests =
    testList
        "samples and users"
        [
            testProperty "a group keeps its first sample and the newest `recent`, nothing else"
            <| fun (ids: int64 list) (recent: byte) ->
                let recent = int recent % 12
                let distinct = ids |> List.distinct |> List.sort
                let kept = Samples.kept recent ids

                match distinct with
                | [] -> kept = []
                | first :: _ ->
                    let newest = distinct |> List.rev |> List.truncate recent |> Set.ofList
                    kept = (distinct |> List.filter (fun i -> i = first || newest.Contains i))

            test "a sample among its group's: its place and the links of a page" {
                let ids = [ 40L; 30L; 20L; 10L ]
                let at id = (Samples.around ids id).Value

                Expect.equal
                    (at 40L)
                    {
                        Position = 1
                        Total = 4
                        Newest = None
                        Newer = None
                        Older = Some 30L
                        First = Some 10L
                    }
                    "the newest"

                Expect.equal ((at 20L).Newer, (at 20L).Older, (at 20L).Position) (Some 30L, Some 10L, 3) "a middle one"
                Expect.equal ((at 10L).Older, (at 10L).First, (at 10L).Newest) (None, None, Some 40L) "the first"
                Expect.isNone (Samples.around ids 25L) "one not kept"
                Expect.isNone (Samples.around [] 1L) "none kept"
            }

            test
                "when pruning runs: every quarter of the retention (1 s to 1 min); at once past a tenth of the bound in new groups; a second after any" {
                Expect.equal (Retention.interval (TimeSpan.FromDays 90.0)) (TimeSpan.FromMinutes 1.0) "at most a minute"

                Expect.equal
                    (Retention.interval (TimeSpan.FromSeconds 2.0))
                    (TimeSpan.FromSeconds 1.0)
                    "at least a second"

                Expect.equal (Retention.interval (TimeSpan.FromSeconds 20.0)) (TimeSpan.FromSeconds 5.0) "a quarter"
                Expect.equal (Retention.newGroupsBeforePrune 100000) 10000L "a tenth"
                Expect.equal (Retention.newGroupsBeforePrune 300) 100L "at least 100"
                let ms (n: float) = TimeSpan.FromMilliseconds n
                Expect.isTrue (Retention.due 300 100L (ms 1.0)) "past the threshold: at once"
                Expect.isFalse (Retention.due 300 99L (ms 999.0)) "below it, within a second: not yet"
                Expect.isTrue (Retention.due 300 1L (ms 1000.0)) "any new group after a second"
                Expect.isFalse (Retention.due 300 0L (TimeSpan.FromHours 1.0)) "no new group: the interval's business"
            }

            test "users: a key per name (not the name), distinct, bounded, and how a count reads" {
                let k = Users.key "ada@example.com"
                Expect.equal k.Length 16 "16 hex characters"
                Expect.isFalse (k.Contains "ada") "not the name"
                Expect.equal (Users.key "ada@example.com") k "the same name, the same key"
                Expect.notEqual (Users.key "grace@example.com") k "another name, another key"
                Expect.equal (Users.ofName None) [||] "no user"
                Expect.equal (Users.ofName (Some "  ")) [||] "a blank name is none"
                let many = [| for i in 1..150 -> Users.key (string i) |]
                Expect.equal (Users.add many.[0..59] many.[30..149]).Length Users.Bound "at most the bound"

                Expect.equal
                    (Users.add [| "a"; "b" |] [| "b"; "c" |])
                    [| "a"; "b"; "c" |]
                    "distinct, the first set's first"

                Expect.equal (Users.count 250L) 100L "a count stops at the bound"
                Expect.equal (Users.text 99L) "99" "exact below the bound"
                Expect.equal (Users.text 100L) "100+" "the bound reads 100+"
            }
        ]
