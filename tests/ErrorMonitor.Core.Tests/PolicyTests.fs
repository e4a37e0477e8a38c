module internal ErrorMonitor.Core.Tests.PolicyTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open ErrorMonitor.Core
open ErrorMonitor.Core.Tests.Generators

let private n = Config.defaults.Notify
let private t0 = DateTimeOffset(2026, 5, 1, 0, 0, 0, TimeSpan.Zero)
let private minutes (m: int) = t0.AddMinutes(float m)

/// A group write: previous occurrence, first occurrence of the batch, last notification (minutes after t0).
let private write: Gen<GroupWrite * DateTimeOffset> =
    gen {
        let! previous = Gen.oneof [ Gen.constant None; Gen.choose (0, 5000) |> Gen.map Some ]
        let! gap = Gen.choose (0, 3000)
        let! notified = Gen.oneof [ Gen.constant None; Gen.choose (0, 5000) |> Gen.map Some ]
        let! lag = Gen.choose (0, 60)
        let first = (defaultArg previous 0) + gap

        return
            {
                PreviousSeen = previous |> Option.map minutes
                FirstAt = minutes first
                LastNotified = notified |> Option.map minutes
                TicketRaised = None
                Status = GroupStatus.Unresolved
                Regressed = false
            },
            minutes (first + lag)
    }

[<Tests>]
let tests =
    testList
        "notification policy"
        [
            property "a group never notified is notified, as first seen"
            <| Prop.forAll (arb write) (fun (w, now) ->
                Policy.reason n now { w with LastNotified = None } = Some NotifyReason.FirstSeen)

            property "a group is never notified twice within the interval"
            <| Prop.forAll (arb write) (fun (w, now) ->
                match w.LastNotified with
                | Some last when now - last < n.Interval -> Policy.reason n now w = None
                | _ -> true)

            property "a notified group notifies again only after a quiet period, as a regression"
            <| Prop.forAll (arb write) (fun (w, now) ->
                match w.LastNotified, Policy.reason n now w with
                | None, _ -> true
                | Some _, None -> true
                | Some last, Some r ->
                    r = NotifyReason.Regression
                    && now - last >= n.Interval
                    && (match w.PreviousSeen with
                        | Some p -> w.FirstAt - p >= n.QuietPeriod
                        | None -> false))

            property "the seed's mode notifies every write"
            <| Prop.forAll (arb write) (fun (w, now) ->
                Policy.reason { n with EveryOccurrence = true } now w = Some NotifyReason.Occurrence)

            property "the cap sends at most N a window and counts the rest for one summary"
            <| Prop.forAll (arb (Gen.zip (Gen.choose (1, 30)) (Gen.choose (0, 80)))) (fun (cap, k) ->
                let settings = { n with MaxPerInterval = cap }

                let w, sent =
                    [ 1..k ]
                    |> List.fold
                        (fun (w, sent) i ->
                            let w, ok = Policy.admit settings (sprintf "g%d" i) w
                            w, (if ok then sent + 1 else sent))
                        (Policy.openWindow t0, 0)

                sent = min cap k
                && w.Held = k - sent
                && (Policy.summary "" settings w).IsSome = (k > cap))

            test "a window rolls over after the interval and hands back the one that ended" {
                let w = { Policy.openWindow t0 with Held = 3 }
                let same, ended = Policy.roll n (t0.AddMinutes 29.0) w
                Expect.equal same w "still open"
                Expect.isNone ended "nothing ended"
                let next, ended = Policy.roll n (t0.AddMinutes 31.0) w
                Expect.equal next.Sent 0 "a new window"
                Expect.equal (ended |> Option.map (fun e -> e.Held)) (Some 3) "the old one, for its summary"
            }

            test "a ticket is raised once a group, and again on regressions only when allowed" {
                let w =
                    {
                        PreviousSeen = None
                        FirstAt = t0
                        LastNotified = None
                        TicketRaised = None
                        Status = GroupStatus.Unresolved
                        Regressed = false
                    }

                Expect.isTrue (Policy.ticket n w (Some NotifyReason.FirstSeen)) "first time"
                let raised = { w with TicketRaised = Some t0 }
                Expect.isFalse (Policy.ticket n raised (Some NotifyReason.Regression)) "once by default"

                Expect.isTrue
                    (Policy.ticket { n with TicketPerRegression = true } raised (Some NotifyReason.Regression))
                    "again on a regression when allowed"
            }

            test "in the seed's mode a ticket is raised for every written batch, except of an ignored group" {
                let every = { n with TicketEveryOccurrence = true }

                let raised =
                    {
                        PreviousSeen = Some t0
                        FirstAt = t0.AddMinutes 1.0
                        LastNotified = Some t0
                        TicketRaised = Some t0
                        Status = GroupStatus.Unresolved
                        Regressed = false
                    }

                Expect.isFalse (Policy.ticket n raised None) "once a group by default"
                Expect.isTrue (Policy.ticket every raised None) "a repeat raises another"
                Expect.isTrue (Policy.ticket every { raised with TicketRaised = None } None) "and the first"

                Expect.isFalse
                    (Policy.ticket
                        every
                        { raised with
                            Status = GroupStatus.Ignored
                        }
                        None)
                    "an ignored group raises none"
            }

            test "durations read as 90s, 30m, 24h, 2d, 00:30:00 or seconds" {
                for text, expected in
                    [
                        "90s", TimeSpan.FromSeconds 90.0
                        "30m", TimeSpan.FromMinutes 30.0
                        "24h", TimeSpan.FromHours 24.0
                        "2d", TimeSpan.FromDays 2.0
                        "00:30:00", TimeSpan.FromMinutes 30.0
                        "1.00:00:00", TimeSpan.FromDays 1.0
                        "15", TimeSpan.FromSeconds 15.0
                    ] do
                    Expect.equal (Config.parseDuration text) (Some expected) text

                Expect.isNone (Config.parseDuration "soon") "not a duration"
            }

            test "a bad notification setting names its key" {
                match
                    Config.parse (
                        Map.ofList
                            [
                                "APP_ERROR_SMTP_SECURITY", "ssl3"
                                "APP_ERROR_WEBHOOK_URL", "ftp://x"
                                "APP_ERROR_NOTIFY_INTERVAL", "-5m"
                            ]
                    )
                with
                | Error errors ->
                    Expect.equal
                        (errors |> List.map (fun e -> e.Key) |> List.sort)
                        [ "APP_ERROR_NOTIFY_INTERVAL"; "APP_ERROR_SMTP_SECURITY"; "APP_ERROR_WEBHOOK_URL" ]
                        "all three"
                | Ok _ -> failtest "accepted"
            }

            test "the one backoff rule doubles from its first wait, never past its cap, for any attempt" {
                let first = TimeSpan.FromMilliseconds 200.0
                let cap = TimeSpan.FromSeconds 5.0
                let waits = [ 1..40 ] |> List.map (Limits.backoff first cap)

                Expect.equal
                    (List.take 5 waits |> List.map (fun t -> t.TotalMilliseconds))
                    [ 200.0; 400.0; 800.0; 1600.0; 3200.0 ]
                    "doubles"

                Expect.equal waits.[5] cap "then the cap"

                Expect.isTrue
                    (waits |> List.forall (fun t -> t <= cap && t >= first))
                    "within first..cap, even at attempt 40"

                Expect.isTrue (waits |> List.pairwise |> List.forall (fun (a, b) -> a <= b)) "never shorter"
                Expect.equal (Limits.backoff first cap 0) first "attempt 0 or less waits the first wait"
            }

            test "groups may wait ten times the queue's bound in memory, a hundred times with a journal to spill to" {
                Expect.equal (Limits.waitingGroups 5 false) 50 "ten times in memory"
                Expect.equal (Limits.waitingGroups 5 true) 500 "a hundred times with a journal"
                Expect.equal (Limits.waitingGroups 10000 true) 1000000 "1,000,000 at the default bound"

                Expect.equal (Limits.waitingGroups 100000000 true) Int32.MaxValue "clamped, never overflowing"

                Expect.equal (Limits.spilledBatch 10000 false) 5000 "half the bound a batch read back"
                Expect.equal (Limits.spilledBatch 1 false) 1000 "at least 1,000"
                Expect.equal (Limits.spilledBatch 10000 true) 1000 "a tenth while failures keep coming"
                Expect.equal (Limits.spilledBatch 1 true) 100 "at least 100 then"

                for bound in [ 1; 50; 999; 10000; 123457 ] do
                    Expect.isLessThan
                        (Limits.spilledBatch bound true)
                        (Limits.spilledBatch bound false)
                        "smaller while failures keep coming"
            }

            test "the throw-site pass waits longer only after a busy pass whose sites had repeats gathered" {
                let flush = TimeSpan.FromMilliseconds 200.0
                let short = TimeSpan.FromMilliseconds 10.0
                Expect.equal (Limits.shapeWindow flush 0 0L) short "nothing handed over: short"
                Expect.equal (Limits.shapeWindow flush 1 5000L) short "one site, many repeats: short (not busy)"
                Expect.equal (Limits.shapeWindow flush 100 1000L) short "100 sites is not busy"

                Expect.equal
                    (Limits.shapeWindow flush 101 202L)
                    (TimeSpan.FromMilliseconds 50.0)
                    "busy, twice as many occurrences as sites: a quarter of the flush interval"

                Expect.equal (Limits.shapeWindow flush 101 201L) short "busy, fewer repeats: short"

                Expect.equal
                    (Limits.shapeWindow flush 5000 5000L)
                    short
                    "a storm of distinct groups gathers nothing: short"

                Expect.equal
                    (Limits.shapeWindow (TimeSpan.FromSeconds 2.0) 400 4000L)
                    (TimeSpan.FromMilliseconds 500.0)
                    "the long wait follows the flush interval"
            }

            test "a throw site is remembered once it repeats: while it waited, or when its details were built before" {
                Expect.isTrue (RepeatingSites.remember true false) "repeated while its first occurrence waited"
                Expect.isTrue (RepeatingSites.remember false true) "built before"
                Expect.isFalse (RepeatingSites.remember false false) "a site seen once is not remembered"

                let sites = RepeatingSites(RepeatingSites.slots)
                let x = 0x1234_5678_0000_0042UL
                Expect.isFalse (sites.Seen x) "not seen before its first build"
                Expect.isTrue (sites.Seen x) "seen at its second"
                Expect.isTrue (sites.Seen x) "and after"

                // Sites in x's set (the same low bits): four fit; a fifth takes a place in turn.
                let same (k: uint64) = (k <<< 40) ||| 0x42UL
                Expect.isFalse (sites.Seen(same 1UL)) "a second site in x's set"
                Expect.isFalse (sites.Seen(same 2UL)) "a third"
                Expect.isTrue (sites.Seen x) "x still there with three others"
                Expect.isTrue (sites.Seen(same 1UL)) "and they"
                Expect.isFalse (sites.Seen(same 3UL)) "a fourth, then"
                Expect.isFalse (sites.Seen(same 4UL)) "a fifth evicts one"
                Expect.isTrue (sites.Seen(same 4UL)) "the fifth is found at its next build"

                // Two sites of one set built in turn (the case a table of one mark a slot never learned).
                let pair = RepeatingSites(RepeatingSites.slots)
                Expect.isFalse (pair.Seen(same 7UL)) "a"
                Expect.isFalse (pair.Seen(same 8UL)) "b"
                Expect.isTrue (pair.Seen(same 7UL)) "a seen at its second build"
                Expect.isTrue (pair.Seen(same 8UL)) "b too"

                // Ten thousand repeating sites, each built twice, all first builds before any second: nearly all
                // are found at their second (the 10,000-group load).
                // Distinct fingerprints, well mixed: the `i`-th of SplitMix64's sequence from `seed`.
                let fingerprints (seed: uint64) (count: int) =
                    Array.init count (fun i ->
                        let x = seed + uint64 (i + 1) * 0x9E3779B97F4A7C15UL
                        let z = (x ^^^ (x >>> 30)) * 0xBF58476D1CE4E5B9UL
                        let z = (z ^^^ (z >>> 27)) * 0x94D049BB133111EBUL
                        z ^^^ (z >>> 31))

                let many = RepeatingSites(RepeatingSites.slots)
                let tenThousand = fingerprints 7UL 10000
                Expect.isFalse (tenThousand |> Array.exists many.Seen) "none seen at its first build"
                let again = tenThousand |> Array.filter many.Seen |> Array.length
                Expect.isGreaterThanOrEqual again 9950 "at least 99.5% found at their second"

                // A storm of sites that each fail once: none is ever taken as seen (so none is remembered).
                let storm = RepeatingSites(RepeatingSites.slots)
                let found = fingerprints 42UL 200000 |> Array.filter storm.Seen |> Array.length

                Expect.equal found 0 "200,000 distinct sites, none found"

                Expect.throws (fun () -> RepeatingSites 1000 |> ignore) "slots are a power of two"
                Expect.throws (fun () -> RepeatingSites 2 |> ignore) "at least 4"
            }

            test
                "the journaled stage holds a tenth of the queue's bound of groups new to it, at least 100, never more than the bound" {
                Expect.equal (Limits.journaledNewGroups 10000) 1000 "a tenth of the default bound"
                Expect.equal (Limits.journaledNewGroups 300) 100 "at least 100"
                Expect.equal (Limits.journaledNewGroups 50) 50 "never more than the bound"
                Expect.equal (Limits.journaledNewGroups 1) 1 "a bound of one"
            }
        ]
