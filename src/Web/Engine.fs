namespace ErrorMonitor.Web

open System
open System.Collections.Generic
open System.Diagnostics
open System.IO
open System.Runtime.CompilerServices
open System.Threading
open System.Threading.Channels
open System.Threading.Tasks
open Microsoft.AspNetCore.Http
open Microsoft.Data.Sqlite
open Microsoft.Extensions.Logging
open ErrorMonitor
open ErrorMonitor.Core
open ErrorMonitor.Web.Stores

/// Everything an engine is made of.
type internal EngineParts =
    {
        /// Validated settings.
        Settings: Settings
        /// Size limits.
        Limits: Limits
        /// The masking rule.
        Masking: MaskingRule
        /// An app-supplied grouping, if any: a group key from the exception (null for messages) and the
        /// request (null outside one), or None for the default fingerprint.
        Fingerprint: (exn -> HttpContext -> string option) option
        /// An app-supplied context builder, if any.
        ContextBuilder: IContextBuilder option
        /// The store.
        Store: IErrorStore
        /// Where "now" comes from.
        Clock: TimeProvider
        /// Where ErrorMonitor logs its own failures.
        Logger: ILogger
        /// Who hears about new and returning groups (when APP_ERROR_SEND_NOTIFICATION is on).
        Notifiers: INotifier list
        /// Who raises tickets.
        Ticketing: ITicketing list
        /// The spill file's full path, if spilling is on.
        SpillPath: string option
        /// The engine's instruments on the `ErrorMonitor` meter.
        Metrics: Metrics
        /// The release every occurrence of this app is recorded in (`EngineFactory.release`).
        Release: string
        /// The environment every occurrence of this app is recorded in (`EngineFactory.environment`).
        Environment: string
    }

/// What became of a report from the capture route.
[<RequireQualifiedAccess>]
type internal ReportOutcome =
    /// Recorded in this group.
    | Recorded of hash: string
    /// Refused by the per-key bound on new groups; the client may try again after this long.
    | Refused of wait: TimeSpan
    /// Capture is off, or the report could not be built.
    | NotRecorded

/// Equality of throw-site keys (the site's two numbers and the app's group key): the struct tuple's default
/// comparer reaches its string through shared generic code, a measurable part of a repeat's lookup under many
/// groups; this one compares the numbers, then the key.
[<Sealed>]
type internal ShapeKeys private () =
    static let instance = ShapeKeys()

    /// The comparer.
    static member Comparer: IEqualityComparer<struct (int64 * int64 * string)> = instance

    /// A key's 64-bit mix (also what `RepeatingSites` remembers a site by).
    static member Mix(struct (a: int64, b: int64, key: string)) : uint64 =
        (uint64 a ^^^ (uint64 b * 0x9E3779B97F4A7C15UL))
        + uint64 (uint32 (if isNull key then 0 else key.GetHashCode()))
          * 0xC2B2AE3D27D4EB4FUL

    interface IEqualityComparer<struct (int64 * int64 * string)> with
        member _.Equals(x, y) =
            let struct (a1, b1, k1) = x
            let struct (a2, b2, k2) = y
            a1 = a2 && b1 = b2 && String.Equals(k1, k2)

        member _.GetHashCode(k) =
            let h = ShapeKeys.Mix k
            int (h >>> 32) ^^^ int h

/// The exception objects recorded lately and their groups, for a logger that sees an exception without its request:
/// a fixed table of weak handles indexed by the object's identity hash, so remembering one allocates nothing and
/// keeps nothing alive (a `ConditionalWeakTable` entry costs a dependent handle an exception, about a microsecond
/// of a failing request and more work for the GC). The handles are made once and re-aimed, in an array of their
/// own beside an array of hashes: a look-up reads the slot's handle and hash, no object between (a slot object
/// holding a `WeakReference` was two more cache misses a look-up, every failing request looks twice). An exception
/// is forgotten when a later one lands in its slot, so it is found while fewer than about `size` others were
/// recorded after it.
[<Sealed>]
type internal RecentExceptions(size: int) =
    let mask =
        (1 <<< (32 - Numerics.BitOperations.LeadingZeroCount(uint32 (max 2 size - 1))))
        - 1

    let handles =
        Array.init (mask + 1) (fun _ ->
            Runtime.InteropServices.GCHandle.Alloc(null, Runtime.InteropServices.GCHandleType.Weak))

    let hashes: string[] = Array.zeroCreate (mask + 1)
    // A slot's handle and hash change together: under one of these (slot by slot would be an object a slot).
    let locks = Array.init 64 (fun _ -> obj ())

    let indexOf (ex: exn) = RuntimeHelpers.GetHashCode ex &&& mask

    /// How many slots (a power of two).
    member _.Size = mask + 1

    /// Remembers `ex` as recorded in group `hash` (null: not recorded).
    member _.Remember(ex: exn, hash: string) =
        let i = indexOf ex

        lock locks.[i &&& 63] (fun () ->
            handles.[i].Target <- ex
            hashes.[i] <- hash)

    /// `ex`'s group when it is remembered (ValueSome null: recorded without a group).
    member _.Find(ex: exn) : string voption =
        let i = indexOf ex

        lock locks.[i &&& 63] (fun () ->
            if Object.ReferenceEquals(handles.[i].Target, ex) then
                ValueSome hashes.[i]
            else
                ValueNone)

    /// Frees the handles (they are the runtime's, not the GC's).
    override _.Finalize() =
        for h in handles do
            if h.IsAllocated then
                h.Free()

/// The capture engine: builds occurrences on the request thread (pure work plus an enqueue) and writes
/// them in the background. Capture never throws into the app.
type Engine internal (parts: EngineParts) =
    // Set on the flows of the background work (see `Inside`).
    static let inside = AsyncLocal<bool>()

    let metrics = parts.Metrics
    // The journal's path (not with the in-memory store, which a restart empties anyway).
    let journalPath =
        match parts.Store with
        | :? MemoryStore -> None
        | _ -> parts.SpillPath

    let queue =
        CaptureQueue(parts.Settings.MaxPendingGroups, metrics, journalPath.IsSome)

    let dispatcher =
        Dispatcher(parts.Settings, parts.Store, parts.Notifiers, parts.Ticketing, parts.Clock, parts.Logger)

    // The journal, at the spill file's path: what was answered is on the disk within moments, whatever the
    // store's speed or health (not with the in-memory store, which a restart empties anyway).
    let journal =
        journalPath
        |> Option.map (fun p ->
            JournalFile(p, Guid.NewGuid().ToString "N", parts.Logger, queue.Unstored, 64L * 1024L * 1024L, Some queue))

    /// Hands what the queue accepted to the journaled stage: appended to the journal as its next segment (or
    /// just handed on, without a journal).
    let stage () =
        match journal with
        | Some j -> j.AppendQueued()
        | None -> queue.Journal 0L |> ignore

    // Repeats of one throw site, coalesced on the request path before any formatting: a storm costs the
    // request thread a look at the stack, not a whole capture. Bounded like the queue.
    let shapeGate = obj ()

    let mutable shapes =
        Dictionary<struct (int64 * int64 * string), ShapeEntry>(ShapeKeys.Comparer)

    // Throw sites whose group was written with details less than APP_ERROR_DETAILS_INTERVAL ago: their repeats
    // are counted in place, without a snapshot, a build or an allocation. Bounded: cleared when full (the next
    // occurrences rebuild it). `counting` lists the sites with repeats counted since the last pass.
    let known =
        Dictionary<struct (int64 * int64 * string), KnownShape>(ShapeKeys.Comparer)

    let mutable counting = List<KnownShape>()
    let knownLimit = 2 * max parts.Settings.MaxPendingGroups 10000

    // The sites whose details were built (`RepeatingSites`): a site is known only once it repeats, so a storm of
    // one-time sites leaves `known` alone.
    let recurrence = RepeatingSites(RepeatingSites.slots)

    /// A group written from a count-only batch was missing (deleted meanwhile): its throw sites take the full
    /// path again, so its details come back with the next occurrence.
    let forgetInserted (rows: GroupDelta array) (written: IReadOnlyList<GroupWritten>) =
        if rows |> Array.exists (fun d -> not d.Detailed) then
            // Sorted arrays searched, not hash sets: a storm's batch holds thousands of groups, and a set of them
            // would be a large object each batch.
            let countOnly =
                rows |> Array.choose (fun d -> if d.Detailed then None else Some d.Latest.Hash)

            Array.Sort(countOnly, StringComparer.Ordinal)

            let among (sorted: string[]) (hash: string) =
                Array.BinarySearch(sorted, hash, StringComparer.Ordinal) >= 0

            let missing =
                written
                |> Seq.filter (fun w -> not w.PreviousSeen.HasValue && among countOnly w.Hash)
                |> Seq.map (fun w -> w.Hash)
                |> Array.ofSeq

            Array.Sort(missing, StringComparer.Ordinal)

            if missing.Length > 0 then
                lock shapeGate (fun () ->
                    let stale =
                        known
                        |> Seq.filter (fun kv -> among missing kv.Value.Header.Hash)
                        |> Seq.map (fun kv -> kv.Key)
                        |> Array.ofSeq

                    for k in stale do
                        known.Remove k |> ignore)

    // Occurrences the app handed over (the writer rests between writes only while they keep coming).
    let mutable arrivals = 0L

    // New groups written since the last pruning pass: past `Retention.newGroupsBeforePrune`, the writer prunes
    // after its batch (a storm of new groups stays near APP_ERROR_MAX_GROUPS instead of waiting for the interval).
    let mutable newSincePrune = 0L
    // When the last round started (a Stopwatch timestamp).
    let mutable lastPrune = Diagnostics.Stopwatch.GetTimestamp()

    // The writer and pruning take turns at the store.
    let turns = new SemaphoreSlim(1, 1)

    /// Prunes what is past retention: passes (each a short transaction, at most `Retention.Batch` of each kind)
    /// until one finds nothing to do.
    let prune (ct: CancellationToken) : Task<PruneResult> =
        task {
            let mutable total = { Groups = 0; Hours = 0; Days = 0 }
            let mutable more = true

            while more && not ct.IsCancellationRequested do
                lastPrune <- Diagnostics.Stopwatch.GetTimestamp()

                let request =
                    Retention.request
                        (parts.Clock.GetUtcNow())
                        parts.Settings.Retention
                        parts.Settings.MaxGroups
                        (Interlocked.Exchange(&newSincePrune, 0L))

                do! turns.WaitAsync ct

                let! r =
                    task {
                        try
                            return! parts.Store.PruneAsync(request, ct)
                        finally
                            turns.Release() |> ignore
                    }

                total <-
                    {
                        Groups = total.Groups + r.Groups
                        Hours = total.Hours + r.Hours
                        Days = total.Days + r.Days
                    }

                more <- Retention.did r

            if Retention.did total then
                Log.Pruned parts.Logger total.Groups total.Hours total.Days

            return total
        }

    /// Prunes when the batches written since the last pass brought new groups (`Retention.due`: the writer calls
    /// it after each batch, so pruning keeps the pace of a storm of new groups and follows its end).
    let pruneIfDue (ct: CancellationToken) : Task =
        task {
            if
                Retention.due
                    parts.Settings.MaxGroups
                    (Interlocked.Read &newSincePrune)
                    (Diagnostics.Stopwatch.GetElapsedTime lastPrune)
            then
                try
                    let! _ = prune ct
                    ()
                with
                | :? OperationCanceledException -> ()
                | ex -> Log.PruneFailed parts.Logger ex
        }

    let writer =
        Writer(
            queue,
            metrics,
            parts.Store,
            turns,
            pruneIfDue,
            parts.Logger,
            (fun rows written ->
                forgetInserted rows written

                let fresh =
                    written |> Seq.sumBy (fun w -> if w.PreviousSeen.HasValue then 0L else 1L)

                if fresh > 0L then
                    Interlocked.Add(&newSincePrune, fresh) |> ignore

                if dispatcher.Active then
                    dispatcher.Post rows written),
            journal,
            parts.Settings.FlushInterval,
            parts.Clock,
            (fun () -> Interlocked.Read &arrivals)
        )

    do metrics.ObserveQueue(Func<int64>(fun () -> int64 queue.Length))

    let recorded = ConditionalWeakTable<exn, string>()
    let recent = RecentExceptions(4096)
    // Whether a logger of the logging integration finds the request of what it logs (an IHttpContextAccessor), and
    // whether one does not: while one may not, or none said yet, exceptions are remembered in `recorded`.
    let mutable logsWithRequest = false
    let mutable logsWithoutRequest = false

    // Once per exception object: in a request, the request's own items remember it (cheap, gone with the
    // request); outside one, and with the logging integration on, `recorded` or `recent` does too (`remember`).
    let itemKey = obj ()

    let seenBefore (ex: exn) (http: HttpContext) : string option voption =
        let byRequest =
            if not (isNull http) then
                match http.Items.TryGetValue itemKey with
                | true, (:? (exn * string) as pair) when Object.ReferenceEquals(fst pair, ex) ->
                    ValueSome(Some(snd pair))
                | _ -> ValueNone
            else
                ValueNone

        if byRequest.IsSome then
            byRequest
        else
            match recorded.TryGetValue ex with
            | true, hash -> ValueSome(Option.ofObj hash)
            | _ ->
                match recent.Find ex with
                | ValueSome hash -> ValueSome(Option.ofObj hash)
                | ValueNone -> ValueNone

    // By the request's items (cheap, the common case) and, while the logging integration is on, by the exception
    // too: its logger may see the exception without the request, and must still find it recorded. Outside a
    // request, or while a logger cannot find requests (an app set up with InitApp has no IHttpContextAccessor),
    // in the weak table (exact for as long as the exception lives); when the loggers find the request of what
    // they log, only an exception logged again later outside its request needs it, and the table of recent ones
    // (no allocation) serves that.
    let remember (ex: exn) (http: HttpContext) (hash: string) =
        if not (isNull http) then
            http.Items.[itemKey] <- box (ex, hash)

        if isNull http then
            recorded.AddOrUpdate(ex, hash)
        elif LogCapture.on parts.Settings then
            if logsWithRequest && not logsWithoutRequest then
                recent.Remember(ex, hash)
            else
                recorded.AddOrUpdate(ex, hash)

    let stopping = new CancellationTokenSource()
    let mutable loop: Task = null


    let extras (http: HttpContext) : (string * Data) list =
        let scoped = ErrorScope.CurrentExtras()

        let built =
            match parts.ContextBuilder with
            | None -> []
            | Some b ->
                try
                    let d = Dictionary<string, obj>()
                    b.BuildContext(http, d)
                    d |> Seq.map (fun kv -> kv.Key, kv.Value) |> List.ofSeq
                with ex ->
                    Log.ContextBuilderFailed parts.Logger ex

                    []

        let crumbs =
            if LogCapture.crumbs parts.Settings then
                match Breadcrumbs.taken http with
                | [] -> []
                | taken -> [ LogCapture.BreadcrumbsKey, Data.Array taken ]
            else
                []

        (built @ scoped |> List.map (fun (k, v) -> k, DataOf.value parts.Limits v))
        @ crumbs

    let frameReader = FrameReader(parts.Limits)

    let appKey (raw: exn) (http: HttpContext) : string option =
        parts.Fingerprint
        |> Option.bind (fun f ->
            try
                f raw http
            with ex ->
                Log.FingerprintFailed parts.Logger ex

                None)

    /// The request-thread part of a capture: copy what the request holds (it is reused once the request
    /// ends), the scope's extras, the time, and the app's group key. Cheap; no formatting, no hashing.
    let snapshotWith (raw: exn) (message: string) (http: HttpContext) (key: string option) : Snapshot =
        {
            Exception = raw
            Message = message
            Request =
                if isNull http then
                    None
                else
                    Some(RequestReader.read parts.Limits http)
            Extra = extras http
            OccurredAt = parts.Clock.GetUtcNow()
            Key = key
        }

    let snapshot (raw: exn) (message: string) (http: HttpContext) : Snapshot =
        snapshotWith raw message http (appKey raw http)

    let noFrames (_: exn) : Frame list * int = [], 0

    /// What Core builds an occurrence from; `frames` reads an exception's stack.
    let capturedWith (frames: exn -> Frame list * int) (s: Snapshot) : Capture =
        {
            Request = s.Request
            Subject =
                if isNull s.Exception then
                    Subject.Message s.Message
                else
                    Subject.Exception(ExceptionInfo.captureWith parts.Limits frames s.Exception)
            Extra = s.Extra
            OccurredAt = s.OccurredAt
            Release = parts.Release
            Environment = parts.Environment
        }

    let captured = capturedWith frameReader.Read

    /// The rest of a capture (pure work): exception data, masking, traceback, fingerprint.
    let build (s: Snapshot) : ErrorEvent =
        let fingerprint =
            s.Key
            |> Option.map (fun key -> fun (_: ExceptionInfo option) (_: RequestContext option) -> Some key)

        Events.build parts.Settings parts.Masking parts.Limits fingerprint (captured s)

    /// `count` occurrences of a snapshot's group between its time and `lastAt`: with details when the queue keeps
    /// them, else count-only (true when they have details).
    let deltaOf (s: Snapshot) (count: int64) (lastAt: DateTimeOffset) (hours: Bucket[]) (users: string[]) =
        let whole () =
            let e = build s

            struct ({ Events.single e with
                        Latest = { e with OccurredAt = lastAt }
                        FirstAt = s.OccurredAt
                        Count = count
                        Hours = hours
                        Users = users
                    },
                    true)

        // Past the queue's bound on groups with details it would keep only the count and times (unless the group
        // waits without them): then only the group's header is built (`Events.header`), at a fraction of the work,
        // so a storm of new groups past the bound costs less, and allocates less, per group.
        if queue.KeepsDetails then
            whole ()
        else
            // Grouped by the app's key, the header needs no frames (only the default fingerprint reads them).
            let frames = if s.Key.IsSome then noFrames else frameReader.Read

            let e =
                Events.header parts.Settings parts.Masking parts.Limits s.Key (capturedWith frames s)

            if queue.KeepsDetailsOf e.Hash then
                whole ()
            else
                struct (Events.countOnly e count s.OccurredAt lastAt hours users, false)

    let logDropped (hash: string) =
        let dropped = queue.Dropped

        if dropped = 1L || dropped % 1000L = 0L then
            Log.QueueFull parts.Logger parts.Settings.MaxPendingGroups hash dropped

    /// The rest of a capture (pure work, then an enqueue): exception data, masking, traceback, fingerprint.
    let complete (s: Snapshot) : (string * int64) option =
        try
            let users = Users.ofName (s.Request |> Option.bind (fun r -> r.UserName))

            let struct (d, _) = deltaOf s 1L s.OccurredAt (History.one s.OccurredAt 1L) users

            match queue.EnqueueDelta d with
            | Some sequence -> Some(d.Latest.Hash, sequence)
            | None ->
                logDropped d.Latest.Hash
                Some(d.Latest.Hash, -1L)
        with ex ->
            Log.CaptureFailed parts.Logger ex
            None

    let captureWith (make: unit -> Snapshot) : (string * int64) option =
        if not parts.Settings.Enabled then
            None
        else
            try
                metrics.Captured.Add 1L
                Interlocked.Increment &arrivals |> ignore
                complete (make ())
            with ex ->
                Log.CaptureFailed parts.Logger ex
                None

    let capture (raw: exn) (message: string) (http: HttpContext) : (string * int64) option =
        captureWith (fun () -> snapshot raw message http)

    // Occurrences captured from the middleware wait here for the rest of their work, off the request thread.
    // When it is full, the request thread does that work itself: nothing is lost and memory stays bounded.
    let deferred =
        Channel.CreateBounded<Snapshot>(
            BoundedChannelOptions(4096, SingleReader = true, FullMode = BoundedChannelFullMode.Wait)
        )

    let mutable accepted = 0L
    let mutable completed = 0L

    let shapeBell = Doorbell()
    let ringShapes () = shapeBell.Ring()

    /// Users' keys (`Users.key`) of the names a tally counted; most occurrences have none (no array made then).
    let keysOf (names: string[]) =
        if names.Length = 0 then
            names
        else
            Array.map Users.key names

    /// Builds one event for each coalesced throw site and hands it to the queue with its count; hands the
    /// repeats counted for known sites over as count-only batches. Returns how many sites and occurrences it
    /// handed over.
    let completeShapes () : struct (int * int64) =
        let struct (taken, counted) =
            lock shapeGate (fun () ->
                let t = shapes
                shapes <- Dictionary<_, _>(t.Count, ShapeKeys.Comparer)

                let c =
                    counting
                    |> Seq.map (fun site ->
                        let d =
                            Events.countOnly
                                site.Header
                                site.Pending
                                site.FirstAt
                                site.LastAt
                                (site.Tally.Take())
                                (keysOf (site.Tally.TakeUsers()))

                        site.Pending <- 0L
                        d)
                    |> Array.ofSeq

                counting.Clear()
                struct (t, c))

        let learned = List<struct (struct (int64 * int64 * string) * KnownShape)>()
        let mutable occurrences = 0L

        for kv in taken do
            let entry = kv.Value
            occurrences <- occurrences + entry.Count

            try
                try
                    let struct (delta, detailed) =
                        deltaOf
                            entry.Snapshot
                            entry.Count
                            entry.LastAt
                            (entry.Tally.Take())
                            (keysOf (entry.Tally.TakeUsers()))

                    if (queue.EnqueueDelta delta).IsNone then
                        logDropped delta.Latest.Hash
                    elif
                        detailed
                        && RepeatingSites.remember (entry.Count > 1L) (recurrence.Seen(ShapeKeys.Mix kv.Key))
                    then
                        // Its repeats are counted in place while its details are recent (not when only its count
                        // was kept: the next occurrence brings the details), once it has shown it repeats.
                        let e = delta.Latest
                        let header = (Events.countOnly e 1L e.OccurredAt e.OccurredAt [||] [||]).Latest
                        learned.Add(struct (kv.Key, KnownShape(header, entry.Snapshot.OccurredAt)))
                with ex ->
                    Log.CaptureFailed parts.Logger ex
            finally
                Interlocked.Add(&completed, entry.Count) |> ignore

        // One turn of the queue's lock for all of them (at 10,000 groups, nearly every occurrence is one).
        if counted.Length > 0 then
            let repeats = counted |> Array.sumBy (fun d -> d.Count)
            occurrences <- occurrences + repeats

            try
                for d in queue.EnqueueDeltas counted do
                    logDropped d.Latest.Hash
            finally
                Interlocked.Add(&completed, repeats) |> ignore

        if learned.Count > 0 then
            lock shapeGate (fun () ->
                if known.Count + learned.Count > knownLimit then
                    known.Clear()

                for struct (k, site) in learned do
                    known.[k] <- site)

        struct (taken.Count + counted.Length, occurrences)

    // What the last pass handed over: sites, occurrences.
    let mutable lastPass = struct (0, 0L)

    let shapeLoop () : Task =
        task {
            while not stopping.IsCancellationRequested do
                try
                    let! rang = shapeBell.WaitAsync(TimeSpan.FromMilliseconds 50.0, stopping.Token)

                    // A short window lets a storm's repeats gather, so one build serves many occurrences; a longer
                    // one when the last pass was busy with repeats (`Limits.shapeWindow`).
                    if rang then
                        let struct (sites, occurrences) = lastPass

                        do!
                            Task.Delay(
                                Limits.shapeWindow parts.Settings.FlushInterval sites occurrences,
                                stopping.Token
                            )

                    lastPass <- completeShapes ()
                with
                | :? OperationCanceledException -> ()
                | ex -> Log.CaptureLoopFailed parts.Logger ex

            completeShapes () |> ignore
        }

    let completeDeferred () : Task =
        task {
            let reader = deferred.Reader
            let mutable go = true

            while go do
                let! more = reader.WaitToReadAsync()

                if not more then
                    go <- false
                else
                    let mutable s = Unchecked.defaultof<Snapshot>

                    while reader.TryRead(&s) do
                        complete s |> ignore
                        Interlocked.Increment &completed |> ignore
        }

    /// Moves what the queue accepted on to the journal: at once after a quiet spell, then at most every quarter
    /// of a flush interval (each append is one write and one flush to the disk).
    let journalLoop () : Task =
        task {
            let gap = parts.Settings.FlushInterval / 4.0
            let mutable last = 0L

            while not stopping.IsCancellationRequested do
                try
                    let! _ = queue.WaitArrivedAsync(parts.Settings.FlushInterval, stopping.Token)
                    let since = Diagnostics.Stopwatch.GetElapsedTime last

                    if since < gap then
                        do! Task.Delay(gap - since, stopping.Token)

                    last <- Diagnostics.Stopwatch.GetTimestamp()
                    stage ()
                with
                | :? OperationCanceledException -> ()
                | ex -> Log.WriterFailed parts.Logger ex

            stage ()
        }

    let mutable journaling: Task = Task.CompletedTask

    /// Prunes every `Retention.interval` until the engine stops, and within about a second after new groups were
    /// written (`Retention.due`: the end of a storm is pruned back to the bound); a failed round is logged and
    /// tried again at the next.
    let pruneLoop () : Task =
        task {
            let interval = Retention.interval parts.Settings.Retention
            let tick = min interval (TimeSpan.FromSeconds 1.0)

            while not stopping.IsCancellationRequested do
                try
                    do! Task.Delay(tick, stopping.Token)
                    let since = Diagnostics.Stopwatch.GetElapsedTime lastPrune

                    if
                        since >= interval
                        || Retention.due parts.Settings.MaxGroups (Interlocked.Read &newSincePrune) since
                    then
                        let! _ = prune stopping.Token
                        ()
                with
                | :? OperationCanceledException -> ()
                | ex -> Log.PruneFailed parts.Logger ex
        }

    /// The settings in force.
    member internal _.Settings = parts.Settings

    /// The store.
    member internal _.Store = parts.Store

    /// The current time (UTC).
    member internal _.Now() = parts.Clock.GetUtcNow()

    /// The queue (for metrics and tests).
    member internal _.Queue = queue

    /// The writer (for metrics and tests).
    member internal _.Writer = writer

    /// Records an exception (once per exception object); returns its group's hash and sequence number.
    member internal _.Record(ex: exn, http: HttpContext) : (string * int64) option =
        if isNull ex then
            None
        else
            match seenBefore ex http with
            | ValueSome hash -> hash |> Option.map (fun h -> h, 0L)
            | ValueNone ->
                let result = capture ex null http

                match result with
                | Some(hash, _) -> remember ex http hash
                | None -> ()

                result

    /// Records an exception the fast way (the middleware's): the request thread copies what it needs and
    /// goes on; the rest of the work happens in the background. Once per exception object.
    member internal _.RecordDeferred(ex: exn, http: HttpContext) : unit =
        if not (isNull ex) && parts.Settings.Enabled then
            try
                match seenBefore ex http with
                | ValueSome _ -> ()
                | ValueNone ->
                    remember ex http null
                    metrics.Captured.Add 1L
                    Interlocked.Increment &arrivals |> ignore
                    let key = appKey ex http

                    match ThrowSite.shapeOf ex with
                    | ValueSome(struct (a, b)) when not (isNull loop) ->
                        let k = struct (a, b, defaultArg key "")
                        let now = parts.Clock.GetUtcNow()
                        let user = RequestReader.userName http

                        let counted =
                            lock shapeGate (fun () ->
                                match shapes.TryGetValue k with
                                | true, entry ->
                                    entry.Count <- entry.Count + 1L
                                    entry.LastAt <- Instants.later entry.LastAt now
                                    entry.Tally.Add(now, user)
                                    Interlocked.Increment &accepted |> ignore
                                    Counted.AddedToPending
                                | _ ->
                                    match known.TryGetValue k with
                                    | true, site when
                                        TimeSpan.op_LessThan (now - site.DetailsAt, parts.Settings.DetailsInterval)
                                        ->
                                        Interlocked.Increment &accepted |> ignore

                                        if site.Pending = 0L then
                                            site.Pending <- 1L
                                            site.FirstAt <- now
                                            site.LastAt <- now
                                            site.Tally.Add(now, user)
                                            counting.Add site
                                            Counted.FirstRepeat
                                        else
                                            site.Pending <- site.Pending + 1L
                                            site.LastAt <- Instants.later site.LastAt now
                                            site.Tally.Add(now, user)
                                            Counted.AddedToPending
                                    | _ -> Counted.DetailsDue)

                        match counted with
                        | Counted.FirstRepeat -> ringShapes ()
                        | Counted.AddedToPending -> ()
                        | Counted.DetailsDue ->
                            let s = snapshotWith ex null http key

                            let added =
                                lock shapeGate (fun () ->
                                    match shapes.TryGetValue k with
                                    | true, entry ->
                                        entry.Count <- entry.Count + 1L
                                        entry.LastAt <- Instants.later entry.LastAt s.OccurredAt
                                        entry.Tally.Add(s.OccurredAt, user)
                                        Interlocked.Increment &accepted |> ignore
                                        true
                                    | _ when shapes.Count < parts.Settings.MaxPendingGroups ->
                                        let tally = Tally()
                                        tally.Add(s.OccurredAt, user)

                                        shapes.[k] <-
                                            {
                                                Snapshot = s
                                                Count = 1L
                                                LastAt = s.OccurredAt
                                                Tally = tally
                                            }

                                        Interlocked.Increment &accepted |> ignore
                                        true
                                    | _ -> false)

                            if added then ringShapes () else complete s |> ignore
                    | _ ->
                        let s = snapshotWith ex null http key

                        if not (isNull loop) && deferred.Writer.TryWrite s then
                            Interlocked.Increment &accepted |> ignore
                        else
                            complete s |> ignore
            with e ->
                Log.CaptureFailed parts.Logger e

    /// Records an error report that came over HTTP (the capture route); returns its group's hash.
    /// `admit` decides from the report's group key whether it may be recorded (the capture route's per-key
    /// bound on new groups); a refusal comes back with how long to wait.
    member internal _.RecordReport(report: ClientReport, admit: string -> Result<unit, TimeSpan>) : ReportOutcome =
        if not parts.Settings.Enabled then
            ReportOutcome.NotRecorded
        else
            try
                let e =
                    Report.event
                        parts.Settings
                        parts.Masking
                        Limits.reports
                        parts.Environment
                        report
                        (parts.Clock.GetUtcNow())

                match admit e.Hash with
                | Error wait -> ReportOutcome.Refused wait
                | Ok() ->
                    metrics.Captured.Add 1L
                    Interlocked.Increment &arrivals |> ignore

                    if (queue.Enqueue(e, [||])).IsNone then
                        logDropped e.Hash

                    ReportOutcome.Recorded e.Hash
            with ex ->
                Log.ReportFailed parts.Logger ex
                ReportOutcome.NotRecorded

    /// Records an event from a Sentry SDK (`Sentry.event`): built like any other occurrence (masked, bounded with
    /// the capture route's limits), grouped by its key and its source (never with the app's own groups), its
    /// user counted; `admit` may refuse its group (the key's bound on new groups an hour).
    member internal _.RecordSentry(sentry: SentryEvent, admit: string -> Result<unit, TimeSpan>) : ReportOutcome =
        if not parts.Settings.Enabled then
            ReportOutcome.NotRecorded
        else
            try
                let key = sentry.GroupKey

                let built =
                    Events.build parts.Settings parts.Masking Limits.reports (Some(fun _ _ -> Some key)) sentry.Capture

                let e =
                    { built with
                        Hash = Fingerprint.withSource (Sentry.sourceOf sentry.Project) built.Hash
                        Project = sentry.Project
                    }

                match admit e.Hash with
                | Error wait -> ReportOutcome.Refused wait
                | Ok() ->
                    metrics.Captured.Add 1L
                    Interlocked.Increment &arrivals |> ignore

                    if (queue.Enqueue(e, Users.ofName sentry.User)).IsNone then
                        logDropped e.Hash

                    ReportOutcome.Recorded e.Hash
            with ex ->
                Log.ReportFailed parts.Logger ex
                ReportOutcome.NotRecorded

    /// True when this exception object was recorded already.
    member internal _.WasRecorded(ex: exn, http: HttpContext) =
        not (isNull ex) && (seenBefore ex http).IsSome

    /// Records a message.
    member internal _.RecordMessage(text: string, http: HttpContext) : (string * int64) option =
        capture null (if isNull text then "" else text) http

    /// A logger of the logging integration says whether it finds the request of what it logs (it has an
    /// IHttpContextAccessor): exceptions recorded in a request are remembered more cheaply while every logger does.
    member internal _.LoggerFindsRequests(finds: bool) =
        if finds then
            logsWithRequest <- true
        else
            logsWithoutRequest <- true

    /// True when `ex` was recorded already (by the middleware, the handler or an earlier entry): an entry with
    /// it records nothing, so the logging integration need not format its text.
    member internal _.Recorded(ex: exn, http: HttpContext) : bool =
        not (isNull ex) && (seenBefore ex http).IsSome

    /// Records a log entry (the logging integration): its exception, once (not when the middleware or an earlier
    /// entry recorded it), else its text as a message grouped by its category and template; the category and
    /// level kept as the extras `logCategory` and `logLevel`.
    member internal _.RecordLog
        (ex: exn, text: string, template: string, category: string, level: string, http: HttpContext)
        : (string * int64) option =
        let logged (s: Snapshot) =
            { s with
                Extra = s.Extra @ [ "logCategory", Data.String category; "logLevel", Data.String level ]
            }

        if not (isNull ex) then
            match seenBefore ex http with
            | ValueSome _ -> None
            | ValueNone ->
                let result = captureWith (fun () -> logged (snapshot ex null http))
                remember ex http (result |> Option.map fst |> Option.toObj)
                result
        else
            let key = Some(LogCapture.groupKey category template)
            captureWith (fun () -> logged (snapshotWith null (if isNull text then "" else text) http key))

    /// True on the flows of ErrorMonitor's own background work (writer, journal, notifications, pruning): what
    /// is logged there (a store or a mail server failing) is never recorded, so a failing store cannot feed
    /// itself occurrences.
    static member internal Inside = inside.Value

    /// Completes when occurrence `sequence` is stored.
    member internal _.WaitStoredAsync(sequence: int64, ct: CancellationToken) : Task =
        if sequence <= 0L then
            Task.CompletedTask
        else
            writer.WaitStoredAsync(sequence, ct)

    /// Completes when everything recorded so far is stored and its notifications and tickets are done (sent,
    /// or given up after their retries).
    member internal this.SettleAsync(ct: CancellationToken) : Task =
        task {
            do! this.FlushAsync ct
            do! dispatcher.WaitIdleAsync ct
        }

    /// Completes when everything recorded so far is stored.
    member internal _.FlushAsync(ct: CancellationToken) : Task =
        task {
            let target = Interlocked.Read &accepted

            while Interlocked.Read &completed < target do
                do! Task.Delay(2, ct)

            do! writer.WaitStoredAsync(queue.LastSequence, ct)
        }

    /// Prunes what is past retention now (see `prune`); the background does it every `Retention.interval`.
    member internal _.PruneAsync(ct: CancellationToken) : Task<PruneResult> = prune ct

    /// Opens the store before the app serves: a table of the configured name with another shape stops start-up
    /// (the store's ErrorMonitorConfigException, naming the table and a missing column). Any other failure (the
    /// database not up yet) or a store slower than 10 s is left to the writer, which retries and logs it.
    member internal _.CheckStoreAsync(ct: CancellationToken) : Task =
        task {
            let opening = parts.Store.InitializeAsync ct

            try
                do! opening.WaitAsync(TimeSpan.FromSeconds 10.0, ct)
            with
            | :? ErrorMonitorConfigException as e -> Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e).Throw()
            | _ -> ()
        }

    /// Starts the background writer.
    member internal _.Start() =
        lock stopping (fun () ->
            if isNull loop then
                // Started from a flow of their own marked `Inside` (the caller's flow stays unmarked): whatever
                // they start inherits the mark.
                Task
                    .Run(fun () ->
                        inside.Value <- true
                        // What an earlier process left in the journal is read now and restored once the store
                        // answers (which of it is stored is the store's to say).
                        journal |> Option.iter (fun j -> j.Open())
                        journaling <- Task.Run(fun () -> journalLoop ())
                        dispatcher.Start()
                        Task.Run(fun () -> completeDeferred ()) |> ignore
                        Task.Run(fun () -> shapeLoop ()) |> ignore
                        Task.Run(fun () -> pruneLoop ()) |> ignore
                        loop <- Task.Run(fun () -> writer.RunAsync stopping.Token))
                    .Wait())

    /// Stops the writer, writing what is pending within `timeout`, then saving what is left to the spill file.
    member internal _.StopAsync(timeout: TimeSpan) : Task =
        task {
            // Finish the occurrences still waiting for their background work, then stop the writer.
            deferred.Writer.TryComplete() |> ignore
            let target = Interlocked.Read &accepted
            let waited = Diagnostics.Stopwatch.StartNew()

            while Interlocked.Read &completed < target && waited.Elapsed < timeout do
                do! Task.Delay 2

            stopping.Cancel()

            if not (isNull loop) then
                do! loop

            do! journaling

            use cts = new CancellationTokenSource(timeout)

            while queue.Length > 0 && not cts.IsCancellationRequested do
                stage ()
                let! wrote = writer.FlushOnceAsync cts.Token

                if not wrote then
                    try
                        do! Task.Delay(100, cts.Token)
                    with :? OperationCanceledException ->
                        ()

            dispatcher.Stop()
            metrics.ObserveQueue(Func<int64>(fun () -> 0L))

            // What is left is in the journal already; it is rewritten to hold exactly that.
            match journal with
            | Some j ->
                stage ()
                j.Compact()
                j.Close()

                if queue.Length > 0 then
                    Log.SpilledOnStop parts.Logger queue.Length j.Path
            | None ->
                if queue.Length > 0 then
                    Log.LostOnStop parts.Logger queue.Length

            // A meter the engine created itself goes with it (a factory's meter is the host's).
            (metrics :> IDisposable).Dispose()
        }
