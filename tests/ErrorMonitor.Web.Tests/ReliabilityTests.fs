/// Never lose an error, never break the app: outages, shutdown, bad input, limits, floods.
module internal ErrorMonitor.Web.Tests.ReliabilityTests

open System
open System.Collections.Generic
open System.Diagnostics
open System.Diagnostics.Metrics
open System.IO
open System.Net
open System.Net.Http
open System.Threading
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Http
open Microsoft.Data.Sqlite
open Microsoft.Extensions.DependencyInjection
open Expecto
open ErrorMonitor
open ErrorMonitor.Core
open ErrorMonitor.Web
open ErrorMonitor.Web.Stores
open ErrorMonitor.Web.Tests.TestApp
open ErrorMonitor.Web.Tests.DemoAppTests
open ErrorMonitor.Web.Tests.BrowseTests
open ErrorMonitor.Web.Tests.StoreContractTests

/// A real SQLite store whose writes fail while `Down` is set: a database that is away.
type FaultyStore(inner: IErrorStore) =
    inherit RelayStore(inner)
    member val Down = false with get, set

    override this.InitializeAsync ct =
        if this.Down then
            raise (IOException "store is down")
        else
            inner.InitializeAsync ct

    override this.UpsertAsync(batch, ct) =
        if this.Down then
            raise (IOException "store is down")
        else
            inner.UpsertAsync(batch, ct)

/// Waits for a condition, failing with `what` after 30 s.
let waitUntil (what: string) (condition: unit -> Task<bool>) =
    task {
        let sw = Stopwatch.StartNew()
        let mutable ok = false

        while not ok do
            let! c = condition ()
            ok <- c

            if not ok then
                if sw.Elapsed > TimeSpan.FromSeconds 30.0 then
                    failwithf "timed out waiting until %s" what

                do! Task.Delay 20
    }

/// Sum of counts of a store's groups, by exception name.
let countsByName (store: IErrorStore) =
    task {
        let! all = records store
        return all |> List.map (fun r -> r.ExceptionName, r.Count) |> List.sort
    }

let private sqliteIn (folder: string) =
    SqliteStore("Data Source=" + Path.Combine(folder, "errormonitor.db"), "app_error") :> IErrorStore

/// An app on a faulty SQLite store in `folder`.
let private faultyApp (folder: string option) (settings: (string * string) list) =
    task {
        let folder = defaultArg folder (tempFolder ())
        let store = FaultyStore(sqliteIn folder)

        let! app =
            start
                (settings
                 @ [ "APP_ERROR_SPILL_FILE", Path.Combine(folder, "errormonitor.spill.jsonl") ])
                (fun s -> s.AddErrorMonitor(fun o -> o.ErrorStore <- store) |> ignore)
                (fun app ->
                    app.UseErrorMonitor() |> ignore
                    app.MapErrorMonitor() |> ignore
                    app.MapHealthChecks("/health") |> ignore)

        return app, store, folder
    }

/// Stops `app` (gracefully) with its store down: the spill file in `folder` must hold what waited and nothing may
/// be written (`what` says why the file must be there); then starts an app with a healthy store on that folder.
/// Returns it, its store, and the spill file's path.
let private stopDownAndRestart (app: RunningApp) (folder: string) (what: string) =
    task {
        do! (app :> IAsyncDisposable).DisposeAsync()
        let spill = Path.Combine(folder, "errormonitor.spill.jsonl")
        Expect.isTrue (File.Exists spill) what
        let! before = records (sqliteIn folder)
        Expect.isEmpty before "nothing was written"
        let! (again: RunningApp), healthy, _ = faultyApp (Some folder) []
        return again, healthy, spill
    }

/// `count` occurrences of group `g` (its message "group g", at `g` seconds past 2026-01-01), without details.
let private journalDelta (g: int) (count: int64) : GroupDelta =
    let at = DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).AddSeconds(float g)

    {
        Latest =
            {
                Hash = Fingerprint.sha256Hex (string g)
                Host = "h"
                Path = "/p"
                Method = "GET"
                RequestData = "{}"
                ExceptionName = "E"
                Message = sprintf "group %d" g
                Traceback = ""
                OccurredAt = at
                Release = ""
                Environment = ""
                Project = ""
            }
        FirstAt = at
        Count = count
        Detailed = false
        Hours = History.one at count
        Users = [||]
    }

/// A queue of bound `bound` with a journal to spill to, in a folder of its own (deleted on dispose).
type private SpillFixture(bound: int) =
    let folder = Directory.CreateTempSubdirectory("errormonitor-spill").FullName
    let path = Path.Combine(folder, "journal.jsonl")
    let services = ServiceCollection().AddMetrics().BuildServiceProvider()
    let metrics = new Metrics(services.GetRequiredService<IMeterFactory>())
    let queue = CaptureQueue(bound, metrics, true)

    let journal =
        JournalFile(
            path,
            "spill",
            Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance,
            queue.Unstored,
            64L * 1024L * 1024L,
            Some queue
        )

    do journal.Open()

    member _.Path = path
    member _.Folder = folder
    member _.Queue = queue
    member _.Journal = journal
    member _.Metrics = metrics

    /// `count` occurrences of group `g` (its message "group g"), without details.
    member _.Delta (g: int) (count: int64) : GroupDelta = journalDelta g count

    /// One occurrence of each of `groups`, then an append (the next journal segment).
    member _.Append(groups: int seq) =
        for g in groups do
            queue.EnqueueDelta(journalDelta g 1L) |> ignore

        journal.AppendQueued()

    interface IDisposable with
        member _.Dispose() =
            journal.Close()
            (metrics :> IDisposable).Dispose()
            services.Dispose()
            Directory.Delete(folder, true)

[<Tests>]
let tests =
    testSequenced
    <| testList
        "reliability"
        [
            test
                "a journal growing through a long outage is compacted to what is not stored, and reads back exactly that" {
                let folder = Directory.CreateTempSubdirectory("errormonitor-journal").FullName
                let path = Path.Combine(folder, "journal.jsonl")
                let threshold = 16L * 1024L
                // The queue's view: what is journaled and not stored, by segment.
                let unstored = SortedDictionary<int64, GroupDelta list>()

                let delta (i: int) =
                    let d = journalDelta i (int64 i)

                    { d with
                        Latest =
                            { d.Latest with
                                Message = String('m', 400) + string i
                                Traceback = "t"
                                Release = "1.0.0"
                                Environment = "Production"
                            }
                        Detailed = true
                    }

                let journal =
                    JournalFile(
                        path,
                        "outage",
                        Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance,
                        (fun () -> [ for kv in unstored -> kv.Key, kv.Value ]),
                        threshold
                    )

                journal.Open()
                let mutable largest = 0L

                for i in 1..1000 do
                    journal.Append(fun segment ->
                        let groups = [ delta i ]
                        unstored.[segment] <- groups
                        groups)

                    // The store is down for the first 300 segments; then it stores all but the newest three.
                    if i > 300 then
                        for k in List.ofSeq unstored.Keys do
                            if k <= int64 (i - 3) then
                                unstored.Remove k |> ignore

                        journal.Stored(int64 (i - 3), true)

                    largest <- max largest (FileInfo(path).Length)

                journal.Close()
                // Bounded: never much more than twice what was not stored at the worst (300 segments of under
                // 800 bytes), and once the store keeps up, within the threshold (1,000 segments without compaction).
                Expect.isLessThan largest (2L * 300L * 800L + 16L * 1024L) "the file stays bounded through the outage"
                Expect.isLessThan (FileInfo(path).Length) (17L * 1024L) "once the store keeps up, the file is small"

                let reread =
                    JournalFile(
                        path,
                        "next",
                        Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance,
                        (fun () -> []),
                        threshold
                    )

                reread.Open()

                let content =
                    reread.Leftover |> Option.defaultWith (fun () -> failwith "no journal left")
                // The store's mark is 997: what a new process replays.
                let left = Journal.unstored 997L content |> List.map (fun d -> d.Count) |> List.sort
                Expect.equal left [ 998L; 999L; 1000L ] "exactly the segments not stored are replayed"
                Directory.Delete(folder, true)
            }

            test "spilled journal segments read back in order, and come back into memory when the journal cannot append" {
                use fixture = new SpillFixture(1)
                let queue = fixture.Queue
                let journal = fixture.Journal
                let path = fixture.Path
                let delta = fixture.Delta

                let counts (groups: GroupDelta seq) =
                    groups |> Seq.map (fun d -> d.Latest.Message, d.Count) |> Seq.sort |> List.ofSeq

                // Three groups: past the bound of one, the segment is held in the file only.
                for g in 1..3 do
                    queue.EnqueueDelta(delta g 1L) |> ignore

                journal.AppendQueued()
                Expect.isTrue queue.Spilling "the first segment spilled"
                Expect.equal queue.InMemory 0 "nothing of it in memory"
                Expect.equal queue.Length 3 "three groups wait"
                // A repeat of group 1 and a new group 4: spilled too (the journal is spilling).
                queue.EnqueueDelta(delta 1 2L) |> ignore
                queue.EnqueueDelta(delta 4 1L) |> ignore
                journal.AppendQueued()
                Expect.equal queue.InMemory 0 "the second segment is in the file only too"

                // The writer's read: the oldest segment, exactly as it was journaled.
                let first = queue.SpilledHead 1
                Expect.equal (first |> List.map (fun e -> e.Segment)) [ 1L ] "one segment for a budget of one group"

                match queue.TakeSpilled(first, journal.ReadSpilled first) with
                | ValueSome(struct (batch, top, _)) ->
                    Expect.equal top 1L "the batch holds segment 1"

                    Expect.equal
                        (counts batch)
                        [ "group 1", 1L; "group 2", 1L; "group 3", 1L ]
                        "segment 1 read back from the file"
                | ValueNone -> failtest "segment 1 was not taken"

                queue.Written()
                // The journal cannot append: what is still spilled comes back into memory, in order.
                queue.Unspill(fun entries ->
                    let content = Journal.parse (File.ReadAllText path)

                    content.Segments
                    |> List.filter (fun (k, _) -> entries |> List.exists (fun e -> e.Segment = k)))

                Expect.isFalse queue.Spilling "nothing spilled any more"

                match queue.TakeBatch() with
                | ValueSome(struct (batch, top, _)) ->
                    Expect.equal top 2L "the batch holds segment 2"
                    Expect.equal (counts batch) [ "group 1", 2L; "group 4", 1L ] "segment 2 back in memory"
                | ValueNone -> failtest "segment 2 did not come back"

                queue.Written()
                Expect.equal queue.Length 0 "everything taken"
            }

            test "lines longer than the journal's append buffer are written whole, spilled or not, and read back" {
                // A bound of 1,000 groups: a segment of more than 100 new groups spills.
                use fixture = new SpillFixture(1000)
                let queue = fixture.Queue

                let detailed (g: int) (traceback: int) =
                    let d = fixture.Delta g 1L

                    { d with
                        Latest =
                            { d.Latest with
                                Traceback = String('t', traceback) + "é"
                            }
                        Detailed = true
                    }

                // Lines of ~300 KB (past the append buffer and four times its size), ~40 KB and ~60 KB (about
                // where the buffer is written out), ~1.5 MB (past the buffer spilled segments are read back
                // through, 1 MB, so it grows; the lines before it end across that buffer's edge), and small ones.
                let size (g: int) =
                    match g % 100 with
                    | 1 when g > 200 -> 1_500_000
                    | 1 -> 300_000
                    | 2 -> 40_000
                    | 3 -> 60_000
                    | _ -> 10

                let tracebacks (groups: GroupDelta seq) =
                    groups |> Seq.map (fun d -> d.Latest.Traceback.Length) |> Seq.sort |> List.ofSeq

                // Segment 1 is journaled and held in memory (three new groups).
                for g in 1..3 do
                    queue.EnqueueDelta(detailed g (size g)) |> ignore

                fixture.Journal.AppendQueued()
                Expect.isFalse queue.Spilling "segment 1 is held"

                match queue.TakeBatch() with
                | ValueSome(struct (batch, _, _)) ->
                    Expect.equal (tracebacks batch) [ 40_001; 60_001; 300_001 ] "segment 1 in memory"
                | ValueNone -> failtest "segment 1 was not journaled"

                queue.Written()

                // Segment 2 spills: 101 new groups.
                for g in 101..201 do
                    queue.EnqueueDelta(detailed g (size g)) |> ignore

                fixture.Journal.AppendQueued()
                Expect.isTrue queue.Spilling "segment 2 spilled"

                // Groups 101, 102, 103 and 201 have the long lines; the other 97 small ones.
                let spilled =
                    List.sort ([ 300_001; 40_001; 60_001; 1_500_001 ] @ List.replicate 97 11)

                let head = queue.SpilledHead 1_000_000

                match queue.TakeSpilled(head, fixture.Journal.ReadSpilled head) with
                | ValueSome(struct (batch, top, _)) ->
                    Expect.equal top 2L "the batch holds segment 2"

                    Expect.equal (tracebacks batch) spilled "every spilled line read back whole"
                | ValueNone -> failtest "segment 2 was not read back"

                queue.Written()

                // The whole file, as a new process reads it: every line whole.
                let content = Journal.parse (File.ReadAllText fixture.Path)
                Expect.equal content.Bad 0 "no torn line"

                Expect.equal
                    (tracebacks (content.Segments |> List.map snd))
                    (List.sort ([ 300_001; 40_001; 60_001 ] @ spilled))
                    "both segments, all there"
            }

            test "two groups whose hashes share their first 16 characters stay apart in the queue and the journal" {
                // The queue's and the journal's sets hash a key by its first 16 characters (`GroupHashes`); keys are
                // still compared whole, so such groups are neither merged nor read back with each other's header.
                use fixture = new SpillFixture(1000)
                let queue = fixture.Queue
                let prefix = "0123456789abcdef"

                let delta (g: int) (count: int64) =
                    let d = fixture.Delta g count

                    { d with
                        Latest =
                            { d.Latest with
                                Hash = prefix + String((if g = 1 then 'a' else 'b'), 48)
                            }
                    }

                queue.EnqueueDelta(delta 1 2L) |> ignore
                queue.EnqueueDelta(delta 2 3L) |> ignore
                Expect.equal queue.Length 2 "two groups pending"
                fixture.Journal.AppendQueued()
                // Their repeats: short lines, each read back with its own group's whole line.
                queue.EnqueueDelta(delta 1 1L) |> ignore
                queue.EnqueueDelta(delta 2 1L) |> ignore
                fixture.Journal.AppendQueued()

                let content = Journal.parse (File.ReadAllText fixture.Path)
                Expect.equal content.Bad 0 "every line reads"

                let read =
                    content.Segments
                    |> List.map (fun (s, d) -> s, d.Latest.Message, d.Latest.Hash.[16], d.Count)
                    |> List.sort

                Expect.equal
                    read
                    [ 1L, "group 1", 'a', 2L; 1L, "group 2", 'b', 3L; 2L, "group 1", 'a', 1L; 2L, "group 2", 'b', 1L ]
                    "each segment's lines, each with its own group"

                Expect.equal
                    (File.ReadAllLines fixture.Path
                     |> Array.filter (fun l -> l.StartsWith "C ")
                     |> Array.length)
                    2
                    "the repeats took short lines"

                match queue.TakeBatch() with
                | ValueSome(struct (batch, _, _)) ->
                    Expect.equal
                        (batch |> List.map (fun d -> d.Latest.Message, d.Count) |> List.sort)
                        [ "group 1", 3L; "group 2", 4L ]
                        "each group's count"
                | ValueNone -> failtest "nothing to write"
            }

            test
                "the journaled stage holds repeats of groups written lately up to the bound, groups new to it up to a tenth: a storm of new groups spills past that" {
                // A bound of 1,000 groups: at most 100 new to the queue in the journaled stage.
                use fixture = new SpillFixture(1000)
                let queue = fixture.Queue

                let enqueue = fixture.Append

                // A hundred new groups: kept in memory.
                enqueue [ 1..100 ]
                Expect.isFalse queue.Spilling "100 new groups are held"
                Expect.equal queue.InMemory 100 "in memory"

                match queue.TakeBatch() with
                | ValueSome(struct (batch, _, _)) -> Expect.equal batch.Length 100 "written in one batch"
                | ValueNone -> failtest "nothing to write"

                queue.Written()

                // Their repeats do not count as new: with a hundred new ones, two hundred held, nothing spilled.
                enqueue [ 1..100 ]
                enqueue [ 101..200 ]
                Expect.isFalse queue.Spilling "repeats of written groups and 100 new ones are held"
                Expect.equal queue.InMemory 200 "all in memory"

                // One new group more than a tenth of the bound: the segment goes to the file only.
                enqueue [ 201 ]
                Expect.isTrue queue.Spilling "the 101st new group spills"
                Expect.equal queue.InMemory 200 "memory holds what it held"
                Expect.equal queue.Length 201 "all wait"
            }

            test
                "after a storm of new groups spills, repeats of known groups wait in memory too, and once the writer has read back what spilled before them the queue stops spilling without reading them back" {
                // A bound of 1,000 groups: at most 100 new to the queue in the journaled stage.
                use fixture = new SpillFixture(1000)
                let queue = fixture.Queue

                let enqueue = fixture.Append

                let counts (groups: GroupDelta seq) =
                    groups |> Seq.map (fun d -> d.Count) |> Seq.countBy id |> Seq.sort |> List.ofSeq

                // 101 new groups: segment 1 spills (in the file only).
                enqueue [ 1..101 ]
                Expect.isTrue queue.Spilling "the storm spilled"
                Expect.equal queue.Cached 0 "a segment of new groups is not cached"
                // Repeats of 50 of them, twice: segments 2 and 3, spilled (the queue is spilling) and cached.
                enqueue [ 1..50 ]
                enqueue [ 1..50 ]
                Expect.isTrue queue.Spilling "still spilling: segment 1 is not written"
                Expect.equal queue.Cached 50 "the repeats are held in memory as well, merged"
                Expect.equal queue.InMemory 50 "memory holds them"

                // The writer reads back only what is not cached: segment 1.
                let head = queue.SpilledHead 1_000_000
                Expect.equal (head |> List.map (fun e -> e.Segment)) [ 1L ] "only segment 1 is read back"

                match queue.TakeSpilled(head, fixture.Journal.ReadSpilled head) with
                | ValueSome(struct (batch, top, _)) ->
                    Expect.equal top 1L "the batch holds segment 1"
                    Expect.equal (counts batch) [ 1L, 101 ] "the storm's 101 groups, once each"
                | ValueNone -> failtest "segment 1 was not taken"

                queue.Written()
                Expect.isFalse queue.Spilling "with segment 1 taken, nothing is spilled any more"
                Expect.equal queue.Cached 0 "the cache became the journaled stage"

                match queue.TakeBatch() with
                | ValueSome(struct (batch, top, _)) ->
                    Expect.equal top 3L "the next batch holds segments 2 and 3"
                    Expect.equal (counts batch) [ 2L, 50 ] "50 groups, twice each"
                | ValueNone -> failtest "the cached segments were not journaled"

                queue.Written()
                Expect.equal queue.Length 0 "everything taken"
                // Repeats now go to memory, not the file.
                enqueue [ 1..50 ]
                Expect.isFalse queue.Spilling "repeats after that are held in memory"
            }

            testTask'
                "the writer stores a batch read back from spilled segments without its search rows, a batch from memory with its own, and indexes the rest when it has nothing else to write"
            <| fun () ->
                task {
                    // A bound of 1,000 groups: a segment of 101 new groups spills (a storm's drain).
                    use fixture = new SpillFixture(1000)
                    let db = "Data Source=" + Path.Combine(fixture.Folder, "errormonitor.db")
                    let store = SqliteStore(db, "app_error")
                    use turns = new SemaphoreSlim(1, 1)

                    let writer =
                        Writer(
                            fixture.Queue,
                            fixture.Metrics,
                            store,
                            turns,
                            (fun _ -> Task.CompletedTask),
                            Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance,
                            (fun _ _ -> ()),
                            Some fixture.Journal,
                            TimeSpan.FromMilliseconds 200.0,
                            TimeProvider.System,
                            (fun () -> 0L)
                        )

                    let flush () =
                        task {
                            let! ok = writer.FlushOnceAsync CancellationToken.None
                            Expect.isTrue ok "the write succeeded"
                        }

                    let stored () = countRows db "app_error"

                    fixture.Append [ 1..101 ]
                    Expect.isTrue fixture.Queue.Spilling "the storm spilled"
                    do! flush ()
                    Expect.equal (stored ()) 101L "the spilled segment is stored"
                    Expect.equal (searchWaiting db) 101L "read back from the file: stored without its search rows"

                    // Repeats of five waiting groups and three new groups: held in memory, written with the search
                    // rows of the groups it inserted (the newest), not the storm's.
                    fixture.Append([ 1..5 ] @ [ 1001..1003 ])
                    Expect.isFalse fixture.Queue.Spilling "held in memory"
                    do! flush ()
                    Expect.equal (stored ()) 104L "three more groups"
                    Expect.equal (searchWaiting db) 101L "the batch indexed its own three new groups"

                    // Nothing left to write: the writer's catch-up indexes the storm's groups.
                    Expect.isTrue (store :> ISearchBacklog).SearchBehind "the store says it is behind"
                    do! flush ()
                    Expect.equal (searchWaiting db) 0L "the catch-up indexed them"
                    Expect.isFalse (store :> ISearchBacklog).SearchBehind "the store says it has caught up"
                    checkSearchIndex db

                    let! found =
                        (store :> IErrorStore)
                            .ListAsync(
                                { ListQuery.All with
                                    Search = "group 7"
                                },
                                0L,
                                200,
                                CancellationToken.None
                            )

                    Expect.contains
                        [ for r in found -> r.Hash ]
                        (Fingerprint.sha256Hex "7")
                        "a search finds a storm's group"
                }

            test
                "a cache of spilled repeats that would pass the bound is dropped: its segments are read back from the file, exactly" {
                use fixture = new SpillFixture(1000)
                let queue = fixture.Queue

                let enqueue = fixture.Append

                enqueue [ 1..101 ]
                enqueue [ 1..50 ]
                Expect.equal queue.Cached 50 "segment 2 cached"
                // 101 groups new to the queue: past the bound with the cache; the cache is dropped.
                enqueue [ 201..301 ]
                Expect.equal queue.Cached 0 "the cache is dropped"
                Expect.equal queue.InMemory 0 "nothing held in memory"
                let head = queue.SpilledHead 1_000_000
                Expect.equal (head |> List.map (fun e -> e.Segment)) [ 1L; 2L; 3L ] "every segment is read back"

                match queue.TakeSpilled(head, fixture.Journal.ReadSpilled head) with
                | ValueSome(struct (batch, top, _)) ->
                    Expect.equal top 3L "the batch holds segments 1 to 3"

                    let total = batch |> List.sumBy (fun d -> d.Count)
                    Expect.equal batch.Length 202 "202 groups"
                    Expect.equal total 252L "252 occurrences: 101, 50 repeats, 101"
                | ValueNone -> failtest "nothing taken"

                queue.Written()
                Expect.isFalse queue.Spilling "nothing spilled any more"
            }

            testTask'
                "a queue past its bound keeps new groups without details and spills them to the journal, then counts exactly what it dropped, shows it, and keeps the rest"
            <| fun () ->
                task {
                    let droppedSeen = ref 0L
                    use listener = new MeterListener()

                    listener.InstrumentPublished <-
                        fun i l ->
                            if i.Meter.Name = "ErrorMonitor" && i.Name = "errormonitor.dropped" then
                                l.EnableMeasurementEvents i

                    listener.SetMeasurementEventCallback<int64>(fun _ v _ _ ->
                        Interlocked.Add(droppedSeen, v) |> ignore)

                    listener.Start()

                    let! (app: RunningApp), store, _ =
                        faultyApp None [ "APP_ERROR_MAX_PENDING_GROUPS", "1" ]

                    use _ = app
                    store.Down <- true

                    // One group with details, then 99 more without (a hundred times the bound in all, with a
                    // journal to spill to), then drops.
                    for e in distinctFailures 104 do
                        app.Monitor.RecordException e |> ignore

                    let engine = app.App.Services.GetRequiredService<Engine>()
                    Expect.equal engine.Queue.Dropped 4L "exactly four dropped"
                    Expect.equal droppedSeen.Value 4L "the dropped metric says four"
                    Expect.equal engine.Queue.DetailedLength 1 "one group with details pending"

                    // Past the bound, what is journaled is held in the journal file only: memory holds at most the
                    // bound journaled and a batch of it in flight.
                    do!
                        waitUntil "the queue spills to the journal" (fun () ->
                            Task.FromResult(engine.Queue.Spilling && engine.Queue.InMemory <= 2))

                    Expect.equal engine.Queue.Length 100 "all hundred wait"
                    do! waitUntil "the store's failure is seen" (fun () -> Task.FromResult(engine.Writer.Failures > 0))
                    use! health = app.Client.GetAsync "/health"

                    Expect.equal
                        health.StatusCode
                        HttpStatusCode.ServiceUnavailable
                        "the health check says the store fails"

                    let! page = app.Client.GetStringAsync "/dev/error"
                    Expect.stringContains page "4 occurrences were dropped" "the list page shows it"
                    store.Down <- false
                    do! app.Monitor.FlushAsync()
                    let! all = records store
                    Expect.equal all.Length 100 "the hundred kept groups are written"

                    Expect.equal
                        (all |> List.filter (fun r -> r.Traceback <> "") |> List.length)
                        1
                        "one of them with its details"

                    Expect.allEqual (all |> List.map (fun r -> r.Count)) 1L "each counted once"

                    // A group kept without details gets them from its next occurrence (once the queue has room).
                    let later = distinctFailures 104 |> List.item 40
                    let hash = app.Monitor.RecordException later
                    do! app.Monitor.FlushAsync()
                    let! again = records store
                    let group = again |> List.find (fun r -> r.Hash = hash)
                    Expect.equal group.Count 2L "its second occurrence counted"
                    Expect.stringContains group.Traceback "FormatException" "its details came with it"
                    Expect.equal again.Length 100 "no new group"
                    use! healthy = app.Client.GetAsync "/health"
                    Expect.equal healthy.StatusCode HttpStatusCode.OK "healthy again"
                }

            testTask' "graceful stop with the store down spills what is pending; the next start stores it exactly"
            <| fun () ->
                task {
                    let! (app: RunningApp), store, folder =
                        faultyApp None [ "APP_ERROR_SHUTDOWN_TIMEOUT", "1s" ]

                    store.Down <- true

                    for i in 1..3 do
                        app.Monitor.RecordException(InvalidOperationException(sprintf "a %d" i))
                        |> ignore

                    for i in 1..2 do
                        app.Monitor.RecordException(FormatException(sprintf "b %d" i)) |> ignore

                    let! again, healthy, spill =
                        stopDownAndRestart app folder "the spill file holds what was pending"

                    use _ = again

                    do!
                        waitUntil "the spilled occurrences are stored" (fun () ->
                            task {
                                let! counts = countsByName healthy

                                return
                                    counts = [ "System.FormatException", 2L; "System.InvalidOperationException", 3L ]
                            })

                    do! waitUntil "the spill file is gone" (fun () -> Task.FromResult(not (File.Exists spill)))
                }

            testTask'
                "graceful stop while the queue spills, with the store down: the journal keeps the spilled segments as they are; the next start stores each occurrence once"
            <| fun () ->
                task {
                    let! (app: RunningApp), store, folder =
                        faultyApp None [ "APP_ERROR_MAX_PENDING_GROUPS", "1"; "APP_ERROR_SHUTDOWN_TIMEOUT", "1s" ]

                    store.Down <- true
                    let engine = app.App.Services.GetRequiredService<Engine>()
                    // Each group twice (new exceptions of the same shapes: an exception is recorded once), the
                    // second pass once the first spills, so a group's occurrences lie in spilled segments of their
                    // own (a replay that took a segment twice, or skipped one, would count a group 1 or 3 times).
                    for e in distinctFailures 30 do
                        app.Monitor.RecordException e |> ignore

                    do! waitUntil "the queue spills" (fun () -> Task.FromResult engine.Queue.Spilling)
                    let firstPass = engine.Queue.Length

                    for e in distinctFailures 30 do
                        app.Monitor.RecordException e |> ignore

                    do!
                        waitUntil "the second pass is spilled too" (fun () ->
                            Task.FromResult(
                                engine.Queue.Spilling
                                && engine.Queue.Length > firstPass
                                && engine.Queue.InMemory <= 2
                            ))

                    let! again, healthy, spill =
                        stopDownAndRestart app folder "the journal holds what was spilled"

                    use _ = again

                    do!
                        waitUntil "the thirty groups are stored" (fun () ->
                            task {
                                let! all = records healthy
                                return all.Length = 30 && all |> List.forall (fun r -> r.Count >= 2L)
                            })

                    do! waitUntil "the spill file is gone" (fun () -> Task.FromResult(not (File.Exists spill)))
                    let! all = records healthy
                    Expect.allEqual (all |> List.map (fun r -> r.Count)) 2L "each group counted exactly twice"
                }

            testTask' "a locked SQLite file: failures keep coming, then every one is counted"
            <| fun () ->
                task {
                    let folder = tempFolder ()

                    use! app =
                        start [] (fun s -> s.AddErrorMonitor() |> ignore) (fun app ->
                            app.UseErrorMonitor() |> ignore

                            app.MapGet("/fail", Func<string>(fun () -> raise (InvalidOperationException "locked")))
                            |> ignore)

                    let! _ = app.Client.GetAsync "/fail"
                    do! app.Monitor.FlushAsync()
                    use locker = new SqliteConnection($"Data Source={app.DbPath}")
                    locker.Open()
                    use lockCmd = locker.CreateCommand()
                    lockCmd.CommandText <- "BEGIN EXCLUSIVE;"
                    lockCmd.ExecuteNonQuery() |> ignore

                    let! statuses =
                        Task.WhenAll
                            [
                                for _ in 1..199 ->
                                    task {
                                        use! r = app.Client.GetAsync "/fail"
                                        return r.StatusCode
                                    }
                            ]

                    Expect.allEqual statuses HttpStatusCode.InternalServerError "the app answers as it would"
                    use commit = locker.CreateCommand()
                    commit.CommandText <- "COMMIT;"
                    commit.ExecuteNonQuery() |> ignore
                    locker.Close()
                    do! app.Monitor.FlushAsync()
                    let! counts = countsByName app.Store
                    Expect.equal counts [ "System.InvalidOperationException", 200L ] "exactly 200"
                }

            testTask'
                "a database that was read-only for a while: writes recover without a restart, every occurrence counted"
            <| fun () ->
                task {
                    use! app =
                        start [] (fun s -> s.AddErrorMonitor() |> ignore) (fun app ->
                            app.UseErrorMonitor() |> ignore

                            app.MapGet("/fail", Func<string>(fun () -> raise (InvalidOperationException "read-only")))
                            |> ignore)

                    let! _ = app.Client.GetAsync "/fail"
                    do! app.Monitor.FlushAsync()

                    let chattr (flag: string) (file: string) =
                        use p = Process.Start("chattr", [ flag; file ])
                        p.WaitForExit()

                        Expect.equal
                            p.ExitCode
                            0
                            (sprintf "chattr %s %s (this test needs root on a file system with attributes)" flag file)

                    // The database file only: SQLite maps its -shm file, which must stay writable.
                    let files = [ app.DbPath ]

                    let health () =
                        task {
                            let! report =
                                app.App.Services
                                    .GetRequiredService<Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckService>()
                                    .CheckHealthAsync()

                            return report.Entries.["errormonitor"].Status
                        }

                    try
                        for f in files do
                            chattr "+i" f

                        // The writer's next connection opens the file as it is now: read-only.
                        SqliteConnection.ClearAllPools()

                        for _ in 1..9 do
                            let! _ = app.Client.GetAsync "/fail"
                            ()

                        do!
                            waitUntil "a write failed on the read-only database" (fun () ->
                                task {
                                    let! status = health ()

                                    return
                                        status = Microsoft.Extensions.Diagnostics.HealthChecks.HealthStatus.Unhealthy
                                })
                    finally
                        for f in files do
                            chattr "-i" f

                    use cts = new Threading.CancellationTokenSource(TimeSpan.FromSeconds 30.0)
                    do! app.Monitor.FlushAsync(cts.Token)
                    let! counts = countsByName app.Store
                    Expect.equal counts [ "System.InvalidOperationException", 10L ] "exactly 10, without a restart"
                }

            testTask' "after a hard kill with the database down, the next start stores what the spill file held"
            <| fun () ->
                task {
                    let folder = tempFolder ()
                    let table = "kill_" + Guid.NewGuid().ToString "N"

                    let envs =
                        [
                            "APP_ERROR_STORE", "postgres"
                            "ConnectionStrings__ErrorMonitor", postgres () + ";Timeout=2"
                            "APP_ERROR_TABLE", table
                        ]

                    let spill = Path.Combine(folder, "errormonitor.spill.jsonl")
                    use first = new DemoProcess(folder, envs)
                    do! first.WaitReadyAsync()
                    PostgresTests.shell "ERRORMONITOR_TEST_PG_STOP"

                    try
                        for _ in 1..50 do
                            use! r = first.Client.GetAsync "/value-error"
                            Expect.equal r.StatusCode HttpStatusCode.InternalServerError "fails as it would"

                        do!
                            waitUntil "the spill file holds all 50" (fun () ->
                                task {
                                    if not (File.Exists spill) then
                                        return false
                                    else
                                        try
                                            let content = Journal.parse (File.ReadAllText spill)

                                            return
                                                Journal.unstored content.Written content
                                                |> List.sumBy (fun d -> d.Count)
                                                    =
                                                    50L
                                        with :? IOException ->
                                            return false
                                })

                        first.Process.Kill()
                        first.Process.WaitForExit()
                    finally
                        PostgresTests.shell "ERRORMONITOR_TEST_PG_START"

                    use second = new DemoProcess(folder, envs)
                    do! second.WaitReadyAsync()
                    do! ErrorMonitor.Web.Tests.BrowserTests.waitForGroups second.Client "/dev/error" 1 50L
                    do! waitUntil "the spill file is gone" (fun () -> Task.FromResult(not (File.Exists spill)))
                }

            testTask'
                "hard kills at random moments during and after storms of new groups and of repeats: every occurrence answered a flush interval before the kill is stored, once"
            <| fun () ->
                task {
                    let n = 20000
                    let seed = Environment.TickCount
                    let random = Random seed

                    // Rounds 1-3: each request a group of its own (whole journal lines). Round 4: repeats of 3,000
                    // groups, known after their first occurrences (the journal's short count-only lines), killed
                    // once the journal holds short lines. A write that catches up empties the journal, and the
                    // writer caught up within the default 200 ms once its SQLite statements kept no statement
                    // journal, so short lines came rarely: this round writes at most once a second (its flush
                    // interval, and the margin it is judged by). Its bound is 40,000 groups, so the 3,000
                    // new groups fit the journaled stage's tenth of it and nothing spills (spilled segments are
                    // whole lines: with the default bound the first 3,000 spill, and the short lines may come only
                    // late in the storm, or after it, when the journal is gone).
                    let repeats = 3000

                    // Round 5: new groups again, with a bound of 300 groups in memory, so the journal holds most
                    // of the storm on its own (spilled segments, read back by the writer) when the kill comes.
                    for round, duringStorm, repeated, env in
                        [
                            1, true, false, []
                            2, false, false, []
                            3, true, false, []
                            4, true, true, [ "APP_ERROR_MAX_PENDING_GROUPS", "40000"; "APP_ERROR_FLUSH_INTERVAL", "1s" ]
                            5, true, false, [ "APP_ERROR_MAX_PENDING_GROUPS", "300" ]
                        ] do
                        // The round's flush interval (the default's 200 ms but in round 4): what was answered this
                        // long before a kill must survive it.
                        let margin = if repeated then 1000.0 else 200.0
                        let folder = tempFolder ()
                        use first = new DemoProcess(folder, env)
                        do! first.WaitReadyAsync()
                        let clock = Stopwatch.StartNew()
                        // When each request was answered (ms on `clock`), by its number.
                        let answered = Collections.Concurrent.ConcurrentDictionary<int, float>()
                        use gate = new SemaphoreSlim(64)
                        use killed = new CancellationTokenSource()

                        let storm =
                            Task.WhenAll
                                [
                                    for i in 1..n ->
                                        task {
                                            do! gate.WaitAsync()

                                            try
                                                try
                                                    let path =
                                                        if repeated then
                                                            sprintf "/group/storm-%d" (i % repeats)
                                                        else
                                                            sprintf "/group/storm-%d" i

                                                    use! r = first.Client.GetAsync(path, killed.Token)

                                                    if r.StatusCode = HttpStatusCode.InternalServerError then
                                                        answered.[i] <- clock.Elapsed.TotalMilliseconds
                                                with _ ->
                                                    ()
                                            finally
                                                gate.Release() |> ignore
                                        }
                                        :> Task
                                ]

                        if duringStorm then
                            // Somewhere between a quarter and three quarters of the way through.
                            let at = n / 4 + random.Next(n / 2)
                            do! waitUntil "the storm is under way" (fun () -> Task.FromResult(answered.Count >= at))

                            if repeated then
                                let journal = Path.Combine(folder, "errormonitor.spill.jsonl")

                                do!
                                    waitUntil "the journal holds count-only short lines" (fun () ->
                                        Task.FromResult(
                                            try
                                                File.Exists journal && File.ReadAllText(journal).Contains "\nC "
                                            with :? IOException ->
                                                false
                                        ))
                        else
                            do! storm
                            do! Task.Delay(random.Next 1000)

                        let killedAt = clock.Elapsed.TotalMilliseconds
                        first.Process.Kill()
                        first.Process.WaitForExit()
                        killed.Cancel()

                        try
                            do! storm
                        with _ ->
                            ()

                        let all = answered.ToArray()

                        let mustHave =
                            all
                            |> Array.filter (fun kv -> kv.Value < killedAt - margin)
                            |> Array.map (fun kv -> kv.Key)

                        Expect.isGreaterThan mustHave.Length 1000 "the storm was under way long enough to judge"


                        // A new process on the same folder replays the journal past the store's mark.
                        use second = new DemoProcess(folder, env)
                        do! second.WaitReadyAsync()
                        let store = sqliteIn folder

                        let group (r: ErrorRecord) =
                            r.Message.Replace("Failure of group storm-", "")

                        let mutable counts = Map.empty

                        // The group of request i, and how many requests of each group must be stored.
                        let groupOf (i: int) =
                            string (if repeated then i % repeats else i)

                        let needed = mustHave |> Array.countBy groupOf |> Map.ofArray

                        do!
                            waitUntil (sprintf "the %d answered before the kill are stored" mustHave.Length) (fun () ->
                                task {
                                    let! stored = records store
                                    counts <- stored |> List.map (fun r -> group r, r.Count) |> Map.ofList

                                    return
                                        needed
                                        |> Map.forall (fun g k ->
                                            match counts.TryFind g with
                                            | Some c -> c >= int64 k
                                            | None -> false)
                                })

                        do! second.StopAsync()

                        printfn
                            "hard kill, round %d (seed %d, %s): %d answered in %.0f ms, %d more than %.0f ms before the kill, %d stored"
                            round
                            seed
                            (if duringStorm then "during the storm" else "after it")
                            all.Length
                            killedAt
                            mustHave.Length
                            margin
                            counts.Count

                        if repeated then
                            // Every group at least what was answered of it before the kill (waited for above), and
                            // at most what was sent of it: a replay of what was stored would count it again.
                            let sent = [| 1..n |] |> Array.countBy groupOf |> Map.ofArray

                            for KeyValue(g, c) in counts do
                                Expect.isLessThanOrEqual
                                    c
                                    (int64 (sent.TryFind g |> Option.defaultValue 0))
                                    (sprintf "group storm-%s: no more than was sent" g)

                            Expect.isLessThanOrEqual counts.Count repeats "no invented groups"
                        else
                            // Each request is a group of its own: stored once, never twice (a replay of what was
                            // stored would count it again), and nothing that was not sent.
                            for KeyValue(g, c) in counts do
                                Expect.equal c 1L (sprintf "group storm-%s counted once" g)

                            Expect.isLessThanOrEqual counts.Count n "no invented groups"
                }

            testTask' "1,000,000 occurrences of 100 groups: exact counts, bounded memory"
            <| fun () ->
                task {
                    use! app =
                        start
                            []
                            (fun s ->
                                s.AddErrorMonitor(fun o ->
                                    o.Fingerprint <-
                                        Func<exn, HttpContext, string>(fun e _ ->
                                            if isNull e then null else e.Message))
                                |> ignore)
                            ignore

                    GC.Collect()
                    GC.WaitForPendingFinalizers()
                    let before = GC.GetTotalMemory true
                    let sw = Stopwatch.StartNew()

                    let work (from: int) =
                        Task.Run(fun () ->
                            for i in from..2..999_999 do
                                app.Monitor.RecordException(InvalidOperationException(sprintf "group %d" (i % 100)))
                                |> ignore)

                    do! Task.WhenAll [ work 0; work 1 ]
                    do! app.Monitor.FlushAsync()
                    let elapsed = sw.Elapsed
                    let after = GC.GetTotalMemory true
                    let! all = records app.Store
                    Expect.equal all.Length 100 "a hundred groups"
                    Expect.allEqual (all |> List.map (fun r -> r.Count)) 10_000L "ten thousand each, exactly"
                    let growth = float (after - before) / 1048576.0

                    printfn
                        "flood: 1,000,000 occurrences in %.1f s, managed memory growth %.1f MB"
                        elapsed.TotalSeconds
                        growth

                    Expect.isLessThan growth 50.0 "memory stays bounded"
                }
        ]
