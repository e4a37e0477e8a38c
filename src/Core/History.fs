namespace ErrorMonitor.Core

open System
open System.Globalization

/// A series drawn as a bar chart: its bars (every span present), the axis' top and what to say of it.
type internal Chart =
    {
        /// Every span's count, oldest first.
        Bars: Bucket[]
        /// The value at the top of the axis (the largest bar rounded up to a round number; at least 1).
        Top: int64
        /// Occurrences in all.
        Total: int64
        /// The label of each bar, for the axis (hour "14:00" or day "Nov 30").
        Labels: string[]
        /// A sentence for screen readers and the title: total, span, busiest bar.
        Summary: string
    }

/// A group's history: occurrences counted an hour at a time, written with the coalesced counts, kept as hourly
/// buckets for `HourlyDays` days and as daily ones for `DailyDays` (older hours are added to their day when
/// they leave). Pure: times come from the caller.
[<RequireQualifiedAccess>]
module internal History =

    /// Hourly buckets are kept this many days; then they are added to their day.
    [<Literal>]
    let HourlyDays = 14

    /// Daily buckets are kept this many days.
    [<Literal>]
    let DailyDays = 365

    let private floorTo (ticks: int64) (t: DateTimeOffset) =
        DateTimeOffset(t.UtcTicks - t.UtcTicks % ticks, TimeSpan.Zero)

    /// The start of the hour `t` is in (UTC).
    let hourOf (t: DateTimeOffset) = floorTo TimeSpan.TicksPerHour t

    /// The start of the day `t` is in (UTC).
    let dayOf (t: DateTimeOffset) = floorTo TimeSpan.TicksPerDay t

    /// `count` occurrences in the hour of `at`.
    let one (at: DateTimeOffset) (count: int64) : Bucket[] =
        [| { Start = hourOf at; Count = count } |]

    /// Buckets summed by start, oldest first.
    let sum (buckets: Bucket seq) : Bucket[] =
        // One total a start, added up as they come (a batch's thousands of buckets fall in an hour or two: nothing
        // is gathered per start, so no large array is made).
        let totals = Collections.Generic.Dictionary<DateTimeOffset, int64>()

        for b in buckets do
            match totals.TryGetValue b.Start with
            | true, n -> totals.[b.Start] <- n + b.Count
            | _ -> totals.[b.Start] <- b.Count

        let summed: Bucket[] = Array.zeroCreate totals.Count

        let mutable i = 0

        for kv in totals do
            summed.[i] <- { Start = kv.Key; Count = kv.Value }
            i <- i + 1

        Array.sortInPlaceBy (fun b -> b.Start) summed
        summed

    /// The hours of `count` occurrences read back from a file (journal, spill): the buckets, each moved to the start
    /// of its hour, when they are all positive and add up to `count`; otherwise (files written before the history,
    /// or hours that do not add up) every occurrence in the hour of the latest, `latest`.
    let read (buckets: Bucket[]) (latest: DateTimeOffset) (count: int64) : Bucket[] =
        if
            buckets.Length > 0
            && buckets |> Array.forall (fun b -> b.Count > 0L)
            && Array.sumBy (fun (b: Bucket) -> b.Count) buckets = count
        then
            if buckets.Length = 1 then
                // The common case (one hour, as written): no sorting or grouping.
                [|
                    { buckets.[0] with
                        Start = hourOf buckets.[0].Start
                    }
                |]
            else
                sum (buckets |> Array.map (fun b -> { b with Start = hourOf b.Start }))
        else
            one latest count

    /// Two deltas' hours together (the coalescing rule); one hour each, the same one, is the common case.
    let add (a: Bucket[]) (b: Bucket[]) : Bucket[] =
        if a.Length = 1 && b.Length = 1 && a.[0].Start.Equals b.[0].Start then
            [|
                {
                    Start = a.[0].Start
                    Count = a.[0].Count + b.[0].Count
                }
            |]
        elif a.Length = 0 then
            b
        elif b.Length = 0 then
            a
        else
            sum (Seq.append a b)

    /// Hourly buckets added up by day.
    let days (hours: Bucket seq) : Bucket[] =
        sum (hours |> Seq.map (fun b -> { b with Start = dayOf b.Start }))

    /// Every span of a series: `count` spans of `step` from `first`, each with what `buckets` hold for it (0 when
    /// none). Buckets outside the series are left out.
    let series (first: DateTimeOffset) (step: TimeSpan) (count: int) (buckets: Bucket seq) : Bucket[] =
        let byStart = sum buckets |> Array.map (fun b -> b.Start, b.Count) |> dict

        Array.init count (fun i ->
            let start = first + TimeSpan.FromTicks(step.Ticks * int64 i)

            {
                Start = start
                Count =
                    match byStart.TryGetValue start with
                    | true, c -> c
                    | _ -> 0L
            })

    /// The first of the last `hours` hours up to and with the one `now` is in.
    let hourlyFrom (now: DateTimeOffset) (hours: int) =
        hourOf now - TimeSpan.FromHours(float (hours - 1))

    /// The first of the last `days` days up to and with today (UTC).
    let dailyFrom (now: DateTimeOffset) (days: int) =
        dayOf now - TimeSpan.FromDays(float (days - 1))

    /// The last `hours` hours up to and with the one `now` is in, oldest first.
    let hourly (now: DateTimeOffset) (hours: int) (buckets: Bucket seq) : Bucket[] =
        series (hourlyFrom now hours) (TimeSpan.FromHours 1.0) hours buckets

    /// The last `days` days up to and with today (UTC), oldest first, from daily buckets and the hourly ones not
    /// yet added to their day.
    let daily (now: DateTimeOffset) (count: int) (dayBuckets: Bucket seq) (hourBuckets: Bucket seq) : Bucket[] =
        series (dailyFrom now count) (TimeSpan.FromDays 1.0) count (Seq.append dayBuckets (days hourBuckets))

    /// Hourly buckets before this hour are added to their day (when `now` is the time): `HourlyDays` days ago.
    let hourlyKeptFrom (now: DateTimeOffset) =
        dayOf now - TimeSpan.FromDays(float HourlyDays)

    /// Daily buckets before this day are removed.
    let dailyKeptFrom (now: DateTimeOffset) =
        dayOf now - TimeSpan.FromDays(float DailyDays)

    /// A round number at least `n` (1, 2, 5 times a power of ten), for the top of an axis.
    let roundUp (n: int64) : int64 =
        if n <= 1L then
            1L
        else
            let rec go (p: int64) =
                if n <= p then p
                elif n <= 2L * p then 2L * p
                elif n <= 5L * p then 5L * p
                else go (p * 10L)

            go 1L

    let private hourLabel (b: Bucket) =
        b.Start.UtcDateTime.ToString("HH:mm", CultureInfo.InvariantCulture)

    let private dayLabel (b: Bucket) =
        b.Start.UtcDateTime.ToString("MMM d", CultureInfo.InvariantCulture)

    let private plural (n: int64) (one: string) (many: string) =
        if n = 1L then
            sprintf "%d %s" n one
        else
            sprintf "%s %s" (n.ToString("N0", CultureInfo.InvariantCulture)) many

    /// The chart of a series of hours (`daily` false) or days (true).
    let chart (daily: bool) (bars: Bucket[]) : Chart =
        let total = bars |> Array.sumBy (fun b -> b.Count)
        let label = if daily then dayLabel else hourLabel

        let span =
            if daily then
                plural (int64 bars.Length) "day" "days"
            else
                plural (int64 bars.Length) "hour" "hours"

        let busiest =
            if total = 0L then
                ""
            else
                let b = bars |> Array.maxBy (fun b -> b.Count)

                let at =
                    if daily then
                        "on " + dayLabel b
                    else
                        sprintf "at %s UTC" (hourLabel b)

                sprintf "; most (%s) %s" (b.Count.ToString("N0", CultureInfo.InvariantCulture)) at

        {
            Bars = bars
            Top =
                roundUp (
                    if bars.Length = 0 then
                        0L
                    else
                        bars |> Array.map (fun b -> b.Count) |> Array.max
                )
            Total = total
            Labels = bars |> Array.map label
            Summary = sprintf "%s in the last %s%s." (plural total "occurrence" "occurrences") span busiest
        }

/// Retention: what pruning removes and how often it runs. Pure: the time comes from the caller.
[<RequireQualifiedAccess>]
module internal Retention =

    /// The most of each kind one pass removes, at least.
    [<Literal>]
    let Batch = 1000

    /// The most of each kind one pass removes, at most.
    [<Literal>]
    let MaxBatch = 50000

    /// One pass's request at `now`: groups not seen for `retention`, the least recently seen past `maxGroups`,
    /// hourly buckets past `History.HourlyDays` days (added to their day), daily ones past `History.DailyDays`.
    /// A pass removes at most `Batch` of each kind, or as many as the `fresh` groups written since the last
    /// pass (up to `MaxBatch`): under a storm of new groups it keeps pace with the writer.
    let request (now: DateTimeOffset) (retention: TimeSpan) (maxGroups: int) (fresh: int64) : PruneRequest =
        {
            SeenBefore = now - retention
            MaxGroups = int64 maxGroups
            HoursBefore = History.hourlyKeptFrom now
            DaysBefore = History.dailyKeptFrom now
            Batch = int (max (int64 Batch) (min (int64 MaxBatch) fresh))
        }

    /// How long pruning rests between rounds: a quarter of the retention, from 1 s to 1 minute (a round runs
    /// passes until one finds nothing to do).
    let interval (retention: TimeSpan) : TimeSpan =
        TimeSpan.FromTicks(retention.Ticks / 4L)
        |> max (TimeSpan.FromSeconds 1.0)
        |> min (TimeSpan.FromMinutes 1.0)

    /// New groups written since the last round that start a round at once: a tenth of the bound on groups,
    /// at least 100.
    let newGroupsBeforePrune (maxGroups: int) : int64 = max 100L (int64 maxGroups / 10L)

    /// True when the writer prunes after a batch: `newGroups` new groups written since the last round, which was
    /// `sinceLast` ago. At once past `newGroupsBeforePrune`; any new group at all after a second, so that the
    /// end of a storm is pruned back to the bound within about a second, not at the next interval.
    let due (maxGroups: int) (newGroups: int64) (sinceLast: TimeSpan) : bool =
        newGroups >= newGroupsBeforePrune maxGroups
        || (newGroups > 0L && sinceLast >= TimeSpan.FromSeconds 1.0)

    /// True when a pass did something (another may follow at once).
    let did (r: PruneResult) = r.Groups + r.Hours + r.Days > 0

    /// Hourly buckets as the daily ones they are added to, by group (a store's fold of `HoursBefore`).
    let fold (rows: ('group * Bucket) seq) : ('group * Bucket) list =
        rows
        |> Seq.groupBy fst
        |> Seq.collect (fun (group, bs) -> History.days (bs |> Seq.map snd) |> Seq.map (fun b -> group, b))
        |> List.ofSeq
