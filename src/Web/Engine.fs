namespace ErrorMonitor

open System
open System.Collections.Generic
open System.Threading

/// Extra context for whatever is recorded while the scope is open (on this async flow). Dispose to close.
[<AllowNullLiteral>]
type ErrorScope internal (parent: ErrorScope) =
    static let current = AsyncLocal<ErrorScope>()
    let gate = obj ()
    let extras = List<KeyValuePair<string, obj>>()
    let mutable disposed = false

    /// Adds (or replaces) an entry; returns the scope, so calls chain.
    member this.SetExtra(key: string, [<System.Runtime.CompilerServices.Nullable(2uy)>] value: obj) : ErrorScope =
        ArgumentNullException.ThrowIfNull key

        lock gate (fun () ->
            extras.RemoveAll(fun kv -> kv.Key = key) |> ignore
            extras.Add(KeyValuePair(key, value)))

        this

    member internal _.Parent = parent

    member internal _.Entries = lock gate (fun () -> List.ofSeq extras)

    /// Opens a scope inside the current one.
    static member Begin() : ErrorScope =
        let s = new ErrorScope(current.Value)
        current.Value <- s
        s

    /// Every extra of the open scopes, outermost first (inner scopes win on the same key).
    static member internal CurrentExtras() : (string * obj) list =
        let rec chain (s: ErrorScope) acc =
            if isNull s then acc else chain s.Parent (s :: acc)

        chain current.Value []
        |> List.collect (fun s -> s.Entries |> List.map (fun kv -> kv.Key, kv.Value))
        |> List.rev
        |> List.distinctBy fst
        |> List.rev

    interface IDisposable with
        member this.Dispose() =
            if not disposed then
                disposed <- true

                if Object.ReferenceEquals(current.Value, this) then
                    current.Value <- parent

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

/// The request-thread copy of an occurrence, waiting for the rest of its work.
type internal Snapshot =
    {
        /// The exception (null for a message).
        Exception: exn
        /// The message (for a message).
        Message: string
        Request: RequestContext option
        Extra: (string * Data) list
        OccurredAt: DateTimeOffset
        /// The app's group key, if it has a fingerprint function.
        Key: string option
    }

/// A throw site whose group was written with its details: the group's header (its event without request
/// data and traceback), when those details were taken, and the repeats counted since the last pass (read and
/// changed under the engine's shape gate).
[<AllowNullLiteral>]
type internal KnownShape(header: ErrorEvent, detailsAt: DateTimeOffset) =
    member _.Header = header
    member _.DetailsAt = detailsAt
    member val Pending = 0L with get, set
    member val FirstAt = DateTimeOffset.MinValue with get, set
    member val LastAt = DateTimeOffset.MinValue with get, set

/// Repeats of one throw site waiting for their background work: the first one's snapshot, and the count.
type internal ShapeEntry =
    {
        Snapshot: Snapshot
        mutable Count: int64
        mutable LastAt: DateTimeOffset
    }

/// A cheap identity of a throw site, read on the request path without formatting anything.
[<RequireQualifiedAccess>]
module internal ThrowSite =

    // The runtime keeps an exception's frames in a private array (CoreCLR, 64-bit: a 16-byte header whose first
    // 4 bytes are the frame count, then 32 bytes a frame: code address, stack pointer, method, flags), from which
    // StackTrace builds its frames. Reading the code addresses and methods from it directly costs a fraction of
    // building a StackTrace. The layout is private, so it is checked once against StackTrace at first use; when
    // it does not match (another runtime), or the field is not there, StackTrace is used.
    let private traceField =
        typeof<exn>.GetField("_stackTrace", Reflection.BindingFlags.NonPublic ||| Reflection.BindingFlags.Instance)

    [<Literal>]
    let private Header = 16

    [<Literal>]
    let private FrameSize = 32

    /// The raw frame array of an exception and its frame count, if it can be read and is well formed.
    let private rawOf (e: exn) : struct (sbyte array * int) =
        let raw =
            match traceField.GetValue e with
            | :? (sbyte array) as s -> s
            | :? (obj array) as o when o.Length > 0 ->
                match o.[0] with
                | :? (sbyte array) as s -> s
                | _ -> null
            | _ -> null

        if isNull raw || raw.Length < Header then
            struct (null, 0)
        else
            let bytes = Runtime.InteropServices.MemoryMarshal.AsBytes(ReadOnlySpan raw)
            let n = Runtime.InteropServices.MemoryMarshal.Read<int> bytes

            if n > 0 && Header + n * FrameSize <= raw.Length then
                struct (raw, n)
            else
                struct (null, 0)

    /// Frame i's code address and method, from a raw frame array.
    let inline private frameAt (raw: sbyte array) (i: int) : struct (int64 * int64) =
        let bytes =
            Runtime.InteropServices.MemoryMarshal.AsBytes(ReadOnlySpan raw).Slice(Header + i * FrameSize)

        struct (Runtime.InteropServices.MemoryMarshal.Read<int64> bytes,
                Runtime.InteropServices.MemoryMarshal.Read<int64>(bytes.Slice 16))

    [<MethodImpl(MethodImplOptions.NoInlining)>]
    let rec private probeThrow (depth: int) : int =
        if depth = 0 then
            raise (InvalidOperationException "probe")
        else
            1 + probeThrow (depth - 1)

    /// True when the raw array reads as described here: the same methods, in the same order, as StackTrace.
    let private rawReadable =
        lazy
            (try
                if IntPtr.Size <> 8 || isNull traceField then
                    false
                else
                    let ex =
                        try
                            probeThrow 3 |> ignore
                            null
                        with e ->
                            e

                    let struct (raw, n) = rawOf ex
                    let frames = StackTrace(ex, false).GetFrames()

                    not (isNull raw)
                    && n = frames.Length
                    && frames
                       |> Array.mapi (fun i f ->
                           let struct (_, m) = frameAt raw i
                           m = int64 (f.GetMethod().MethodHandle.Value))
                       |> Array.forall id
             with _ ->
                 false)

    /// The exception types and each frame's code address and method (or method and IL offset), down the inner
    /// chain, mixed into 128 bits; ValueNone when that cannot be had cheaply and exactly (a frameless
    /// exception, an AggregateException, a frame without a method), so the occurrence takes the ordinary path.
    /// Equal identities mean the same frames, so the same fingerprint.
    let shapeOf (ex: exn) : struct (int64 * int64) voption =
        try
            let mutable a = 1469598103934665603L
            let mutable b = 7809847782465536322L
            let mutable e = ex
            let mutable ok = true
            let mutable depth = 0
            let fast = rawReadable.Value

            let mix (v: int64) =
                a <- (a ^^^ v) * 1099511628211L
                b <- (b + v) * -7046029254386353131L
                b <- b ^^^ (b >>> 29)

            while ok && not (isNull e) && depth < 20 do
                match e with
                | :? AggregateException -> ok <- false
                | _ ->
                    mix (int64 (e.GetType().TypeHandle.Value))

                    let struct (raw, n) = if fast then rawOf e else struct (null, 0)

                    if not (isNull raw) then
                        mix 1L

                        for i in 0 .. n - 1 do
                            let struct (ip, m) = frameAt raw i
                            mix ip
                            mix m
                    else
                        let frames = StackTrace(e, false).GetFrames()

                        if frames.Length = 0 then
                            ok <- false
                        else
                            for f in frames do
                                let m = f.GetMethod()

                                match m with
                                | null -> ok <- false
                                | :? Reflection.Emit.DynamicMethod ->
                                    // A dynamic method (minimal-API handlers are compiled to them) has no handle;
                                    // its name is unique in the process (lambda_method1, ...) and its place in
                                    // the chain of other frames is part of the identity too.
                                    mix (int64 (StringComparer.Ordinal.GetHashCode m.Name))
                                    mix (int64 (f.GetILOffset()))
                                | _ ->
                                    mix (int64 (m.MethodHandle.Value))
                                    mix (int64 (f.GetILOffset()))

                    e <- e.InnerException
                    depth <- depth + 1

            if ok && isNull e then
                ValueSome(struct (a, b))
            else
                ValueNone
        with _ ->
            ValueNone

    /// True when identities are read from the runtime's frame array (false: from StackTrace).
    let readsRawFrames () = rawReadable.Value

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
    }

/// The capture engine: builds occurrences on the request thread (pure work plus an enqueue) and writes
/// them in the background. Capture never throws into the app.
type Engine internal (parts: EngineParts) =
    let queue = CaptureQueue(parts.Settings.MaxPendingGroups)

    let dispatcher =
        Dispatcher(parts.Settings, parts.Store, parts.Notifiers, parts.Ticketing, parts.Clock, parts.Logger)

    let spill = parts.SpillPath |> Option.map (fun p -> SpillFile(p, parts.Logger))

    // Repeats of one throw site, coalesced on the request path before any formatting: a storm costs the
    // request thread a look at the stack, not a whole capture. Bounded like the queue.
    let shapeGate = obj ()
    let mutable shapes = Dictionary<struct (int64 * int64 * string), ShapeEntry>()

    // Throw sites whose group was written with details less than APP_ERROR_DETAILS_INTERVAL ago: their repeats
    // are counted in place, without a snapshot, a build or an allocation. Bounded: cleared when full (the next
    // occurrences rebuild it). `counting` lists the sites with repeats counted since the last pass.
    let known = Dictionary<struct (int64 * int64 * string), KnownShape>()
    let mutable counting = List<KnownShape>()
    let knownLimit = 2 * max parts.Settings.MaxPendingGroups 10000

    /// A group written from a count-only batch was missing (deleted meanwhile): its throw sites take the full
    /// path again, so its details come back with the next occurrence.
    let forgetInserted (rows: GroupDelta array) (written: IReadOnlyList<GroupWritten>) =
        if rows |> Array.exists (fun d -> not d.Detailed) then
            let inserted =
                written
                |> Seq.filter (fun w -> not w.PreviousSeen.HasValue)
                |> Seq.map (fun w -> w.Hash)
                |> HashSet

            let missing =
                rows
                |> Array.filter (fun d -> not d.Detailed && inserted.Contains d.Latest.Hash)
                |> Array.map (fun d -> d.Latest.Hash)
                |> HashSet

            if missing.Count > 0 then
                lock shapeGate (fun () ->
                    let stale =
                        known
                        |> Seq.filter (fun kv -> missing.Contains kv.Value.Header.Hash)
                        |> Seq.map (fun kv -> kv.Key)
                        |> Array.ofSeq

                    for k in stale do
                        known.Remove k |> ignore)

    let writer =
        Writer(
            queue,
            parts.Store,
            parts.Logger,
            (fun rows written ->
                forgetInserted rows written

                if dispatcher.Active then
                    dispatcher.Post rows written),
            spill,
            parts.Settings.FlushInterval
        )

    do Metrics.queues.[queue :> obj] <- Func<int64>(fun () -> int64 queue.Length)

    let recorded = ConditionalWeakTable<exn, string>()

    // Once per exception object: in a request, the request's own items remember it (cheap, gone with the
    // request); outside one, a weak table does.
    let itemKey = obj ()

    let seenBefore (ex: exn) (http: HttpContext) : string option voption =
        if not (isNull http) then
            match http.Items.TryGetValue itemKey with
            | true, (:? (exn * string) as pair) when Object.ReferenceEquals(fst pair, ex) -> ValueSome(Some(snd pair))
            | _ -> ValueNone
        else
            match recorded.TryGetValue ex with
            | true, hash -> ValueSome(Option.ofObj hash)
            | _ -> ValueNone

    let remember (ex: exn) (http: HttpContext) (hash: string) =
        if not (isNull http) then
            http.Items.[itemKey] <- box (ex, hash)
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
                    parts.Logger.LogWarning(
                        EventId(1003, "ContextBuilderFailed"),
                        ex,
                        "ErrorMonitor's context builder failed"
                    )

                    []

        built @ scoped |> List.map (fun (k, v) -> k, DataOf.value parts.Limits v)

    let frameReader = FrameReader(parts.Limits)

    let appKey (raw: exn) (http: HttpContext) : string option =
        parts.Fingerprint
        |> Option.bind (fun f ->
            try
                f raw http
            with ex ->
                parts.Logger.LogWarning(
                    EventId(1007, "FingerprintFailed"),
                    ex,
                    "ErrorMonitor's fingerprint function failed"
                )

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

    /// The rest of a capture (pure work): exception data, masking, traceback, fingerprint.
    let build (s: Snapshot) : ErrorEvent =
        let c =
            {
                Request = s.Request
                Subject =
                    if isNull s.Exception then
                        Subject.Message s.Message
                    else
                        Subject.Exception(ExceptionInfo.captureWith parts.Limits frameReader.Read s.Exception)
                Extra = s.Extra
                OccurredAt = s.OccurredAt
            }

        let fingerprint =
            s.Key
            |> Option.map (fun key -> fun (_: ExceptionInfo option) (_: RequestContext option) -> Some key)

        Events.build parts.Settings parts.Masking parts.Limits fingerprint c

    let logDropped (hash: string) =
        let dropped = queue.Dropped

        if dropped = 1L || dropped % 1000L = 0L then
            parts.Logger.LogWarning(
                EventId(1004, "QueueFull"),
                "ErrorMonitor's queue holds {Groups} groups, its bound: an occurrence of {Hash} was dropped ({Dropped} in all)",
                parts.Settings.MaxPendingGroups,
                hash,
                dropped
            )

    /// The rest of a capture (pure work, then an enqueue): exception data, masking, traceback, fingerprint.
    let complete (s: Snapshot) : (string * int64) option =
        try
            let e = build s

            match queue.Enqueue e with
            | Some sequence -> Some(e.Hash, sequence)
            | None ->
                logDropped e.Hash
                Some(e.Hash, -1L)
        with ex ->
            parts.Logger.LogError(EventId(1005, "CaptureFailed"), ex, "ErrorMonitor could not record an occurrence")
            None

    let capture (raw: exn) (message: string) (http: HttpContext) : (string * int64) option =
        if not parts.Settings.Enabled then
            None
        else
            try
                Metrics.captured.Add 1L
                complete (snapshot raw message http)
            with ex ->
                parts.Logger.LogError(EventId(1005, "CaptureFailed"), ex, "ErrorMonitor could not record an occurrence")
                None

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

    /// Builds one event for each coalesced throw site and hands it to the queue with its count; hands the
    /// repeats counted for known sites over as count-only batches.
    let completeShapes () =
        let struct (taken, counted) =
            lock shapeGate (fun () ->
                let t = shapes
                shapes <- Dictionary<_, _>(t.Count)

                let c =
                    counting
                    |> Seq.map (fun site ->
                        let d = Events.countOnly site.Header site.Pending site.FirstAt site.LastAt
                        site.Pending <- 0L
                        d)
                    |> Array.ofSeq

                counting.Clear()
                struct (t, c))

        let learned = List<struct (struct (int64 * int64 * string) * KnownShape)>()

        for kv in taken do
            let entry = kv.Value

            try
                try
                    let e = build entry.Snapshot

                    let delta =
                        { Events.single e with
                            Latest = { e with OccurredAt = entry.LastAt }
                            FirstAt = entry.Snapshot.OccurredAt
                            Count = entry.Count
                        }

                    if (queue.EnqueueDelta delta).IsNone then
                        logDropped e.Hash
                    else
                        let header = (Events.countOnly e 1L e.OccurredAt e.OccurredAt).Latest
                        learned.Add(struct (kv.Key, KnownShape(header, entry.Snapshot.OccurredAt)))
                with ex ->
                    parts.Logger.LogError(
                        EventId(1005, "CaptureFailed"),
                        ex,
                        "ErrorMonitor could not record an occurrence"
                    )
            finally
                Interlocked.Add(&completed, entry.Count) |> ignore

        for d in counted do
            try
                if (queue.EnqueueDelta d).IsNone then
                    logDropped d.Latest.Hash
            finally
                Interlocked.Add(&completed, d.Count) |> ignore

        if learned.Count > 0 then
            lock shapeGate (fun () ->
                if known.Count + learned.Count > knownLimit then
                    known.Clear()

                for struct (k, site) in learned do
                    known.[k] <- site)

        taken.Count + counted.Length

    let mutable lastPass = 0

    let shapeLoop () : Task =
        task {
            while not stopping.IsCancellationRequested do
                try
                    let! rang = shapeBell.WaitAsync(TimeSpan.FromMilliseconds 50.0, stopping.Token)

                    // A short window lets a storm's repeats gather, so one build serves many occurrences; when
                    // the last pass was busy (many throw sites at once), a longer one (the flush interval).
                    if rang then
                        let window =
                            if lastPass > 100 then
                                parts.Settings.FlushInterval
                            else
                                TimeSpan.FromMilliseconds 10.0

                        do! Task.Delay(window, stopping.Token)

                    lastPass <- completeShapes ()
                with
                | :? OperationCanceledException -> ()
                | ex -> parts.Logger.LogError(EventId(1002, "WriterFailed"), ex, "ErrorMonitor's capture loop failed")

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
                    Metrics.captured.Add 1L
                    let key = appKey ex http

                    match ThrowSite.shapeOf ex with
                    | ValueSome(struct (a, b)) when not (isNull loop) ->
                        let k = struct (a, b, defaultArg key "")
                        let now = parts.Clock.GetUtcNow()

                        // 0: not counted yet (the details are due); 1: added to a pending batch; 2: the first
                        // repeat since the last pass of a site whose details are recent.
                        let counted =
                            lock shapeGate (fun () ->
                                match shapes.TryGetValue k with
                                | true, entry ->
                                    entry.Count <- entry.Count + 1L
                                    entry.LastAt <- max entry.LastAt now
                                    Interlocked.Increment &accepted |> ignore
                                    1
                                | _ ->
                                    match known.TryGetValue k with
                                    | true, site when now - site.DetailsAt < parts.Settings.DetailsInterval ->
                                        Interlocked.Increment &accepted |> ignore

                                        if site.Pending = 0L then
                                            site.Pending <- 1L
                                            site.FirstAt <- now
                                            site.LastAt <- now
                                            counting.Add site
                                            2
                                        else
                                            site.Pending <- site.Pending + 1L
                                            site.LastAt <- max site.LastAt now
                                            1
                                    | _ -> 0)

                        if counted = 2 then
                            ringShapes ()

                        if counted = 0 then
                            let s = snapshotWith ex null http key

                            let added =
                                lock shapeGate (fun () ->
                                    match shapes.TryGetValue k with
                                    | true, entry ->
                                        entry.Count <- entry.Count + 1L
                                        entry.LastAt <- max entry.LastAt s.OccurredAt
                                        Interlocked.Increment &accepted |> ignore
                                        true
                                    | _ when shapes.Count < parts.Settings.MaxPendingGroups ->
                                        shapes.[k] <-
                                            {
                                                Snapshot = s
                                                Count = 1L
                                                LastAt = s.OccurredAt
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
                parts.Logger.LogError(EventId(1005, "CaptureFailed"), e, "ErrorMonitor could not record an occurrence")

    /// Records an error report that came over HTTP (the capture route); returns its group's hash.
    member internal _.RecordReport(report: ClientReport) : string option =
        if not parts.Settings.Enabled then
            None
        else
            try
                let e =
                    Events.build
                        parts.Settings
                        parts.Masking
                        parts.Limits
                        None
                        (Report.toCapture report (parts.Clock.GetUtcNow()))

                Metrics.captured.Add 1L

                if (queue.Enqueue e).IsNone then
                    logDropped e.Hash

                Some e.Hash
            with ex ->
                parts.Logger.LogError(EventId(1005, "CaptureFailed"), ex, "ErrorMonitor could not record a report")
                None

    /// True when this exception object was recorded already.
    member internal _.WasRecorded(ex: exn, http: HttpContext) =
        not (isNull ex) && (seenBefore ex http).IsSome

    /// Records a message.
    member internal _.RecordMessage(text: string, http: HttpContext) : (string * int64) option =
        capture null (if isNull text then "" else text) http

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

    /// Starts the background writer.
    member internal _.Start() =
        lock stopping (fun () ->
            if isNull loop then
                match spill with
                | Some f ->
                    let waiting = f.Load()

                    if not waiting.IsEmpty then
                        queue.PutBack waiting

                        parts.Logger.LogInformation(
                            EventId(1033, "SpillReplayed"),
                            "ErrorMonitor replays {Groups} groups ({Occurrences} occurrences) from {Path}",
                            waiting.Length,
                            waiting |> List.sumBy (fun d -> d.Count),
                            f.Path
                        )
                | None -> ()

                dispatcher.Start()
                Task.Run(fun () -> completeDeferred ()) |> ignore
                Task.Run(fun () -> shapeLoop ()) |> ignore
                loop <- Task.Run(fun () -> writer.RunAsync stopping.Token))

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

            use cts = new CancellationTokenSource(timeout)
            let mutable ok = false

            while queue.Length > 0 && not cts.IsCancellationRequested do
                let! wrote = writer.FlushOnceAsync cts.Token
                ok <- wrote

                if not wrote then
                    try
                        do! Task.Delay(100, cts.Token)
                    with :? OperationCanceledException ->
                        ()

            dispatcher.Stop()
            Metrics.queues.TryRemove(queue :> obj) |> ignore

            if queue.Length > 0 then
                writer.Spill()

                match spill with
                | Some f ->
                    parts.Logger.LogWarning(
                        EventId(1006, "SpilledOnStop"),
                        "ErrorMonitor stopped with {Groups} groups not written; they wait in {Path} for the next start",
                        queue.Length,
                        f.Path
                    )
                | None ->
                    parts.Logger.LogError(
                        EventId(1007, "LostOnStop"),
                        "ErrorMonitor stopped with {Groups} groups not written and spilling off: they are lost",
                        queue.Length
                    )
        }

/// Building an engine from flat configuration and app-supplied parts (used by the C# facade and F# apps).
[<RequireQualifiedAccess>]
module internal EngineFactory =

    /// The default SQLite connection string: a file next to the app.
    [<Literal>]
    let DefaultSqlite = "Data Source=errormonitor.db"

    /// The store the settings choose. A relative SQLite file is placed in `contentRoot`.
    let store (settings: Settings) (connectionString: string) (contentRoot: string) : IErrorStore =
        match settings.Store with
        | StoreKind.Memory -> MemoryStore() :> IErrorStore
        | StoreKind.Sqlite ->
            let b =
                try
                    SqliteConnectionStringBuilder(
                        if String.IsNullOrWhiteSpace connectionString then
                            DefaultSqlite
                        else
                            connectionString
                    )
                with ex ->
                    raise (
                        ErrorMonitorConfigException(
                            sprintf
                                "ConnectionStrings:ErrorMonitor is not a valid SQLite connection string: %s"
                                ex.Message
                        )
                    )

            if
                b.DataSource <> ":memory:"
                && not (Path.IsPathRooted b.DataSource)
                && not (String.IsNullOrEmpty contentRoot)
            then
                b.DataSource <- Path.Combine(contentRoot, b.DataSource)

            SqliteStore(b.ConnectionString, settings.TableName) :> IErrorStore
        | StoreKind.Postgres ->
            if String.IsNullOrWhiteSpace connectionString then
                raise (
                    ErrorMonitorConfigException(
                        "APP_ERROR_STORE=postgres needs ConnectionStrings:ErrorMonitor (an Npgsql connection string)"
                    )
                )

            try
                PostgresStore.Create(connectionString, settings.TableName) :> IErrorStore
            with ex ->
                raise (
                    ErrorMonitorConfigException(
                        sprintf
                            "ConnectionStrings:ErrorMonitor is not a valid PostgreSQL connection string: %s"
                            ex.Message
                    )
                )

    /// A masking rule from a C# delegate: null keeps the value, any text masks it with that text.
    let maskingOf (f: Func<string, string>) : MaskingRule =
        fun key ->
            match f.Invoke key with
            | null -> MaskDecision.Keep
            | text -> MaskDecision.MaskWith text

    /// A fingerprint function from a C# delegate: null falls back to the default fingerprint. The delegate
    /// gets the exception (null for messages) and the request (null outside one).
    let fingerprintOf (f: Func<exn, HttpContext, string>) : exn -> HttpContext -> string option =
        fun e http -> Option.ofObj (f.Invoke(e, http))

    /// One HTTP client for every webhook notifier of the process.
    let private webhookClient =
        lazy (new Net.Http.HttpClient(Timeout = TimeSpan.FromSeconds 30.0))

    /// Parses settings; throws ErrorMonitorConfigException naming every key at fault.
    let settings (values: IReadOnlyDictionary<string, string>) : Settings =
        let map =
            values
            |> Seq.filter (fun kv -> not (isNull kv.Value))
            |> Seq.map (fun kv -> kv.Key, kv.Value)
            |> Map.ofSeq

        match Config.parse map with
        | Ok s -> s
        | Error errors -> raise (ErrorMonitorConfigException(Config.describe errors))

    /// Builds an engine from flat configuration (APP_ERROR_* keys) and optional parts; null means the
    /// default for each part. Throws ErrorMonitorConfigException naming the key at fault.
    let create
        (values: IReadOnlyDictionary<string, string>)
        (connectionString: string)
        (contentRoot: string)
        (masking: Func<string, string>)
        (fingerprint: Func<exn, HttpContext, string>)
        (contextBuilder: IContextBuilder)
        (customStore: IErrorStore)
        (notifiers: seq<INotifier>)
        (ticketing: seq<ITicketing>)
        (clock: TimeProvider)
        (logger: ILogger)
        : Engine =
        let s = settings values

        let builtIn: INotifier list =
            [
                if s.Notify.SmtpHost.IsSome then
                    EmailNotifier(s.Notify) :> INotifier
                match s.Notify.WebhookUrl with
                | Some url -> WebhookNotifier(url, webhookClient.Value) :> INotifier
                | None -> ()
            ]

        let some (xs: seq<'T>) =
            if isNull (box xs) then
                []
            else
                xs |> Seq.filter (box >> isNull >> not) |> List.ofSeq

        Engine
            {
                Settings = s
                Limits = Limits.defaults
                Masking =
                    if isNull masking then
                        Config.maskingRule s
                    else
                        maskingOf masking
                Fingerprint =
                    if isNull fingerprint then
                        None
                    else
                        Some(fingerprintOf fingerprint)
                ContextBuilder =
                    if isNull (box contextBuilder) then
                        None
                    else
                        Some contextBuilder
                Store =
                    if isNull (box customStore) then
                        store s connectionString contentRoot
                    else
                        customStore
                Clock = if isNull clock then TimeProvider.System else clock
                Logger =
                    if isNull logger then
                        Abstractions.NullLogger.Instance :> ILogger
                    else
                        logger
                SpillPath =
                    s.SpillFile
                    |> Option.map (fun f ->
                        if IO.Path.IsPathRooted f || String.IsNullOrEmpty contentRoot then
                            f
                        else
                            IO.Path.Combine(contentRoot, f))
                Notifiers = builtIn @ some notifiers
                Ticketing = some ticketing
            }
