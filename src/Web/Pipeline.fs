namespace ErrorMonitor.Web

open System
open System.Collections.Generic
open System.Threading
open System.Threading.Tasks
open Microsoft.Extensions.Logging
open ErrorMonitor
open ErrorMonitor.Core

/// Wakes one waiting loop: rings at most once until the loop has waited again.
type internal Doorbell() =
    let bell = new SemaphoreSlim(0, 1)

    /// Wakes the loop (if it is not woken already).
    member _.Ring() =
        try
            if bell.CurrentCount = 0 then
                bell.Release() |> ignore
        with :? SemaphoreFullException ->
            ()

    /// Waits for a ring or the timeout; true when it rang.
    member _.WaitAsync(timeout: TimeSpan, ct: CancellationToken) : Task<bool> = bell.WaitAsync(timeout, ct)

/// The bounded in-memory queue between the request thread and the writer. Repeats of one fingerprint
/// coalesce into one pending delta, so memory is bounded by the number of distinct pending groups: at most
/// `maxGroups` with details (request data and traceback), and ten times as many in all (the others hold a
/// hash, a few short fields and their counts).
type internal CaptureQueue(maxGroups: int, metrics: Metrics) =
    let gate = obj ()
    let mutable pending = Dictionary<string, GroupDelta>()
    let mutable enqueued = 0L
    let mutable dropped = 0L
    // Groups taken by the writer and not yet written or put back: they count toward the bounds too.
    let mutable inFlight = 0
    let mutable detailed = 0
    let mutable inFlightDetailed = 0
    let maxCountOnly = maxGroups * 10
    let doorbell = Doorbell()
    let ring () = doorbell.Ring()

    /// Adds `d` to what is pending for its group (under the gate); false when it was dropped. A new group past
    /// the bound on groups with details is kept without them (its count and times exact; a later occurrence
    /// brings the details); past ten times the bound, its occurrences are dropped and counted.
    let add (d: GroupDelta) =
        match pending.TryGetValue d.Latest.Hash with
        | true, existing ->
            if d.Detailed && not existing.Detailed then
                detailed <- detailed + 1

            pending.[d.Latest.Hash] <- Events.merge existing d
            enqueued <- enqueued + d.Count
            metrics.Coalesced.Add d.Count
            true
        | _ when pending.Count + inFlight >= maxCountOnly ->
            dropped <- dropped + d.Count
            metrics.Dropped.Add d.Count
            false
        | _ ->
            let kept =
                if d.Detailed && detailed + inFlightDetailed >= maxGroups then
                    Events.countOnly d.Latest d.Count d.FirstAt d.Latest.OccurredAt
                else
                    d

            if kept.Detailed then
                detailed <- detailed + 1

            pending.[d.Latest.Hash] <- kept
            enqueued <- enqueued + d.Count
            metrics.Coalesced.Add(d.Count - 1L)
            true

    /// Adds an occurrence; returns its sequence number, or None when the queue is full and it was dropped.
    member _.Enqueue(e: ErrorEvent) : int64 option =
        let result =
            lock gate (fun () -> if add (Events.single e) then Some enqueued else None)

        ring ()
        result

    /// Adds a batch of occurrences of one group coalesced before the queue (by throw site, on the request
    /// path); returns the sequence number of its last occurrence, or None when it was dropped.
    member _.EnqueueDelta(d: GroupDelta) : int64 option =
        let result = lock gate (fun () -> if add d then Some enqueued else None)
        ring ()
        result

    /// Takes everything pending, with the sequence number of the last occurrence it holds.
    member _.TakeAll() : GroupDelta list * int64 =
        lock gate (fun () ->
            if pending.Count = 0 then
                [], enqueued
            else
                let batch = List.ofSeq pending.Values
                pending <- Dictionary<string, GroupDelta>(pending.Count)
                inFlight <- batch.Length
                inFlightDetailed <- detailed
                detailed <- 0
                batch, enqueued)

    /// The batch last taken was written.
    member _.Written() =
        lock gate (fun () ->
            inFlight <- 0
            inFlightDetailed <- 0)

    /// Puts back a batch that could not be written, merging it with what came in meanwhile.
    member _.PutBack(batch: GroupDelta list) =
        lock gate (fun () ->
            inFlight <- 0
            inFlightDetailed <- 0

            for d in batch do
                match pending.TryGetValue d.Latest.Hash with
                | true, newer -> pending.[d.Latest.Hash] <- Events.merge d newer
                | _ -> pending.[d.Latest.Hash] <- d

            detailed <- pending.Values |> Seq.filter (fun d -> d.Detailed) |> Seq.length)

    /// A copy of what is pending (for the spill file).
    member _.Snapshot() : GroupDelta list =
        lock gate (fun () -> List.ofSeq pending.Values)

    /// Occurrences dropped because the queue was full.
    member _.Dropped = Interlocked.Read &dropped

    /// Distinct groups waiting to be written.
    member _.Length = lock gate (fun () -> pending.Count)

    /// Sequence number of the latest occurrence accepted.
    member _.LastSequence = lock gate (fun () -> enqueued)

    /// Distinct groups with details waiting to be written, in flight included (the bound's measure).
    member _.DetailedLength = lock gate (fun () -> detailed + inFlightDetailed)

    /// Waits until something is enqueued, or the timeout passes.
    member _.WaitAsync(timeout: TimeSpan, ct: CancellationToken) : Task<bool> = doorbell.WaitAsync(timeout, ct)

/// The spill file: what could not be written waits here for the next start. Saved whole, atomically
/// (a temp file renamed over it); removed once everything in it is written.
type internal SpillFile(path: string, logger: ILogger) =
    let gate = obj ()

    /// Its path.
    member _.Path = path

    /// True when it exists.
    member _.Exists = IO.File.Exists path

    /// Replaces its content with `pending`; deletes it when there is nothing pending.
    member _.Save(pending: GroupDelta list) =
        lock gate (fun () ->
            try
                if pending.IsEmpty then
                    if IO.File.Exists path then
                        IO.File.Delete path
                else
                    let dir = IO.Path.GetDirectoryName(IO.Path.GetFullPath path)
                    IO.Directory.CreateDirectory dir |> ignore
                    let temp = path + ".tmp"
                    PrivateFile.writeAllText temp (Spill.serialize pending)
                    IO.File.Move(temp, path, true)
            with ex ->
                Log.SpillFailed logger ex path)

    /// The pending groups it holds (empty when there is none).
    member _.Load() : GroupDelta list =
        lock gate (fun () ->
            try
                if IO.File.Exists path then
                    let groups, bad = Spill.parse (IO.File.ReadAllText path)

                    if bad > 0 then
                        Log.SpillLinesUnreadable logger bad path

                    groups
                else
                    []
            with ex ->
                Log.SpillUnreadable logger ex path

                [])

/// Writes what the queue holds to the store, in batches, retrying with backoff while the store fails; while
/// it fails, saves what is pending to the spill file every flush interval. Callers can wait until a given
/// occurrence is stored. `onWritten` gets each written batch with what the store reported of it.
type internal Writer
    (
        queue: CaptureQueue,
        metrics: Metrics,
        store: IErrorStore,
        logger: ILogger,
        onWritten: GroupDelta array -> IReadOnlyList<GroupWritten> -> unit,
        spill: SpillFile option,
        flushInterval: TimeSpan
    ) =
    let gate = obj ()
    let mutable stored = 0L
    let mutable initialized = false
    let waiters = List<int64 * TaskCompletionSource<unit>>()
    let mutable failures = 0
    let mutable spilledAt = -1L

    let release (upTo: int64) =
        let ready =
            lock gate (fun () ->
                stored <- max stored upTo
                let r = waiters |> Seq.filter (fun (s, _) -> s <= stored) |> List.ofSeq
                waiters.RemoveAll(fun (s, _) -> s <= stored) |> ignore
                r)

        for _, tcs in ready do
            tcs.TrySetResult() |> ignore

    /// Saves what is pending to the spill file, when anything came in since the last save.
    let saveSpill (force: bool) =
        match spill with
        | Some f ->
            let seen = queue.LastSequence

            if force || seen <> spilledAt then
                f.Save(queue.Snapshot())
                spilledAt <- seen
        | None -> ()

    /// Sequence number of the last occurrence known to be stored.
    member _.StoredUpTo = lock gate (fun () -> stored)

    /// Consecutive failed writes (0 when the store is healthy).
    member _.Failures = failures

    /// Completes when occurrence `sequence` is stored.
    member _.WaitStoredAsync(sequence: int64, ct: CancellationToken) : Task =
        let tcs =
            TaskCompletionSource<unit>(TaskCreationOptions.RunContinuationsAsynchronously)

        lock gate (fun () ->
            if sequence <= stored then
                tcs.TrySetResult() |> ignore
            else
                waiters.Add(sequence, tcs))

        tcs.Task.WaitAsync ct

    /// Saves what is pending to the spill file now (on stop).
    member _.Spill() = saveSpill true

    /// Writes one batch: everything pending now. Returns false when the store failed (the batch is kept).
    member _.FlushOnceAsync(ct: CancellationToken) : Task<bool> =
        task {
            let batch, upTo = queue.TakeAll()
            let started = Diagnostics.Stopwatch.GetTimestamp()

            try
                if not initialized then
                    do! store.InitializeAsync ct
                    initialized <- true

                let rows = Array.ofList batch

                if rows.Length > 0 then
                    let! written = store.UpsertAsync(rows :> IReadOnlyList<GroupDelta>, ct)
                    metrics.StoreLatency.Record(Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds)
                    metrics.Stored.Add(rows |> Array.sumBy (fun d -> d.Count))

                    try
                        onWritten rows written
                    with ex ->
                        Log.AfterWriteFailed logger ex

                if failures > 0 then
                    Log.StoreBack logger failures

                queue.Written()
                failures <- 0
                release upTo

                match spill with
                | Some f when f.Exists -> saveSpill true
                | _ -> ()

                return true
            with ex ->
                queue.PutBack batch
                failures <- failures + 1
                metrics.StoreFailures.Add 1L

                if failures = 1 || failures % 50 = 0 then
                    Log.StoreWriteFailed logger ex batch.Length failures

                saveSpill false
                return false
        }

    /// The writer loop: waits for occurrences, writes them; while the store fails, retries with backoff
    /// (100 ms doubling, at most 5 s) and keeps the spill file current every flush interval.
    member this.RunAsync(ct: CancellationToken) : Task =
        task {
            let mutable retryAt = DateTime.MinValue
            let mutable lastBatch = 0
            let mutable lastWrite = 0L
            let mutable lastDuration = TimeSpan.Zero

            while not ct.IsCancellationRequested do
                try
                    let! _ = queue.WaitAsync(flushInterval, ct)

                    if failures = 0 || DateTime.UtcNow >= retryAt then
                        // Writes are paced: at most one a flush interval (one a second while more than 1,000 groups
                        // fail at once), so a storm's repeats coalesce in memory and the store gets few, larger
                        // writes; a failure after a quiet spell is written at once.
                        if failures = 0 && queue.Length > 0 then
                            // ...and a slow store is given nine times its last write's duration to rest, so that
                            // writing takes at most a tenth of the writer's time.
                            let pace =
                                if lastBatch > 1000 then
                                    max (max flushInterval (TimeSpan.FromSeconds 1.0)) (lastDuration * 9.0)
                                else
                                    flushInterval

                            let since = Diagnostics.Stopwatch.GetElapsedTime lastWrite

                            if since < pace then
                                do! Task.Delay(pace - since, ct)

                        lastBatch <- queue.Length

                        if lastBatch > 0 then
                            lastWrite <- Diagnostics.Stopwatch.GetTimestamp()

                        let! ok = this.FlushOnceAsync ct

                        if lastBatch > 0 then
                            lastDuration <- Diagnostics.Stopwatch.GetElapsedTime lastWrite

                        if not ok then
                            let delay =
                                Limits.backoff (TimeSpan.FromMilliseconds 200.0) (TimeSpan.FromSeconds 5.0) failures

                            retryAt <- DateTime.UtcNow.Add delay
                    else
                        saveSpill false
                with
                | :? OperationCanceledException -> ()
                | ex -> Log.WriterFailed logger ex
        }
