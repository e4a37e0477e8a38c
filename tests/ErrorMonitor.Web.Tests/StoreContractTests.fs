/// One contract, three stores: random sequences of upsert / get / page / delete give the same observable
/// results on the in-memory, SQLite and PostgreSQL stores as on a plain Map model.
module internal ErrorMonitor.Web.Tests.StoreContractTests

open System
open System.IO
open System.Threading
open Expecto
open FsCheck
open FsCheck.FSharp
open ErrorMonitor
open ErrorMonitor.Core
open ErrorMonitor.Web.Stores
open ErrorMonitor.Web.Tests.TestApp

/// The PostgreSQL connection string ./test.sh passes; a clear failure when it is missing.
let postgres () =
    match Environment.GetEnvironmentVariable "ERRORMONITOR_TEST_POSTGRES" with
    | null
    | "" -> failwith "ERRORMONITOR_TEST_POSTGRES is not set: run the suites with ./test.sh, which starts PostgreSQL"
    | cs -> cs

type Op =
    /// (group, occurrences, seconds after the base time) for each group in one batch.
    | Upsert of (int * int * int) list
    | Get of int
    | Page of number: int * size: int * query: ListQuery
    | Delete of int
    /// Read from a cursor: (seconds after the base time (or a count), group, older?, count).
    | From of seconds: int * group: int * older: bool * count: int * query: ListQuery
    /// Change a group's status: (group, status, ignore until seconds after the base time, ignore count).
    | SetStatus of group: int * status: int * until: int option * ignoreCount: int option
    /// Make the ignored groups whose time ran out by this many seconds after the base time unresolved.
    | Expire of seconds: int
    /// Claim a right for a group: with the current value as expected (true) or a stale one (false).
    | Claim of group: int * ticket: bool * current: bool * at: int
    /// Read the history of a group (also through HoursAsync), or of all groups (None).
    | HistoryOf of group: int option
    /// Prune until a pass finds nothing (passes of at most 2 of each kind): groups not seen since `seconds`
    /// after the base time, then past `maxGroups`; hours before the base time plus `hours`, days before the
    /// base time plus `days`.
    | Prune of seconds: int * maxGroups: int * hours: int * days: int
    /// Read a group's samples.
    | SamplesOf of group: int

/// What an operation showed.
type Seen =
    | Written of
        (string * DateTimeOffset option * DateTimeOffset option * DateTimeOffset option * GroupStatus * bool) list
    | Claimed of bool
    | Record of ErrorRecord option
    | Listed of ErrorRecord list * bool * bool
    | Deleted of bool
    | Done
    /// Hourly buckets (HistoryAsync), daily ones, and the hourly ones HoursAsync gave (a group's history).
    | Buckets of Bucket list * Bucket list * Bucket list
    /// A group's samples, newest first (without their ids, which each store gives its own way), and whether the
    /// ids fall from first to last.
    | SamplesSeen of (DateTimeOffset * string * string * string) list * bool

// Two minutes before an hour: the operations' times (up to 220 s after it) fall in two hours of history.
let private baseTime = DateTimeOffset(2026, 3, 1, 12, 58, 0, TimeSpan.Zero)

let private hashOf (g: int) =
    Fingerprint.sha256Hex (sprintf "group %d" g)

let private event (g: int) (seconds: int) (n: int) =
    {
        Hash = hashOf g
        Host = sprintf "host-%d" g
        Path = sprintf "/path/%d" g
        Method = "GET"
        RequestData = sprintf """{"n":%d}""" n
        ExceptionName = sprintf "App.Error%d" g
        Message = sprintf "message %d" seconds
        Traceback = sprintf "trace %d" seconds
        OccurredAt = baseTime.AddSeconds(float seconds)
        // A release a minute, an environment that changes now and then: first and last releases differ.
        Release = sprintf "1.%d.0" (seconds / 60)
        Environment = if seconds % 7 = 0 then "Staging" else "Production"
        // Some groups reported through the Sentry endpoint (a project each), the rest the app's own.
        Project = if g % 3 = 0 then string (g % 2 + 1) else ""
    }

/// The user of an occurrence `seconds` after the base time: one of five, or none (every fourth second).
let private userAt (seconds: int) =
    if seconds % 4 = 0 then
        [||]
    else
        Users.ofName (Some(sprintf "user-%d" (seconds % 5)))

/// A batch with one delta a group, as the queue produces; about a third of them count-only (repeats of a
/// group whose details were written recently; its row may be missing, deleted meanwhile).
let private batch (items: (int * int * int) list) : GroupDelta list =
    items
    |> List.groupBy (fun (g, _, _) -> g)
    |> List.map (fun (g, xs) ->
        let d =
            xs
            |> List.collect (fun (_, n, s) -> [ for i in 1..n -> event g (s + i) i, userAt (s + i) ])
            |> List.fold
                (fun d (e, u) ->
                    let one = { Events.single e with Users = u }

                    match d with
                    | None -> Some one
                    | Some d -> Some(Events.merge d one))
                None
            |> Option.get

        if (xs |> List.sumBy (fun (_, _, s) -> s)) % 3 = 0 then
            Events.countOnly d.Latest d.Count d.FirstAt d.Latest.OccurredAt d.Hours d.Users
        else
            d)

let private opGen: Gen<Op> =
    let group = Gen.choose (0, 5)

    let query =
        Gen.zip3
            (Gen.elements
                [
                    Nullable()
                    Nullable GroupStatus.Unresolved
                    Nullable GroupStatus.Resolved
                    Nullable GroupStatus.Ignored
                ])
            (Gen.elements [ ListSort.LastSeen; ListSort.FirstSeen; ListSort.Count ])
            (Gen.frequency
                [
                    3, Gen.constant null
                    1, Gen.elements [ "app"; "ERROR3"; "host-2"; "message 1"; "mess pat"; "zz"; "path/4 app.error4" ]
                ])
        |> Gen.zip (
            Gen.frequency
                [
                    4, Gen.constant (null, null)
                    1, Gen.elements [ "1.0.0", null; "1.1.0", null; "1.3.0", null; "9.9.9", null ]
                    1, Gen.elements [ null, "Staging"; null, "Production"; "1.1.0", "Production" ]
                ]
        )
        |> Gen.zip (Gen.frequency [ 4, Gen.constant null; 1, Gen.elements [ "1"; "2"; "3" ] ])
        |> Gen.map (fun (project, ((release, environment), (status, sort, search))) ->
            {
                Status = status
                Sort = sort
                Search = search
                Release = release
                Environment = environment
                Project = project
            })

    Gen.frequency
        [
            4,
            Gen.listOf (Gen.zip3 group (Gen.choose (1, 4)) (Gen.choose (0, 200)))
            |> Gen.map (List.truncate 6 >> Upsert)
            2, group |> Gen.map Get
            2, Gen.zip3 (Gen.choose (1, 4)) (Gen.choose (1, 4)) query |> Gen.map Page
            1, group |> Gen.map Delete
            2,
            Gen.zip (Gen.zip (Gen.choose (0, 210)) group) (Gen.zip (Gen.elements [ true; false ]) (Gen.choose (0, 4)))
            |> Gen.zip query
            |> Gen.map (fun (q, ((s, g), (o, c))) -> From(s, g, o, c, q))
            3,
            Gen.zip
                (Gen.zip group (Gen.choose (0, 2)))
                (Gen.zip (Gen.optionOf (Gen.choose (0, 220))) (Gen.optionOf (Gen.choose (1, 6))))
            |> Gen.map (fun ((g, st), (u, n)) -> SetStatus(g, st, u, n))
            1, Gen.choose (0, 220) |> Gen.map Expire
            2,
            Gen.zip
                (Gen.zip group (Gen.elements [ true; false ]))
                (Gen.zip (Gen.frequency [ 4, Gen.constant true; 1, Gen.constant false ]) (Gen.choose (0, 500)))
            |> Gen.map (fun ((g, t), (c, at)) -> Claim(g, t, c, at))
            2, Gen.optionOf group |> Gen.map HistoryOf
            3, group |> Gen.map SamplesOf
            1,
            Gen.zip
                (Gen.zip (Gen.choose (-10, 220)) (Gen.choose (0, 7)))
                (Gen.zip (Gen.choose (-1, 2)) (Gen.choose (-1, 2)))
            |> Gen.map (fun ((s, m), (h, d)) -> Prune(s, m, h, d))
        ]

/// The model: records and claimed rights.
type Model =
    {
        Records: Map<string, ErrorRecord>
        Claims: Map<string * ClaimKind, DateTimeOffset>
        /// Hourly history by group hash ("" for all groups together).
        Hours: Map<string, Map<DateTimeOffset, int64>>
        /// Daily history, the same way.
        Days: Map<string, Map<DateTimeOffset, int64>>
        /// Samples by group hash, oldest first, each with the model's own id.
        Samples: Map<string, (int64 * Sample) list>
        /// The next sample's id in the model.
        NextSample: int64
        /// The user keys each group holds.
        Users: Map<string, Set<string>>
    }

/// The recent samples a group keeps in the contract (besides its first): few, so that they are dropped often.
let private recentSamples = 2

/// What a sample shows, without its id.
let private shown (s: Sample) =
    s.OccurredAt, s.Message, s.RequestData, s.Traceback

let private pruneRequest (seconds: int) (maxGroups: int) (hours: int) (days: int) : PruneRequest =
    {
        SeenBefore = baseTime.AddSeconds(float seconds)
        MaxGroups = int64 maxGroups
        HoursBefore = baseTime.AddHours(float hours)
        DaysBefore = History.dayOf baseTime + TimeSpan.FromDays(float days)
        Batch = 2
    }

let private addHours (hash: string) (buckets: Bucket seq) (hours: Map<string, Map<DateTimeOffset, int64>>) =
    let had = hours.TryFind hash |> Option.defaultValue Map.empty

    hours.Add(
        hash,
        buckets
        |> Seq.fold
            (fun (m: Map<DateTimeOffset, int64>) b ->
                m.Add(b.Start, (m.TryFind b.Start |> Option.defaultValue 0L) + b.Count))
            had
    )

let private bucketsOf (hash: string) (hours: Map<string, Map<DateTimeOffset, int64>>) =
    match hours.TryFind hash with
    | Some m -> [ for kv in m -> { Start = kv.Key; Count = kv.Value } ]
    | None -> []

/// Where history reads start: the day before the base time.
let private historyFrom = baseTime.AddDays -1.0

let private kindOf ticket =
    if ticket then ClaimKind.Ticket else ClaimKind.Notification

let private stale = DateTimeOffset(2000, 1, 1, 0, 0, 0, TimeSpan.Zero)


/// A cursor `seconds` after the base time (a count of `seconds % 12` when the list is by count).
let private cursorOf (seconds: int) (g: int) (older: bool) (q: ListQuery) : PageCursor =
    {
        Key =
            if q.Sort = ListSort.Count then
                int64 (seconds % 12)
            else
                baseTime.AddSeconds(float seconds).UtcTicks
        Hash = hashOf g
        Direction =
            if older then
                CursorDirection.Older
            else
                CursorDirection.Newer
    }

/// A status change as an operation asks for it.
let private changeOf (status: int) (until: int option) (n: int option) : StatusChange =
    {
        Status = enum<GroupStatus> status
        IgnoreUntil =
            match until with
            | Some s when status = 2 -> Nullable(baseTime.AddSeconds(float s))
            | _ -> Nullable()
        IgnoreCount =
            match n with
            | Some c when status = 2 -> Nullable(int64 c)
            | _ -> Nullable()
    }

/// The model's answer and next state.
let private model (state: Model) (op: Op) : Model * Seen =
    match op with
    | Upsert items ->
        let next, written =
            batch items
            |> List.fold
                (fun (m: Model, acc) d ->
                    let hash = d.Latest.Hash
                    let before = m.Records.TryFind hash

                    let claims =
                        if before.IsNone then
                            m.Claims.Remove((hash, ClaimKind.Notification)).Remove((hash, ClaimKind.Ticket))
                        else
                            m.Claims

                    let fresh (h: string) (m: Map<string, 'T>) = if before.IsNone then m.Remove h else m

                    let samples =
                        let had = m.Samples |> fresh hash |> Map.tryFind hash |> Option.defaultValue []

                        if d.Detailed then
                            let all = had @ [ m.NextSample, Samples.ofEvent m.NextSample d.Latest ]

                            let kept = Samples.kept recentSamples (List.map fst all) |> Set.ofList
                            all |> List.filter (fun (id, _) -> kept.Contains id)
                        else
                            had

                    let users =
                        Users.hold (m.Users |> fresh hash |> Map.tryFind hash |> Option.defaultValue Set.empty) d.Users

                    let after =
                        { Events.apply before d with
                            Users = Users.count (int64 users.Count)
                        }

                    let row =
                        hash,
                        before |> Option.map (fun r -> r.LastSeen),
                        claims.TryFind((hash, ClaimKind.Notification)),
                        claims.TryFind((hash, ClaimKind.Ticket)),
                        after.Status,
                        (match before with
                         | Some b -> after.Regressions > b.Regressions
                         | None -> false)

                    {
                        Records = m.Records.Add(hash, after)
                        Claims = claims
                        Hours = m.Hours |> addHours hash d.Hours |> addHours "" d.Hours
                        Days = m.Days
                        Samples = m.Samples.Add(hash, samples)
                        NextSample = m.NextSample + (if d.Detailed then 1L else 0L)
                        Users = m.Users.Add(hash, users)
                    },
                    row :: acc)
                (state, [])

        next, Written(List.sortBy (fun (h, _, _, _, _, _) -> h) written)
    | Get g -> state, Record(state.Records.TryFind(hashOf g))
    | Page(number, size, q) ->
        let page =
            Paging.ofList number size (MemoryStore.Order(q, state.Records.Values) |> List.ofSeq)

        state, Listed(page.Items, page.HasNewer, page.HasOlder)
    | From(seconds, g, older, count, q) ->
        let c = cursorOf seconds g older q

        let beyond =
            MemoryStore.Order(q, state.Records.Values)
            |> Seq.filter (fun r -> Paging.beyond c (Triage.sortKey q.Sort r) r.Hash)
            |> List.ofSeq

        let rows =
            if older then
                List.truncate count beyond
            else
                List.skip (max 0 (beyond.Length - count)) beyond

        state, Listed(rows, older, not older)
    | Delete g ->
        let h = hashOf g

        // Its history leaves the all-groups history (the buckets stay, with what is left).
        let own = bucketsOf h state.Hours

        { state with
            Records = state.Records.Remove h
            Samples = state.Samples.Remove h
            Users = state.Users.Remove h
            Claims = state.Claims.Remove((h, ClaimKind.Notification)).Remove((h, ClaimKind.Ticket))
            Hours =
                if own.IsEmpty then
                    state.Hours
                else
                    (state.Hours.Remove h)
                    |> addHours "" (own |> List.map (fun b -> { b with Count = -b.Count }))
            Days =
                match bucketsOf h state.Days with
                | [] -> state.Days
                | ownDays ->
                    (state.Days.Remove h)
                    |> addHours "" (ownDays |> List.map (fun b -> { b with Count = -b.Count }))
        },
        Deleted(state.Records.ContainsKey h)
    | SetStatus(g, status, until, n) ->
        match state.Records.TryFind(hashOf g) with
        | Some r ->
            let after = Triage.change (changeOf status until n) r

            { state with
                Records = state.Records.Add(r.Hash, after)
            },
            Record(Some after)
        | None -> state, Record None
    | Expire seconds ->
        { state with
            Records =
                state.Records
                |> Map.map (fun _ r -> Triage.expire (baseTime.AddSeconds(float seconds)) r)
        },
        Done
    | Claim(g, ticket, current, at) ->
        let key = hashOf g, kindOf ticket
        let now = baseTime.AddSeconds(float (1000 + at))

        if current && state.Records.ContainsKey(fst key) then
            { state with
                Claims = state.Claims.Add(key, now)
            },
            Claimed true
        else
            state, Claimed false
    | HistoryOf None -> state, Buckets(bucketsOf "" state.Hours, bucketsOf "" state.Days, [])
    | HistoryOf(Some g) ->
        let own = bucketsOf (hashOf g) state.Hours
        state, Buckets(own, bucketsOf (hashOf g) state.Days, own)
    | Prune(seconds, maxGroups, hours, days) ->
        let r = pruneRequest seconds maxGroups hours days

        // The groups pruning leaves: the most recently seen (the list's order), not seen before `SeenBefore`,
        // at most `MaxGroups` of them.
        let kept =
            MemoryStore.Order(ListQuery.All, state.Records.Values)
            |> Seq.filter (fun g -> g.LastSeen >= r.SeenBefore)
            |> Seq.truncate maxGroups
            |> Seq.map (fun g -> g.Hash)
            |> Set.ofSeq

        let gone = state.Records |> Map.filter (fun h _ -> not (kept.Contains h))

        let keep (m: Map<string, Map<DateTimeOffset, int64>>) =
            m |> Map.filter (fun h _ -> h = "" || not (gone.ContainsKey h))

        let hoursLeft = keep state.Hours

        let folded =
            [
                for kv in hoursLeft do
                    for b in kv.Value do
                        if b.Key < r.HoursBefore then
                            kv.Key, { Start = b.Key; Count = b.Value }
            ]

        let days =
            Retention.fold folded
            |> List.fold
                (fun (m: Map<string, Map<DateTimeOffset, int64>>) (h, b) -> addHours h [ b ] m)
                (keep state.Days)
            |> Map.map (fun _ m -> m |> Map.filter (fun t _ -> t >= r.DaysBefore))

        { state with
            Records = state.Records |> Map.filter (fun h _ -> kept.Contains h)
            Samples = state.Samples |> Map.filter (fun h _ -> kept.Contains h)
            Users = state.Users |> Map.filter (fun h _ -> kept.Contains h)
            Claims = state.Claims |> Map.filter (fun (h, _) _ -> kept.Contains h)
            Hours =
                hoursLeft
                |> Map.map (fun _ m -> m |> Map.filter (fun t _ -> t >= r.HoursBefore))
            Days = days
        },
        Done
    | SamplesOf g ->
        let newestFirst =
            state.Samples.TryFind(hashOf g)
            |> Option.defaultValue []
            |> List.rev
            |> List.map (snd >> shown)

        state, SamplesSeen(newestFirst, true)

/// The store's answer.
let private run (store: IErrorStore) (op: Op) : Seen =
    let ct = CancellationToken.None

    match op with
    | Upsert items ->
        let opt (v: Nullable<DateTimeOffset>) =
            if v.HasValue then Some v.Value else None

        store.UpsertAsync(batch items |> Array.ofList, ct).GetAwaiter().GetResult()
        |> Seq.map (fun w -> w.Hash, opt w.PreviousSeen, opt w.LastNotified, opt w.TicketRaised, w.Status, w.Regressed)
        |> Seq.sortBy (fun (h, _, _, _, _, _) -> h)
        |> List.ofSeq
        |> Written
    | Get g ->
        let r = store.GetAsync(hashOf g, ct).GetAwaiter().GetResult()
        Record(if isNull (box r) then None else Some r)
    | Page(number, size, q) ->
        let rows =
            store.ListAsync(q, Paging.offset number size, size + 1, ct).GetAwaiter().GetResult()

        let page = Paging.ofFetched number size (List.ofSeq rows)
        Listed(page.Items, page.HasNewer, page.HasOlder)
    | Delete g -> Deleted(store.DeleteAsync(hashOf g, ct).GetAwaiter().GetResult())
    | From(seconds, g, older, count, q) ->
        let c = cursorOf seconds g older q
        Listed(List.ofSeq (store.ListFromAsync(q, c, count, ct).GetAwaiter().GetResult()), older, not older)
    | SetStatus(g, status, until, n) ->
        let r =
            store.SetStatusAsync(hashOf g, changeOf status until n, ct).GetAwaiter().GetResult()

        Record(if isNull (box r) then None else Some r)
    | Expire seconds ->
        store.ExpireIgnoresAsync(baseTime.AddSeconds(float seconds), ct).GetAwaiter().GetResult()
        Done
    | Claim _ -> failwith "claims run through `claim`, which needs the model's current value"
    | HistoryOf group ->
        let hash = group |> Option.map hashOf |> Option.defaultValue null
        let h = store.HistoryAsync(hash, historyFrom, ct).GetAwaiter().GetResult()

        let hours =
            match group with
            | Some _ ->
                match store.HoursAsync([| hash |], historyFrom, ct).GetAwaiter().GetResult().TryGetValue hash with
                | true, bs -> List.ofArray bs
                | _ -> []
            | None -> []

        Buckets(List.ofArray h.Hours, List.ofArray h.Days, hours)
    | Prune(seconds, maxGroups, hours, days) ->
        let request = pruneRequest seconds maxGroups hours days
        let mutable go = true

        while go do
            go <- Retention.did (store.PruneAsync(request, ct).GetAwaiter().GetResult())

        Done
    | SamplesOf g ->
        let samples =
            store.SamplesAsync(hashOf g, ct).GetAwaiter().GetResult() |> List.ofSeq

        SamplesSeen(samples |> List.map shown, samples |> List.pairwise |> List.forall (fun (a, b) -> a.Id > b.Id))

/// A claim against the store, with the expected value taken from the model (current) or a stale one.
let private claim (store: IErrorStore) (state: Model) (g: int) (ticket: bool) (current: bool) (at: int) : Seen =
    let key = hashOf g, kindOf ticket

    let expected =
        if current then
            match state.Claims.TryFind key with
            | Some t -> Nullable t
            | None -> Nullable()
        else
            Nullable stale

    Claimed(
        store
            .TryClaimAsync(fst key, snd key, expected, baseTime.AddSeconds(float (1000 + at)), CancellationToken.None)
            .GetAwaiter()
            .GetResult()
    )

let private contract (name: string) (fresh: unit -> IErrorStore) =
    testPropertyWithConfig
        { FsCheckConfig.defaultConfig with
            maxTest = 200
        }
        (sprintf "%s store agrees with the Map model on random operations" name)
    <| Prop.forAll (Arb.fromGen (Gen.listOf opGen |> Gen.map (List.truncate 25))) (fun ops ->
        let store = fresh ()

        try
            store.InitializeAsync(CancellationToken.None).GetAwaiter().GetResult()

            let _, mismatches =
                ops
                |> List.fold
                    (fun (state, bad) op ->
                        let next, expected = model state op

                        let actual =
                            match op with
                            | Claim(g, t, c, at) -> claim store state g t c at
                            | _ -> run store op

                        next,
                        (if actual = expected then
                             bad
                         else
                             (op, expected, actual) :: bad))
                    ({
                        Records = Map.empty
                        Claims = Map.empty
                        Hours = Map.empty
                        Days = Map.empty
                        Samples = Map.empty
                        NextSample = 1L
                        Users = Map.empty
                     },
                     [])

            match mismatches with
            | [] -> true
            | (op, expected, actual) :: _ -> failwithf "%A: expected %A, got %A" op expected actual
        finally
            match store with
            | :? IDisposable as d -> d.Dispose()
            | _ -> ())

/// A SQLite store on a new file (`file` in a temp folder), initialized; with its connection string.
let private initializedSqlite (file: string) =
    task {
        let connection = "Data Source=" + Path.Combine(tempFolder (), file)
        let store = SqliteStore(connection, "app_error")
        do! (store :> IErrorStore).InitializeAsync CancellationToken.None
        return connection, store
    }

/// Runs an FTS5 check of a SQLite store's search index against its groups (fails when they disagree).
let checkSearchIndex (connectionString: string) =
    use c = new Microsoft.Data.Sqlite.SqliteConnection(connectionString)
    c.Open()
    use cmd = c.CreateCommand()
    cmd.CommandText <- "INSERT INTO app_error_search(app_error_search) VALUES ('integrity-check')"
    cmd.ExecuteNonQuery() |> ignore

/// How many rows a table of a SQLite store holds.
let countRows (connectionString: string) (table: string) =
    use c = new Microsoft.Data.Sqlite.SqliteConnection(connectionString)
    c.Open()
    use cmd = c.CreateCommand()
    cmd.CommandText <- $"SELECT count(*) FROM {table}"
    cmd.ExecuteScalar() :?> int64

/// How many groups of a SQLite store wait for their search rows.
let searchWaiting (connectionString: string) =
    countRows connectionString "app_error_unindexed"

/// A store that passes every call to `inner`; a test overrides its initialization or its writes.
type RelayStore(inner: IErrorStore) =
    abstract InitializeAsync: CancellationToken -> Threading.Tasks.Task
    default _.InitializeAsync ct = inner.InitializeAsync ct

    abstract UpsertAsync:
        Collections.Generic.IReadOnlyList<GroupDelta> * CancellationToken ->
            Threading.Tasks.Task<Collections.Generic.IReadOnlyList<GroupWritten>>

    default _.UpsertAsync(batch, ct) = inner.UpsertAsync(batch, ct)

    interface IErrorStore with
        member this.InitializeAsync ct = this.InitializeAsync ct
        member this.UpsertAsync(batch, ct) = this.UpsertAsync(batch, ct)

        member _.TryClaimAsync(hash, kind, expected, now, ct) =
            inner.TryClaimAsync(hash, kind, expected, now, ct)

        member _.GetAsync(hash, ct) = inner.GetAsync(hash, ct)

        member _.ListAsync(query, offset, count, ct) =
            inner.ListAsync(query, offset, count, ct)

        member _.ListFromAsync(query, cursor, count, ct) =
            inner.ListFromAsync(query, cursor, count, ct)

        member _.SetStatusAsync(hash, change, ct) = inner.SetStatusAsync(hash, change, ct)
        member _.ExpireIgnoresAsync(now, ct) = inner.ExpireIgnoresAsync(now, ct)
        member _.DeleteAsync(hash, ct) = inner.DeleteAsync(hash, ct)
        member _.SamplesAsync(hash, ct) = inner.SamplesAsync(hash, ct)
        member _.HistoryAsync(hash, from, ct) = inner.HistoryAsync(hash, from, ct)
        member _.HoursAsync(hashes, from, ct) = inner.HoursAsync(hashes, from, ct)
        member _.PruneAsync(request, ct) = inner.PruneAsync(request, ct)

/// A SQLite store whose batches are written as a storm's drain writes them, without their search rows; every
/// third batch, the writer's catch-up runs to its end and the index is checked against the groups.
type private DeferringSearch(store: SqliteStore) =
    inherit RelayStore(store)
    let mutable segment = 0L

    override _.UpsertAsync(batch, ct) =
        task {
            segment <- segment + 1L
            let backlog = store :> ISearchBacklog

            let! written =
                (store :> IJournalMarks).UpsertMarkedAsync(batch, "contract", segment, baseTime, true, ct)

            if segment % 3L = 0L then
                while backlog.SearchBehind do
                    do! backlog.IndexSearchStepAsync ct

                checkSearchIndex store.ConnectionString

            return
                written
                |> Option.defaultWith (fun () -> failwith "a new segment was not written")
        }

/// Samples and users, step by step: a group keeps its first sample and the newest `recentSamples`; users count
/// exactly below the bound and stop at it.
let private samplesAndUsers (name: string) (fresh: unit -> IErrorStore) =
    testTask (sprintf "%s store keeps a group's first and newest samples, and counts its users up to the bound" name) {
        let store = fresh ()
        let none = CancellationToken.None

        try
            for i in 1..6 do
                let e =
                    { event 1 (i * 10) i with
                        Message = sprintf "occurrence %d" i
                    }

                let! _ = store.UpsertAsync([| Events.single e |], none)
                ()

            let! (samples: Collections.Generic.IReadOnlyList<Sample>) =
                store.SamplesAsync(hashOf 1, none)

            Expect.equal
                [ for s in samples -> s.Message ]
                [ "occurrence 6"; "occurrence 5"; "occurrence 1" ]
                "the newest two and the first, newest first"

            Expect.isTrue (samples |> Seq.pairwise |> Seq.forall (fun (a, b) -> a.Id > b.Id)) "ids fall"
            Expect.equal samples.[0].RequestData """{"n":6}""" "each sample has its own request data"
            Expect.equal samples.[2].OccurredAt (baseTime.AddSeconds 10.0) "and its own time"
            let! (r: ErrorRecord) = store.GetAsync(hashOf 1, none)
            Expect.equal r.RequestData """{"n":6}""" "the group shows the newest sample's details"

            // Users: 150 distinct users in batches of 30, each batch twice; 7 users many times.
            for b in 0..4 do
                for _ in 1..2 do
                    let users = [| for u in 1..30 -> Users.key (sprintf "user %d" (b * 30 + u)) |]

                    let! _ =
                        store.UpsertAsync(
                            [|
                                { Events.single (event 2 b 1) with
                                    Users = users
                                }
                            |],
                            none
                        )

                    let! (r: ErrorRecord) = store.GetAsync(hashOf 2, none)
                    Expect.equal r.Users (min 100L (int64 ((b + 1) * 30))) "exact below the bound, then the bound"

            for i in 1..20 do
                let users = [| Users.key (sprintf "user %d" (i % 7)) |]

                let! _ =
                    store.UpsertAsync([| Events.countOnly (event 3 i 1) 1L baseTime baseTime [||] users |], none)

                ()

            let! (r: ErrorRecord) = store.GetAsync(hashOf 3, none)
            Expect.equal r.Users 7L "seven distinct users"
            let! listed = store.ListAsync(ListQuery.All, 0L, 10, none)

            Expect.equal
                (listed |> Seq.map (fun (r: ErrorRecord) -> r.Hash, r.Users) |> Map.ofSeq)
                (Map.ofList [ hashOf 1, 0L; hashOf 2, 100L; hashOf 3, 7L ])
                "lists carry the users too"

            let! _ = store.DeleteAsync(hashOf 1, none)
            let! gone = store.SamplesAsync(hashOf 1, none)
            Expect.isEmpty gone "a deleted group's samples go with it"
            let! _ = store.DeleteAsync(hashOf 3, none)
            let! _ = store.UpsertAsync([| Events.single (event 3 500 1) |], none)
            let! (again: ErrorRecord) = store.GetAsync(hashOf 3, none)
            Expect.equal again.Users 0L "and its users: a new group with the same hash starts at none"
        finally
            match store with
            | :? IDisposable as d -> d.Dispose()
            | _ -> ()
    }

/// A SQLite file as the previous schema (version 2: one wide table) left it, with two groups.
let private versionTwoFile () =
    let path = Path.Combine(tempFolder (), "v2.db")
    use c = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + path)
    c.Open()
    use cmd = c.CreateCommand()

    cmd.CommandText <-
        """CREATE TABLE app_error (hash TEXT NOT NULL PRIMARY KEY, host TEXT NOT NULL, path TEXT NOT NULL,
  method TEXT NOT NULL, request_data TEXT NOT NULL, exception_name TEXT NOT NULL, message TEXT NOT NULL,
  traceback TEXT NOT NULL, count INTEGER NOT NULL, created_on TEXT NOT NULL, last_seen TEXT NOT NULL,
  previous_seen TEXT NULL, notified_at TEXT NULL, ticket_at TEXT NULL);
CREATE INDEX ix_app_error_last_seen ON app_error (last_seen DESC, hash);
INSERT INTO app_error VALUES ($h1, 'a.example', '/a', 'GET', '{"args":{"q":"1"}}', 'App.AError', 'a failed',
  'App.AError: a failed', 3, '2026-03-01T12:00:00.0000000Z', '2026-03-01T12:05:00.0000000Z', NULL,
  '2026-03-01T12:00:01.0000000Z', NULL);
INSERT INTO app_error VALUES ($h2, 'b.example', '/b', 'POST', '{"form":{"f":"2"}}', 'App.BError', 'b failed',
  'App.BError: b failed', 7, '2026-03-01T11:00:00.0000000Z', '2026-03-01T12:10:00.0000000Z', NULL, NULL, NULL);
PRAGMA user_version = 2;"""

    cmd.Parameters.AddWithValue("$h1", hashOf 1) |> ignore
    cmd.Parameters.AddWithValue("$h2", hashOf 2) |> ignore
    cmd.ExecuteNonQuery() |> ignore
    path

/// A SQLite file as the schema on main before triage left it (version 4: summary, detail and journal tables),
/// with two groups.
let private versionFourFile () =
    let path = Path.Combine(tempFolder (), "v4.db")
    use c = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + path)
    c.Open()
    use cmd = c.CreateCommand()

    cmd.CommandText <-
        """CREATE TABLE app_error (id INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE, host TEXT NOT NULL,
  path TEXT NOT NULL, method TEXT NOT NULL, exception_name TEXT NOT NULL, message TEXT NOT NULL,
  count INTEGER NOT NULL, created_on TEXT NOT NULL, last_seen TEXT NOT NULL, previous_seen TEXT NULL,
  notified_at TEXT NULL, ticket_at TEXT NULL);
CREATE TABLE app_error_detail (id INTEGER PRIMARY KEY, request_data TEXT NOT NULL, traceback TEXT NOT NULL);
CREATE INDEX ix_app_error_last_seen ON app_error (last_seen DESC, hash);
CREATE TABLE app_error_journal (id TEXT NOT NULL PRIMARY KEY, segment INTEGER NOT NULL, updated_at TEXT NOT NULL);
INSERT INTO app_error (hash, host, path, method, exception_name, message, count, created_on, last_seen)
VALUES ($h1, 'a.example', '/orders/checkout', 'GET', 'App.PaymentDeclined', 'card declined', 3,
  '2026-03-01T12:00:00.0000000Z', '2026-03-01T12:05:00.0000000Z');
INSERT INTO app_error (hash, host, path, method, exception_name, message, count, created_on, last_seen)
VALUES ($h2, 'b.example', '/b', 'POST', 'App.BError', 'b failed', 7,
  '2026-03-01T11:00:00.0000000Z', '2026-03-01T12:10:00.0000000Z');
INSERT INTO app_error_detail (id, request_data, traceback) SELECT id, '{}', exception_name FROM app_error;
PRAGMA user_version = 4;"""

    cmd.Parameters.AddWithValue("$h1", hashOf 1) |> ignore
    cmd.Parameters.AddWithValue("$h2", hashOf 2) |> ignore
    cmd.ExecuteNonQuery() |> ignore
    path

[<Tests>]
let tests =
    testSequenced
    <| testList
        "store contract"
        [
            testTask' "a SQLite file of the previous schema is migrated with every record intact"
            <| fun () ->
                task {
                    let path = versionTwoFile ()
                    Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools()
                    let store = SqliteStore("Data Source=" + path, "app_error") :> IErrorStore
                    let none = CancellationToken.None
                    let! listed = store.ListAsync(ListQuery.All, 0L, 10, none)

                    Expect.equal
                        (listed
                         |> Seq.map (fun r -> r.Path, r.Count, r.RequestData, r.Traceback)
                         |> List.ofSeq)
                        [
                            "/b", 7L, """{"form":{"f":"2"}}""", "App.BError: b failed"
                            "/a", 3L, """{"args":{"q":"1"}}""", "App.AError: a failed"
                        ]
                        "both records, newest first, with their details"

                    // Claims and upserts keep working on the migrated file.
                    let! stale =
                        store.TryClaimAsync(hashOf 1, ClaimKind.Notification, Nullable(), baseTime, none)

                    Expect.isFalse stale "the notification time came along"
                    let e = event 1 600 9

                    let! written =
                        store.UpsertAsync(
                            [| Events.countOnly e 2L e.OccurredAt e.OccurredAt (History.one e.OccurredAt 2L) [||] |],
                            none
                        )

                    Expect.equal written.Count 1 "written"
                    Expect.isTrue written.[0].PreviousSeen.HasValue "an existing group"
                    let! a = store.GetAsync(hashOf 1, none)
                    Expect.equal a.Count 5L "counted"
                    Expect.equal a.RequestData """{"args":{"q":"1"}}""" "details kept by a count-only batch"
                    let! _ = store.UpsertAsync([| Events.single e |], none)
                    let! a2 = store.GetAsync(hashOf 1, none)
                    Expect.equal a2.RequestData e.RequestData "details replaced by a detailed one"
                    Expect.equal a2.Count 6L "counted"
                    let! gone = store.DeleteAsync(hashOf 2, none)
                    Expect.isTrue gone "deleted"
                    let! left = store.ListAsync(ListQuery.All, 0L, 10, none)
                    Expect.equal left.Count 1 "one left"
                }
            for name, make in
                [
                    "SQLite",
                    (fun () ->
                        SqliteStore("Data Source=" + Path.Combine(tempFolder (), "m.db"), "app_error") :> IJournalMarks)
                    "PostgreSQL",
                    (fun () ->
                        PostgresStore.Create(postgres (), "marks_" + Guid.NewGuid().ToString "N") :> IJournalMarks)
                ] do
                testTask' (sprintf "the %s store keeps a journal's mark with its batch and writes a batch once" name)
                <| fun () ->
                    task {
                        let marks = make ()
                        let store = marks :?> IErrorStore
                        let none = CancellationToken.None
                        let! before = marks.ReadMarkAsync("j1", baseTime, none)
                        Expect.equal before 0L "no mark yet"
                        let batch = [| Events.single (event 1 0 1); Events.single (event 2 0 1) |]
                        let! first = marks.UpsertMarkedAsync(batch, "j1", 3L, baseTime, false, none)
                        Expect.equal (first |> Option.map (fun w -> w.Count)) (Some 2) "written"
                        // The same batch again (its answer was lost): nothing written, counts stay.
                        let! again = marks.UpsertMarkedAsync(batch, "j1", 3L, baseTime, false, none)
                        Expect.isNone again "not written twice"
                        let! older = marks.UpsertMarkedAsync(batch, "j1", 2L, baseTime, false, none)
                        Expect.isNone older "an older segment is not written either"
                        let! a = store.GetAsync(hashOf 1, none)
                        Expect.equal a.Count 1L "counted once"
                        // Another journal has a mark of its own.
                        let! other =
                            marks.UpsertMarkedAsync(batch, "j2", 3L, baseTime.AddDays 40.0, false, none)

                        Expect.isSome other "another journal's batch is written"
                        let! a2 = store.GetAsync(hashOf 1, none)
                        Expect.equal a2.Count 2L "counted"
                        let! next = marks.UpsertMarkedAsync(batch, "j1", 4L, baseTime, false, none)
                        Expect.isSome next "the next segment is written"
                        let! mark = marks.ReadMarkAsync("j1", baseTime, none)
                        Expect.equal mark 4L "the mark moved"
                        // Reading j2's mark forgets the marks not written since the cut-off (j1's, 40 days older).
                        let! j2 = marks.ReadMarkAsync("j2", baseTime.AddDays 10.0, none)
                        Expect.equal j2 3L "j2's mark"
                        let! forgotten = marks.ReadMarkAsync("j1", baseTime.AddDays 10.0, none)
                        Expect.equal forgotten 0L "j1's old mark is forgotten"
                    }
            testTask'
                "the SQLite store takes a known group's newest message in a statement of its own: its search rows follow it, the index agrees with the groups"
            <| fun () ->
                task {
                    let! connection, store = initializedSqlite "message.db"
                    let s = store :> IErrorStore
                    let none = CancellationToken.None

                    let found (q: string) =
                        task {
                            let! rows = s.ListAsync({ ListQuery.All with Search = q }, 0L, 10, none)
                            return [ for r in rows -> r.Hash ]
                        }

                    let! _ =
                        s.UpsertAsync([| Events.single (event 1 1234 1); Events.single (event 2 1234 1) |], none)

                    Expect.equal (searchWaiting connection) 0L "a batch indexes its new groups"
                    let! first = found "1234"
                    Expect.equal (List.sort first) (List.sort [ hashOf 1; hashOf 2 ]) "found by their message"
                    // Group 1 again with another message (details), group 2 with the same one.
                    let! _ =
                        s.UpsertAsync([| Events.single (event 1 5678 2); Events.single (event 2 1234 2) |], none)

                    let! a = s.GetAsync(hashOf 1, none)
                    Expect.equal a.Message "message 5678" "the newest message"
                    Expect.equal a.Count 2L "counted"
                    let! b = s.GetAsync(hashOf 2, none)
                    Expect.equal b.Message "message 1234" "the same message"
                    let! old = found "1234"
                    Expect.equal old [ hashOf 2 ] "the old message finds only the group that kept it"
                    let! now = found "5678"
                    Expect.equal now [ hashOf 1 ] "the new message finds the group"
                    checkSearchIndex connection
                }
            testTask'
                "the SQLite store writes count-only deltas of stored and missing groups, interleaved, as the in-memory store does"
            <| fun () ->
                task {
                    // The writer tries a count-only delta's count update or its insert first by the last one's
                    // group (stored or not): batches whose stored and missing groups alternate (in hash order) turn
                    // it at nearly every delta. What each write reports, and every group after it, must not depend
                    // on it.
                    let! connection, store = initializedSqlite "counted.db"
                    let s = store :> IErrorStore
                    let model = MemoryStore() :> IErrorStore
                    let none = CancellationToken.None

                    let counted (g: int) (seconds: int) =
                        let e = event g seconds 1
                        Events.countOnly e 2L e.OccurredAt e.OccurredAt (History.one e.OccurredAt 2L) [||]

                    let batches =
                        [
                            [| for g in 1..40 -> Events.single (event g 100 1) |]
                            // Groups 1-40 stored (another message: a count-only delta leaves theirs), 41-80 not.
                            [| for g in 1..80 -> counted g 200 |]
                            // 41-80 stored now, 81-120 not; a detailed delta among them.
                            [|
                                for g in 41..120 ->
                                    if g = 60 then
                                        Events.single (event g 300 1)
                                    else
                                        counted g 300
                            |]
                        ]

                    for b in batches do
                        let! expected = model.UpsertAsync(b, none)
                        let! actual = s.UpsertAsync(b, none)

                        let byHash (w: Collections.Generic.IReadOnlyList<GroupWritten>) =
                            w |> Seq.sortBy (fun w -> w.Hash) |> List.ofSeq

                        Expect.equal (byHash actual) (byHash expected) "what the write reports"

                    for g in 1..120 do
                        let! expected = model.GetAsync(hashOf g, none)
                        let! actual = s.GetAsync(hashOf g, none)
                        Expect.equal actual expected (sprintf "group %d" g)

                    let! a = s.GetAsync(hashOf 7, none)
                    Expect.equal (a.Message, a.Count) ("message 100", 3L) "a stored group kept its message, counted"
                    let! b = s.GetAsync(hashOf 60, none)
                    Expect.equal (b.Message, b.Count) ("message 300", 3L) "the detailed delta brought its message"
                    Expect.equal (searchWaiting connection) 0L "every new group indexed"
                    checkSearchIndex connection
                }
            testTask'
                "the SQLite store finds groups written without their search rows; its catch-up indexes them a step at a time, and the index then agrees with the groups"
            <| fun () ->
                task {
                    let! connection, store = initializedSqlite "deferred.db"
                    let s = store :> IErrorStore
                    let backlog = store :> ISearchBacklog
                    let none = CancellationToken.None
                    do! backlog.IndexSearchStepAsync none
                    Expect.isFalse backlog.SearchBehind "a new file has nothing to index"

                    let waiting () = searchWaiting connection

                    // More groups than a step, written as a drain writes them.
                    let n = Limits.searchStep + 10
                    let deferred = [| for g in 1..n -> Events.single (event g (g % 200) 1) |]

                    let! w =
                        (store :> IJournalMarks).UpsertMarkedAsync(deferred, "j", 1L, baseTime, true, none)

                    Expect.equal (w |> Option.map (fun w -> w.Count)) (Some n) "written"
                    Expect.isTrue backlog.SearchBehind "behind after a deferred batch"
                    Expect.equal (waiting ()) (int64 n) "every new group waits for its search rows"
                    // A batch written with its search rows indexes its own new group, not the ones waiting; nor
                    // does a repeat of a waiting group (a new message: its search rows are written as it is then).
                    let one = Events.single (event (n + 1) 5 1)
                    let again = Events.single (event 7 300 1)
                    let! _ = s.UpsertAsync([| one; again |], none)
                    Expect.equal (waiting ()) (int64 n) "the next batch indexed only its own new group"
                    let! gone = s.DeleteAsync(hashOf 3, none)
                    Expect.isTrue gone "a waiting group deleted"
                    // The same batches in the in-memory store: what each search finds.
                    let model = MemoryStore() :> IErrorStore
                    let! _ = model.UpsertAsync(deferred, none)
                    let! _ = model.UpsertAsync([| one; again |], none)
                    let! _ = model.DeleteAsync(hashOf 3, none)

                    // Rare words (the index's path), with groups waiting and after the catch-up.
                    let searches () =
                        task {
                            for q in [ "error5003"; "host-5"; "app error12"; "host-3 error3"; "message 300"; "nothing" ] do
                                let query = { ListQuery.All with Search = q }

                                let! expected = model.ListAsync(query, 0L, 50, none)
                                let! found = s.ListAsync(query, 0L, 50, none)
                                Expect.equal [ for r in found -> r.Hash ] [ for r in expected -> r.Hash ] q
                        }

                    do! searches ()
                    do! backlog.IndexSearchStepAsync none
                    Expect.equal (waiting ()) (int64 (n - 1 - Limits.searchStep)) "a step indexes searchStep groups"
                    Expect.isTrue backlog.SearchBehind "still behind"
                    do! searches ()
                    do! backlog.IndexSearchStepAsync none
                    Expect.equal (waiting ()) 0L "the next step the rest"
                    Expect.isFalse backlog.SearchBehind "caught up"
                    checkSearchIndex connection
                    do! searches ()
                }
            testTask' "a SQLite file of the schema before triage is migrated: every group unresolved, searchable"
            <| fun () ->
                task {
                    let path = versionFourFile ()
                    Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools()
                    let store = SqliteStore("Data Source=" + path, "app_error") :> IErrorStore
                    let none = CancellationToken.None
                    let! all = store.ListAsync(ListQuery.Unresolved, 0L, 10, none)

                    Expect.equal
                        (all |> Seq.map (fun r -> r.Path, r.Status, r.Regressions) |> List.ofSeq)
                        [ "/b", GroupStatus.Unresolved, 0L; "/orders/checkout", GroupStatus.Unresolved, 0L ]
                        "both groups, unresolved"

                    let! found =
                        store.ListAsync(
                            { ListQuery.All with
                                Search = "checkout DECLINE"
                            },
                            0L,
                            10,
                            none
                        )

                    Expect.equal (found |> Seq.map (fun r -> r.Path) |> List.ofSeq) [ "/orders/checkout" ] "found"
                    // The groups indexed by the migrations (and none waiting): the index agrees with them.
                    checkSearchIndex ("Data Source=" + path)

                    let! resolved =
                        store.SetStatusAsync(hashOf 1, changeOf (int GroupStatus.Resolved) None None, none)

                    Expect.equal resolved.Status GroupStatus.Resolved "resolved"
                    let e = event 1 900 1
                    let! written = store.UpsertAsync([| Events.single e |], none)
                    Expect.isTrue written.[0].Regressed "a regression"
                    let! back = store.GetAsync(hashOf 1, none)

                    Expect.equal
                        (back.Status, back.Regressions, back.Count)
                        (GroupStatus.Unresolved, 1L, 4L)
                        "back, counted"

                    // The details became each group's first sample (at its last seen time); a new occurrence adds
                    // one and is the group's details.
                    let! (b: Collections.Generic.IReadOnlyList<Sample>) =
                        store.SamplesAsync(hashOf 2, none)

                    Expect.equal
                        [ for x in b -> x.Traceback, x.RequestData, x.OccurredAt ]
                        [ "App.BError", "{}", DateTimeOffset(2026, 3, 1, 12, 10, 0, TimeSpan.Zero) ]
                        "the details as the first sample"

                    let! (a: Collections.Generic.IReadOnlyList<Sample>) =
                        store.SamplesAsync(hashOf 1, none)

                    Expect.equal
                        [ for x in a -> x.Traceback ]
                        [ e.Traceback; "App.PaymentDeclined" ]
                        "the new occurrence, then the migrated one"

                    Expect.equal back.Traceback e.Traceback "the newest sample is the group's details"
                    Expect.equal back.Users 0L "no users before"

                    // A file made before auto-vacuum was rebuilt in its mode (incremental).
                    use c = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + path)
                    c.Open()
                    use mode = c.CreateCommand()
                    mode.CommandText <- "PRAGMA auto_vacuum;"
                    Expect.equal (Convert.ToInt32(mode.ExecuteScalar())) 2 "incremental auto-vacuum"
                }
            for name, make in
                [
                    "SQLite",
                    (fun () ->
                        SqliteStore("Data Source=" + Path.Combine(tempFolder (), "d.db"), "app_error") :> IErrorStore)
                    "PostgreSQL",
                    (fun () -> PostgresStore.Create(postgres (), "dense_" + Guid.NewGuid().ToString "N") :> IErrorStore)
                ] do
                testTask' (sprintf "the %s store pages a search matching thousands of groups as the model does" name)
                <| fun () ->
                    task {
                        let store = make ()
                        let none = CancellationToken.None
                        let n = Rows.SparseSearch + 400
                        // Every group has "message"; every other one "host-1..." (a dense search either way).
                        let batch = [| for g in 1..n -> Events.single (event g (g % 200) 1) |]
                        let! _ = store.UpsertAsync(batch, none)
                        let model = [ for d in batch -> Events.apply None d ]

                        for q in
                            [
                                { ListQuery.All with
                                    Search = "message"
                                }
                                { ListQuery.All with
                                    Search = "host 1"
                                    Sort = ListSort.Count
                                }
                                { ListQuery.Unresolved with
                                    Search = "app error12"
                                }
                            ] do
                            let expected = MemoryStore.Order(q, model) |> List.ofSeq
                            let! first = store.ListAsync(q, 0L, 21, none)
                            Expect.equal (List.ofSeq first) (List.truncate 21 expected) (sprintf "page 1 of %A" q)
                            let edge = expected.[19]

                            let c =
                                {
                                    Key = Triage.sortKey q.Sort edge
                                    Hash = edge.Hash
                                    Direction = CursorDirection.Older
                                }

                            let! next = store.ListFromAsync(q, c, 21, none)

                            Expect.equal
                                (List.ofSeq next)
                                (expected |> List.skip 20 |> List.truncate 21)
                                (sprintf "the page after it of %A" q)

                        match store with
                        | :? IDisposable as d -> d.Dispose()
                        | _ -> ()
                    }
            testTask' "a PostgreSQL table of the schema before triage is migrated: every group unresolved, searchable"
            <| fun () ->
                task {
                    let table = "old_" + Guid.NewGuid().ToString "N"
                    use source = Npgsql.NpgsqlDataSource.Create(postgres ())

                    use cmd =
                        source.CreateCommand(
                            $"""CREATE TABLE {table} (hash text COLLATE "C" NOT NULL PRIMARY KEY, host text NOT NULL,
  path text NOT NULL, method text NOT NULL, request_data text NOT NULL, exception_name text NOT NULL,
  message text NOT NULL, traceback text NOT NULL, count bigint NOT NULL, created_on timestamptz NOT NULL,
  last_seen timestamptz NOT NULL, previous_seen timestamptz NULL, notified_at timestamptz NULL,
  ticket_at timestamptz NULL);
CREATE INDEX ix_{table}_last_seen ON {table} (last_seen DESC, hash);
CREATE TABLE {table}_journal (id text COLLATE "C" NOT NULL PRIMARY KEY, segment bigint NOT NULL,
  updated_at timestamptz NOT NULL);
CREATE TABLE {table}_schema (version integer NOT NULL);
INSERT INTO {table}_schema VALUES (3);
INSERT INTO {table} (hash, host, path, method, request_data, exception_name, message, traceback, count,
  created_on, last_seen) VALUES ('{hashOf 1}', 'a.example', '/orders/checkout', 'GET', '{{}}',
  'App.PaymentDeclined', 'card declined', 'trace', 3, '2026-03-01T12:00:00Z', '2026-03-01T12:05:00Z')"""
                        )

                    let! _ = cmd.ExecuteNonQueryAsync()
                    use store = PostgresStore.Create(postgres (), table)
                    let s = store :> IErrorStore
                    let none = CancellationToken.None
                    let! all = s.ListAsync(ListQuery.Unresolved, 0L, 10, none)

                    Expect.equal
                        (all |> Seq.map (fun r -> r.Path, r.Status, r.Count) |> List.ofSeq)
                        [ "/orders/checkout", GroupStatus.Unresolved, 3L ]
                        "the group, unresolved"

                    let! found =
                        s.ListAsync(
                            { ListQuery.All with
                                Search = "paymentdecl checkout"
                            },
                            0L,
                            10,
                            none
                        )

                    Expect.equal found.Count 1 "found by the words it had before the migration"

                    let! (samples: Collections.Generic.IReadOnlyList<Sample>) =
                        s.SamplesAsync(hashOf 1, none)

                    Expect.equal
                        [ for x in samples -> x.Traceback, x.OccurredAt ]
                        [ "trace", DateTimeOffset(2026, 3, 1, 12, 5, 0, TimeSpan.Zero) ]
                        "its details as its first sample"
                }
            testTask'
                "a PostgreSQL table of the configured name with another shape is refused, named, and left as it was"
            <| fun () ->
                task {
                    let table = "theirs_" + Guid.NewGuid().ToString "N"
                    use source = Npgsql.NpgsqlDataSource.Create(postgres ())

                    use create =
                        source.CreateCommand($"CREATE TABLE {table} (id integer PRIMARY KEY, hash text, total numeric)")

                    let! _ = create.ExecuteNonQueryAsync()
                    use store = PostgresStore.Create(postgres (), table, recentSamples)

                    let! error =
                        task {
                            try
                                do! (store :> IErrorStore).InitializeAsync CancellationToken.None
                                return None
                            with :? ErrorMonitorConfigException as e ->
                                return Some e.Message
                        }

                    let message = Expect.wantSome error "refused"
                    Expect.stringContains message $"'{table}'" "names the table"
                    Expect.stringContains message "'host'" "and a missing column"

                    use columns =
                        source.CreateCommand(
                            $"SELECT string_agg(column_name::text, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = '{table}'"
                        )

                    let! names = columns.ExecuteScalarAsync()
                    Expect.equal (string names) "id,hash,total" "the table is as it was"
                }
            testTask' "the PostgreSQL store writes a new group's details once, in its sample, and shows them"
            <| fun () ->
                task {
                    let table = "once_" + Guid.NewGuid().ToString "N"
                    use store = PostgresStore.Create(postgres (), table, recentSamples)
                    let s = store :> IErrorStore
                    let none = CancellationToken.None

                    let e =
                        { event 1 0 1 with
                            Traceback = "trace-once-marker"
                            RequestData = """{"marker":"once"}"""
                        }

                    let! _ = s.UpsertAsync([| Events.single e |], none)
                    use source = Npgsql.NpgsqlDataSource.Create(postgres ())

                    use cmd =
                        source.CreateCommand(
                            $"""SELECT (SELECT count(*) FROM {table} WHERE traceback LIKE '%%once-marker%%' OR request_data LIKE '%%once%%')
  + (SELECT count(*) FROM {table}_samples WHERE traceback LIKE '%%once-marker%%')"""
                        )

                    let! copies = cmd.ExecuteScalarAsync()
                    Expect.equal (Convert.ToInt64 copies) 1L "one copy of the details"
                    let! (r: ErrorRecord) = s.GetAsync(hashOf 1, none)
                    Expect.equal (r.Traceback, r.RequestData) (e.Traceback, e.RequestData) "the detail shows them"
                    let! page = s.ListAsync(ListQuery.All, 0L, 10, none)
                    Expect.equal [ for x in page -> x.Traceback ] [ e.Traceback ] "and so does the list"

                    let! (changed: ErrorRecord) =
                        s.SetStatusAsync(hashOf 1, changeOf (int GroupStatus.Resolved) None None, none)

                    Expect.equal changed.Traceback e.Traceback "and a status change's answer"
                }
            samplesAndUsers "the in-memory" (fun () -> MemoryStore(recentSamples))
            samplesAndUsers "the SQLite" (fun () ->
                SqliteStore("Data Source=" + Path.Combine(tempFolder (), "s.db"), "app_error", recentSamples))
            samplesAndUsers "the PostgreSQL" (fun () ->
                PostgresStore.Create(postgres (), "samples_" + Guid.NewGuid().ToString "N", recentSamples))
            contract "the in-memory" (fun () -> MemoryStore(recentSamples))
            contract "the SQLite" (fun () ->
                SqliteStore("Data Source=" + Path.Combine(tempFolder (), "c.db"), "app_error", recentSamples))
            contract "the SQLite (batches written without their search rows, indexed later)" (fun () ->
                DeferringSearch(
                    SqliteStore("Data Source=" + Path.Combine(tempFolder (), "c.db"), "app_error", recentSamples)
                ))
            contract "the PostgreSQL" (fun () ->
                PostgresStore.Create(postgres (), "contract_" + Guid.NewGuid().ToString "N", recentSamples))
        ]
