namespace ErrorMonitor.Web.Stores

open System
open System.Data.Common
open System.Threading.Tasks
open ErrorMonitor.Core

/// What the SQL stores share: the record's columns and how a row becomes a record, and the schema step
/// that runs once before first use.
[<RequireQualifiedAccess>]
module internal Rows =

    /// The record's columns, in the order `record` reads them.
    [<Literal>]
    let Columns =
        "hash, host, path, method, request_data, exception_name, message, traceback, count, created_on, last_seen, status, regressions, last_regression, ignore_until, ignore_until_count, users, first_release, last_release, environment, regression_release, project"

    /// `Columns` read from a summary row `t` and its newest sample `d` (a group's details are its newest
    /// sample's); `fallback` gives a detail column's value for a group without samples.
    let columnsWithSample (fallback: string -> string) =
        Columns.Split ", "
        |> Array.map (fun c ->
            if c = "request_data" || c = "traceback" then
                $"coalesce(d.{c}, {fallback c})"
            else
                "t." + c)
        |> String.concat ", "

    /// The columns every version of a group table has had: a table of the configured name without one of them
    /// is somebody else's.
    let BaseColumns =
        [
            "hash"
            "host"
            "path"
            "method"
            "exception_name"
            "message"
            "count"
            "created_on"
            "last_seen"
        ]

    /// Refuses an existing table (its column names; none: it does not exist) that lacks a base column, with an
    /// error naming the table and the column: ErrorMonitor would otherwise fail on every write.
    let checkShape (table: string) (existing: string seq) =
        let names = Set.ofSeq (existing |> Seq.map (fun n -> n.ToLowerInvariant()))

        if not names.IsEmpty then
            match BaseColumns |> List.tryFind (fun c -> not (names.Contains c)) with
            | Some missing ->
                raise (
                    ErrorMonitor.ErrorMonitorConfigException(
                        $"APP_ERROR_TABLE: the table '{table}' exists with another shape (it has no column '{missing}'), so it is not ErrorMonitor's. Choose another name with APP_ERROR_TABLE, or remove that table."
                    )
                )
            | None -> ()

    /// A status as stored (its number).
    let status (s: GroupStatus) : int = int s

    /// A row of `Columns` as a record; `time` reads a timestamp column the store's way.
    let record (time: DbDataReader -> int -> DateTimeOffset) (r: DbDataReader) : ErrorRecord =
        let nullableTime i =
            if r.IsDBNull i then Nullable() else Nullable(time r i)

        {
            Hash = r.GetString 0
            Host = r.GetString 1
            Path = r.GetString 2
            Method = r.GetString 3
            RequestData = r.GetString 4
            ExceptionName = r.GetString 5
            Message = r.GetString 6
            Traceback = r.GetString 7
            Count = r.GetInt64 8
            CreatedOn = time r 9
            LastSeen = time r 10
            Status = enum<GroupStatus>(Convert.ToInt32(r.GetValue 11))
            Regressions = r.GetInt64 12
            LastRegression = nullableTime 13
            IgnoreUntil = nullableTime 14
            IgnoreUntilCount =
                if r.IsDBNull 15 then
                    Nullable()
                else
                    Nullable(r.GetInt64 15)
            Users = Users.count (r.GetInt64 16)
            FirstRelease = r.GetString 17
            LastRelease = r.GetString 18
            Environment = r.GetString 19
            RegressionRelease = r.GetString 20
            Project = r.GetString 21
        }

    /// A search matching at most this many groups is read through the search index and sorted; one matching more
    /// reads the list's order and checks each row (dense matches fill a page soon).
    [<Literal>]
    let SparseSearch = 5000

    /// A search first reads at most this many rows of the list's order, checking each: when they hold a page's
    /// worth of matches (a common word), that is the page; else the matches are read through the search index.
    [<Literal>]
    let DenseWindow = 5000

    /// The column a list's order reads.
    let keyColumn (sort: ListSort) : string =
        match sort with
        | ListSort.FirstSeen -> "created_on"
        | ListSort.Count -> "count"
        | _ -> "last_seen"

    /// The triage part of an upsert's or a count update's SET list (`Triage.recur` in SQL): `old` qualifies the
    /// row's values before the write ("t." or "{table}."; "" in a plain UPDATE), `added`, `firstAt` and `lastAt`
    /// are the written occurrences' count and first and last times, `release` and `environment` their release
    /// and environment. `previous_status` keeps the status before the write, so the statement can report whether
    /// it made a regression. The release and environment follow the latest occurrence (`Events.apply`).
    let triageSet
        (old: string)
        (added: string)
        (firstAt: string)
        (lastAt: string)
        (release: string)
        (environment: string)
        : string =
        let recurs =
            $"({old}status = 1 OR ({old}status = 2 AND (({old}ignore_until IS NOT NULL AND {lastAt} >= {old}ignore_until) OR ({old}ignore_until_count IS NOT NULL AND {old}count + {added} >= {old}ignore_until_count))))"

        $"""status = CASE WHEN {recurs} THEN 0 ELSE {old}status END,
  previous_status = {old}status,
  regressions = {old}regressions + CASE WHEN {old}status = 1 THEN 1 ELSE 0 END,
  last_regression = CASE WHEN {old}status = 1 THEN {firstAt} ELSE {old}last_regression END,
  regression_release = CASE WHEN {old}status = 1 THEN {release} ELSE {old}regression_release END,
  first_release = CASE WHEN {firstAt} < {old}created_on THEN {release} ELSE {old}first_release END,
  last_release = CASE WHEN {lastAt} >= {old}last_seen THEN {release} ELSE {old}last_release END,
  environment = CASE WHEN {lastAt} >= {old}last_seen THEN {environment} ELSE {old}environment END,
  ignore_until = CASE WHEN {recurs} THEN NULL ELSE {old}ignore_until END,
  ignore_until_count = CASE WHEN {recurs} THEN NULL ELSE {old}ignore_until_count END"""

    /// A write's report: status after it and whether it made a regression, from `status` and `previous_status`.
    let triageWritten (status: obj) (previous: obj) : GroupStatus * bool =
        let s = enum<GroupStatus>(Convert.ToInt32 status)

        let regressed =
            not (isNull previous || previous :? DBNull)
            && Convert.ToInt32 previous = 1
            && s = GroupStatus.Unresolved

        s, regressed

    /// Every row of a reader, read with `read`.
    let readAll (read: DbDataReader -> 'T) (r: DbDataReader) (ct: Threading.CancellationToken) : Task<ResizeArray<'T>> =
        task {
            let acc = ResizeArray<'T>()
            let mutable more = true

            while more do
                let! next = r.ReadAsync ct

                if next then acc.Add(read r) else more <- false

            return acc
        }

    /// A number that orders as its hash does (the first 16 hex digits, unsigned, moved into the signed range):
    /// an index can end in it instead of the 64-character hash (smaller entries, cheaper inserts). Two groups
    /// whose hashes share their first 64 bits (about one chance in 10^8 among a million groups, and then only if
    /// they also tie on the list's key) would be ordered between themselves by row instead.
    let hashKey (hash: string) : int64 =
        if isNull hash || hash.Length < 16 then
            Int64.MinValue
        else
            match
                UInt64.TryParse(
                    hash.AsSpan(0, 16),
                    Globalization.NumberStyles.AllowHexSpecifier,
                    Globalization.CultureInfo.InvariantCulture
                )
            with
            | true, v -> int64 (v ^^^ 0x8000000000000000UL)
            | _ -> Int64.MinValue

    /// The order a store lists in (largest key first, ties by `tie`: "hash", or "hkey" where an index ends in
    /// `hashKey`), or its reverse; `q` qualifies the columns ("" or "t.").
    let orderBy (tie: string) (sort: ListSort) (direction: CursorDirection) (q: string) =
        let k = keyColumn sort

        if direction = CursorDirection.Older then
            $"{q}{k} DESC, {q}{tie}"
        else
            $"{q}{k}, {q}{tie} DESC"

    /// The order every store lists in (largest key first, ties by hash), or its reverse.
    let order = orderBy "hash"

    /// The keyset rule: the rows past a cursor (parameters `key` and the tie column's, with the store's prefix
    /// `p`), read in `orderBy tie sort direction ""`.
    let pastCursorBy (tie: string) (sort: ListSort) (direction: CursorDirection) (p: string) =
        let k = keyColumn sort

        if direction = CursorDirection.Older then
            $"{k} <= {p}key AND ({k} < {p}key OR {tie} > {p}{tie})"
        else
            $"{k} >= {p}key AND ({k} > {p}key OR {tie} < {p}{tie})"

    /// The keyset rule with ties by hash (parameters `key` and `hash`).
    let pastCursor = pastCursorBy "hash"

    /// The keyset rule in two parts that each read one range of an index: the rows tied with the cursor's key
    /// and past its tie column `tie` (parameter `{p}{tie}`), and the rows past its key. A key many rows share (a
    /// count of 1) is then not scanned from its start.
    let pastCursorPartsBy (tie: string) (sort: ListSort) (direction: CursorDirection) (p: string) : string * string =
        let k = keyColumn sort

        if direction = CursorDirection.Older then
            $"{k} = {p}key AND {tie} > {p}{tie}", $"{k} < {p}key"
        else
            $"{k} = {p}key AND {tie} < {p}{tie}", $"{k} > {p}key"

    /// The keyset rule in two parts with ties by hash (parameters `key` and `hash`).
    let pastCursorParts = pastCursorPartsBy "hash"

    /// The release, environment and project filters of a list query (`Triage.releaseMatches`, `Triage.environmentMatches`)
    /// as conditions with their parameter names (`p` the store's prefix) and values; none for no filter.
    let releaseFilters (p: string) (query: ListQuery) : (string * string * string) list =
        [
            if not (String.IsNullOrEmpty query.Release) then
                $"(first_release = {p}release OR last_release = {p}release)", "release", query.Release
            if not (String.IsNullOrEmpty query.Environment) then
                $"environment = {p}environment", "environment", query.Environment
            if not (String.IsNullOrEmpty query.Project) then
                $"project = {p}project", "project", query.Project
        ]

    /// A hash as a parameter value (null is no hash).
    let key (hash: string) = if isNull hash then "" else hash

/// Runs a step once (creating the schema) before first use; a failed attempt (the database away) is run
/// again by the next caller.
type internal Once(step: unit -> Task) =
    let gate = obj ()
    let mutable running: Task = null

    /// The step's task: the one that succeeded or is running, or a new attempt.
    member _.Run() : Task =
        lock gate (fun () ->
            if isNull running || running.IsFaulted || running.IsCanceled then
                running <- step ()

            running)
