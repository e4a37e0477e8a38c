/// History through the app: occurrences counted in the hour they happened (across hours and days, also when
/// one pass of repeats spans an hour), the JSON series, the charts on the pages, and a deleted group leaving
/// the all-groups history.
module internal ErrorMonitor.Web.Tests.HistoryTests

open System
open System.Text.Json
open System.Text.RegularExpressions
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.Extensions.DependencyInjection
open Expecto
open ErrorMonitor
open ErrorMonitor.Core
open ErrorMonitor.Web.Stores
open ErrorMonitor.Web.Tests.TestApp
open ErrorMonitor.Web.Tests.StoreContractTests
open ErrorMonitor.Web.Tests.ReliabilityTests

let private routes (app: WebApplication) =
    app.MapGet(
        "/orders/{id}",
        Func<string, string>(fun id -> raise (InvalidOperationException(sprintf "order %s failed" id)))
    )
    |> ignore

/// The (start, count) series of the detail JSON's history.
let private series (root: JsonElement) (name: string) =
    [
        for b in root.GetProperty("history").GetProperty(name).EnumerateArray() ->
            DateTimeOffset.Parse(b.GetProperty("start").GetString()), b.GetProperty("count").GetInt64()
    ]

/// The `data-total` of the chart or sparkline whose class attribute starts with `cls`.
let private total (html: string) (cls: string) =
    let m =
        Regex.Match(html, sprintf "class=\"%s[^\"]*\"[^>]*data-total=\"(\\d+)\"" (Regex.Escape cls))

    if m.Success then int64 m.Groups.[1].Value else -1L

[<Tests>]
let tests =
    testSequenced
    <| testList
        "history"
        [
            testTask'
                "each occurrence counts in its own hour (a pass of repeats across an hour too); the series, the charts and the count agree"
            <| fun () ->
                task {
                    let t0 = DateTimeOffset(2026, 11, 29, 22, 30, 0, TimeSpan.Zero)
                    let clock = ManualClock(t0)

                    use! app =
                        start
                            [ "APP_ERROR_DETAILS_INTERVAL", "1h" ]
                            (fun s -> s.AddSingleton<TimeProvider>(clock).AddErrorMonitor() |> ignore)
                            (fun app ->
                                app.UseErrorMonitor() |> ignore
                                app.MapErrorMonitor() |> ignore
                                routes app)

                    let fail (n: int) =
                        task {
                            for i in 1..n do
                                let! r = app.Client.GetAsync(sprintf "/orders/%d" i)
                                r.Dispose()
                        }

                    // 22:30: 3, flushed; 23:59:59 and 00:00:01 (no flush between: one pass of repeats spans the
                    // hour): 2 and 4; then 01:30 the next day: 1.
                    do! fail 3
                    do! app.Monitor.FlushAsync()
                    clock.Advance(TimeSpan.FromMinutes 89.0 + TimeSpan.FromSeconds 59.0)
                    do! fail 2
                    clock.Advance(TimeSpan.FromSeconds 2.0)
                    do! fail 4
                    do! app.Monitor.FlushAsync()
                    clock.Advance(TimeSpan.FromMinutes 90.0)
                    do! fail 1
                    do! app.Monitor.FlushAsync()

                    let! all = records app.Store
                    Expect.equal (all |> List.map (fun r -> r.Count)) [ 10L ] "one group, ten occurrences"
                    let hash = all.Head.Hash

                    let! body = app.Client.GetStringAsync("/dev/error/api/errors/" + hash)
                    use doc = JsonDocument.Parse body
                    let hourly = series doc.RootElement "hourly"
                    let daily = series doc.RootElement "daily"

                    let now = clock.GetUtcNow()
                    Expect.equal hourly.Length 24 "24 hours"

                    Expect.equal
                        (hourly |> List.map fst)
                        [ for i in 23..-1..0 -> History.hourOf now - TimeSpan.FromHours(float i) ]
                        "every hour, oldest first, up to the current one"

                    let at (h: int) (d: int) =
                        hourly
                        |> List.find (fun (t, _) -> t = DateTimeOffset(2026, 11, d, h, 0, 0, TimeSpan.Zero))
                        |> snd

                    Expect.equal (at 22 29) 3L "22:00"
                    Expect.equal (at 23 29) 2L "23:00: the pass's repeats before the hour"
                    Expect.equal (at 0 30) 4L "00:00: the pass's repeats after it"
                    Expect.equal (at 1 30) 1L "01:00"
                    Expect.equal (hourly |> List.sumBy snd) 10L "the hours add up to the count"
                    Expect.equal daily.Length 30 "30 days"
                    Expect.equal (daily |> List.map snd |> List.rev |> List.take 2) [ 5L; 5L ] "today, yesterday"
                    Expect.equal (daily |> List.sumBy snd) 10L "the days add up to the count"

                    let! detail = app.Client.GetStringAsync("/dev/error/" + hash)
                    Expect.equal (total detail "chart group-hours") 10L "the detail's 24-hour chart"
                    Expect.equal (total detail "chart group-days") 10L "the detail's 30-day chart"
                    Expect.stringContains detail "10 occurrences in the last 24 hours; most (4) at 00:00 UTC." "summary"
                    Expect.stringContains detail "role=\"img\"" "charts are images with a name"

                    let! list = app.Client.GetStringAsync("/dev/error/")
                    Expect.equal (total list "chart all-hours") 10L "the list's 24-hour chart of all groups"
                    Expect.equal (total list "chart all-days") 10L "the list's 14-day chart"
                    Expect.equal (total list "spark") 10L "the row's sparkline"

                    let! deleted = app.Store.DeleteAsync(hash, Threading.CancellationToken.None)
                    Expect.isTrue deleted "deleted"
                    let! after = app.Client.GetStringAsync("/dev/error/")
                    Expect.equal (total after "chart all-hours") 0L "a deleted group leaves the all-groups history"
                }
        ]

/// An app whose groups are their paths (`/g/{n}`), with the pages.
let private groupsApp (settings: (string * string) list) (clock: TimeProvider option) =
    start
        settings
        (fun s ->
            match clock with
            | Some c -> s.AddSingleton<TimeProvider>(c) |> ignore
            | None -> ()

            s.AddErrorMonitor(fun o ->
                o.Fingerprint <-
                    Func<exn, Microsoft.AspNetCore.Http.HttpContext, string>(fun _ ctx ->
                        if isNull ctx then null else ctx.Request.Path.Value))
            |> ignore)
        (fun app ->
            app.UseErrorMonitor() |> ignore
            app.MapErrorMonitor() |> ignore

            app.MapGet("/g/{n}", Func<string, string>(fun n -> raise (InvalidOperationException("group " + n))))
            |> ignore)

let private paths (store: IErrorStore) =
    task {
        let! all = records store
        return all |> List.map (fun r -> r.Path) |> List.sort
    }

[<Tests>]
let retentionTests =
    testSequenced
    <| testList
        "retention"
        [
            testTask' "groups of one throw site told apart by the app's key are counted apart, repeats included"
            <| fun () ->
                task {
                    // One throw site, the app's key per path: each group's repeats are counted in place once its
                    // site is known (`ShapeKeys` compares the key too), never into another group of the site.
                    use! app = groupsApp [] None

                    for n in 1..3 do
                        for _ in 1..4 do
                            let! r = app.Client.GetAsync(sprintf "/g/%d" n)
                            r.Dispose()

                        do! app.Monitor.FlushAsync()

                    let! all = records app.Store

                    Expect.equal
                        (all |> List.map (fun r -> r.Path, r.Count) |> List.sort)
                        [ "/g/1", 4L; "/g/2", 4L; "/g/3", 4L ]
                        "each group its own four"
                }

            testTask'
                "pruning removes the least recently seen past APP_ERROR_MAX_GROUPS, then what was not seen for APP_ERROR_RETENTION; old hours become days"
            <| fun () ->
                task {
                    let clock = ManualClock(DateTimeOffset(2026, 11, 1, 10, 0, 0, TimeSpan.Zero))

                    use! app =
                        groupsApp
                            [ "APP_ERROR_RETENTION", "1h"; "APP_ERROR_MAX_GROUPS", "3" ]
                            (Some(clock :> TimeProvider))

                    let engine = app.Monitor.Engine

                    for n in 1..5 do
                        clock.Advance(TimeSpan.FromMinutes 1.0)
                        let! r = app.Client.GetAsync(sprintf "/g/%d" n)
                        r.Dispose()

                    do! app.Monitor.FlushAsync()
                    let! pruned = engine.PruneAsync Threading.CancellationToken.None
                    Expect.equal pruned.Groups 2 "two past the bound of three"
                    let! left = paths app.Store
                    Expect.equal left [ "/g/3"; "/g/4"; "/g/5" ] "the least recently seen went"

                    clock.Advance(TimeSpan.FromMinutes 61.0)
                    let! r = app.Client.GetAsync "/g/5"
                    r.Dispose()
                    do! app.Monitor.FlushAsync()
                    let! pruned = engine.PruneAsync Threading.CancellationToken.None
                    Expect.equal pruned.Groups 2 "two not seen for an hour"
                    let! left = paths app.Store
                    Expect.equal left [ "/g/5" ] "the one seen within the retention stays"

                    // Fifteen days on (the group seen now and then): its first hours are added to their day.
                    for _ in 1..15 do
                        clock.Advance(TimeSpan.FromDays 1.0)
                        let! r = app.Client.GetAsync "/g/5"
                        r.Dispose()
                        do! app.Monitor.FlushAsync()
                        let! _ = engine.PruneAsync Threading.CancellationToken.None
                        ()

                    let! all = records app.Store
                    let g = all.Head
                    Expect.equal g.Count 17L "every occurrence counted"
                    let! body = app.Client.GetStringAsync("/dev/error/api/errors/" + g.Hash)
                    use doc = JsonDocument.Parse body
                    Expect.equal (series doc.RootElement "daily" |> List.sumBy snd) 17L "the days still add up"
                    Expect.equal (series doc.RootElement "hourly" |> List.sumBy snd) 1L "the last 24 hours"

                    let! stored =
                        app.Store.HistoryAsync(
                            g.Hash,
                            clock.GetUtcNow().AddDays -30.0,
                            Threading.CancellationToken.None
                        )

                    Expect.isTrue
                        (stored.Hours
                         |> Array.forall (fun b -> b.Start >= History.hourlyKeptFrom (clock.GetUtcNow())))
                        "no hourly bucket older than the hourly span"

                    Expect.isNonEmpty stored.Days "older hours are daily buckets now"
                }

            testTask' "with a retention of 2 s, the background prunes a group within seconds of its last occurrence"
            <| fun () ->
                task {
                    use! app = groupsApp [ "APP_ERROR_RETENTION", "2s" ] None
                    let! r = app.Client.GetAsync "/g/1"
                    r.Dispose()
                    do! app.Monitor.FlushAsync()
                    let! first = paths app.Store
                    Expect.equal first [ "/g/1" ] "stored"

                    do!
                        waitUntil "the group is pruned" (fun () ->
                            task {
                                let! left = paths app.Store
                                return left.IsEmpty
                            })
                }

            testTask'
                "a long storm of new groups keeps the database bounded: the maximum plus a pass's worth and the queue's bound during it, the maximum after, the file within the documented size"
            <| fun () ->
                task {
                    let maxGroups = 300
                    let pending = 50
                    let recent = 3

                    use! app =
                        groupsApp
                            [
                                "APP_ERROR_MAX_GROUPS", string maxGroups
                                "APP_ERROR_MAX_PENDING_GROUPS", string pending
                                "APP_ERROR_SAMPLES_PER_GROUP", string recent
                                "APP_ERROR_DETAILS_INTERVAL", "0s"
                            ]
                            None

                    // Groups in the file (none before the writer made its table).
                    let groups () =
                        use c = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + app.DbPath)
                        c.Open()
                        use cmd = c.CreateCommand()
                        cmd.CommandText <- "SELECT count(*) FROM sqlite_master WHERE name = 'app_error'"

                        if (cmd.ExecuteScalar() :?> int64) = 0L then
                            0L
                        else
                            cmd.CommandText <- "SELECT count(*) FROM app_error"
                            cmd.ExecuteScalar() :?> int64

                    // 8,000 distinct groups, a hundred requests at a time, each group failing twice (two samples).
                    let mutable most = 0L

                    for wave in 0..79 do
                        let! _ =
                            Task.WhenAll
                                [
                                    for i in 0..99 ->
                                        task {
                                            for _ in 1..2 do
                                                let! r = app.Client.GetAsync(sprintf "/g/%d" (wave * 100 + i))
                                                r.Dispose()
                                        }
                                        :> Task
                                ]

                        most <- max most (groups ())

                    do! app.Monitor.FlushAsync()
                    do! waitUntil "pruning has caught up" (fun () -> Task.FromResult(groups () <= int64 maxGroups))

                    // The writer prunes after a batch once `newGroupsBeforePrune` new groups came since the last pass:
                    // before it, up to that many less one, plus one batch: with a journal, the journaled stage (at
                    // most the queue's bound) or spilled segments read back (about `Limits.spilledBatch`, at least
                    // 1,000 groups; here segments of a 50-ms append hold a few hundred at most).
                    let batch = max pending (ErrorMonitor.Core.Limits.spilledBatch pending false)

                    eprintfn
                        "retention storm: the file held at most %d groups (bound %d, batch %d)"
                        most
                        maxGroups
                        batch

                    Expect.isLessThanOrEqual
                        most
                        (int64 maxGroups
                         + ErrorMonitor.Core.Retention.newGroupsBeforePrune maxGroups
                         + int64 batch)
                        (sprintf
                            "during the storm: at most the maximum, the new groups before a pass, and one batch (%d)"
                            batch)

                    let! all = records app.Store
                    Expect.equal all.Length maxGroups "the maximum after it"

                    // The drain wrote batches read back from spilled segments without their search rows; the
                    // writer's catch-up indexed them once it had nothing else to write: none wait, the index agrees
                    // with the groups (FTS5's own check), and a search by a kept group's path finds it.
                    do!
                        waitUntil "the search index has caught up" (fun () ->
                            Task.FromResult(searchWaiting ("Data Source=" + app.DbPath) = 0L))

                    checkSearchIndex ("Data Source=" + app.DbPath)

                    for kept in all |> List.truncate 5 do
                        let! found =
                            app.Store.ListAsync(
                                { ListQuery.All with
                                    Search = kept.Path
                                },
                                0L,
                                maxGroups + 1,
                                Threading.CancellationToken.None
                            )

                        Expect.contains [ for r in found -> r.Hash ] kept.Hash (sprintf "a search for %s" kept.Path)

                    let dropped = app.Monitor.Engine.Queue.Dropped

                    Expect.isTrue
                        (all |> List.forall (fun r -> r.Count = 2L) || dropped > 0L)
                        "each kept group counted exactly (unless the queue was full and dropped, counted)"

                    // The documented bound: groups × (0.5 KB + 3 KB of users + 14 KB of history + samples × one
                    // sample), plus the all-groups history and the schema's own pages.
                    // One sample's size: the largest kept (a group that came in the storm's worst may have none:
                    // past the queue's bound on groups with details, a new group is kept without them).
                    let sample =
                        use c = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + app.DbPath)
                        c.Open()
                        use cmd = c.CreateCommand()

                        cmd.CommandText <-
                            "SELECT max(length(request_data) + length(traceback) + length(message)) FROM app_error_samples"

                        cmd.ExecuteScalar() :?> int64

                    Expect.isGreaterThan sample 100L "samples were kept"

                    let bound =
                        int64 maxGroups * (512L + 3072L + 14336L + int64 (recent + 1) * sample)
                        + 701L * 20L
                        + 256L * 1024L

                    Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools()

                    let size =
                        use c = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + app.DbPath)
                        c.Open()
                        use cmd = c.CreateCommand()
                        cmd.CommandText <- "PRAGMA wal_checkpoint(TRUNCATE); PRAGMA incremental_vacuum;"
                        cmd.ExecuteNonQuery() |> ignore
                        IO.FileInfo(app.DbPath).Length

                    Expect.isLessThanOrEqual size bound (sprintf "the file (%d bytes) within the bound (%d)" size bound)
                }

            testTask'
                "SQLite: a batch of 2,500 new groups over two hours keeps every hour exact, each group's and all groups' (their buckets go in more than one statement); a new file has 16-KB pages"
            <| fun () ->
                task {
                    let path = IO.Path.Combine(tempFolder (), "buckets.db")
                    let s = SqliteStore("Data Source=" + path, "app_error") :> IErrorStore
                    let ct = Threading.CancellationToken.None
                    do! s.InitializeAsync ct
                    let at = DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero)

                    // Group n: n % 3 + 1 occurrences in the first hour and, for odd n, 2 more in the second.
                    let batch =
                        [|
                            for n in 0..2499 ->
                                let first = int64 (n % 3 + 1)
                                let second = if n % 2 = 1 then 2L else 0L

                                let d =
                                    Events.single
                                        {
                                            Hash = Fingerprint.sha256Hex (sprintf "b%d" n)
                                            Host = "h"
                                            Path = sprintf "/b/%d" n
                                            Method = "GET"
                                            RequestData = "{}"
                                            ExceptionName = "E"
                                            Message = sprintf "m %d" n
                                            Traceback = "t"
                                            OccurredAt = at.AddMinutes 70.0
                                            Release = ""
                                            Environment = ""
                                            Project = ""
                                        }

                                { d with
                                    Count = first + second
                                    FirstAt = at
                                    Hours =
                                        Array.append
                                            (History.one at first)
                                            (if second > 0L then
                                                 History.one (at.AddHours 1.0) second
                                             else
                                                 [||])
                                }
                        |]

                    let! _ = s.UpsertAsync(batch, ct)

                    let hours (h: Bucket[]) =
                        h |> Array.map (fun b -> b.Start, b.Count) |> List.ofArray

                    let! all = s.HistoryAsync(null, at.AddDays -1.0, ct)

                    let firstTotal = batch |> Array.sumBy (fun d -> d.Hours.[0].Count)
                    let secondTotal = batch |> Array.sumBy (fun d -> d.Count - d.Hours.[0].Count)

                    Expect.equal
                        (hours all.Hours)
                        [ at, firstTotal; at.AddHours 1.0, secondTotal ]
                        "all groups: each hour the sum of the batch's"

                    for n in [ 0; 1; 999; 1000; 1001; 2498; 2499 ] do
                        let! one = s.HistoryAsync(batch.[n].Latest.Hash, at.AddDays -1.0, ct)
                        Expect.equal (hours one.Hours) (hours batch.[n].Hours) (sprintf "group %d's hours" n)

                    use c = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + path)
                    c.Open()
                    use cmd = c.CreateCommand()
                    cmd.CommandText <- "PRAGMA page_size;"
                    Expect.equal (Convert.ToInt64(cmd.ExecuteScalar())) 16384L "16-KB pages"
                    c.Close()
                    Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools()
                }

            testTask' "SQLite: a file that exists keeps its page size (4 KB here) and takes the store's tables"
            <| fun () ->
                task {
                    let path = IO.Path.Combine(tempFolder (), "old-pages.db")

                    do
                        use c = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + path)
                        c.Open()
                        use cmd = c.CreateCommand()
                        cmd.CommandText <- "PRAGMA page_size = 4096; CREATE TABLE other (x INTEGER);"
                        cmd.ExecuteNonQuery() |> ignore

                    Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools()
                    let s = SqliteStore("Data Source=" + path, "app_error") :> IErrorStore
                    let ct = Threading.CancellationToken.None
                    do! s.InitializeAsync ct

                    let d =
                        Events.single
                            {
                                Hash = Fingerprint.sha256Hex "old-pages"
                                Host = "h"
                                Path = "/old"
                                Method = "GET"
                                RequestData = "{}"
                                ExceptionName = "E"
                                Message = "m"
                                Traceback = "t"
                                OccurredAt = DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero)
                                Release = ""
                                Environment = ""
                                Project = ""
                            }

                    let! _ = s.UpsertAsync([| d |], ct)
                    let! stored = records s
                    Expect.equal (stored |> List.map (fun r -> r.Hash)) [ d.Latest.Hash ] "the group is stored"

                    use c = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + path)
                    c.Open()
                    use cmd = c.CreateCommand()
                    cmd.CommandText <- "PRAGMA page_size;"
                    Expect.equal (Convert.ToInt64(cmd.ExecuteScalar())) 4096L "its 4-KB pages"
                    c.Close()
                    Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools()
                }

            testTask' "a SQLite file shrinks when pruning removes most of its groups (incremental auto-vacuum)"
            <| fun () ->
                task {
                    let path = IO.Path.Combine(tempFolder (), "shrink.db")
                    let store = SqliteStore("Data Source=" + path, "app_error")
                    let s = store :> IErrorStore
                    let ct = Threading.CancellationToken.None
                    do! s.InitializeAsync ct
                    let at = DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero)

                    for b in 0..9 do
                        let batch =
                            [|
                                for i in 0..499 ->
                                    let n = b * 500 + i

                                    Events.single
                                        {
                                            Hash = Fingerprint.sha256Hex (string n)
                                            Host = "h"
                                            Path = sprintf "/p/%d" n
                                            Method = "GET"
                                            RequestData = String('d', 2000)
                                            ExceptionName = "E"
                                            Message = sprintf "m %d" n
                                            Traceback = String('t', 2000)
                                            OccurredAt = at.AddSeconds(float n)
                                            Release = "1.0.0"
                                            Environment = "Production"
                                            Project = ""
                                        }
                            |]

                        let! _ = s.UpsertAsync(batch, ct)
                        ()

                    let size () =
                        use c = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + path)
                        c.Open()
                        use cmd = c.CreateCommand()
                        cmd.CommandText <- "PRAGMA wal_checkpoint(TRUNCATE);"
                        cmd.ExecuteNonQuery() |> ignore
                        IO.FileInfo(path).Length

                    let before = size ()

                    let request =
                        Retention.request (at.AddSeconds 5000.0) (TimeSpan.FromDays 90.0) 10 0L

                    let mutable go = true

                    while go do
                        let! r = s.PruneAsync(request, ct)
                        go <- Retention.did r

                    let! left = records s
                    Expect.equal left.Length 10 "ten groups left"
                    let after = size ()
                    Expect.isLessThan after (before / 4L) (sprintf "the file shrank (%d bytes, then %d)" before after)
                    Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools()
                }
        ]
