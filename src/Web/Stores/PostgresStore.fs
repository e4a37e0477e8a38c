namespace ErrorMonitor.Web.Stores

open System
open System.Collections.Generic
open System.Threading
open System.Threading.Tasks
open Npgsql
open ErrorMonitor
open ErrorMonitor.Core

/// The store for many app instances: one PostgreSQL database. Upserts are one statement a batch (counts add up
/// exactly across processes); the schema is created and migrated on start under an advisory lock, so
/// instances starting together do not collide. The SQL stays within what a distributed PostgreSQL (Citus,
/// with `hash` as the distribution column) accepts. `table` must be a plain identifier.
/// A group keeps its first sample and the `recent` newest (APP_ERROR_SAMPLES_PER_GROUP).
type internal PostgresStore(dataSource: NpgsqlDataSource, table: string, recent: int) =
    let columns = Rows.Columns

    /// The records of the rows a query picks (`picked` selects `Columns` of {table}), in `order`: a group's
    /// details are its newest sample's. Rows written before details moved to the samples keep a copy of them,
    /// read only for a group without samples.
    let withDetails (picked: string) (order: string) =
        $"""SELECT {Rows.columnsWithSample (fun c -> "t." + c)} FROM ({picked}) t
LEFT JOIN LATERAL (SELECT request_data, traceback FROM {table}_samples s WHERE s.hash = t.hash ORDER BY s.id DESC LIMIT 1) d ON TRUE
ORDER BY {order}"""

    /// The words a search looks at (Core's `Triage.words`: runs of letters and digits, lower case) as a tsvector,
    /// from the columns of a row qualified by `q` ("" or "t.").
    let searchedOf (q: string) =
        $"to_tsvector('simple'::regconfig, regexp_replace(lower({q}exception_name || ' ' || {q}message || ' ' || {q}path || ' ' || {q}host), '[^[:alnum:]]+', ' ', 'g'))"

    /// The search table's rows for the groups named by @hash, from their stored columns (after a write that
    /// may have changed them); unchanged words are not rewritten.
    let searchSql =
        $"""INSERT INTO {table}_search (hash, words)
SELECT t.hash, {searchedOf "t."} FROM {table} t WHERE t.hash = ANY(@hash)
ON CONFLICT (hash) DO UPDATE SET words = EXCLUDED.words WHERE {table}_search.words IS DISTINCT FROM EXCLUDED.words"""

    /// The WHERE condition of a list query and its parameters: the status, and the search through the search
    /// table's GIN index (each word a prefix: `word:*`). A search that matches few groups reads them through the
    /// index (their hashes, then the rows by key); one that matches many reads the list's order and checks each
    /// row (dense matches fill a page soon): whichever way the planner would have guessed, neither is slow.
    let selection
        (conn: NpgsqlConnection)
        (query: ListQuery)
        (past: string, pastParams: Sql.Param list)
        (ordered: string)
        (page: int)
        (ct: CancellationToken)
        : Task<string * Sql.Param list> =
        task {
            let words = Triage.searchWords query.Search

            let status =
                [
                    if query.Status.HasValue then
                        "status = @status", [ Sql.int "status" (Rows.status query.Status.Value) ]
                    for condition, name, value in Rows.releaseFilters "@" query do
                        condition, [ Sql.text name value ]
                ]

            let statusWhere = String.Join(" AND ", "TRUE" :: (status |> List.map fst))
            let statusParams = status |> List.collect snd

            let! search =
                if words.IsEmpty then
                    Task.FromResult []
                else
                    task {
                        let q = String.Join(" & ", words |> List.map (fun w -> w + ":*"))
                        let matches = "s.words @@ to_tsquery('simple'::regconfig, @q)"
                        // Each row checked against its stored words (an index lookup, not its text read again),
                        // as a scalar subquery: a plan of its own run row by row, which the planner cannot turn
                        // into a join reading every match through the GIN index (it guesses a prefix's matches
                        // far too few, and chose that for a word every group has: 418 ms at 1,000,000 groups).
                        let check (row: string) =
                            $"(SELECT {matches} FROM {table}_search s WHERE s.hash = {row}.hash)"

                        let byRow = check table

                        // Dense among the first rows of the list (a common word): the list's order, each row
                        // checked. Else the matches through the GIN index: few of them, their hashes then the
                        // rows by key; many (and not among the first rows), each row checked after all.
                        let! dense =
                            Sql.query
                                conn
                                null
                                $"""SELECT count(*) FROM (SELECT 1 FROM (SELECT hash FROM {table}
WHERE {statusWhere} AND {past} ORDER BY {ordered} LIMIT {Rows.DenseWindow}) w
WHERE {check "w"} LIMIT @page) x"""
                                (statusParams @ pastParams @ [ Sql.text "q" q; Sql.int "page" (max 1 page) ])
                                (fun r -> r.GetInt64 0)
                                ct

                        if dense.[0] >= int64 (max 1 page) then
                            return [ byRow, [ Sql.text "q" q ] ]
                        else
                            // The matches through the GIN index, planned for all of them (a MATERIALIZED CTE):
                            // with the LIMIT in its plan, PostgreSQL guessed a prefix matches 2% of the rows and read
                            // the whole table for the first of them (2 s at 10,000,000 groups, for 11 matches).
                            // Without JIT and parallel workers, which that guess starts for a lookup of a few
                            // milliseconds (250 ms with them, 8 without).
                            use! tx = conn.BeginTransactionAsync ct

                            let! _ =
                                Sql.execute
                                    conn
                                    tx
                                    "SET LOCAL jit = off; SET LOCAL max_parallel_workers_per_gather = 0"
                                    []
                                    ct

                            let! hits =
                                Sql.query
                                    conn
                                    tx
                                    $"WITH m AS MATERIALIZED (SELECT s.hash FROM {table}_search s WHERE {matches}) SELECT hash FROM m LIMIT {Rows.SparseSearch + 1}"
                                    [ Sql.text "q" q ]
                                    (fun r -> r.GetString 0)
                                    ct

                            do! tx.CommitAsync ct

                            if hits.Count <= Rows.SparseSearch then
                                return [ "hash = ANY(@hits)", [ Sql.textArray "hits" (hits.ToArray()) ] ]
                            else
                                return [ byRow, [ Sql.text "q" q ] ]
                    }

            let parts = ("TRUE", []) :: status @ search
            return String.Join(" AND ", parts |> List.map fst), parts |> List.collect snd
        }

    /// Adds buckets to `{table}_{kind}` (hours or days) by group hash, in key order (as the rows are locked).
    let addBuckets (conn: NpgsqlConnection) (tx: NpgsqlTransaction) (kind: string) (rows: (string * Bucket) seq) ct =
        task {
            let sorted =
                rows
                |> Array.ofSeq
                |> Array.sortWith (fun (h1, b1) (h2, b2) ->
                    match String.CompareOrdinal(h1, h2) with
                    | 0 -> compare b1.Start b2.Start
                    | c -> c)

            if sorted.Length > 0 then
                let! _ =
                    Sql.execute
                        conn
                        tx
                        $"""INSERT INTO {table}_{kind} AS t (hash, start, count) SELECT * FROM unnest(@hash, @start, @count)
ON CONFLICT (hash, start) DO UPDATE SET count = t.count + EXCLUDED.count"""
                        [
                            Sql.textArray "hash" (sorted |> Array.map fst)
                            Sql.timeArray "start" (sorted |> Array.map (fun (_, b) -> b.Start))
                            Sql.bigintArray "count" (sorted |> Array.map (fun (_, b) -> b.Count))
                        ]
                        ct

                ()
        }

    /// Each migration, in order; the version table remembers how many ran.
    let migrations =
        [
            $"""CREATE TABLE IF NOT EXISTS {table} (
  hash text COLLATE "C" NOT NULL PRIMARY KEY,
  host text NOT NULL,
  path text NOT NULL,
  method text NOT NULL,
  request_data text NOT NULL,
  exception_name text NOT NULL,
  message text NOT NULL,
  traceback text NOT NULL,
  count bigint NOT NULL,
  created_on timestamptz NOT NULL,
  last_seen timestamptz NOT NULL);
CREATE INDEX IF NOT EXISTS ix_{table}_last_seen ON {table} (last_seen DESC, hash)"""
            $"""ALTER TABLE {table} ADD COLUMN IF NOT EXISTS previous_seen timestamptz NULL;
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS notified_at timestamptz NULL;
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS ticket_at timestamptz NULL"""
            // How far each instance's journal is stored, written in the same transaction as its batches.
            $"""CREATE TABLE IF NOT EXISTS {table}_journal (
  id text COLLATE "C" NOT NULL PRIMARY KEY,
  segment bigint NOT NULL,
  updated_at timestamptz NOT NULL)"""
            // Triage: status (0 unresolved, 1 resolved, 2 ignored), regressions, ignore limits; an index a list
            // order behind the status (a list of every status by first seen or count reads the table); the
            // search: a table of each group's words (exception type, message, path and host) with a GIN index,
            // written only when they change, so a count update costs the search nothing.
            $"""ALTER TABLE {table} ADD COLUMN IF NOT EXISTS status smallint NOT NULL DEFAULT 0;
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS previous_status smallint NULL;
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS regressions bigint NOT NULL DEFAULT 0;
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS last_regression timestamptz NULL;
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS ignore_until timestamptz NULL;
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS ignore_until_count bigint NULL;
CREATE INDEX IF NOT EXISTS ix_{table}_status_last_seen ON {table} (status, last_seen DESC, hash);
CREATE INDEX IF NOT EXISTS ix_{table}_status_created_on ON {table} (status, created_on DESC, hash);
CREATE INDEX IF NOT EXISTS ix_{table}_status_count ON {table} (status, count DESC, hash);
CREATE TABLE IF NOT EXISTS {table}_search (hash text COLLATE "C" NOT NULL PRIMARY KEY, words tsvector NOT NULL);
CREATE INDEX IF NOT EXISTS ix_{table}_search ON {table}_search USING gin (words);
INSERT INTO {table}_search (hash, words) SELECT hash, {searchedOf ""} FROM {table} ON CONFLICT (hash) DO NOTHING"""
            // History: occurrences an hour (and a day, for hours past the hourly span) of each group, and of all
            // groups together under the hash ''.
            $"""CREATE TABLE IF NOT EXISTS {table}_hours (hash text COLLATE "C" NOT NULL, start timestamptz NOT NULL,
  count bigint NOT NULL, PRIMARY KEY (hash, start));
CREATE TABLE IF NOT EXISTS {table}_days (hash text COLLATE "C" NOT NULL, start timestamptz NOT NULL,
  count bigint NOT NULL, PRIMARY KEY (hash, start))"""
            // Samples: a group's first occurrence and its most recent ones, each with its own details (the
            // newest is the group's details; a row's details become its first sample, at its last seen time:
            // when they were taken is not known; rows written since keep none). Users: the keys of a group's distinct users, up to the bound,
            // and their count on its row.
            $"""CREATE TABLE IF NOT EXISTS {table}_samples (id bigserial PRIMARY KEY, hash text COLLATE "C" NOT NULL,
  occurred_at timestamptz NOT NULL, message text NOT NULL, request_data text NOT NULL, traceback text NOT NULL);
CREATE INDEX IF NOT EXISTS ix_{table}_samples_hash ON {table}_samples (hash, id);
INSERT INTO {table}_samples (hash, occurred_at, message, request_data, traceback)
SELECT hash, last_seen, message, request_data, traceback FROM {table} WHERE traceback <> '' ORDER BY created_on, hash;
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS users bigint NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS {table}_users (hash text COLLATE "C" NOT NULL, user_key text COLLATE "C" NOT NULL,
  PRIMARY KEY (hash, user_key))"""
            // Release and environment: a group's first and last release, its last environment and the release it
            // came back in; each sample's own.
            $"""ALTER TABLE {table} ADD COLUMN IF NOT EXISTS first_release text NOT NULL DEFAULT '';
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS last_release text NOT NULL DEFAULT '';
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS environment text NOT NULL DEFAULT '';
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS regression_release text NOT NULL DEFAULT '';
ALTER TABLE {table}_samples ADD COLUMN IF NOT EXISTS release text NOT NULL DEFAULT '';
ALTER TABLE {table}_samples ADD COLUMN IF NOT EXISTS environment text NOT NULL DEFAULT ''"""
            // The Sentry project a group was reported under (empty for the app's own).
            $"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS project text NOT NULL DEFAULT ''"
        ]

    // The row keeps the summary; the details (request data, traceback) are in the samples only, so a new group
    // writes them once.
    let upsertSql =
        $"""INSERT INTO {table} AS t (hash, host, path, method, request_data, exception_name, message, traceback, count, created_on, last_seen, first_release, last_release, environment, project)
SELECT u.hash, u.host, u.path, u.method, '{{}}', u.exception_name, u.message, '', u.count, u.created_on, u.last_seen, u.release, u.release, u.environment, u.project
FROM unnest(@hash, @host, @path, @method, @exception_name, @message, @count, @created_on, @last_seen, @release, @environment, @project)
  AS u(hash, host, path, method, exception_name, message, count, created_on, last_seen, release, environment, project)
ON CONFLICT (hash) DO UPDATE SET
  message = EXCLUDED.message,
  count = t.count + EXCLUDED.count,
  created_on = LEAST(t.created_on, EXCLUDED.created_on),
  previous_seen = t.last_seen,
  last_seen = GREATEST(t.last_seen, EXCLUDED.last_seen),
  {Rows.triageSet
       "t."
       "EXCLUDED.count"
       "EXCLUDED.created_on"
       "EXCLUDED.last_seen"
       "EXCLUDED.last_release"
       "EXCLUDED.environment"}
RETURNING t.hash, t.previous_seen, t.notified_at, t.ticket_at, t.status, t.previous_status"""

    // Count-only batches touch the count and times and leave the rows' details as they are.
    let countSql =
        $"""UPDATE {table} AS t SET
  count = t.count + u.count,
  created_on = LEAST(t.created_on, u.created_on),
  previous_seen = t.last_seen,
  last_seen = GREATEST(t.last_seen, u.last_seen),
  {Rows.triageSet "t." "u.count" "u.created_on" "u.last_seen" "u.release" "u.environment"}
FROM unnest(@hash, @count, @created_on, @last_seen, @release, @environment) AS u(hash, count, created_on, last_seen, release, environment)
WHERE t.hash = u.hash
RETURNING t.hash, t.previous_seen, t.notified_at, t.ticket_at, t.status, t.previous_status"""

    /// Samples of the batch's detailed groups (@hash ... @traceback), in hash order.
    let samplesSql =
        $"""INSERT INTO {table}_samples (hash, occurred_at, message, request_data, traceback, release, environment)
SELECT * FROM unnest(@hash, @occurred_at, @message, @request_data, @traceback, @release, @environment)"""

    /// Removes the samples of the groups @hash `Samples.kept` leaves out: all but each one's first and the
    /// @recent newest.
    let trimSql =
        $"""DELETE FROM {table}_samples s USING (
  SELECT id, row_number() OVER (PARTITION BY hash ORDER BY id DESC) AS rn, min(id) OVER (PARTITION BY hash) AS first
  FROM {table}_samples WHERE hash = ANY(@hash)) k
WHERE s.id = k.id AND k.rn > @recent AND k.id <> k.first"""

    /// Adds the batch's user keys (@hash, @user: one pair a key) to each group's while it holds fewer than the
    /// bound (checked before the statement), and counts what was added on the group's row.
    let usersSql =
        $"""WITH added AS (
  INSERT INTO {table}_users (hash, user_key)
  SELECT b.hash, b.user_key FROM unnest(@hash, @user) AS b(hash, user_key)
  WHERE (SELECT count(*) FROM {table}_users u WHERE u.hash = b.hash) < {Users.Bound}
  ON CONFLICT DO NOTHING RETURNING hash)
UPDATE {table} t SET users = t.users + a.n FROM (SELECT hash, count(*) AS n FROM added GROUP BY hash) a
WHERE t.hash = a.hash"""

    let writtenRow (r: NpgsqlDataReader) : GroupWritten =
        let status, regressed = Rows.triageWritten (r.GetValue 4) (r.GetValue 5)

        {
            Status = status
            Regressed = regressed
            Hash = r.GetString 0
            PreviousSeen = Sql.nullableTime r 1
            LastNotified = Sql.nullableTime r 2
            TicketRaised = Sql.nullableTime r 3
        }

    let read (r: NpgsqlDataReader) =
        Rows.record (fun r i -> Sql.timeAt (r :?> NpgsqlDataReader) i) r


    let migrate () : Task =
        task {
            use! conn = dataSource.OpenConnectionAsync()
            use! tx = conn.BeginTransactionAsync()
            let none = CancellationToken.None

            let! _ =
                Sql.execute
                    conn
                    tx
                    "SELECT pg_advisory_xact_lock(hashtext(@key))"
                    [ Sql.text "key" ("errormonitor:" + table) ]
                    none

            // A table of this name that is not ErrorMonitor's stops here, named (not at every write).
            let! existing =
                Sql.query
                    conn
                    tx
                    "SELECT column_name::text FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = lower(@table)"
                    [ Sql.text "table" table ]
                    (fun r -> r.GetString 0)
                    none

            Rows.checkShape table existing

            let! _ =
                Sql.execute conn tx $"CREATE TABLE IF NOT EXISTS {table}_schema (version integer NOT NULL)" [] none

            let! versions =
                Sql.query
                    conn
                    tx
                    $"SELECT coalesce(max(version), 0) FROM {table}_schema"
                    []
                    (fun r -> r.GetInt32 0)
                    none

            let current = versions.[0]

            for i, sql in List.indexed migrations do
                if i + 1 > current then
                    let! _ = Sql.execute conn tx sql [] none
                    ()

            if current < migrations.Length then
                let! _ = Sql.execute conn tx $"DELETE FROM {table}_schema" [] none

                let! _ =
                    Sql.execute
                        conn
                        tx
                        $"INSERT INTO {table}_schema (version) VALUES (@v)"
                        [ Sql.int "v" migrations.Length ]
                        none

                ()

            do! tx.CommitAsync()
        }

    // Created once per store, before first use; a failed attempt (database down) is retried next time.
    let schema = Once(migrate)
    let ensure () = schema.Run()

    /// Its table.
    member _.Table = table

    /// Opens a store on an Npgsql connection string (throws ArgumentException when it is malformed); a group
    /// keeps its first sample and the `recent` newest.
    static member Create(connectionString: string, table: string, recent: int) =
        let builder = NpgsqlDataSourceBuilder(connectionString)
        new PostgresStore(builder.Build(), table, recent)

    /// Opens a store whose groups keep `Samples.DefaultRecent` recent samples.
    static member Create(connectionString: string, table: string) =
        PostgresStore.Create(connectionString, table, Samples.DefaultRecent)

    /// Writes a batch; with a journal mark `(journal, segment, now)`, sets the mark in the same transaction, or
    /// writes nothing (None) when the mark already is at least `segment`.
    member private _.Upsert
        (batch: IReadOnlyList<GroupDelta>, mark: (string * int64 * DateTimeOffset) option, ct: CancellationToken)
        : Task<IReadOnlyList<GroupWritten> option> =
        task {
            do! ensure ()

            if batch.Count > 0 then
                // One row a hash, in hash order, so concurrent writers lock rows in the same order.
                let sorted = batch |> Seq.sortBy (fun d -> d.Latest.Hash) |> Array.ofSeq
                let counts = sorted |> Array.filter (fun d -> not d.Detailed)
                use! conn = dataSource.OpenConnectionAsync ct
                use! tx = conn.BeginTransactionAsync ct

                let! storedBefore =
                    match mark with
                    | Some(journal, segment, _) ->
                        task {
                            // FOR UPDATE: two writes of one journal never both pass this check.
                            let! marks =
                                Sql.query
                                    conn
                                    tx
                                    $"SELECT segment FROM {table}_journal WHERE id = @id FOR UPDATE"
                                    [ Sql.text "id" journal ]
                                    (fun r -> r.GetInt64 0)
                                    ct

                            return marks.Count > 0 && marks.[0] >= segment
                        }
                    | None -> Task.FromResult false

                if storedBefore then
                    return None
                else
                    let! counted =
                        if counts.Length = 0 then
                            Task.FromResult(ResizeArray<GroupWritten>())
                        else
                            let col f = counts |> Array.map f

                            Sql.query
                                conn
                                tx
                                countSql
                                [
                                    Sql.textArray "hash" (col (fun d -> d.Latest.Hash))
                                    Sql.bigintArray "count" (col (fun d -> d.Count))
                                    Sql.timeArray "created_on" (col (fun d -> d.FirstAt))
                                    Sql.timeArray "last_seen" (col (fun d -> d.Latest.OccurredAt))
                                    Sql.textArray "release" (col (fun d -> d.Latest.Release))
                                    Sql.textArray "environment" (col (fun d -> d.Latest.Environment))
                                ]
                                writtenRow
                                ct

                    // Detailed batches, and count-only ones whose group is missing (inserted as given).
                    let found = HashSet<string>(counted |> Seq.map (fun w -> w.Hash))

                    let rows =
                        sorted
                        |> Array.filter (fun d -> d.Detailed || not (found.Contains d.Latest.Hash))

                    let col f = rows |> Array.map f

                    let! upserted =
                        if rows.Length = 0 then
                            Task.FromResult(ResizeArray<GroupWritten>())
                        else
                            Sql.query
                                conn
                                tx
                                upsertSql
                                [
                                    Sql.textArray "hash" (col (fun d -> d.Latest.Hash))
                                    Sql.textArray "host" (col (fun d -> d.Latest.Host))
                                    Sql.textArray "path" (col (fun d -> d.Latest.Path))
                                    Sql.textArray "method" (col (fun d -> d.Latest.Method))
                                    Sql.textArray "exception_name" (col (fun d -> d.Latest.ExceptionName))
                                    Sql.textArray "message" (col (fun d -> d.Latest.Message))
                                    Sql.bigintArray "count" (col (fun d -> d.Count))
                                    Sql.timeArray "created_on" (col (fun d -> d.FirstAt))
                                    Sql.timeArray "last_seen" (col (fun d -> d.Latest.OccurredAt))
                                    Sql.textArray "release" (col (fun d -> d.Latest.Release))
                                    Sql.textArray "environment" (col (fun d -> d.Latest.Environment))
                                    Sql.textArray "project" (col (fun d -> d.Latest.Project))
                                ]
                                writtenRow
                                ct

                    if rows.Length > 0 then
                        let! _ =
                            Sql.execute conn tx searchSql [ Sql.textArray "hash" (col (fun d -> d.Latest.Hash)) ] ct

                        ()

                    // A sample of each detailed batch; groups that had samples drop those past the bound.
                    let detailed = rows |> Array.filter (fun d -> d.Detailed)

                    if detailed.Length > 0 then
                        let dcol f = detailed |> Array.map f

                        let! _ =
                            Sql.execute
                                conn
                                tx
                                samplesSql
                                [
                                    Sql.textArray "hash" (dcol (fun d -> d.Latest.Hash))
                                    Sql.timeArray "occurred_at" (dcol (fun d -> d.Latest.OccurredAt))
                                    Sql.textArray "message" (dcol (fun d -> d.Latest.Message))
                                    Sql.textArray "request_data" (dcol (fun d -> d.Latest.RequestData))
                                    Sql.textArray "traceback" (dcol (fun d -> d.Latest.Traceback))
                                    Sql.textArray "release" (dcol (fun d -> d.Latest.Release))
                                    Sql.textArray "environment" (dcol (fun d -> d.Latest.Environment))
                                ]
                                ct

                        let existed =
                            upserted
                            |> Seq.filter (fun w -> w.PreviousSeen.HasValue)
                            |> Seq.map (fun w -> w.Hash)
                            |> HashSet

                        let trimmed =
                            detailed |> Array.map (fun d -> d.Latest.Hash) |> Array.filter existed.Contains

                        if trimmed.Length > 0 then
                            let! _ =
                                Sql.execute conn tx trimSql [ Sql.textArray "hash" trimmed; Sql.int "recent" recent ] ct

                            ()

                    // The batch's users.
                    let pairs =
                        [|
                            for d in sorted do
                                for u in d.Users -> d.Latest.Hash, u
                        |]

                    if pairs.Length > 0 then
                        let! _ =
                            Sql.execute
                                conn
                                tx
                                usersSql
                                [
                                    Sql.textArray "hash" (Array.map fst pairs)
                                    Sql.textArray "user" (Array.map snd pairs)
                                ]
                                ct

                        ()

                    // The history: each group's hours and all groups' (under '').
                    do!
                        addBuckets
                            conn
                            tx
                            "hours"
                            [
                                for d in sorted do
                                    for b in d.Hours -> d.Latest.Hash, b
                                for b in History.sum (sorted |> Seq.collect (fun d -> d.Hours)) -> "", b
                            ]
                            ct

                    match mark with
                    | Some(journal, segment, now) ->
                        let! _ =
                            Sql.execute
                                conn
                                tx
                                $"INSERT INTO {table}_journal (id, segment, updated_at) VALUES (@id, @segment, @now) ON CONFLICT (id) DO UPDATE SET segment = EXCLUDED.segment, updated_at = EXCLUDED.updated_at"
                                [ Sql.text "id" journal; Sql.bigint "segment" segment; Sql.time "now" now ]
                                ct

                        ()
                    | None -> ()

                    do! tx.CommitAsync ct
                    counted.AddRange upserted
                    return Some(counted :> IReadOnlyList<GroupWritten>)
            else
                return Some(Array.empty<GroupWritten> :> IReadOnlyList<GroupWritten>)
        }

    interface IJournalMarks with
        member _.ReadMarkAsync(journal, forgetBefore, ct) =
            task {
                do! ensure ()
                use! conn = dataSource.OpenConnectionAsync ct

                let! _ =
                    Sql.execute
                        conn
                        null
                        $"DELETE FROM {table}_journal WHERE updated_at < @before AND id <> @id"
                        [ Sql.time "before" forgetBefore; Sql.text "id" journal ]
                        ct

                let! marks =
                    Sql.query
                        conn
                        null
                        $"SELECT segment FROM {table}_journal WHERE id = @id"
                        [ Sql.text "id" journal ]
                        (fun r -> r.GetInt64 0)
                        ct

                return if marks.Count = 0 then 0L else marks.[0]
            }

        member this.UpsertMarkedAsync(batch, journal, segment, now, _, ct) =
            this.Upsert(batch, Some(journal, segment, now), ct)

    interface IErrorStore with
        member _.InitializeAsync _ = ensure ()

        member this.UpsertAsync(batch, ct) =
            task {
                let! written = this.Upsert(batch, None, ct)

                return
                    written
                    |> Option.defaultValue (Array.empty<GroupWritten> :> IReadOnlyList<GroupWritten>)
            }

        member _.TryClaimAsync(hash, kind, expected, now, ct) =
            task {
                do! ensure ()
                use! conn = dataSource.OpenConnectionAsync ct

                let column =
                    if kind = ClaimKind.Ticket then
                        "ticket_at"
                    else
                        "notified_at"

                let! n =
                    Sql.execute
                        conn
                        null
                        $"UPDATE {table} SET {column} = @now WHERE hash = @hash AND {column} IS NOT DISTINCT FROM @expected"
                        [
                            Sql.time "now" now
                            Sql.text "hash" (Rows.key hash)
                            Sql.nullableTimeParam "expected" expected
                        ]
                        ct

                return n = 1
            }

        member _.GetAsync(hash, ct) =
            task {
                do! ensure ()
                use! conn = dataSource.OpenConnectionAsync ct

                let! rows =
                    Sql.query
                        conn
                        null
                        (withDetails $"SELECT {columns} FROM {table} WHERE hash = @hash" "hash")
                        [ Sql.text "hash" (Rows.key hash) ]
                        read
                        ct

                return
                    if rows.Count = 0 then
                        Unchecked.defaultof<ErrorRecord>
                    else
                        rows.[0]
            }

        member _.ListAsync(query, offset, count, ct) =
            task {
                do! ensure ()
                use! conn = dataSource.OpenConnectionAsync ct

                let ordered = Rows.order query.Sort CursorDirection.Older String.Empty

                let! where, ps =
                    selection conn query ("TRUE", []) ordered (count + int (min offset 100000L)) ct

                let! rows =
                    Sql.query
                        conn
                        null
                        (withDetails
                            $"SELECT {columns} FROM {table} WHERE {where} ORDER BY {ordered} LIMIT @count OFFSET @offset"
                            ordered)
                        (ps @ [ Sql.int "count" (max 0 count); Sql.bigint "offset" (max 0L offset) ])
                        read
                        ct

                return rows :> IReadOnlyList<ErrorRecord>
            }

        member _.ListFromAsync(query, cursor, count, ct) =
            task {
                do! ensure ()
                use! conn = dataSource.OpenConnectionAsync ct

                let d = cursor.Direction
                let ordered = Rows.order query.Sort d ""

                let keyParams =
                    [
                        (if query.Sort = ListSort.Count then
                             Sql.bigint "key" cursor.Key
                         else
                             Sql.time "key" (Paging.timeOf cursor.Key))
                        Sql.text "hash" (Rows.key cursor.Hash)
                    ]

                let! where, ps =
                    selection conn query (Rows.pastCursor query.Sort d "@", keyParams) ordered count ct

                // Two exact range reads (the rows tied with the cursor's key past its hash, then the rows past its
                // key), so a key shared by many rows (a count of 1) is not scanned from its start.
                let tied, beyond = Rows.pastCursorParts query.Sort d "@"

                let sql =
                    withDetails
                        $"""SELECT {columns} FROM (
  (SELECT {columns} FROM {table} WHERE {where} AND {tied} ORDER BY {ordered} LIMIT @count)
  UNION ALL
  (SELECT {columns} FROM {table} WHERE {where} AND {beyond} ORDER BY {ordered} LIMIT @count)) x
ORDER BY {ordered} LIMIT @count"""
                        ordered

                let! rows =
                    Sql.query conn null sql (ps @ keyParams @ [ Sql.int "count" (max 0 count) ]) read ct

                if cursor.Direction = CursorDirection.Newer then
                    rows.Reverse()

                return rows :> IReadOnlyList<ErrorRecord>
            }

        member _.SetStatusAsync(hash, change, ct) =
            task {
                do! ensure ()
                use! conn = dataSource.OpenConnectionAsync ct
                let ignored = change.Status = GroupStatus.Ignored

                let! rows =
                    Sql.query
                        conn
                        null
                        ("WITH u AS ("
                         + $"UPDATE {table} SET status = @status, ignore_until = @until, ignore_until_count = count + @n WHERE hash = @hash RETURNING {columns}) "
                         + withDetails "SELECT * FROM u" "hash")
                        [
                            Sql.int "status" (Rows.status change.Status)
                            Sql.nullableTimeParam "until" (if ignored then change.IgnoreUntil else Nullable())
                            ("n",
                             (if ignored && change.IgnoreCount.HasValue then
                                  box change.IgnoreCount.Value
                              else
                                  box DBNull.Value),
                             NpgsqlTypes.NpgsqlDbType.Bigint)
                            Sql.text "hash" (Rows.key hash)
                        ]
                        read
                        ct

                return
                    if rows.Count = 0 then
                        Unchecked.defaultof<ErrorRecord>
                    else
                        rows.[0]
            }

        member _.ExpireIgnoresAsync(now, ct) =
            task {
                do! ensure ()
                use! conn = dataSource.OpenConnectionAsync ct

                let! _ =
                    Sql.execute
                        conn
                        null
                        $"UPDATE {table} SET status = 0, ignore_until = NULL, ignore_until_count = NULL WHERE status = 2 AND ignore_until <= @now"
                        [ Sql.time "now" now ]
                        ct

                ()
            }

        member _.DeleteAsync(hash, ct) =
            task {
                do! ensure ()
                use! conn = dataSource.OpenConnectionAsync ct

                use tx = conn.BeginTransaction()
                let key = Rows.key hash

                let! found =
                    Sql.query
                        conn
                        tx
                        $"SELECT 1 FROM {table} WHERE hash = @hash FOR UPDATE"
                        [ Sql.text "hash" key ]
                        ignore
                        ct

                // Its history leaves the all-groups history too.
                let! _ =
                    Sql.execute
                        conn
                        tx
                        $"""UPDATE {table}_hours t SET count = t.count - g.count FROM {table}_hours g
WHERE g.hash = @hash AND t.hash = '' AND t.start = g.start;
UPDATE {table}_days t SET count = t.count - g.count FROM {table}_days g
WHERE g.hash = @hash AND t.hash = '' AND t.start = g.start;
DELETE FROM {table}_hours WHERE hash = @hash; DELETE FROM {table}_days WHERE hash = @hash;
DELETE FROM {table}_samples WHERE hash = @hash; DELETE FROM {table}_users WHERE hash = @hash;
DELETE FROM {table}_search WHERE hash = @hash; DELETE FROM {table} WHERE hash = @hash"""
                        [ Sql.text "hash" key ]
                        ct

                do! tx.CommitAsync ct
                return found.Count > 0
            }

        member _.SamplesAsync(hash, ct) =
            task {
                do! ensure ()
                use! conn = dataSource.OpenConnectionAsync ct

                let! rows =
                    Sql.query
                        conn
                        null
                        $"SELECT id, occurred_at, message, request_data, traceback, release, environment FROM {table}_samples WHERE hash = @hash ORDER BY id DESC"
                        [ Sql.text "hash" (Rows.key hash) ]
                        (fun r ->
                            {
                                Id = r.GetInt64 0
                                OccurredAt = Sql.timeAt r 1
                                Message = r.GetString 2
                                RequestData = r.GetString 3
                                Traceback = r.GetString 4
                                Release = r.GetString 5
                                Environment = r.GetString 6
                            })
                        ct

                return rows :> IReadOnlyList<Sample>
            }

        member _.HistoryAsync(hash, from, ct) =
            task {
                do! ensure ()
                use! conn = dataSource.OpenConnectionAsync ct

                let read (kind: string) =
                    Sql.query
                        conn
                        null
                        $"SELECT start, count FROM {table}_{kind} WHERE hash = @hash AND start >= @from ORDER BY start"
                        [ Sql.text "hash" (Rows.key hash); Sql.time "from" from ]
                        (fun r ->
                            {
                                Start = Sql.readTime r 0
                                Count = r.GetInt64 1
                            })
                        ct

                let! hours = read "hours"
                let! days = read "days"

                return
                    {
                        Hours = hours.ToArray()
                        Days = days.ToArray()
                    }
            }

        member _.HoursAsync(hashes, from, ct) =
            task {
                do! ensure ()
                let found = Dictionary<string, Bucket[]>()

                if hashes.Count > 0 then
                    use! conn = dataSource.OpenConnectionAsync ct

                    let! rows =
                        Sql.query
                            conn
                            null
                            $"SELECT hash, start, count FROM {table}_hours WHERE hash = ANY(@hashes) AND start >= @from ORDER BY hash, start"
                            [
                                Sql.textArray
                                    "hashes"
                                    (hashes |> Seq.filter (fun h -> not (String.IsNullOrEmpty h)) |> Array.ofSeq)
                                Sql.time "from" from
                            ]
                            (fun r ->
                                r.GetString 0,
                                {
                                    Start = Sql.readTime r 1
                                    Count = r.GetInt64 2
                                })
                            ct

                    for hash, buckets in rows |> Seq.groupBy fst do
                        found.[hash] <- buckets |> Seq.map snd |> Array.ofSeq

                return found :> IReadOnlyDictionary<_, _>
            }

        member _.PruneAsync(request, ct) =
            task {
                do! ensure ()
                use! conn = dataSource.OpenConnectionAsync ct
                use tx = conn.BeginTransaction()

                // Groups with their search words, samples, users and history; the all-groups history ('') keeps what they added.
                let remove (hashes: string array) =
                    task {
                        if hashes.Length > 0 then
                            let! _ =
                                Sql.execute
                                    conn
                                    tx
                                    $"""DELETE FROM {table}_hours WHERE hash = ANY(@hashes);
DELETE FROM {table}_days WHERE hash = ANY(@hashes);
DELETE FROM {table}_samples WHERE hash = ANY(@hashes);
DELETE FROM {table}_users WHERE hash = ANY(@hashes);
DELETE FROM {table}_search WHERE hash = ANY(@hashes);
DELETE FROM {table} WHERE hash = ANY(@hashes)"""
                                    [ Sql.textArray "hashes" hashes ]
                                    ct

                            ()
                    }

                // The reverse of the list's order: least recently seen first, ties by hash, highest first.
                let! stale =
                    Sql.query
                        conn
                        tx
                        $"SELECT hash FROM {table} WHERE last_seen < @before ORDER BY last_seen, hash DESC LIMIT @batch FOR UPDATE"
                        [ Sql.time "before" request.SeenBefore; Sql.int "batch" request.Batch ]
                        (fun r -> r.GetString 0)
                        ct

                do! remove (stale.ToArray())

                let! count =
                    Sql.query conn tx $"SELECT count(*) FROM {table}" [] (fun r -> r.GetInt64 0) ct

                let room = int64 (request.Batch - stale.Count)

                let! over =
                    if count.[0] > request.MaxGroups && room > 0L then
                        Sql.query
                            conn
                            tx
                            $"SELECT hash FROM {table} ORDER BY last_seen, hash DESC LIMIT @n FOR UPDATE"
                            [ Sql.bigint "n" (min room (count.[0] - request.MaxGroups)) ]
                            (fun r -> r.GetString 0)
                            ct
                    else
                        Task.FromResult(List<string>())

                do! remove (over.ToArray())

                // Hourly buckets past their span, added to their day.
                let! hourRows =
                    Sql.query
                        conn
                        tx
                        $"DELETE FROM {table}_hours WHERE (hash, start) IN (SELECT hash, start FROM {table}_hours WHERE start < @before LIMIT @batch FOR UPDATE) RETURNING hash, start, count"
                        [ Sql.time "before" request.HoursBefore; Sql.int "batch" request.Batch ]
                        (fun r ->
                            r.GetString 0,
                            {
                                Start = Sql.readTime r 1
                                Count = r.GetInt64 2
                            })
                        ct

                do! addBuckets conn tx "days" (Retention.fold hourRows) ct

                // Daily buckets past theirs.
                let! days =
                    Sql.execute
                        conn
                        tx
                        $"DELETE FROM {table}_days WHERE (hash, start) IN (SELECT hash, start FROM {table}_days WHERE start < @before LIMIT @batch FOR UPDATE)"
                        [ Sql.time "before" request.DaysBefore; Sql.int "batch" request.Batch ]
                        ct

                do! tx.CommitAsync ct

                return
                    {
                        Groups = stale.Count + over.Count
                        Hours = hourRows.Count
                        Days = days
                    }
            }

    interface IDisposable with
        member _.Dispose() = dataSource.Dispose()
