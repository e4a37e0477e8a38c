module internal ErrorMonitor.Core.Tests.TriageTests

open System
open Expecto
open ErrorMonitor.Core

let private t0 = DateTimeOffset(2026, 6, 1, 12, 0, 0, TimeSpan.Zero)

let private group (status: GroupStatus) (count: int64) =
    {
        Hash = Fingerprint.sha256Hex "g"
        Host = "shop.example.com"
        Path = "/orders/checkout"
        Method = "GET"
        RequestData = "{}"
        ExceptionName = "System.InvalidOperationException"
        Message = "Payment declined for order 42"
        Traceback = ""
        Count = count
        CreatedOn = t0
        LastSeen = t0
        Status = status
        Regressions = 0L
        LastRegression = Nullable()
        IgnoreUntil = Nullable()
        IgnoreUntilCount = Nullable()
        Users = 0L
        FirstRelease = "1.0.0"
        LastRelease = "1.0.0"
        Environment = "Production"
        RegressionRelease = ""
        Project = ""
    }

let private ignoring (until: DateTimeOffset option) (n: int64 option) (r: ErrorRecord) =
    Triage.change
        {
            Status = GroupStatus.Ignored
            IgnoreUntil = Option.toNullable until
            IgnoreCount = Option.toNullable n
        }
        r

[<Tests>]
let tests =
    testList
        "triage"
        [
            test "a resolved group that occurs again is unresolved, as a regression with the first new time" {
                let r = group GroupStatus.Resolved 5L
                let t = Triage.recur r 3L (t0.AddMinutes 1.0) (t0.AddMinutes 2.0) "1.1.0"
                Expect.equal t.Status GroupStatus.Unresolved "unresolved"
                Expect.isTrue t.Regressed "a regression"
                Expect.equal t.Regressions 1L "counted"
                Expect.equal t.LastRegression (Nullable(t0.AddMinutes 1.0)) "when it came back"
                Expect.equal t.RegressionRelease "1.1.0" "the release it came back in"

                let again =
                    Triage.recur
                        { r with
                            Regressions = 1L
                            Status = GroupStatus.Unresolved
                        }
                        1L
                        t0
                        t0
                        "1.2.0"

                Expect.isFalse again.Regressed "an unresolved group stays as it is"
                Expect.equal again.Regressions 1L "not counted twice"
                Expect.equal again.RegressionRelease "" "no release noted without a regression"
            }

            test "an ignored group returns after N more occurrences, counted from when it was ignored" {
                let r = ignoring None (Some 3L) (group GroupStatus.Unresolved 10L)
                Expect.equal r.IgnoreUntilCount (Nullable 13L) "until its count reaches 13"
                Expect.equal (Triage.recur r 2L t0 t0 "").Status GroupStatus.Ignored "after 2: still ignored"
                let back = Triage.recur r 3L t0 t0 ""
                Expect.equal back.Status GroupStatus.Unresolved "after 3: back"
                Expect.isFalse back.Regressed "not a regression"
                Expect.isFalse back.IgnoreUntilCount.HasValue "the limit is gone"
            }

            test "an ignored group returns once its time has passed, with or without an occurrence" {
                let r = ignoring (Some(t0.AddHours 1.0)) None (group GroupStatus.Unresolved 1L)
                Expect.equal (Triage.recur r 1L t0 (t0.AddMinutes 59.0) "").Status GroupStatus.Ignored "before"
                Expect.equal (Triage.recur r 1L t0 (t0.AddHours 1.0) "").Status GroupStatus.Unresolved "at the time"
                Expect.equal (Triage.expire (t0.AddMinutes 30.0) r).Status GroupStatus.Ignored "not yet"
                Expect.equal (Triage.expire (t0.AddHours 2.0) r).Status GroupStatus.Unresolved "expired"
                let forGood = ignoring None None (group GroupStatus.Unresolved 1L)
                Expect.equal (Triage.recur forGood 1000L t0 (t0.AddYears 1) "").Status GroupStatus.Ignored "for good"
            }

            test "resolving or unresolving clears the ignore limits" {
                let r = ignoring (Some t0) (Some 2L) (group GroupStatus.Unresolved 1L)

                for s in [ GroupStatus.Resolved; GroupStatus.Unresolved ] do
                    let c =
                        Triage.change
                            {
                                Status = s
                                IgnoreUntil = Nullable()
                                IgnoreCount = Nullable()
                            }
                            r

                    Expect.equal c.Status s "status"
                    Expect.isFalse (c.IgnoreUntil.HasValue || c.IgnoreUntilCount.HasValue) "no limits"
            }

            test "a change names the field at fault" {
                let change s u n =
                    Triage.validate
                        {
                            Status = s
                            IgnoreUntil = u
                            IgnoreCount = n
                        }

                Expect.isOk (change GroupStatus.Ignored (Nullable t0) (Nullable 2L)) "ignored with limits"

                Expect.equal
                    (change GroupStatus.Resolved (Nullable()) (Nullable 2L) |> Result.mapError fst)
                    (Error "ignoreCount")
                    "a limit without ignored"

                Expect.equal
                    (change GroupStatus.Ignored (Nullable()) (Nullable 0L) |> Result.mapError fst)
                    (Error "ignoreCount")
                    "a count below 1"

                Expect.equal
                    (change (enum<GroupStatus> 7) (Nullable()) (Nullable()) |> Result.mapError fst)
                    (Error "status")
                    "an unknown status"
            }

            test "search words are prefixes of the words of the type, message, path and host, any case" {
                let r = group GroupStatus.Unresolved 1L
                let finds q = Triage.matches (Triage.searchWords q) r
                Expect.isTrue (finds "invalidop") "a type word prefix"
                Expect.isTrue (finds "PAYMENT decl") "every word, any case"
                Expect.isTrue (finds "checkout shop") "path and host words"
                Expect.isTrue (finds "") "no search finds all"
                Expect.isFalse (finds "operation") "not the middle of a word"
                Expect.isFalse (finds "payment refund") "every word must match"
                Expect.equal (Triage.searchWords "a-b  A.b c") [ "a"; "b"; "c" ] "words, once each"
            }

            test "list parameters: defaults, names, and errors" {
                Expect.equal (Triage.parseStatusFilter None) (Ok(Nullable GroupStatus.Unresolved)) "default"
                Expect.equal (Triage.parseStatusFilter (Some "all")) (Ok(Nullable())) "all"
                Expect.isError (Triage.parseStatusFilter (Some "open")) "unknown"
                Expect.equal (Triage.parseSort (Some "count")) (Ok ListSort.Count) "count"
                Expect.isError (Triage.parseSort (Some "Count")) "names are exact"

                for s in [ GroupStatus.Unresolved; GroupStatus.Resolved; GroupStatus.Ignored ] do
                    Expect.equal (Triage.parseStatus (Triage.statusName s)) (Some s) "round trip"
            }

            test "a group's first and last release and its environment follow its occurrences, in time order" {
                let event (release: string) (environment: string) (at: DateTimeOffset) =
                    {
                        Hash = Fingerprint.sha256Hex "g"
                        Host = "h"
                        Path = "/"
                        Method = "GET"
                        RequestData = "{}"
                        ExceptionName = "E"
                        Message = "m"
                        Traceback = "t"
                        OccurredAt = at
                        Release = release
                        Environment = environment
                        Project = ""
                    }

                let first = Events.apply None (Events.single (event "1.0.0" "Staging" t0))

                Expect.equal
                    (first.FirstRelease, first.LastRelease, first.Environment)
                    ("1.0.0", "1.0.0", "Staging")
                    "new"

                let later =
                    Events.apply (Some first) (Events.single (event "1.1.0" "Production" (t0.AddHours 1.0)))

                Expect.equal
                    (later.FirstRelease, later.LastRelease, later.Environment)
                    ("1.0.0", "1.1.0", "Production")
                    "a later occurrence moves the last release and the environment"

                // A batch put back after an outage: older than the group's latest, with an older first occurrence.
                let late =
                    { Events.single (event "0.9.0" "Staging" (t0.AddMinutes 30.0)) with
                        FirstAt = t0.AddHours -1.0
                    }

                let back = Events.apply (Some later) late

                Expect.equal
                    (back.FirstRelease, back.LastRelease, back.Environment)
                    ("0.9.0", "1.1.0", "Production")
                    "an older batch changes only the first release"

                let resolved =
                    Triage.change
                        {
                            Status = GroupStatus.Resolved
                            IgnoreUntil = Nullable()
                            IgnoreCount = Nullable()
                        }
                        back

                let regressed =
                    Events.apply (Some resolved) (Events.single (event "1.2.0" "Production" (t0.AddHours 2.0)))

                Expect.equal regressed.RegressionRelease "1.2.0" "a regression notes the release it came back in"
                Expect.equal regressed.Status GroupStatus.Unresolved "unresolved again"
            }

            test "the list filters by release (first or last seen in) and by environment (last seen in)" {
                let g =
                    { group GroupStatus.Unresolved 1L with
                        FirstRelease = "1.0.0"
                        LastRelease = "1.2.0"
                        Environment = "Production"
                    }

                let q release environment =
                    { ListQuery.Unresolved with
                        Release = release
                        Environment = environment
                    }

                Expect.isTrue (Triage.selects (q null null) g) "no filter"
                Expect.isTrue (Triage.selects (q "1.0.0" null) g) "its first release"
                Expect.isTrue (Triage.selects (q "1.2.0" "Production") g) "its last release and environment"
                Expect.isFalse (Triage.selects (q "1.1.0" null) g) "a release between: not known to have it"
                Expect.isFalse (Triage.selects (q null "Staging") g) "another environment"
                Expect.isFalse (Triage.selects (q "1.2" null) g) "exact, not a prefix"
                Expect.equal (Triage.parseNameFilter (Some "  ")) None "blank: no filter"
                Expect.equal (Triage.parseNameFilter (Some " 1.2.0 ")) (Some "1.2.0") "trimmed"

                Expect.equal
                    (Triage.viewParameters (q "1.2.0+a b" "Production"))
                    "&status=unresolved&sort=lastSeen&release=1.2.0%2Ba%20b&environment=Production"
                    "carried by the view's links"
            }
        ]
