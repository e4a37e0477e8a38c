namespace ErrorMonitor.Core

open System

/// Size limits applied while building a record. Whatever is cut carries a visible marker.
type internal Limits =
    {
        /// Longest exception message kept, in characters. Default 8,192.
        MaxMessage: int
        /// Longest header value kept, in characters. Default 2,048.
        MaxHeaderValue: int
        /// Longest query, form, cookie, route or context value kept, in characters. Default 4,096.
        MaxFieldValue: int
        /// Most entries kept in one keyed collection (headers, query, form, cookies, data). Default 200.
        MaxEntries: int
        /// Longest request body excerpt kept, in characters. Default 16,384.
        MaxBody: int
        /// Deepest nesting kept in JSON-like data. Default 32.
        MaxDataDepth: int
        /// Most frames kept per exception. Default 200.
        MaxFrames: int
        /// Deepest inner-exception chain kept. Default 20.
        MaxInnerDepth: int
        /// Most inner exceptions kept per exception (AggregateException). Default 20.
        MaxInnerPerException: int
        /// Most exceptions kept in one record in all. Default 100.
        MaxExceptions: int
        /// Longest traceback text kept, in characters. Default 262,144.
        MaxTraceback: int
        /// Longest request data JSON kept, in characters. Default 262,144.
        MaxRequestData: int
    }

/// The default limits.
[<RequireQualifiedAccess>]
module internal Limits =

    /// The documented defaults.
    let defaults =
        {
            MaxMessage = 8192
            MaxHeaderValue = 2048
            MaxFieldValue = 4096
            MaxEntries = 200
            MaxBody = 16384
            MaxDataDepth = 32
            MaxFrames = 200
            MaxInnerDepth = 20
            MaxInnerPerException = 20
            MaxExceptions = 100
            MaxTraceback = 262144
            MaxRequestData = 262144
        }

    /// The limits of what a report from the capture route may store: its key is public in browser pages, so a
    /// group it makes holds at most 64 KB of traceback and 32 KB of request data (about 100 KB with the message).
    let reports =
        { defaults with
            MaxTraceback = 65536
            MaxRequestData = 32768
        }

    /// The wait before retry number `attempt` (1 for the first retry): `first`, doubled for each further
    /// attempt, never more than `cap`. The one backoff rule of the store writer, the notification dispatcher
    /// and ErrorMonitorClient.
    let backoff (first: TimeSpan) (cap: TimeSpan) (attempt: int) : TimeSpan =
        let doublings = max 0 (min 30 (attempt - 1))
        let ms = first.TotalMilliseconds * Math.Pow(2.0, float doublings)

        if ms >= cap.TotalMilliseconds then
            cap
        else
            TimeSpan.FromMilliseconds ms

    /// How many distinct groups may wait to be written, for a queue bound of `maxGroups` groups with details,
    /// before new groups are dropped: a hundred times the bound while a journal holds what does not fit in memory
    /// (`spillable`), ten times it when all of them wait in memory.
    let waitingGroups (maxGroups: int) (spillable: bool) : int =
        int (min (int64 maxGroups * (if spillable then 100L else 10L)) (int64 Int32.MaxValue))

    /// How many groups new to the queue (not written by it lately) its journaled stage may hold before it spills,
    /// for a queue bound of `maxGroups`: a tenth of the bound, at least 100 (never more than the bound). Repeats of
    /// groups written lately may fill the stage up to the bound (their repeats coalesce there); a storm of new
    /// groups, which never coalesce, spills past this many.
    let journaledNewGroups (maxGroups: int) : int =
        min maxGroups (max 100 (maxGroups / 10))

    /// Whether a queue's journaled stage of bound `maxGroups` spills when it would hold `groups` distinct groups,
    /// `fresh` of them new to the queue: past the bound, or past `journaledNewGroups` new ones.
    let journaledSpills (maxGroups: int) (groups: int) (fresh: int) : bool =
        groups > maxGroups || fresh > journaledNewGroups maxGroups

    /// How many groups the writer reads back from spilled journal segments for a batch (about), for a queue
    /// bound of `maxGroups`: half the bound (at least 1,000) once failures stop coming, so the drain writes large
    /// batches; a tenth (at least 100) while they keep coming, so the batch held in memory while it is written
    /// (its groups' details, for hundreds of milliseconds under the app's load) stays small while the app itself
    /// allocates fast, which is when the GC's budgets grow with what survives its collections.
    let spilledBatch (maxGroups: int) (failing: bool) : int =
        if failing then
            max 100 (maxGroups / 10)
        else
            max 1000 (maxGroups / 2)

    /// How long the throw-site pass waits for repeats to gather after a ring, given what the last pass found:
    /// `sites` throw sites built or counted, `occurrences` occurrences among them. A short wait (10 ms) unless the
    /// last pass was busy (more than 100 sites) *and* its sites had repeats gathered (twice as many occurrences as
    /// sites, on average): then a quarter of `flushInterval`, so one build or count serves more of them (what was
    /// answered must reach the journal within a flush interval). A storm of distinct groups gathers nothing: a
    /// longer wait would only hold each occurrence's copy of its request longer, long enough to outlive the GC's
    /// youngest generation (measured: a storm's memory growth about twice as large).
    let shapeWindow (flushInterval: TimeSpan) (sites: int) (occurrences: int64) : TimeSpan =
        if sites > 100 && occurrences >= 2L * int64 sites then
            flushInterval / 4.0
        else
            TimeSpan.FromMilliseconds 10.0

    /// How many groups written without their search rows (a storm's drain writes its batches so: their search
    /// rows were about a quarter of its cost) one step of the writer's catch-up indexes: a step is one transaction,
    /// so a new batch waits for at most one.
    let searchStep = 5000

    /// The markers that stand for what a bound left out.
    module Markers =
        /// Data nested deeper than the depth limit.
        [<Literal>]
        let NestedTooDeep = "…[nested too deep]"

        /// Items of a list past the entry limit.
        [<Literal>]
        let MoreItems = "…[more items not shown]"

        /// The key of the entry that stands for the entries past the limit.
        [<Literal>]
        let MoreEntriesKey = "…"

        /// Entries of an object or a pair list past the limit, with how many when known.
        let moreEntries (omitted: int option) =
            match omitted with
            | Some n -> sprintf "[%d more entries not shown]" n
            | None -> "[more entries not shown]"

    /// The marker closing a collection of which `seen` entries were met and `maxEntries` kept.
    let private moreThan (maxEntries: int) (seen: int) =
        Markers.MoreEntriesKey, Markers.moreEntries (Some(seen - maxEntries))

    /// A request collection bounded to `maxEntries`: the entries kept (gathered in reverse order), in order, then,
    /// when `seen` entries were more, the marker saying exactly how many were left out.
    let closeEntries (maxEntries: int) (reversed: (string * string) list) (seen: int) : (string * string) list =
        if seen > maxEntries then
            List.rev (moreThan maxEntries seen :: reversed)
        else
            List.rev reversed

    /// `closeEntries` for entries gathered in order into `kept` (its first `min seen maxEntries`).
    let closeKept (maxEntries: int) (kept: (string * string)[]) (seen: int) : (string * string) list =
        let mutable list =
            if seen > maxEntries then
                [ moreThan maxEntries seen ]
            else
                []

        for i = min seen maxEntries - 1 downto 0 do
            list <- kept.[i] :: list

        list
