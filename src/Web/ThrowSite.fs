namespace ErrorMonitor.Web

open System
open System.Diagnostics
open System.Runtime.CompilerServices
open ErrorMonitor.Core

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

/// Occurrences counted on the request path (under the engine's shape gate): an hour at a time (a counter for the
/// current hour and the buckets of earlier ones: an hour changes rarely within one pass), and the names of their
/// distinct authenticated users (at most `Users.Bound`; hashed into keys off the request path).
[<AllowNullLiteral>]
type internal Tally() =
    let mutable hour = DateTimeOffset.MinValue
    let mutable inHour = 0L
    let mutable earlier: Bucket list = []
    let mutable users: Collections.Generic.HashSet<string> = null

    /// Counts one occurrence at `at` of `user` (null: none).
    member _.Add(at: DateTimeOffset, user: string) =
        let h = History.hourOf at

        // DateTimeOffset's own equality (F#'s `=` takes its generic path).
        if h.Equals hour then
            inHour <- inHour + 1L
        else
            if inHour > 0L then
                earlier <- { Start = hour; Count = inHour } :: earlier

            hour <- h
            inHour <- 1L

        if not (isNull user) then
            if isNull users then
                users <- Collections.Generic.HashSet<string>(StringComparer.Ordinal)

            if users.Count < Users.Bound then
                users.Add user |> ignore

    /// What was counted, by hour (oldest first), and starts again.
    member _.Take() : Bucket[] =
        let all =
            if earlier.IsEmpty then
                [| { Start = hour; Count = inHour } |]
            else
                History.sum ({ Start = hour; Count = inHour } :: earlier)

        hour <- DateTimeOffset.MinValue
        inHour <- 0L
        earlier <- []
        all

    /// The names counted (then forgotten): to be made keys (`Users.key`) off the request path.
    member _.TakeUsers() : string[] =
        if isNull users then
            [||]
        else
            let names = Array.ofSeq users
            users <- null
            names

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
    /// The pending repeats by hour, and their users.
    member val Tally = Tally()

/// Repeats of one throw site waiting for their background work: the first one's snapshot, and the count.
type internal ShapeEntry =
    {
        Snapshot: Snapshot
        mutable Count: int64
        mutable LastAt: DateTimeOffset
        /// The occurrences by hour, and their users (the first one's included).
        Tally: Tally
    }

/// What counting an occurrence at a known throw site did, on the request path.
[<Struct>]
type internal Counted =
    /// Not counted: the site's details are due (or it is new), so the occurrence needs a snapshot.
    | DetailsDue
    /// Added to a batch of repeats already pending.
    | AddedToPending
    /// The first repeat since the last pass of a site whose details are recent: the shape loop is woken.
    | FirstRepeat

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

    /// Mixes `v` into the 128 bits (`a`, `b`) of an identity.
    let private mixInto (a: byref<int64>, b: byref<int64>, v: int64) =
        a <- (a ^^^ v) * 1099511628211L
        b <- (b + v) * -7046029254386353131L
        b <- b ^^^ (b >>> 29)

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

            while ok && not (isNull e) && depth < 20 do
                match e with
                | :? AggregateException -> ok <- false
                | _ ->
                    mixInto (&a, &b, int64 (e.GetType().TypeHandle.Value))

                    let struct (raw, n) = if fast then rawOf e else struct (null, 0)

                    if not (isNull raw) then
                        mixInto (&a, &b, 1L)

                        for i in 0 .. n - 1 do
                            let struct (ip, m) = frameAt raw i
                            mixInto (&a, &b, ip)
                            mixInto (&a, &b, m)
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
                                    mixInto (&a, &b, int64 (StringComparer.Ordinal.GetHashCode m.Name))
                                    mixInto (&a, &b, int64 (f.GetILOffset()))
                                | _ ->
                                    mixInto (&a, &b, int64 (m.MethodHandle.Value))
                                    mixInto (&a, &b, int64 (f.GetILOffset()))

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

    /// The frames of one exception (each frame's code address and method) mixed into 128 bits, read from its raw
    /// frame array; ValueNone when they cannot be read so (another runtime, no frames). Equal identities mean the
    /// same frames.
    let framesOf (ex: exn) : struct (int64 * int64) voption =
        try
            if isNull ex || not rawReadable.Value then
                ValueNone
            else
                let struct (raw, n) = rawOf ex

                if isNull raw then
                    ValueNone
                else
                    let mutable a = 1469598103934665603L ^^^ int64 n
                    let mutable b = 7809847782465536322L

                    for i in 0 .. n - 1 do
                        let struct (ip, m) = frameAt raw i
                        mixInto (&a, &b, ip)
                        mixInto (&a, &b, m)

                    ValueSome(struct (a, b))
        with _ ->
            ValueNone
