namespace ErrorMonitor.Web

open System
open System.Buffers
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

/// Group hashes (SHA-256 in hex: their characters are spread evenly already) as keys of the queue's and the
/// journal's sets: hashed by their first 16 characters (64 bits), compared whole. Every occurrence passes
/// through several of these sets; hashing all 64 characters each time was a measurable part of its cost. A
/// shorter key is hashed whole.
type internal GroupHashes private () =
    static let instance = GroupHashes()

    /// The comparer.
    static member Comparer: IEqualityComparer<string> = instance

    /// A key's hash code.
    static member CodeOf(hash: string) =
        if isNull hash || hash.Length < 16 then
            StringComparer.Ordinal.GetHashCode hash
        else
            let w = Runtime.InteropServices.MemoryMarshal.Cast<char, uint64>(hash.AsSpan(0, 16))
            let h = (w.[0] * 0x9E3779B97F4A7C15UL) ^^^ (w.[1] * 0xC2B2AE3D27D4EB4FUL)
            let h = h ^^^ (w.[2] * 0x165667B19E3779F9UL) ^^^ (w.[3] * 0x27D4EB2F165667C5UL)
            int (h >>> 32) ^^^ int h

    interface IEqualityComparer<string> with
        member _.Equals(a, b) = String.Equals(a, b)
        member _.GetHashCode(hash) = GroupHashes.CodeOf hash

/// A journal segment held only in the journal file: where it is (bytes `Start` to `End`), how many groups (and
/// groups with details) it holds, and the sequence number of its last occurrence.
[<Struct>]
type internal SpilledSegment =
    {
        Segment: int64
        UpTo: int64
        Start: int64
        End: int64
        Groups: int
        Detailed: int
    }

/// The bounded in-memory queue between the request thread and the store, in three stages: *pending* (accepted),
/// *journaled* (appended to the journal, or just handed on when there is none) and *in flight* (the batch the
/// writer is writing: kept until it is written, and retried as it is). Repeats of one group coalesce within a
/// stage, so memory is bounded by the number of distinct groups: at most `maxGroups` with details (request data
/// and traceback), and ten times as many in all (the others hold a hash, a few short fields and their counts).
/// With a journal, a stage past `maxGroups` groups, or past `Limits.journaledNewGroups` groups the queue did not
/// write lately (new groups never coalesce: holding them buys nothing), is *spilled* (`Limits.journaledSpills`):
/// its segments are held in the journal file only (read back by the writer in order, a batch at a time), until
/// the writer has caught up with them (the newest spilled segments stay in memory as well while they fit in the
/// stage's bound, so once the writer has read back the ones before them, the queue stops spilling without reading
/// them back); so a storm of new groups costs memory for a tenth of `maxGroups` of them,
/// not for all; new groups are dropped only past a hundred times `maxGroups` waiting in all (`spills`: the queue
/// has a journal to spill to), or past ten times while there is no journal or it cannot be written (all of them
/// wait in memory then).
type internal CaptureQueue(maxGroups: int, metrics: Metrics, spills: bool) =
    let gate = obj ()
    let mutable pending = Dictionary<string, GroupDelta>(GroupHashes.Comparer)
    let mutable journaled = Dictionary<string, GroupDelta>(GroupHashes.Comparer)
    // The last journal segment `journaled` holds, and the sequence number of its last occurrence.
    let mutable journaledTop = 0L
    let mutable journaledUpTo = 0L
    let mutable inFlight: GroupDelta list = []
    let mutable inFlightCount = 0
    let mutable inFlightDetailed = 0
    let mutable inFlightTop = 0L
    let mutable inFlightUpTo = 0L
    // Groups with details in `pending` and `journaled`.
    let mutable detailed = 0
    let mutable enqueued = 0L
    let mutable dropped = 0L
    // Segments held in the journal file only, oldest first (all newer than what `journaled` holds), and their
    // groups; the groups of the segment being appended to the file only, until the append is done.
    let spilled = Queue<SpilledSegment>()
    let mutable spilledGroups = 0
    let mutable holding: GroupDelta list = []
    let mutable holdingSegment = 0L
    let mutable holdingUpTo = 0L
    // Whether the journal could take the last segment (it spills when need be).
    let mutable spillable = spills
    let arrived = Doorbell()
    let ready = Doorbell()
    // Groups the queue wrote lately (their hashes' hash codes, so the sets hold no strings): the last batches' up
    // to `maxGroups` in `writtenNow`, the ones before in `writtenBefore` (a collision only takes a new group for a
    // known one). The journaled stage holds at most `Limits.journaledNewGroups` groups not among them.
    let mutable writtenNow = HashSet<int>()
    let mutable writtenBefore = HashSet<int>()
    let mutable journaledNew = 0
    // The newest spilled segments (from `cacheFrom` on) merged in memory as well, while they fit with the journaled
    // stage within its bound, and their groups new to the queue. Once the writer has read back every segment
    // spilled before them, they become the journaled stage without being read back, and the queue stops
    // spilling: after a storm of new groups, repeats of known ones go back to memory instead of keeping the
    // queue spilling (each segment to the file and back) for as long as they keep coming.
    let mutable cache = Dictionary<string, GroupDelta>(GroupHashes.Comparer)
    let mutable cacheFrom = 0L
    let mutable cacheNew = 0

    let codeOf (hash: string) = GroupHashes.CodeOf hash

    let isKnown (hash: string) =
        let c = codeOf hash
        writtenNow.Contains c || writtenBefore.Contains c

    let remember (groups: GroupDelta list) =
        for d in groups do
            if writtenNow.Count >= maxGroups then
                // The two sets take turns (cleared, not made anew: no large array a turn).
                let older = writtenBefore
                writtenBefore <- writtenNow
                older.Clear()
                writtenNow <- older

            writtenNow.Add(codeOf d.Latest.Hash) |> ignore

    /// Groups held in memory.
    let total () =
        pending.Count + journaled.Count + inFlightCount + holding.Length

    /// Whether the journaled stage is spilled (under the gate): new segments go to the file only.
    let spilling () =
        spilled.Count > 0 || not holding.IsEmpty

    /// Whether the journaled stage, with `extra` (and `extraNew` of its groups new to the queue) and `groups`,
    /// stays within its bound (under the gate).
    let fitsWith (extra: Dictionary<string, GroupDelta>) (extraNew: int) (groups: GroupDelta list) =
        let mutable all = journaled.Count + extra.Count
        let mutable fresh = journaledNew + extraNew

        for d in groups do
            let h = d.Latest.Hash

            if not (journaled.ContainsKey h) && not (extra.ContainsKey h) then
                all <- all + 1

                if not (isKnown h) then
                    fresh <- fresh + 1

        not (Limits.journaledSpills maxGroups all fresh)

    let noExtra = Dictionary<string, GroupDelta>(GroupHashes.Comparer)

    let dropCache () =
        if cache.Count > 0 then
            cache <- Dictionary<string, GroupDelta>(GroupHashes.Comparer)

        cacheFrom <- 0L
        cacheNew <- 0

    /// How many of `groups` have details.
    let detailedIn (groups: GroupDelta list) =
        groups |> List.sumBy (fun d -> if d.Detailed then 1 else 0)

    /// Fewer groups with details wait than the bound (under the gate).
    let room () = detailed + inFlightDetailed < maxGroups

    /// Adds `d`, a group not pending (under the gate); false when it was dropped.
    let addNew (d: GroupDelta) =
        if total () + spilledGroups >= Limits.waitingGroups maxGroups spillable then
            dropped <- dropped + d.Count
            metrics.Dropped.Add d.Count
            false
        else
            let kept =
                if d.Detailed && not (room ()) then
                    Events.countOnly d.Latest d.Count d.FirstAt d.Latest.OccurredAt d.Hours d.Users
                else
                    d

            if kept.Detailed then
                detailed <- detailed + 1

            pending.[d.Latest.Hash] <- kept
            enqueued <- enqueued + d.Count
            metrics.Coalesced.Add(d.Count - 1L)
            true

    /// Adds `d` to what is pending for its group (under the gate); false when it was dropped. A new group past
    /// the bound on groups with details is kept without them (its count and times exact; a later occurrence
    /// brings the details); past the bound on groups waiting, its occurrences are dropped and counted.
    let add (d: GroupDelta) =
        // A repeat (the common case) is merged in its slot: one lookup.
        let slot =
            &Runtime.InteropServices.CollectionsMarshal.GetValueRefOrNullRef(pending, d.Latest.Hash)

        if not (Runtime.CompilerServices.Unsafe.IsNullRef &slot) then
            if d.Detailed && not slot.Detailed then
                detailed <- detailed + 1

            slot <- Events.merge slot d
            enqueued <- enqueued + d.Count
            metrics.Coalesced.Add d.Count
            true
        else
            addNew d

    /// Merges `d` into `stage` by group (Core's rule); returns the group's delta there before, if it had one.
    let mergeInto (stage: Dictionary<string, GroupDelta>) (d: GroupDelta) : GroupDelta voption =
        // One lookup: the group's slot, added when it had none.
        let mutable had = false

        let slot =
            &Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(stage, d.Latest.Hash, &had)

        if had then
            let existing = slot
            slot <- Events.merge existing d
            ValueSome existing
        else
            slot <- d
            ValueNone

    /// Merges `d` (counted in `detailed` already when it has details) into the journaled stage.
    let journal (d: GroupDelta) =
        match mergeInto journaled d with
        | ValueSome existing ->
            if existing.Detailed && d.Detailed then
                detailed <- detailed - 1
        | ValueNone ->
            if not (isKnown d.Latest.Hash) then
                journaledNew <- journaledNew + 1

    /// When every spilled segment is cached, the cache becomes the journaled stage (under the gate): nothing is
    /// spilled any more.
    let settle () =
        if cache.Count > 0 && spilled.Count > 0 && spilled.Peek().Segment = cacheFrom then
            let entries = List.ofSeq spilled
            let last = List.last entries
            spilled.Clear()
            spilledGroups <- 0
            // Counted a segment at a time while spilled; a group at a time in the journaled stage.
            detailed <- detailed - (entries |> List.sumBy (fun e -> e.Detailed))

            for d in cache.Values do
                if d.Detailed then
                    detailed <- detailed + 1

                journal d

            journaledTop <- max journaledTop last.Segment
            journaledUpTo <- max journaledUpTo last.UpTo
            dropCache ()
            true
        else
            false

    /// Adds an occurrence (of `users`: its user's key, if any); returns its sequence number, or None when the
    /// queue is full and it was dropped.
    member _.Enqueue(e: ErrorEvent, users: string[]) : int64 option =
        let result =
            lock gate (fun () ->
                if add { Events.single e with Users = users } then
                    Some enqueued
                else
                    None)

        arrived.Ring()
        result

    /// Adds a batch of occurrences of one group coalesced before the queue (by throw site, on the request
    /// path); returns the sequence number of its last occurrence, or None when it was dropped.
    member _.EnqueueDelta(d: GroupDelta) : int64 option =
        let result = lock gate (fun () -> if add d then Some enqueued else None)
        arrived.Ring()
        result

    /// Adds batches of occurrences (`EnqueueDelta`'s) under one turn of the lock; returns those dropped.
    member _.EnqueueDeltas(ds: GroupDelta[]) : GroupDelta list =
        let result =
            lock gate (fun () ->
                let mutable lost = []

                for d in ds do
                    if not (add d) then
                        lost <- d :: lost

                lost)

        arrived.Ring()
        result

    /// Moves everything pending to the journaled stage as journal segment `segment`; returns what it moved (in
    /// the order to append it), empty when nothing was pending.
    member this.Journal(segment: int64) : GroupDelta list =
        let struct (moved, _) = this.Journal(segment, false)
        moved

    /// Takes everything pending as journal segment `segment`; returns it (in the order to append it; empty when
    /// nothing was pending) and whether it is spilled. When `canSpill` (a journal that appends) and the journaled
    /// stage would pass the bound, or is spilled already, it is not kept: the caller appends it and calls
    /// `Spilled` when the append is done (`Unspill` when it failed). Else it moves to the journaled stage.
    member _.Journal(segment: int64, canSpill: bool) : struct (GroupDelta list * bool) =
        let result =
            lock gate (fun () ->
                spillable <- spills && canSpill

                if pending.Count = 0 then
                    struct ([], false)
                else
                    let moved = List.ofSeq pending.Values
                    pending <- Dictionary<string, GroupDelta>(pending.Count, GroupHashes.Comparer)

                    // Whether the journaled stage would pass its bound with this segment (repeats merge into theirs).
                    let wouldHold () = not (fitsWith noExtra 0 moved)

                    if canSpill && (spilling () || wouldHold ()) then
                        holding <- moved
                        holdingSegment <- segment
                        holdingUpTo <- enqueued
                        struct (moved, true)
                    else
                        for d in moved do
                            journal d

                        journaledTop <- segment
                        journaledUpTo <- enqueued
                        struct (moved, false))

        match result with
        | struct (moved, false) when not moved.IsEmpty -> ready.Ring()
        | _ -> ()

        result

    /// The segment taken with `Journal(segment, true)` is in the file, bytes `start` to `end`.
    /// When nothing spilled before it is left (the writer took it meanwhile) and it fits, it joins the journaled
    /// stage (whole lines in the file, like any other segment's); else it is spilled, and cached as well while the
    /// cache of the newest spilled segments and the journaled stage stay within the stage's bound together (a
    /// cache starts with a segment whose groups all came lately; past the bound it is dropped). Its groups count
    /// as known from now on: their repeats coalesce.
    member _.Spilled(segment: int64, start: int64, finish: int64) =
        lock gate (fun () ->
            if spilled.Count = 0 && fitsWith noExtra 0 holding then
                for d in holding do
                    journal d

                journaledTop <- max journaledTop segment
                journaledUpTo <- max journaledUpTo holdingUpTo
            else
                spilled.Enqueue
                    {
                        Segment = segment
                        UpTo = holdingUpTo
                        Start = start
                        End = finish
                        Groups = holding.Length
                        Detailed = detailedIn holding
                    }

                spilledGroups <- spilledGroups + holding.Length

                // A cache starts with a segment of repeats only (a storm's segments of new groups never start one).
                let starts () =
                    holding |> List.forall (fun d -> isKnown d.Latest.Hash)

                if (cache.Count > 0 || starts ()) && fitsWith cache cacheNew holding then
                    if cache.Count = 0 then
                        cacheFrom <- segment

                    for d in holding do
                        if (mergeInto cache d).IsNone && not (isKnown d.Latest.Hash) then
                            cacheNew <- cacheNew + 1
                else
                    dropCache ()

                // Their repeats are not new to the queue (they coalesce), though not written yet.
                remember holding

            holding <- [])

        ready.Ring()

    /// The journal cannot append (an append failed): the segments still spilled come back into the journaled
    /// stage (`readBack` reads their groups from the file), then the segment being appended, if any.
    member _.Unspill(readBack: SpilledSegment list -> (int64 * GroupDelta) list) =
        let entries =
            lock gate (fun () ->
                // Read back from the file with the rest.
                dropCache ()
                List.ofSeq spilled)

        let back = if entries.IsEmpty then [] else readBack entries

        lock gate (fun () ->
            // The writer may have taken the oldest meanwhile: what is still spilled comes back.
            let still = List.ofSeq spilled

            let from =
                match still with
                | e :: _ -> e.Segment
                | [] -> Int64.MaxValue

            spilled.Clear()
            spilledGroups <- 0
            detailed <- detailed - (still |> List.sumBy (fun e -> e.Detailed))

            for d in back |> List.filter (fun (k, _) -> k >= from) |> Journal.merged do
                if d.Detailed then
                    detailed <- detailed + 1

                journal d

            // Counted in `detailed` when they were added.
            for d in holding do
                journal d

            match still with
            | [] -> ()
            | _ ->
                let last = List.last still
                journaledTop <- max journaledTop last.Segment
                journaledUpTo <- max journaledUpTo last.UpTo

            if not holding.IsEmpty then
                journaledTop <- max journaledTop holdingSegment
                journaledUpTo <- max journaledUpTo holdingUpTo
                holding <- [])

        ready.Ring()

    /// The oldest spilled segments not cached, as many as hold about `budget` groups (at least one); empty when
    /// none (when all that is spilled is cached, it becomes the journaled stage).
    member _.SpilledHead(budget: int) : SpilledSegment list =
        let result =
            lock gate (fun () ->
                if settle () then
                    struct ([], true)
                else
                    let mutable sum = 0

                    let head =
                        spilled
                        |> Seq.takeWhile (fun e ->
                            let take =
                                (cache.Count = 0 || e.Segment < cacheFrom)
                                && (sum = 0 || sum + e.Groups <= budget)

                            sum <- sum + e.Groups
                            take)
                        |> List.ofSeq

                    struct (head, false))

        match result with
        | struct (head, settled) ->
            if settled then
                ready.Ring()

            head

    /// Makes the groups read back from the spilled segments `entries` (the oldest, from `SpilledHead`) the batch
    /// in flight; ValueNone when they are no longer spilled (brought back into memory meanwhile).
    member _.TakeSpilled
        (entries: SpilledSegment list, groups: GroupDelta list)
        : struct (GroupDelta list * int64 * int64) voption =
        lock gate (fun () ->
            match entries with
            | first :: _ when
                inFlightCount = 0
                && spilled.Count >= entries.Length
                && spilled.Peek().Segment = first.Segment
                ->
                for _ in entries do
                    spilled.Dequeue() |> ignore

                let last = List.last entries
                spilledGroups <- spilledGroups - (entries |> List.sumBy (fun e -> e.Groups))
                let det = entries |> List.sumBy (fun e -> e.Detailed)
                detailed <- detailed - det
                inFlight <- groups
                inFlightCount <- groups.Length
                inFlightDetailed <- det
                inFlightTop <- last.Segment
                inFlightUpTo <- last.UpTo

                // Cached segments read back from the file instead (not from `SpilledHead`) are not cached any
                // more; when what is left is all cached, it becomes the journaled stage.
                if cache.Count > 0 && last.Segment >= cacheFrom then
                    dropCache ()

                settle () |> ignore
                ValueSome(struct (inFlight, inFlightTop, inFlightUpTo))
            | _ -> ValueNone)

    /// Puts groups read back from the journal into the journaled stage (never dropped): they hold segments up to
    /// `top`, all older than any this process journaled.
    member _.Restore(groups: GroupDelta list, top: int64) =
        lock gate (fun () ->
            for d in groups do
                if d.Detailed then
                    detailed <- detailed + 1

                journal d

            journaledTop <- max journaledTop top)

        ready.Ring()

    /// The batch to write: the one in flight when its write failed (retried as it is, so a store that keeps the
    /// journal's mark can tell whether it was written after all), else everything journaled, which becomes the
    /// batch in flight. With the last journal segment and the last sequence number it holds.
    member _.TakeBatch() : struct (GroupDelta list * int64 * int64) voption =
        lock gate (fun () ->
            if inFlightCount > 0 then
                ValueSome(struct (inFlight, inFlightTop, inFlightUpTo))
            elif journaled.Count = 0 then
                ValueNone
            else
                inFlight <- List.ofSeq journaled.Values
                inFlightCount <- journaled.Count
                inFlightDetailed <- detailedIn inFlight
                detailed <- detailed - inFlightDetailed
                inFlightTop <- journaledTop
                inFlightUpTo <- journaledUpTo
                journaled <- Dictionary<string, GroupDelta>(GroupHashes.Comparer)
                journaledNew <- 0
                ValueSome(struct (inFlight, inFlightTop, inFlightUpTo)))

    /// The batch in flight was written.
    member _.Written() =
        lock gate (fun () ->
            remember inFlight
            inFlight <- []
            inFlightCount <- 0
            inFlightDetailed <- 0)

    /// What is journaled and not stored, by segment: the batch in flight (up to its segment), then the rest.
    member _.Unstored() : (int64 * GroupDelta list) list =
        lock gate (fun () ->
            [
                if inFlightCount > 0 then
                    inFlightTop, inFlight
                if journaled.Count > 0 then
                    journaledTop, List.ofSeq journaled.Values
            ])

    /// Whether a new group's details would be kept: while fewer groups with details than the bound wait.
    member _.KeepsDetails = lock gate room

    /// Whether an occurrence of group `hash` with details would keep them: while fewer groups with details than
    /// the bound wait, or when the group waits without them (its details are taken, as `add` does).
    member _.KeepsDetailsOf(hash: string) =
        lock gate (fun () ->
            room ()
            || (match pending.TryGetValue hash with
                | true, d -> not d.Detailed
                | _ -> false))

    /// Occurrences dropped because the queue was full.
    member _.Dropped = Interlocked.Read &dropped

    /// Distinct groups waiting to be written (all stages; those spilled counted a segment at a time).
    member _.Length = lock gate (fun () -> total () + spilledGroups)

    /// Distinct groups journaled and not written (the next batch's size; those spilled counted a segment at a time).
    member _.BatchLength =
        lock gate (fun () -> journaled.Count + inFlightCount + spilledGroups)

    /// How many groups the writer reads back from spilled segments for a batch (about), while failures keep
    /// coming (`failing`) or not.
    member _.SpilledBatch(failing: bool) = Limits.spilledBatch maxGroups failing

    /// Distinct groups held in memory (all stages but what is spilled; cached spilled groups included).
    member _.InMemory = lock gate (fun () -> total () + cache.Count)

    /// Distinct groups of spilled segments held in memory as well (the newest ones, while they fit).
    member _.Cached = lock gate (fun () -> cache.Count)

    /// Whether segments are held in the journal file only (or one is being appended there).
    member _.Spilling = lock gate spilling

    /// Sequence number of the latest occurrence accepted.
    member _.LastSequence = lock gate (fun () -> enqueued)

    /// Distinct groups with details waiting to be written, in flight included (the bound's measure).
    member _.DetailedLength = lock gate (fun () -> detailed + inFlightDetailed)

    /// Waits until something is enqueued, or the timeout passes.
    member _.WaitArrivedAsync(timeout: TimeSpan, ct: CancellationToken) : Task<bool> = arrived.WaitAsync(timeout, ct)

    /// Waits until something is journaled, or the timeout passes.
    member _.WaitReadyAsync(timeout: TimeSpan, ct: CancellationToken) : Task<bool> = ready.WaitAsync(timeout, ct)

/// The journal, at the spill file's path (`APP_ERROR_SPILL_FILE`): every moment, what the queue accepted since
/// the last append is appended as a numbered segment (Core's Journal format), so what was answered survives a
/// hard kill whatever the store's speed or health. A batch is written to the store with the number of its last
/// segment (the store's mark for this journal, in the same transaction when the store keeps marks; else a line
/// in the file after the write); the next start replays the segments past the mark. The file is deleted
/// whenever everything in it is stored, and compacted (rewritten with what is not stored) when it grows.
/// `unstored` gives what the queue holds that is journaled and not stored, by segment. Compaction is for long
/// outages (a healthy store empties the file every write that catches up): a file past `minCompact` bytes, or
/// past twice its size after the last compaction, is rewritten with what is not stored.
type internal JournalFile
    (
        path: string,
        freshId: string,
        logger: ILogger,
        unstored: unit -> (int64 * GroupDelta list) list,
        minCompact: int64,
        queue: CaptureQueue option
    ) =
    let gate = obj ()
    let mutable id = freshId
    let mutable nextSegment = 1L
    let mutable lastAppended = 0L
    let mutable stream: IO.FileStream = null
    let mutable broken = false
    let mutable compactAt = minCompact
    let mutable leftover: JournalContent option = None
    // The groups with a whole line in the file since it was created or compacted: their count-only deltas get
    // the short line (`Journal.writeCounted`), read back with that whole line's header. Bounded: when full it starts
    // again (whole lines are written anew).
    let headed = HashSet<string>(GroupHashes.Comparer)
    // The append buffer (written out from `flushAt` bytes: under the large-object size).
    let flushAt = 48 * 1024
    let mutable buffer = ArrayBufferWriter<byte>(flushAt + 16 * 1024)

    let close () =
        if not (isNull stream) then
            stream.Dispose()
            stream <- null

    let delete () =
        close ()
        broken <- false
        headed.Clear()

        if IO.File.Exists path then
            IO.File.Delete path

    /// Appends a line for each of `items`, each written by `emit` as UTF-8 into a buffer (no text of the lines
    /// is made); returns where they are in the file (from, to).
    [<Runtime.CompilerServices.MethodImpl(Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)>]
    let writeEach (items: 'T seq) (emit: IBufferWriter<byte> -> 'T -> unit) =
        if isNull stream then
            IO.Directory.CreateDirectory(IO.Path.GetDirectoryName(IO.Path.GetFullPath path))
            |> ignore

            stream <- PrivateFile.openAppend path

            if stream.Length = 0L then
                let bytes = Text.Encoding.UTF8.GetBytes(Journal.header id + "\n")
                stream.Write(bytes, 0, bytes.Length)

        // Line by line through one buffer (no text of the whole batch: a storm's append is megabytes, which would
        // be large objects the GC keeps until a full collection).
        let start = stream.Position
        buffer.ResetWrittenCount()

        for item in items do
            emit buffer item
            buffer.GetSpan(1).[0] <- byte '\n'
            buffer.Advance 1

            if buffer.WrittenCount >= flushAt then
                stream.Write buffer.WrittenSpan
                buffer.ResetWrittenCount()

        if buffer.WrittenCount > 0 then
            stream.Write buffer.WrittenSpan
            buffer.ResetWrittenCount()

        if buffer.Capacity > 4 * flushAt then
            // A line of megabytes grew it: the next append starts small again.
            buffer <- ArrayBufferWriter<byte>(flushAt + 16 * 1024)

        // To the operating system, which keeps it whatever becomes of the process (like SQLite's commits with
        // synchronous=NORMAL, a power cut can lose its last moments).
        stream.Flush false
        struct (start, stream.Position)

    /// Appends `lines`; returns where they are in the file (from, to).
    let write (lines: string seq) =
        writeEach lines (fun out l -> Text.EncodingExtensions.GetBytes(Text.Encoding.UTF8, l, out) |> ignore)

    /// The segments (unmerged, in file order) of the spilled segments `entries` (consecutive, oldest first): their
    /// bytes read back a megabyte or so at a time (a line longer than that at once), each line's JSON read where
    /// it lies (Core's `Journal.readWholeLines`).
    [<Runtime.CompilerServices.MethodImpl(Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)>]
    let readSpilled (entries: SpilledSegment list) : (int64 * GroupDelta) list =
        match entries with
        | [] -> []
        | first :: _ ->
            let last = List.last entries

            use file =
                new IO.FileStream(
                    path,
                    IO.FileMode.Open,
                    IO.FileAccess.Read,
                    IO.FileShare.ReadWrite ||| IO.FileShare.Delete,
                    1,
                    IO.FileOptions.SequentialScan
                )

            file.Seek(first.Start, IO.SeekOrigin.Begin) |> ignore
            let mutable buffer = ArrayPool<byte>.Shared.Rent(1 <<< 20)
            // Bytes in `buffer` not read yet (the start of a line), and bytes of the stretch not in it yet.
            let mutable filled = 0
            let mutable remaining = last.End - first.Start
            let mutable finished = false
            let read = List<(int64 * GroupDelta) list>()
            let mutable bad = 0

            try
                while not finished do
                    if filled = buffer.Length then
                        // One line longer than the buffer: a larger one.
                        let larger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2)
                        Buffer.BlockCopy(buffer, 0, larger, 0, filled)
                        ArrayPool<byte>.Shared.Return buffer
                        buffer <- larger

                    let wanted = int (min (int64 (buffer.Length - filled)) remaining)
                    let got = if wanted > 0 then file.Read(buffer, filled, wanted) else 0
                    filled <- filled + got
                    remaining <- remaining - int64 got
                    // The end of the stretch (or of the file, when it is shorter: a torn line reads as unreadable).
                    finished <- got = 0 || remaining = 0L

                    let whole =
                        if finished then
                            filled
                        else
                            Span<byte>(buffer, 0, filled).LastIndexOf(byte '\n') + 1

                    if whole > 0 then
                        let struct (segments, unreadable) =
                            Journal.readWholeLines (ReadOnlyMemory(buffer, 0, whole)) first.Segment last.Segment

                        read.Add segments
                        bad <- bad + unreadable
                        Buffer.BlockCopy(buffer, whole, buffer, 0, filled - whole)
                        filled <- filled - whole
            finally
                ArrayPool<byte>.Shared.Return buffer

            if bad > 0 then
                Log.SpillLinesUnreadable logger bad path

            List.concat read

    /// Brings what `q` holds in the file only back into memory (the file is to be rewritten); what cannot be
    /// read back is lost, and logged.
    let unspill (q: CaptureQueue) =
        q.Unspill(fun entries ->
            try
                readSpilled entries
            with ex ->
                Log.SpillUnreadable logger ex path
                [])

    /// Rewrites the file with what is not stored (atomically: a temp file renamed over it); deletes it when
    /// nothing is left.
    let compact () =
        let segments =
            [
                match leftover with
                | Some content -> yield! content.Segments |> List.map (fun (k, d) -> k, Seq.singleton d)
                | None -> ()
                for k, groups in unstored () do
                    k, Seq.ofList groups
            ]

        headed.Clear()

        if segments.IsEmpty then
            delete ()
        else
            close ()
            let temp = path + ".tmp"
            PrivateFile.writeAllText temp (Journal.compacted id segments)
            IO.File.Move(temp, path, true)
            broken <- false
            stream <- PrivateFile.openAppend path
            compactAt <- max minCompact (stream.Length * 2L)

    let guarded (what: unit -> unit) =
        try
            what ()
        with ex ->
            broken <- true
            close ()
            Log.SpillFailed logger ex path

    /// A journal compacted from 64 MB.
    new(path, freshId, logger, unstored) = JournalFile(path, freshId, logger, unstored, 64L * 1024L * 1024L, None)

    /// A journal that does not spill.
    new(path, freshId, logger, unstored, minCompact) = JournalFile(path, freshId, logger, unstored, minCompact, None)

    /// Its path.
    member _.Path = path

    /// Its id (the store's key for its mark).
    member _.Id = lock gate (fun () -> id)

    /// What a journal left by an earlier process held, until `Resolve` (None when there was none).
    member _.Leftover = lock gate (fun () -> leftover)

    /// Reads what an earlier process left (once, before the first append); a spill file of an older version is
    /// rewritten in the journal's format.
    member _.Open() =
        lock gate (fun () ->
            try
                if IO.File.Exists path then
                    let content = Journal.parse (IO.File.ReadAllText path)

                    if content.Bad > 0 then
                        Log.SpillLinesUnreadable logger content.Bad path

                    match content.Id with
                    | _ when content.Segments.IsEmpty -> delete ()
                    | Some earlier ->
                        id <- earlier
                        lastAppended <- max (Journal.lastSegment content) content.Written
                        nextSegment <- lastAppended + 1L
                        leftover <- Some content
                    | None ->
                        // No header (an older version's spill file, or a damaged one): nothing in it is stored.
                        let groups = content.Segments |> List.map snd
                        let temp = path + ".tmp"
                        PrivateFile.writeAllText temp (Journal.compacted id [ 1L, Seq.ofList groups ])
                        IO.File.Move(temp, path, true)
                        lastAppended <- 1L
                        nextSegment <- 2L

                        leftover <-
                            Some
                                { content with
                                    Id = Some id
                                    Written = 0L
                                }
            with ex ->
                Log.SpillUnreadable logger ex path)

    /// The store holds segments up to `mark`: the leftover is settled (the caller restored what was past it).
    member _.Resolve(mark: int64) =
        lock gate (fun () ->
            leftover <- None

            if mark >= lastAppended then
                guarded delete)

    /// Appends, as the next segment, what `take` hands over (the queue's pending groups).
    member this.Append(take: int64 -> GroupDelta list) =
        this.AppendFrom(fun segment _ -> struct (take segment, false))

    /// Appends, as the next segment, what the queue's pending groups are; a segment the queue spills (it keeps
    /// it in this file only) is written in whole lines, so it reads back on its own.
    member this.AppendQueued() =
        match queue with
        | Some q -> this.AppendFrom(fun segment canSpill -> q.Journal(segment, canSpill))
        | None -> invalidOp "a journal without a queue"

    /// Appends, as the next segment, what `take` hands over: the groups, and whether they are spilled (given
    /// whether the journal can hold segments on its own now).
    member private _.AppendFrom(take: int64 -> bool -> struct (GroupDelta list * bool)) =
        lock gate (fun () ->
            match queue with
            | Some q when broken && q.Spilling ->
                // A failed write: what is spilled comes back into memory before the file is rewritten.
                unspill q
            | _ -> ()

            let segment = nextSegment
            let struct (groups, spill) = take segment (not broken)

            if not groups.IsEmpty then
                nextSegment <- segment + 1L
                lastAppended <- segment
                let mutable range = ValueNone

                guarded (fun () ->
                    if broken then
                        // A failed append may have left a torn line: rewrite the whole file instead.
                        compact ()
                    elif spill then
                        range <- ValueSome(writeEach groups (fun out d -> Journal.writeSegment out segment d))
                    else
                        if headed.Count > 1_000_000 then
                            headed.Clear()

                        // A group new to the set gets its whole line (one lookup: `Add` tells).
                        writeEach groups (fun out d ->
                            Journal.writeLine out (not (headed.Add d.Latest.Hash)) segment d)
                        |> ignore

                        let spilling = queue |> Option.exists (fun q -> q.Spilling)

                        if stream.Length > compactAt && not spilling then
                            compact ())

                match queue with
                | Some q when spill ->
                    match range with
                    | ValueSome(struct (start, finish)) -> q.Spilled(segment, start, finish)
                    | ValueNone -> unspill q
                | _ -> ())

    /// The groups of the spilled segments `entries` (the oldest), read back from the file and merged by group.
    member _.ReadSpilled(entries: SpilledSegment list) : GroupDelta list =
        lock gate (fun () -> readSpilled entries |> Journal.merged)

    /// A batch holding every segment up to `top` was stored (with the mark in the store when `marked`): the
    /// file goes when that is all it holds; else, without a store-kept mark, the file notes it.
    member _.Stored(top: int64, marked: bool) =
        lock gate (fun () ->
            guarded (fun () ->
                if leftover.IsNone && top >= lastAppended then
                    delete ()
                elif not marked && not broken then
                    write [ Journal.written top ] |> ignore))

    /// Rewrites the file with exactly what is not stored (on stop); deletes it when everything is stored. A file
    /// holding spilled segments is left as it is (it holds everything not stored already).
    member _.Compact() =
        lock gate (fun () ->
            if not (queue |> Option.exists (fun q -> q.Spilling)) then
                guarded compact)

    /// Closes the file (on stop).
    member _.Close() = lock gate close

/// Writes what the queue has journaled to the store, in batches, retrying with backoff while the store fails.
/// Callers can wait until a given occurrence is stored. `onWritten` gets each written batch with what the store
/// reported of it. A batch is written holding `turns`, which pruning takes too (SQLite has one writer); after
/// each batch, `afterBatch` runs (pruning when the batches brought many new groups, so it keeps their pace).
type internal Writer
    (
        queue: CaptureQueue,
        metrics: Metrics,
        store: IErrorStore,
        turns: SemaphoreSlim,
        afterBatch: CancellationToken -> Task,
        logger: ILogger,
        onWritten: GroupDelta array -> IReadOnlyList<GroupWritten> -> unit,
        journal: JournalFile option,
        flushInterval: TimeSpan,
        clock: TimeProvider,
        arrivals: unit -> int64
    ) =
    let gate = obj ()
    let mutable stored = 0L
    let mutable initialized = false
    let waiters = List<int64 * TaskCompletionSource<unit>>()
    // Whether occurrences arrived since the writer's previous write (set by the writer loop before a write):
    // a batch read back from spilled segments is then smaller (`Limits.spilledBatch`).
    let mutable failing = false
    // Whether the batch being written was read back from spilled segments.
    let mutable readBack = false
    let mutable failures = 0

    // A store that keeps the journal's mark in the batch's transaction (with a journal only).
    let marks =
        match journal, store with
        | Some j, (:? IJournalMarks as m) -> Some(j, m)
        | _ -> None

    // A store whose search index may wait for groups written without their search rows.
    let backlog =
        match store with
        | :? ISearchBacklog as b -> Some b
        | _ -> None

    /// Whether the store's search index waits for groups written without their search rows.
    let searchBehind () =
        backlog |> Option.exists (fun b -> b.SearchBehind)

    /// How long a store keeps the mark of a journal nobody writes any more.
    let forgetMarksAfter = TimeSpan.FromDays 30.0

    let release (upTo: int64) =
        let ready =
            lock gate (fun () ->
                stored <- max stored upTo
                let r = waiters |> Seq.filter (fun (s, _) -> s <= stored) |> List.ofSeq
                waiters.RemoveAll(fun (s, _) -> s <= stored) |> ignore
                r)

        for _, tcs in ready do
            tcs.TrySetResult() |> ignore

    /// What an earlier process's journal holds past the store's mark goes back into the queue (once the store
    /// answers).
    let restoreLeftover (ct: CancellationToken) =
        task {
            match journal with
            | Some j ->
                match j.Leftover with
                | Some content ->
                    let! mark =
                        match marks with
                        | Some(_, m) -> m.ReadMarkAsync(j.Id, clock.GetUtcNow() - forgetMarksAfter, ct)
                        | None -> Task.FromResult content.Written

                    let waiting = Journal.unstored mark content
                    queue.Restore(waiting, Journal.lastSegment content)
                    j.Resolve mark

                    if not waiting.IsEmpty then
                        Log.SpillReplayed logger waiting.Length (waiting |> List.sumBy (fun d -> d.Count)) j.Path
                | None -> ()
            | None -> ()
        }

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

    /// Writes one batch: everything journaled now (or the batch whose write failed). Returns false when the
    /// store failed (the batch is kept, and retried as it is).
    member _.FlushOnceAsync(ct: CancellationToken) : Task<bool> =
        task {
            try
                if not initialized then
                    do! store.InitializeAsync ct
                    initialized <- true

                do! restoreLeftover ct

                let next =
                    match queue.TakeBatch(), journal with
                    | ValueNone, Some j ->
                        // What is spilled, the oldest segments first, read back from the journal.
                        match queue.SpilledHead(queue.SpilledBatch failing) with
                        | [] -> queue.TakeBatch() // what was spilled may have become the journaled stage
                        | entries ->
                            readBack <- true
                            queue.TakeSpilled(entries, j.ReadSpilled entries)
                    | batch, _ -> batch

                match next with
                | ValueNone ->
                    // Nothing to write: a step of indexing for groups written without their search rows.
                    match backlog with
                    | Some b when b.SearchBehind ->
                        do! turns.WaitAsync ct

                        try
                            do! b.IndexSearchStepAsync ct
                        finally
                            turns.Release() |> ignore
                    | _ -> ()
                | ValueSome(struct (batch, top, upTo)) ->
                    let rows = Array.ofList batch
                    let started = Diagnostics.Stopwatch.GetTimestamp()

                    do! turns.WaitAsync ct

                    let! written =
                        task {
                            try
                                match marks with
                                | Some(j, m) ->
                                    return!
                                        m.UpsertMarkedAsync(
                                            rows :> IReadOnlyList<GroupDelta>,
                                            j.Id,
                                            top,
                                            clock.GetUtcNow(),
                                            // A storm's drain: its new groups' search rows wait (`ISearchBacklog`).
                                            readBack,
                                            ct
                                        )
                                | None ->
                                    let! w = store.UpsertAsync(rows :> IReadOnlyList<GroupDelta>, ct)
                                    return Some w
                            finally
                                turns.Release() |> ignore
                        }

                    metrics.StoreLatency.Record(Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds)
                    queue.Written()
                    journal |> Option.iter (fun j -> j.Stored(top, marks.IsSome))

                    match written with
                    | Some w ->
                        metrics.Stored.Add(rows |> Array.sumBy (fun d -> d.Count))

                        try
                            onWritten rows w
                        with ex ->
                            Log.AfterWriteFailed logger ex
                    | None -> () // written by the attempt that seemed to fail

                    release upTo
                    // Work that must keep pace with the batches (pruning past the bound on groups).
                    do! afterBatch ct

                    // A batch read back from spilled segments (a storm's groups, thousands with their details)
                    // is garbage now, but it was held while written, hundreds of milliseconds: the GC's young
                    // collections meanwhile moved it to its middle generation, where it would pile up batch after
                    // batch of the drain (50 MB and more seen) until a collection of that generation. One is done
                    // now, a few milliseconds with the batch gone, so a drain's memory stays at about a batch.
                    if readBack then
                        readBack <- false
                        GC.Collect(1, GCCollectionMode.Forced, true)

                if failures > 0 then
                    Log.StoreBack logger failures

                failures <- 0
                return true
            with ex ->
                failures <- failures + 1
                metrics.StoreFailures.Add 1L

                if failures = 1 || failures % 50 = 0 then
                    Log.StoreWriteFailed logger ex queue.BatchLength failures

                return false
        }

    /// The writer loop: waits for journaled occurrences and writes them; while the store fails, retries with
    /// backoff (200 ms doubling, at most 5 s).
    member this.RunAsync(ct: CancellationToken) : Task =
        task {
            let mutable retryAt = DateTime.MinValue
            let mutable lastBatch = 0
            let mutable lastWrite = 0L
            let mutable lastDuration = TimeSpan.Zero
            let mutable arrivedAtWrite = 0L

            while not ct.IsCancellationRequested do
                try
                    // Spilled segments left after a batch are written at once (nothing rings for them again), and
                    // so is the search index's catch-up.
                    if failures > 0 || (queue.BatchLength = 0 && not (searchBehind ())) then
                        let! _ = queue.WaitReadyAsync(flushInterval, ct)
                        ()

                    if failures = 0 || DateTime.UtcNow >= retryAt then
                        // While the app keeps failing, writes are paced: at most one a flush interval (one a second,
                        // and nine times the last write's duration, while batches hold more than 1,000 groups), so
                        // a storm's repeats coalesce in memory, the store gets few larger writes and writing takes at
                        // most a tenth of the writer's time. As soon as nothing new arrives (checked every 50 ms of
                        // a rest), what is left drains at the store's own speed; a failure after a quiet spell is
                        // written at once. The journal keeps all of it safe meanwhile.
                        if failures = 0 && queue.BatchLength > 0 then
                            let pace =
                                if lastBatch > 1000 then
                                    max (max flushInterval (TimeSpan.FromSeconds 1.0)) (lastDuration * 9.0)
                                else
                                    flushInterval

                            let mutable seen = arrivedAtWrite
                            let mutable busy = arrivals () <> seen

                            while busy && Diagnostics.Stopwatch.GetElapsedTime lastWrite < pace do
                                seen <- arrivals ()
                                let left = pace - Diagnostics.Stopwatch.GetElapsedTime lastWrite
                                do! Task.Delay(min left (TimeSpan.FromMilliseconds 50.0), ct)
                                busy <- arrivals () <> seen

                        lastBatch <- queue.BatchLength
                        failing <- arrivals () <> arrivedAtWrite
                        arrivedAtWrite <- arrivals ()

                        if lastBatch > 0 then
                            lastWrite <- Diagnostics.Stopwatch.GetTimestamp()

                        let! ok = this.FlushOnceAsync ct

                        if lastBatch > 0 then
                            lastDuration <- Diagnostics.Stopwatch.GetElapsedTime lastWrite

                        if not ok then
                            let delay =
                                Limits.backoff (TimeSpan.FromMilliseconds 200.0) (TimeSpan.FromSeconds 5.0) failures

                            retryAt <- DateTime.UtcNow.Add delay
                with
                | :? OperationCanceledException -> ()
                | ex -> Log.WriterFailed logger ex
        }
