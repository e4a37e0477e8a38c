namespace ErrorMonitor.Core

open System

/// What a journal file holds, read back.
type internal JournalContent =
    {
        /// The journal's id (None for a spill file written by an older version, which has no header).
        Id: string option
        /// Its segments in file order: a segment number and the groups it holds (coalesced within the segment).
        Segments: (int64 * GroupDelta) list
        /// The highest "stored up to" mark the file holds (0 when none); used with stores that cannot keep the
        /// mark themselves.
        Written: int64
        /// Lines that could not be read (a torn last line after a hard kill, say).
        Bad: int
    }

/// The journal's format and replay rule. The shell appends, every moment, what was accepted since the last
/// append as one numbered *segment* (one line per group); it writes a batch to the store together with the
/// number of the last segment the batch holds (the store's *mark* for this journal, in the same transaction).
/// A batch always holds every segment up to its mark, so after a hard kill "the segments past the store's mark"
/// are exactly what was answered and not stored: nothing lost, nothing counted twice. Pure: text in, text out.
[<RequireQualifiedAccess>]
module internal Journal =

    /// The first line: the format and the journal's id.
    let header (id: string) : string = "J1 " + id

    /// Writes a segment's line for one group (without its line break) as UTF-8 into `out`: no text of it is
    /// made on the way (a storm of new groups journals megabytes of these lines a second).
    [<Runtime.CompilerServices.MethodImpl(Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)>]
    let writeSegment (out: System.Buffers.IBufferWriter<byte>) (number: int64) (d: GroupDelta) : unit =
        let head = out.GetSpan 24
        head.[0] <- byte 'S'
        head.[1] <- byte ' '
        let mutable digits = 0

        number.TryFormat(head.Slice 2, &digits, ReadOnlySpan.Empty, Globalization.CultureInfo.InvariantCulture)
        |> ignore

        head.[2 + digits] <- byte ' '
        out.Advance(3 + digits)
        let w = Buffers.JsonWriter out
        Spill.write w d
        w.Flush()

    /// A segment's line for one group.
    let segment (number: int64) (d: GroupDelta) : string =
        let buffer = Buffers.Bytes()
        writeSegment buffer number d
        Text.Encoding.UTF8.GetString buffer.WrittenSpan

    let private put (out: System.Buffers.IBufferWriter<byte>) (c: char) =
        out.GetSpan(1).[0] <- byte c
        out.Advance 1

    let private putNumber (out: System.Buffers.IBufferWriter<byte>) (n: int64) =
        let span = out.GetSpan 20
        let mutable written = 0

        n.TryFormat(span, &written, ReadOnlySpan.Empty, Globalization.CultureInfo.InvariantCulture)
        |> ignore

        out.Advance written

    let private putText (out: System.Buffers.IBufferWriter<byte>) (s: string) =
        Text.EncodingExtensions.GetBytes(Text.Encoding.UTF8, s.AsSpan(), out) |> ignore

    /// Writes a segment's short line for a count-only group whose whole line is earlier in the same file (without
    /// its line break) as UTF-8 into `out`: the numbers only (count, first and last time, hours, user keys); read
    /// back with that earlier line's header. A storm over many known groups writes about one line an occurrence,
    /// so its cost is the journal's: no text of it is made on the way.
    [<Runtime.CompilerServices.MethodImpl(Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)>]
    let writeCounted (out: System.Buffers.IBufferWriter<byte>) (number: int64) (d: GroupDelta) : unit =
        put out 'C'
        put out ' '
        putNumber out number
        put out ' '
        putText out d.Latest.Hash
        put out ' '
        putNumber out d.Count
        put out ' '
        putNumber out d.FirstAt.UtcTicks
        put out ' '
        putNumber out d.Latest.OccurredAt.UtcTicks
        put out ' '

        if d.Hours.Length = 0 then
            put out '-'
        else
            for i in 0 .. d.Hours.Length - 1 do
                if i > 0 then
                    put out ','

                putNumber out d.Hours.[i].Start.UtcTicks
                put out ':'
                putNumber out d.Hours.[i].Count

        put out ' '

        if d.Users.Length = 0 then
            put out '-'
        else
            for i in 0 .. d.Users.Length - 1 do
                if i > 0 then
                    put out ','

                putText out d.Users.[i]

    /// The text of `writeCounted number d`.
    let counted (number: int64) (d: GroupDelta) : string =
        let buffer = Buffers.Bytes()
        writeCounted buffer number d
        Text.Encoding.UTF8.GetString buffer.WrittenSpan

    /// A short line's numbers, with the header of its group's last whole line: None when they do not read.
    let private parseCounted (header: ErrorEvent) (fields: string array) : GroupDelta option =
        let inv = Globalization.CultureInfo.InvariantCulture

        let number (text: string) =
            Int64.TryParse(text, Globalization.NumberStyles.None, inv)

        let time (text: string) =
            match number text with
            | true, t when t <= DateTimeOffset.MaxValue.UtcTicks -> Some(DateTimeOffset(t, TimeSpan.Zero))
            | _ -> None

        match fields with
        | [| count; first; last; hours; users |] ->
            match number count, time first, time last with
            | (true, n), Some firstAt, Some lastAt when n > 0L ->
                let buckets =
                    if hours = "-" then
                        Some [||]
                    else
                        let parts =
                            hours.Split ','
                            |> Array.map (fun h ->
                                match h.Split ':' with
                                | [| start; c |] ->
                                    match time start, number c with
                                    | Some t, (true, k) when k > 0L -> Some { Start = t; Count = k }
                                    | _ -> None
                                | _ -> None)

                        if parts |> Array.forall Option.isSome then
                            Some(parts |> Array.choose id)
                        else
                            None

                let keys = if users = "-" then [||] else users.Split ','

                match buckets with
                | Some b when keys |> Array.forall Users.isKey ->
                    Some(Events.countOnly header n firstAt lastAt (History.read b lastAt n) (Users.add [||] keys))
                | _ -> None
            | _ -> None
        | _ -> None

    /// Writes a segment's line for one group (without its line break) as UTF-8 into `out`: the short line when
    /// it is count-only and `whole` (the file holds a whole line of the group since it was created or
    /// compacted), else the whole line. Either way the file holds a whole line of the group afterwards.
    let writeLine (out: System.Buffers.IBufferWriter<byte>) (whole: bool) (number: int64) (d: GroupDelta) : unit =
        if whole && not d.Detailed then
            writeCounted out number d
        else
            writeSegment out number d

    /// The text of `writeLine whole number d`.
    let line (whole: bool) (number: int64) (d: GroupDelta) : string =
        let buffer = Buffers.Bytes()
        writeLine buffer whole number d
        Text.Encoding.UTF8.GetString buffer.WrittenSpan

    /// A "stored up to `number`" line (for stores that cannot keep the mark in the batch's transaction).
    let written (number: int64) : string =
        "W " + number.ToString Globalization.CultureInfo.InvariantCulture

    /// True for a valid journal id: 1 to 64 letters, digits or dashes (it is a key in the store).
    let isValidId (id: string) =
        not (String.IsNullOrEmpty id)
        && id.Length <= 64
        && id |> Seq.forall (fun c -> Char.IsAsciiLetterOrDigit c || c = '-')

    /// Reads a journal's lines after its header: its segments in file order, the highest "stored up to" mark,
    /// and the number of lines that could not be read. A short line reads with the header of its group's last
    /// whole line among `lines`.
    [<Runtime.CompilerServices.MethodImpl(Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)>]
    let readLines (lines: string seq) : struct ((int64 * GroupDelta) list * int64 * int) =
        let mutable written = 0L
        let mutable bad = 0
        let segments = Collections.Generic.List<int64 * GroupDelta>()
        // The header of each group's last whole line so far: a short line reads with it.
        let headers = Collections.Generic.Dictionary<string, ErrorEvent>()

        for line in lines do
            // A whole line is read in place (its JSON is most of a storm's journal).
            let gap = if line.StartsWith "S " then line.IndexOf(' ', 2) else -1

            if gap > 2 then
                let mutable k = 0L

                match Int64.TryParse(line.AsSpan(2, gap - 2), &k), Spill.parseLine (line.AsMemory(gap + 1)) with
                | true, Some d when k > 0L ->
                    segments.Add(k, d)
                    headers.[d.Latest.Hash] <- d.Latest
                | _ -> bad <- bad + 1
            else

                match line.Split(' ', 3) with
                | [| "W"; n |] ->
                    match Int64.TryParse n with
                    | true, k when k > 0L -> written <- max written k
                    | _ -> bad <- bad + 1
                | [| "C"; n; rest |] ->
                    let fields = rest.Split ' '

                    let read =
                        match Int64.TryParse n with
                        | true, k when k > 0L && fields.Length = 6 ->
                            match headers.TryGetValue fields.[0] with
                            | true, header -> parseCounted header fields.[1..] |> Option.map (fun d -> k, d)
                            | _ -> None
                        | _ -> None

                    match read with
                    | Some segment -> segments.Add segment
                    | None -> bad <- bad + 1
                | _ -> bad <- bad + 1

        struct (List.ofSeq segments, written, bad)

    /// The number after a line's two-byte tag ("S 12 ...", "C 12 ..."), and where the rest of the line starts;
    /// ValueNone when there is no positive number followed by a space.
    let private taggedNumber (line: ReadOnlySpan<byte>) : struct (int64 * int) voption =
        let gap =
            if line.Length > 2 then
                line.Slice(2).IndexOf(byte ' ')
            else
                -1

        let mutable k = 0L
        let mutable used = 0

        if
            gap > 0
            && Buffers.Text.Utf8Parser.TryParse(line.Slice(2, gap), &k, &used)
            && used = gap
            && k > 0L
        then
            ValueSome(struct (k, 2 + gap + 1))
        else
            ValueNone

    /// Reads the segments `first` to `last` from a stretch of a journal's bytes (UTF-8, whole lines) that holds
    /// only whole lines for them, as spilled segments are written (`writeSegment`): their groups in file order,
    /// and the number of lines that could not be read. Each line's JSON is read where it lies (no text is made of
    /// it); lines of other segments and "stored up to" marks are passed over; a short line of one of these
    /// segments cannot be read here (it needs its group's header) and counts as unreadable.
    [<Runtime.CompilerServices.MethodImpl(Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)>]
    let readWholeLines
        (bytes: ReadOnlyMemory<byte>)
        (first: int64)
        (last: int64)
        : struct ((int64 * GroupDelta) list * int) =
        let segments = Collections.Generic.List<int64 * GroupDelta>()
        let mutable bad = 0
        let mutable pos = 0

        while pos < bytes.Length do
            let rest = bytes.Span.Slice pos
            let newline = rest.IndexOf(byte '\n')
            let length = if newline < 0 then rest.Length else newline
            let line = bytes.Slice(pos, length)
            pos <- pos + length + 1
            let l = line.Span

            if l.Length >= 2 && l.[1] = byte ' ' && l.[0] = byte 'W' then
                () // a "stored up to" mark
            elif l.Length >= 2 && l.[1] = byte ' ' && (l.[0] = byte 'S' || l.[0] = byte 'C') then
                match taggedNumber l with
                | ValueSome(struct (k, start)) ->
                    if k >= first && k <= last then
                        match
                            (if l.[0] = byte 'S' then
                                 Spill.parseUtf8 (line.Slice start)
                             else
                                 None)
                        with
                        | Some d -> segments.Add(k, d)
                        | None -> bad <- bad + 1
                | ValueNone -> bad <- bad + 1
            elif l.Length > 0 then
                bad <- bad + 1

        struct (List.ofSeq segments, bad)

    /// Reads a journal; a file without a header is a spill file of an older version: its groups are read as
    /// segment 1, none of it stored.
    let parse (text: string) : JournalContent =
        let lines =
            (if isNull text then "" else text).Split('\n', StringSplitOptions.RemoveEmptyEntries)

        if lines.Length = 0 || not (lines.[0].StartsWith "J1 ") then
            let groups, bad = Spill.parse text

            {
                Id = None
                Segments = groups |> List.map (fun d -> 1L, d)
                Written = 0L
                Bad = bad
            }
        else
            let id = lines.[0].Substring 3
            let struct (segments, written, bad) = readLines (Seq.skip 1 lines)

            {
                Id = if isValidId id then Some id else None
                Segments = segments
                Written = written
                Bad = bad + (if isValidId id then 0 else 1)
            }

    /// The highest segment number the journal holds (0 when none).
    let lastSegment (content: JournalContent) : int64 =
        content.Segments |> List.fold (fun top (k, _) -> max top k) 0L

    /// Segments' groups merged by group in segment order: one delta a group, as applying them in turn would give.
    [<Runtime.CompilerServices.MethodImpl(Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)>]
    let merged (segments: (int64 * GroupDelta) seq) : GroupDelta list =
        // Their places sorted by group, then segment, then place (each group's deltas side by side, in the order
        // they apply), then merged from the end: small arrays (references and places), no table by hash (a batch
        // read back holds thousands of groups).
        let items = Array.ofSeq segments
        let order = Array.init items.Length id

        let hashAt i = (snd items.[i]).Latest.Hash

        order
        |> Array.sortInPlaceWith (fun a b ->
            let c = String.CompareOrdinal(hashAt a, hashAt b)

            if c <> 0 then
                c
            elif fst items.[a] <> fst items.[b] then
                compare (fst items.[a]) (fst items.[b])
            else
                compare a b)

        let mutable result = []
        let mutable i = order.Length - 1

        while i >= 0 do
            let hash = hashAt order.[i]
            let mutable first = i

            while first > 0 && hashAt order.[first - 1] = hash do
                first <- first - 1

            let mutable d = snd items.[order.[first]]

            for j = first + 1 to i do
                d <- Events.merge d (snd items.[order.[j]])

            result <- d :: result
            i <- first - 1

        result

    /// What is not stored when the store's mark is `mark`: the groups of every segment past it, merged by group
    /// in segment order.
    let unstored (mark: int64) (content: JournalContent) : GroupDelta list =
        content.Segments |> List.filter (fun (k, _) -> k > mark) |> merged

    /// The whole text of a compacted journal: the header, then each (segment, groups) in order.
    let compacted (id: string) (segments: (int64 * GroupDelta seq) seq) : string =
        let sb = Text.StringBuilder()
        sb.Append(header id).Append('\n') |> ignore

        for k, groups in segments do
            for d in groups do
                sb.Append(segment k d).Append('\n') |> ignore

        sb.ToString()
