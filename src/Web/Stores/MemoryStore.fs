namespace ErrorMonitor.Web.Stores

open System
open System.Collections.Generic
open System.Threading.Tasks
open ErrorMonitor
open ErrorMonitor.Core

/// A store in memory, for tests and demos: lost when the process ends. A group keeps its first sample and the
/// `recent` newest.
type internal MemoryStore(recent: int) =
    let gate = obj ()
    let mutable records = Map.empty<string, ErrorRecord>
    // Samples by group hash, oldest first; the next sample's id.
    let mutable samples = Map.empty<string, Sample list>
    let mutable nextSample = 1L
    // The user keys each group holds.
    let mutable users = Map.empty<string, Set<string>>
    let mutable claims = Map.empty<string * ClaimKind, DateTimeOffset>
    // History: hourly and daily buckets by group hash ("" for all groups together).
    let mutable hours = Map.empty<string, Map<DateTimeOffset, int64>>
    let mutable days = Map.empty<string, Map<DateTimeOffset, int64>>

    /// `history` with `buckets` added to a group's (hash) buckets.
    let added (history: Map<string, Map<DateTimeOffset, int64>>) (hash: string) (buckets: Bucket seq) =
        let had = history.TryFind hash |> Option.defaultValue Map.empty

        history.Add(
            hash,
            buckets
            |> Seq.fold
                (fun (m: Map<DateTimeOffset, int64>) b ->
                    m.Add(b.Start, (m.TryFind b.Start |> Option.defaultValue 0L) + b.Count))
                had
        )

    let from (buckets: Map<string, Map<DateTimeOffset, int64>>) (hash: string) (start: DateTimeOffset) =
        match buckets.TryFind hash with
        | Some m ->
            [|
                for kv in m do
                    if kv.Key >= start then
                        { Start = kv.Key; Count = kv.Value }
            |]
        | None -> [||]

    /// Forgets what a group held besides its record: samples, users, claims and history.
    let forget (hash: string) =
        samples <- samples.Remove hash
        users <- users.Remove hash
        claims <- claims.Remove((hash, ClaimKind.Notification)).Remove((hash, ClaimKind.Ticket))

    let claimed hash kind =
        match claims.TryFind(hash, kind) with
        | Some t -> Nullable t
        | None -> Nullable()

    /// The groups a query selects in its order (largest key first, ties by hash): the order every store lists in.
    static member Order(query: ListQuery, all: seq<ErrorRecord>) =
        all
        |> Seq.filter (Triage.selects query)
        |> Seq.sortWith (fun a b ->
            match compare (Triage.sortKey query.Sort b) (Triage.sortKey query.Sort a) with
            | 0 -> String.CompareOrdinal(a.Hash, b.Hash)
            | c -> c)

    /// A store whose groups keep `Samples.DefaultRecent` recent samples.
    new() = MemoryStore(Samples.DefaultRecent)

    interface IErrorStore with
        member _.InitializeAsync _ = Task.CompletedTask

        member _.UpsertAsync(batch, _) =
            let written =
                lock gate (fun () ->
                    [|
                        for d in batch do
                            let hash = d.Latest.Hash
                            let before = records.TryFind hash

                            if before.IsNone then
                                forget hash

                            if d.Detailed then
                                let e = d.Latest

                                let all =
                                    (samples.TryFind hash |> Option.defaultValue [])
                                    @ [ Samples.ofEvent nextSample e ]

                                nextSample <- nextSample + 1L
                                let kept = Samples.kept recent (all |> List.map (fun s -> s.Id)) |> Set.ofList
                                samples <- samples.Add(hash, all |> List.filter (fun s -> kept.Contains s.Id))

                            let held = Users.hold (users.TryFind hash |> Option.defaultValue Set.empty) d.Users

                            users <- users.Add(hash, held)

                            let after =
                                { Events.apply before d with
                                    Users = Users.count (int64 held.Count)
                                }

                            records <- records.Add(hash, after)
                            hours <- added (added hours hash d.Hours) "" d.Hours

                            {
                                Hash = hash
                                Status = after.Status
                                Regressed =
                                    after.Regressions >
                                        (before |> Option.map (fun r -> r.Regressions) |> Option.defaultValue 0L)
                                PreviousSeen =
                                    match before with
                                    | Some r -> Nullable r.LastSeen
                                    | None -> Nullable()
                                LastNotified = claimed hash ClaimKind.Notification
                                TicketRaised = claimed hash ClaimKind.Ticket
                            }
                    |])

            Task.FromResult(written :> IReadOnlyList<GroupWritten>)

        member _.TryClaimAsync(hash, kind, expected, now, _) =
            let won =
                lock gate (fun () ->
                    if records.ContainsKey hash && claimed hash kind = expected then
                        claims <- claims.Add((hash, kind), now)
                        true
                    else
                        false)

            Task.FromResult won

        member _.GetAsync(hash, _) =
            let found = lock gate (fun () -> records.TryFind(if isNull hash then "" else hash))
            Task.FromResult(found |> Option.defaultValue Unchecked.defaultof<ErrorRecord>)

        member _.ListAsync(query, offset, count, _) =
            let all = lock gate (fun () -> records)

            let selected = MemoryStore.Order(query, all.Values) |> Array.ofSeq

            let page =
                selected
                |> Seq.skip (int (min (max 0L offset) (int64 selected.Length)))
                |> Seq.truncate (max 0 count)
                |> Array.ofSeq

            Task.FromResult(page :> IReadOnlyList<ErrorRecord>)

        member _.ListFromAsync(query, cursor, count, _) =
            let all = lock gate (fun () -> records)

            let beyond =
                MemoryStore.Order(query, all.Values)
                |> Seq.filter (fun r -> Paging.beyond cursor (Triage.sortKey query.Sort r) r.Hash)
                |> Array.ofSeq

            let page =
                if cursor.Direction = CursorDirection.Older then
                    beyond |> Array.truncate (max 0 count)
                else
                    beyond |> Array.skip (max 0 (beyond.Length - max 0 count))

            Task.FromResult(page :> IReadOnlyList<ErrorRecord>)

        member _.SetStatusAsync(hash, change, _) =
            let changed =
                lock gate (fun () ->
                    match records.TryFind(if isNull hash then "" else hash) with
                    | Some r ->
                        let after = Triage.change change r
                        records <- records.Add(r.Hash, after)
                        after
                    | None -> Unchecked.defaultof<ErrorRecord>)

            Task.FromResult changed

        member _.ExpireIgnoresAsync(now, _) =
            lock gate (fun () -> records <- records |> Map.map (fun _ r -> Triage.expire now r))
            Task.CompletedTask

        member _.DeleteAsync(hash, _) =
            let existed =
                lock gate (fun () ->
                    let k = if isNull hash then "" else hash
                    let had = records.ContainsKey k
                    records <- records.Remove k

                    // Its history leaves the all-groups history too.
                    let subtract (buckets: Map<string, Map<DateTimeOffset, int64>>) =
                        match buckets.TryFind k with
                        | Some own ->
                            added (buckets.Remove k) "" [ for kv in own -> { Start = kv.Key; Count = -kv.Value } ]
                        | None -> buckets

                    if k <> "" then
                        hours <- subtract hours
                        days <- subtract days

                    forget k
                    had)

            Task.FromResult existed

        member _.SamplesAsync(hash, _) =
            let found =
                lock gate (fun () ->
                    samples.TryFind(if isNull hash then "" else hash)
                    |> Option.defaultValue []
                    |> List.rev
                    |> Array.ofList)

            Task.FromResult(found :> IReadOnlyList<Sample>)

        member _.HistoryAsync(hash, start, _) =
            let found =
                lock gate (fun () ->
                    let k = if isNull hash then "" else hash

                    {
                        Hours = from hours k start
                        Days = from days k start
                    })

            Task.FromResult found

        member _.HoursAsync(hashes, start, _) =
            let found =
                lock gate (fun () ->
                    let d = Dictionary<string, Bucket[]>()

                    for h in hashes do
                        if not (String.IsNullOrEmpty h) then
                            match from hours h start with
                            | [||] -> ()
                            | bs -> d.[h] <- bs

                    d)

            Task.FromResult(found :> IReadOnlyDictionary<_, _>)

        member _.PruneAsync(request, _) =
            let result =
                lock gate (fun () ->
                    // Groups: the reverse of the list's order (least recently seen first, ties by hash, highest
                    // first), those not seen since `SeenBefore`, then the excess past `MaxGroups`.
                    let order () =
                        MemoryStore.Order(ListQuery.All, records.Values) |> List.ofSeq |> List.rev

                    let stale =
                        order ()
                        |> List.filter (fun r -> r.LastSeen < request.SeenBefore)
                        |> List.truncate request.Batch

                    let remove (rs: ErrorRecord list) =
                        for r in rs do
                            records <- records.Remove r.Hash
                            forget r.Hash
                            hours <- hours.Remove r.Hash
                            days <- days.Remove r.Hash

                    remove stale
                    let excess = int64 records.Count - request.MaxGroups

                    let over =
                        if excess > 0L then
                            order ()
                            |> List.truncate (int (min excess (int64 (request.Batch - stale.Length))))
                        else
                            []

                    remove over

                    // Hourly buckets past their span, added to their day.
                    let folded =
                        [
                            for kv in hours do
                                for b in kv.Value do
                                    if b.Key < request.HoursBefore then
                                        kv.Key, { Start = b.Key; Count = b.Value }
                        ]
                        |> List.sortWith (fun (h1, b1) (h2, b2) ->
                            match String.CompareOrdinal(h1, h2) with
                            | 0 -> compare b1.Start b2.Start
                            | c -> c)
                        |> List.truncate request.Batch

                    for hash, b in folded do
                        hours <- hours.Add(hash, hours.[hash].Remove b.Start)

                    for hash, b in Retention.fold folded do
                        days <- added days hash [ b ]

                    // Daily buckets past theirs.
                    let old =
                        [
                            for kv in days do
                                for b in kv.Value do
                                    if b.Key < request.DaysBefore then
                                        kv.Key, b.Key
                        ]
                        |> List.truncate request.Batch

                    for hash, start in old do
                        days <- days.Add(hash, days.[hash].Remove start)

                    {
                        Groups = stale.Length + over.Length
                        Hours = folded.Length
                        Days = old.Length
                    })

            Task.FromResult result
