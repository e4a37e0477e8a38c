namespace ErrorMonitor.Web.Stores

open System
open System.Collections.Generic
open System.Globalization
open System.Threading.Tasks
open Microsoft.Data.Sqlite
open ErrorMonitor
open ErrorMonitor.Core

/// The embedded store: one SQLite file, WAL mode, one-statement upserts, pages by an index on last_seen.
/// `table` must be a plain identifier (the configuration checks it).
/// A group keeps its first sample and the `recent` newest (APP_ERROR_SAMPLES_PER_GROUP).
type internal SqliteStore(connectionString: string, table: string, recent: int) =
    // Times are stored as fixed-width ISO 8601 UTC text: readable, and ordered as text as they are in time.
    let time (t: DateTimeOffset) =
        t.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffffffZ", CultureInfo.InvariantCulture)

    let parseTime (s: string) =
        DateTimeOffset.ParseExact(
            s,
            "yyyy-MM-ddTHH:mm:ss.fffffffZ",
            CultureInfo.InvariantCulture,
            DateTimeStyles.AssumeUniversal
        )

    // The group's summary row: everything but its request data and traceback, which live in its newest sample
    // ({table}_samples). Repeats of a group only touch this narrow row.
    let upsertSql =
        $"""INSERT INTO {table} (hash, host, path, method, exception_name, message, count, created_on, last_seen, hkey, first_release, last_release, environment, project)
VALUES ($hash, $host, $path, $method, $exception_name, $message, $count, $created_on, $last_seen, $hkey, $release, $release, $environment, $project)
ON CONFLICT (hash) DO UPDATE SET
  count = {table}.count + excluded.count,
  created_on = min({table}.created_on, excluded.created_on),
  previous_seen = {table}.last_seen,
  last_seen = max({table}.last_seen, excluded.last_seen),
  {Rows.triageSet
       (table + ".")
       "excluded.count"
       "excluded.created_on"
       "excluded.last_seen"
       "excluded.last_release"
       "excluded.environment"}"""

    // What a write reports of the row it wrote (read after it by the same unique key). A statement with RETURNING
    // (like one a trigger fires on) keeps a statement journal: a copy of every page it changes, so that it alone
    // can be undone; with 16-KB pages that copying took a fifth of a new group's time (perf). The writes here have
    // neither, and read the row back instead.
    let writtenSql =
        $"SELECT previous_seen, notified_at, ticket_at, status, previous_status, id FROM {table} WHERE hash = $hash"

    // A row's message is the newest occurrence's, kept apart from the upsert: the search's update trigger fires on
    // it (only when the message changed does this statement write, and pay for that trigger's statement journal).
    let messageSql =
        $"UPDATE {table} SET message = $message WHERE id = $group AND message IS NOT $message"

    // A new row waits for its search rows (`indexSearch`).
    let unindexedSql = $"INSERT INTO {table}_unindexed (id) VALUES ($group)"

    /// A sample of a group by its id: its first, and one whenever its details are refreshed; the newest is the
    /// group's details.
    let sampleSql =
        $"""INSERT INTO {table}_samples (group_id, occurred_at, message, request_data, traceback, release, environment)
VALUES ($group, $occurred_at, $message, $request_data, $traceback, $release, $environment)"""

    /// Removes the samples of a group (`$group`) `Samples.kept` leaves out: all but its first and the `$recent`
    /// newest.
    let trimSql =
        $"""DELETE FROM {table}_samples WHERE group_id = $group
AND id > (SELECT min(id) FROM {table}_samples WHERE group_id = $group)
AND id <= coalesce((SELECT id FROM {table}_samples WHERE group_id = $group ORDER BY id DESC LIMIT 1 OFFSET $recent), -1)"""

    /// Adds a batch's user keys (`$users`, a JSON array) to a group's while it holds fewer than the bound, and
    /// counts them on the group's row.
    let usersSql =
        $"""INSERT INTO {table}_users (group_id, user_key) SELECT $group, value FROM json_each($users)
WHERE (SELECT count(*) FROM {table}_users WHERE group_id = $group) < {Users.Bound} ON CONFLICT DO NOTHING;
UPDATE {table} SET users = (SELECT count(*) FROM {table}_users WHERE group_id = $group) WHERE id = $group"""

    /// A list's order here: ties by `Rows.hashKey` (the column the indexes end in), as the hash orders them.
    let order = Rows.orderBy "hkey"

    /// The record's columns, read from a summary row `t` and its newest sample `d`.
    let selected =
        Rows.columnsWithSample (fun c -> if c = "request_data" then "'{}'" else "''")

    /// The records of the summary rows a query picks (`picked` selects whole rows of {table}), in `order`.
    let withDetails (picked: string) (order: string) =
        $"SELECT {selected} FROM ({picked}) t LEFT JOIN {table}_samples d ON d.id = (SELECT max(id) FROM {table}_samples WHERE group_id = t.id) ORDER BY {order}"

    // A count-only batch touches the count and times and leaves the row's details as they are.
    let countSql =
        $"""UPDATE {table} SET
  count = count + $count,
  created_on = min(created_on, $created_on),
  previous_seen = last_seen,
  last_seen = max(last_seen, $last_seen),
  {Rows.triageSet "" "$count" "$created_on" "$last_seen" "$release" "$environment"}
WHERE hash = $hash"""

    // The database file, created owner-only (0600) before SQLite first opens it; None for in-memory databases.
    let dataFile =
        let b = SqliteConnectionStringBuilder(connectionString)

        if
            String.IsNullOrWhiteSpace b.DataSource
            || b.DataSource = ":memory:"
            || b.Mode = SqliteOpenMode.Memory
            || b.DataSource.StartsWith("file:", StringComparison.OrdinalIgnoreCase)
        then
            None
        else
            Some b.DataSource

    let mutable fileEnsured = false

    // Whether groups may have been written without their search rows (a file may hold some at the start).
    let mutable searchBehind = true

    /// Opens a pooled connection. `background`: the writer's, pruning's and other background work's (they run
    /// SQLite's automatic checkpoints, at its default 1,000 pages of WAL); a request's (reads, a status change, a
    /// delete) never checkpoints, so a user's click does not pay for copying the writer's pages into the file.
    let openWith (background: bool) =
        task {
            if not fileEnsured then
                dataFile |> Option.iter ErrorMonitor.Web.PrivateFile.ensure
                fileEnsured <- true

            let c = new SqliteConnection(connectionString)
            do! c.OpenAsync()

            // Core's search rule, for a search that matches many groups (checked row by row in the list's order).
            c.CreateFunction(
                "errormonitor_search",
                Func<string, string, string, string, string, bool>(fun t m p h q ->
                    Triage.matchesText (Triage.searchWords q) (String.Join(" ", t, m, p, h))),
                true
            )

            // The order key of a hash (`Rows.hashKey`), for the migration that adds it.
            c.CreateFunction("errormonitor_hkey", Func<string, int64>(Rows.hashKey), true)

            use pragma = c.CreateCommand()
            // WAL with synchronous=NORMAL: a commit is durable against a crash of the app; only a power cut can
            // lose the last commits (the spill file covers outages, not that). A page cache of 64 MB for a
            // request's connection (reads of large stores), 8 MB for background work (a storm's writes touch
            // many new pages once; the cache is memory the app keeps); the WAL is cut back to 64 MB after a
            // checkpoint (a storm's WAL does not stay large).
            pragma.CommandText <-
                "PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL; PRAGMA journal_size_limit = 67108864; PRAGMA temp_store = MEMORY; "
                + (if background then
                       "PRAGMA cache_size = -8192; PRAGMA wal_autocheckpoint = 1000;"
                   else
                       "PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 0;")

            let! _ = pragma.ExecuteNonQueryAsync()
            return c
        }

    let openConnection () = openWith false
    let openBackground () = openWith true

    /// After SQLite said the database is read-only (its file or folder was, for a while), pooled connections
    /// stay read-only even once it is writable again: drop them, so the next attempt opens new ones and the
    /// writer recovers without a restart (what waited in memory and the spill file is then written).
    let recoverFrom (ex: exn) =
        match ex with
        | :? SqliteException as e when e.SqliteErrorCode &&& 0xFF = 8 ->
            use c = new SqliteConnection(connectionString)
            SqliteConnection.ClearPool c
        | _ -> ()

    let read (r: Data.Common.DbDataReader) =
        Rows.record (fun r i -> parseTime (r.GetString i)) r


    /// Buckets a statement of `addBuckets` (about 30 characters each: its text stays far below the GC's large
    /// objects).
    let bucketsAStatement = 1000

    /// Adds buckets to `{table}_{kind}` (hours or days) of groups by their id (0: all groups), a statement each
    /// `bucketsAStatement` buckets (a statement a bucket costs more than the insert itself; a statement for a
    /// whole batch's thousands would make a text large enough for the GC's large-object heap).
    let addBuckets (c: SqliteConnection) (tx: SqliteTransaction) (kind: string) (rows: (int64 * Bucket) seq) =
        use cmd = c.CreateCommand()
        cmd.Transaction <- tx

        cmd.CommandText <-
            $"""INSERT INTO {table}_{kind} (group_id, start, count)
SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each($rows) WHERE true
ON CONFLICT (group_id, start) DO UPDATE SET count = count + excluded.count"""

        let text = cmd.Parameters.Add("$rows", SqliteType.Text)
        let json = Text.StringBuilder("[")
        let mutable pending = 0

        let flush () =
            if pending > 0 then
                text.Value <- json.Append(']').ToString()
                cmd.ExecuteNonQuery() |> ignore
                json.Clear().Append('[') |> ignore
                pending <- 0

        for id, b in rows do
            if pending > 0 then
                json.Append(',') |> ignore

            json
                .Append('[')
                .Append(id)
                .Append(',')
                .Append(b.Start.ToUnixTimeSeconds())
                .Append(',')
                .Append(b.Count)
                .Append(']')
            |> ignore

            pending <- pending + 1

            if pending >= bucketsAStatement then
                flush ()

        flush ()

    /// Each migration, in order; SQLite's user_version remembers how many ran.
    let migrations =
        [
            $"""CREATE TABLE IF NOT EXISTS {table} (
  hash TEXT NOT NULL PRIMARY KEY,
  host TEXT NOT NULL,
  path TEXT NOT NULL,
  method TEXT NOT NULL,
  request_data TEXT NOT NULL,
  exception_name TEXT NOT NULL,
  message TEXT NOT NULL,
  traceback TEXT NOT NULL,
  count INTEGER NOT NULL,
  created_on TEXT NOT NULL,
  last_seen TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ix_{table}_last_seen ON {table} (last_seen DESC, hash);"""
            $"""ALTER TABLE {table} ADD COLUMN previous_seen TEXT NULL;
ALTER TABLE {table} ADD COLUMN notified_at TEXT NULL;
ALTER TABLE {table} ADD COLUMN ticket_at TEXT NULL;"""
            // Request data and traceback move to a table of their own, so that counting a repeat rewrites a
            // short row, not a page-sized one.
            $"""CREATE TABLE {table}_v3 (
  id INTEGER PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  host TEXT NOT NULL,
  path TEXT NOT NULL,
  method TEXT NOT NULL,
  exception_name TEXT NOT NULL,
  message TEXT NOT NULL,
  count INTEGER NOT NULL,
  created_on TEXT NOT NULL,
  last_seen TEXT NOT NULL,
  previous_seen TEXT NULL,
  notified_at TEXT NULL,
  ticket_at TEXT NULL);
CREATE TABLE {table}_detail (
  id INTEGER PRIMARY KEY,
  request_data TEXT NOT NULL,
  traceback TEXT NOT NULL);
INSERT INTO {table}_v3 (hash, host, path, method, exception_name, message, count, created_on, last_seen,
  previous_seen, notified_at, ticket_at)
SELECT hash, host, path, method, exception_name, message, count, created_on, last_seen, previous_seen,
  notified_at, ticket_at FROM {table};
INSERT INTO {table}_detail (id, request_data, traceback)
SELECT n.id, o.request_data, o.traceback FROM {table} o JOIN {table}_v3 n ON n.hash = o.hash;
DROP TABLE {table};
ALTER TABLE {table}_v3 RENAME TO {table};
CREATE INDEX ix_{table}_last_seen ON {table} (last_seen DESC, hash);"""
            // How far each journal is stored, written in the same transaction as its batches.
            $"""CREATE TABLE IF NOT EXISTS {table}_journal (
  id TEXT NOT NULL PRIMARY KEY,
  segment INTEGER NOT NULL,
  updated_at TEXT NOT NULL);"""
            // Triage: status (0 unresolved, 1 resolved, 2 ignored), regressions, ignore limits; an index a list
            // order behind the status (a list of every status by first seen or count reads the table: fewer
            // indexes keep new groups cheap); the search (FTS5 over the summary rows, kept by triggers: a count
            // update touches none of its columns, so it costs the search nothing; only which rows hold a word is
            // kept, no positions or sizes: a search asks for word prefixes, nothing more).
            $"""ALTER TABLE {table} ADD COLUMN status INTEGER NOT NULL DEFAULT 0;
ALTER TABLE {table} ADD COLUMN previous_status INTEGER NULL;
ALTER TABLE {table} ADD COLUMN regressions INTEGER NOT NULL DEFAULT 0;
ALTER TABLE {table} ADD COLUMN last_regression TEXT NULL;
ALTER TABLE {table} ADD COLUMN ignore_until TEXT NULL;
ALTER TABLE {table} ADD COLUMN ignore_until_count INTEGER NULL;
CREATE INDEX ix_{table}_status_last_seen ON {table} (status, last_seen DESC, hash);
CREATE INDEX ix_{table}_status_created_on ON {table} (status, created_on DESC, hash);
CREATE INDEX ix_{table}_status_count ON {table} (status, count DESC, hash);
CREATE VIRTUAL TABLE {table}_search USING fts5(exception_name, message, path, host, content='{table}',
  content_rowid='id', tokenize='unicode61 remove_diacritics 0', detail='none', columnsize=0);
INSERT INTO {table}_search({table}_search) VALUES ('rebuild');
CREATE TRIGGER {table}_search_insert AFTER INSERT ON {table} BEGIN
  INSERT INTO {table}_search(rowid, exception_name, message, path, host)
  VALUES (new.id, new.exception_name, new.message, new.path, new.host);
END;
CREATE TRIGGER {table}_search_delete AFTER DELETE ON {table} BEGIN
  INSERT INTO {table}_search({table}_search, rowid, exception_name, message, path, host)
  VALUES ('delete', old.id, old.exception_name, old.message, old.path, old.host);
END;
CREATE TRIGGER {table}_search_update AFTER UPDATE OF exception_name, message, path, host ON {table}
WHEN old.exception_name IS NOT new.exception_name OR old.message IS NOT new.message OR old.path IS NOT new.path
  OR old.host IS NOT new.host BEGIN
  INSERT INTO {table}_search({table}_search, rowid, exception_name, message, path, host)
  VALUES ('delete', old.id, old.exception_name, old.message, old.path, old.host);
  INSERT INTO {table}_search(rowid, exception_name, message, path, host)
  VALUES (new.id, new.exception_name, new.message, new.path, new.host);
END;"""
            // History: occurrences an hour (and a day, for hours past the hourly span) of each group by its id,
            // and of all groups together under id 0; a bucket's start in Unix seconds.
            $"""CREATE TABLE {table}_hours (group_id INTEGER NOT NULL, start INTEGER NOT NULL, count INTEGER NOT NULL,
  PRIMARY KEY (group_id, start)) WITHOUT ROWID;
CREATE TABLE {table}_days (group_id INTEGER NOT NULL, start INTEGER NOT NULL, count INTEGER NOT NULL,
  PRIMARY KEY (group_id, start)) WITHOUT ROWID;"""
            // Samples: a group's first occurrence and its most recent ones, each with its own details; the newest
            // is the group's details (the details table's rows become each group's first sample, at its last
            // seen time: when they were taken is not known). Users: the keys of a group's distinct users, up to
            // the bound, and their count on the group's row.
            $"""CREATE TABLE {table}_samples (id INTEGER PRIMARY KEY, group_id INTEGER NOT NULL, occurred_at TEXT NOT NULL,
  message TEXT NOT NULL, request_data TEXT NOT NULL, traceback TEXT NOT NULL);
INSERT INTO {table}_samples (group_id, occurred_at, message, request_data, traceback)
SELECT d.id, t.last_seen, t.message, d.request_data, d.traceback FROM {table}_detail d JOIN {table} t ON t.id = d.id
ORDER BY d.id;
DROP TABLE {table}_detail;
CREATE INDEX ix_{table}_samples_group ON {table}_samples (group_id, id);
ALTER TABLE {table} ADD COLUMN users INTEGER NOT NULL DEFAULT 0;
CREATE TABLE {table}_users (group_id INTEGER NOT NULL, user_key TEXT NOT NULL, PRIMARY KEY (group_id, user_key)) WITHOUT ROWID;"""
            // The list indexes end in a number that orders as the hash does (`Rows.hashKey`), not in the hash: an
            // entry is about half the size, so a new group and a count update cost less.
            $"""ALTER TABLE {table} ADD COLUMN hkey INTEGER NOT NULL DEFAULT 0;
UPDATE {table} SET hkey = errormonitor_hkey(hash);
DROP INDEX ix_{table}_last_seen;
DROP INDEX ix_{table}_status_last_seen;
DROP INDEX ix_{table}_status_created_on;
DROP INDEX ix_{table}_status_count;
CREATE INDEX ix_{table}_last_seen ON {table} (last_seen DESC, hkey);
CREATE INDEX ix_{table}_status_last_seen ON {table} (status, last_seen DESC, hkey);
CREATE INDEX ix_{table}_status_created_on ON {table} (status, created_on DESC, hkey);
CREATE INDEX ix_{table}_status_count ON {table} (status, count DESC, hkey);"""
            // Release and environment (#18): a group's first and last release, its last environment and the release
            // it came back in; each sample's own.
            $"""ALTER TABLE {table} ADD COLUMN first_release TEXT NOT NULL DEFAULT '';
ALTER TABLE {table} ADD COLUMN last_release TEXT NOT NULL DEFAULT '';
ALTER TABLE {table} ADD COLUMN environment TEXT NOT NULL DEFAULT '';
ALTER TABLE {table} ADD COLUMN regression_release TEXT NOT NULL DEFAULT '';
ALTER TABLE {table}_samples ADD COLUMN release TEXT NOT NULL DEFAULT '';
ALTER TABLE {table}_samples ADD COLUMN environment TEXT NOT NULL DEFAULT '';"""
            // The Sentry project a group was reported under (#19; empty for the app's own).
            $"ALTER TABLE {table} ADD COLUMN project TEXT NOT NULL DEFAULT '';"
            // A new group's search rows are written later than its row (`indexSearch`): the insert trigger notes
            // its id; a delete or a change of an unindexed row has no search rows to take out (the step reads the
            // row as it is then).
            $"""CREATE TABLE {table}_unindexed (id INTEGER PRIMARY KEY);
DROP TRIGGER {table}_search_insert;
DROP TRIGGER {table}_search_delete;
DROP TRIGGER {table}_search_update;
CREATE TRIGGER {table}_search_insert AFTER INSERT ON {table} BEGIN
  INSERT INTO {table}_unindexed (id) VALUES (new.id);
END;
CREATE TRIGGER {table}_search_delete AFTER DELETE ON {table} BEGIN
  INSERT INTO {table}_search({table}_search, rowid, exception_name, message, path, host)
  SELECT 'delete', old.id, old.exception_name, old.message, old.path, old.host
  WHERE NOT EXISTS (SELECT 1 FROM {table}_unindexed WHERE id = old.id);
  DELETE FROM {table}_unindexed WHERE id = old.id;
END;
CREATE TRIGGER {table}_search_update AFTER UPDATE OF exception_name, message, path, host ON {table}
WHEN (old.exception_name IS NOT new.exception_name OR old.message IS NOT new.message OR old.path IS NOT new.path
  OR old.host IS NOT new.host) AND NOT EXISTS (SELECT 1 FROM {table}_unindexed WHERE id = old.id) BEGIN
  INSERT INTO {table}_search({table}_search, rowid, exception_name, message, path, host)
  VALUES ('delete', old.id, old.exception_name, old.message, old.path, old.host);
  INSERT INTO {table}_search(rowid, exception_name, message, path, host)
  VALUES (new.id, new.exception_name, new.message, new.path, new.host);
END;"""
            // The writer notes a new row's id itself (`unindexedSql`): an insert with a trigger keeps a statement
            // journal (see `writtenSql`).
            $"DROP TRIGGER {table}_search_insert;"
        ]

    /// Writes the search rows of up to `limit` groups written without them, the newest first (a batch's new groups
    /// are the newest: `limit` their number indexes them and no others); returns whether any are left.
    let indexSearch (c: SqliteConnection) (tx: SqliteTransaction) (limit: int) : bool =
        use cmd = c.CreateCommand()
        cmd.Transaction <- tx

        cmd.CommandText <-
            $"""INSERT INTO {table}_search(rowid, exception_name, message, path, host)
SELECT id, exception_name, message, path, host FROM {table}
WHERE id IN (SELECT id FROM {table}_unindexed ORDER BY id DESC LIMIT $limit);
DELETE FROM {table}_unindexed WHERE id IN (SELECT id FROM {table}_unindexed ORDER BY id DESC LIMIT $limit);
SELECT EXISTS (SELECT 1 FROM {table}_unindexed);"""

        cmd.Parameters.AddWithValue("$limit", limit) |> ignore
        Convert.ToInt64(cmd.ExecuteScalar()) = 1L

    let createSchema () =
        task {
            use! c = openBackground ()
            // A table of this name that is not ErrorMonitor's stops here, named, before anything in the file
            // changes (not at every write).
            use shape = c.CreateCommand()
            shape.CommandText <- "SELECT name FROM pragma_table_info($table)"
            shape.Parameters.AddWithValue("$table", table) |> ignore
            use! names = shape.ExecuteReaderAsync()
            let existing = ResizeArray<string>()

            while names.Read() do
                existing.Add(names.GetString 0)

            names.Close()
            Rows.checkShape table existing
            use wal = c.CreateCommand()
            // Incremental auto-vacuum (before the first table of a new file): pruning gives pages back, so the
            // file shrinks. A new file has 16-KB pages: a storm's new groups touch pages all over the hash and
            // list indexes, and SQLite writes each touched page to the WAL at every commit, a system call a page
            // (new groups were written ~15-19% faster than with the default 4 KB; 32 KB no faster, 64 KB slower).
            // A file that exists keeps its pages (in WAL mode their size cannot change).
            wal.CommandText <- "PRAGMA page_size = 16384; PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL;"
            let! _ = wal.ExecuteNonQueryAsync()
            use tx = c.BeginTransaction(Data.IsolationLevel.Serializable)
            use version = c.CreateCommand()
            version.Transaction <- tx
            version.CommandText <- "PRAGMA user_version;"
            let! v = version.ExecuteScalarAsync()
            let current = Convert.ToInt32 v


            for i, sql in List.indexed migrations do
                if i + 1 > current then
                    use cmd = c.CreateCommand()
                    cmd.Transaction <- tx
                    cmd.CommandText <- sql
                    let! _ = cmd.ExecuteNonQueryAsync()
                    ()

            if current < migrations.Length then
                use set = c.CreateCommand()
                set.Transaction <- tx
                set.CommandText <- sprintf "PRAGMA user_version = %d;" migrations.Length
                let! _ = set.ExecuteNonQueryAsync()
                ()

            do! tx.CommitAsync()

            // A file made before auto-vacuum: rebuilt once in the new mode (VACUUM: a pass over the file).
            use mode = c.CreateCommand()
            mode.CommandText <- "PRAGMA auto_vacuum;"
            let! m = mode.ExecuteScalarAsync()

            if Convert.ToInt32 m <> 2 then
                use vacuum = c.CreateCommand()
                vacuum.CommandText <- "PRAGMA auto_vacuum = INCREMENTAL; VACUUM;"
                vacuum.CommandTimeout <- 0
                let! _ = vacuum.ExecuteNonQueryAsync()
                ()
        }
        :> Task

    // The schema is created once per store, before its first use; a failed attempt is retried next time.
    let schema = Once(createSchema)
    let ensure () = schema.Run()

    /// The WHERE condition of a list query (its parameters added to `cmd`): the status, and the search through
    /// the FTS5 table (each word a prefix: `"word"*`).
    let selection (cmd: SqliteCommand) (query: ListQuery) (past: string) (ordered: string) (count: int) : string =
        let words = Triage.searchWords query.Search

        let status =
            [
                if query.Status.HasValue then
                    cmd.Parameters.AddWithValue("$status", Rows.status query.Status.Value) |> ignore
                    "status = $status"
                for condition, name, value in Rows.releaseFilters "$" query do
                    cmd.Parameters.AddWithValue("$" + name, value) |> ignore
                    condition
            ]
            |> function
                | [] -> "1 = 1"
                | conditions -> String.concat " AND " conditions

        [
            status
            if not words.IsEmpty then
                let q = String.Join(" AND ", words |> List.map (fun w -> "\"" + w + "\"*"))
                cmd.Parameters.AddWithValue("$q", q) |> ignore
                cmd.Parameters.AddWithValue("$words", query.Search) |> ignore

                // A search whose matches are dense among the first rows of the list (a common word) reads the
                // list's order and checks each row with Core's rule; any other reads its matches through the
                // index and sorts them (a rare word: few matches). The probe reads at most `Rows.DenseWindow`
                // rows and stops at a page's worth of matches.
                use probe = cmd.Connection.CreateCommand()

                for p in cmd.Parameters do
                    probe.Parameters.AddWithValue(p.ParameterName, p.Value) |> ignore

                probe.Parameters.AddWithValue("$page", max 1 count) |> ignore

                probe.CommandText <-
                    $"""SELECT count(*) FROM (SELECT 1 FROM (SELECT exception_name, message, path, host FROM {table}
WHERE {status} AND {past} ORDER BY {ordered} LIMIT {Rows.DenseWindow}) w
WHERE errormonitor_search(w.exception_name, w.message, w.path, w.host, $words) LIMIT $page)"""

                if Convert.ToInt32(probe.ExecuteScalar()) >= max 1 count then
                    "errormonitor_search(exception_name, message, path, host, $words)"
                else
                    // Groups written without their search rows yet (after a storm, until the writer's catch-up)
                    // are checked with Core's rule, so a search misses none of them.
                    $"""id IN (SELECT rowid FROM {table}_search WHERE {table}_search MATCH $q UNION ALL
SELECT u.id FROM {table}_unindexed u JOIN {table} w ON w.id = u.id
WHERE errormonitor_search(w.exception_name, w.message, w.path, w.host, $words))"""
        ]
        |> String.concat " AND "

    /// A store whose groups keep `Samples.DefaultRecent` recent samples.
    new(connectionString: string, table: string) = SqliteStore(connectionString, table, Samples.DefaultRecent)

    /// The connection string this store uses.
    member _.ConnectionString = connectionString

    /// Writes a batch; with a journal mark `(journal, segment, now)`, sets the mark in the same transaction, or
    /// writes nothing (None) when the mark already is at least `segment`.
    member private _.Upsert
        (
            batch: IReadOnlyList<GroupDelta>,
            mark: (string * int64 * DateTimeOffset) option,
            deferSearch: bool,
            ct: Threading.CancellationToken
        ) : Task<IReadOnlyList<GroupWritten> option> =
        task {
            do! ensure ()

            if batch.Count > 0 then
                use! c = openBackground ()
                use tx = c.BeginTransaction()

                let storedBefore =
                    match mark with
                    | Some(journal, segment, _) ->
                        use m = c.CreateCommand()
                        m.Transaction <- tx
                        m.CommandText <- $"SELECT segment FROM {table}_journal WHERE id = $id"
                        m.Parameters.AddWithValue("$id", journal) |> ignore

                        match m.ExecuteScalar() with
                        | :? int64 as stored -> stored >= segment
                        | _ -> false
                    | None -> false

                if storedBefore then
                    return None
                else
                    use cmd = c.CreateCommand()
                    cmd.Transaction <- tx
                    cmd.CommandText <- upsertSql

                    let p (c: SqliteCommand) name =
                        c.Parameters.Add(SqliteParameter(name, null))

                    let ps =
                        [|
                            p cmd "$hash"
                            p cmd "$host"
                            p cmd "$path"
                            p cmd "$method"
                            p cmd "$exception_name"
                            p cmd "$message"
                            p cmd "$count"
                            p cmd "$created_on"
                            p cmd "$last_seen"
                            p cmd "$hkey"
                            p cmd "$release"
                            p cmd "$environment"
                            p cmd "$project"
                        |]

                    use sample = c.CreateCommand()
                    sample.Transaction <- tx
                    sample.CommandText <- sampleSql

                    let ss =
                        [|
                            p sample "$group"
                            p sample "$occurred_at"
                            p sample "$message"
                            p sample "$request_data"
                            p sample "$traceback"
                            p sample "$release"
                            p sample "$environment"
                        |]

                    use trim = c.CreateCommand()
                    trim.Transaction <- tx
                    trim.CommandText <- trimSql
                    let ts = p trim "$group"
                    trim.Parameters.AddWithValue("$recent", recent) |> ignore

                    use users = c.CreateCommand()
                    users.Transaction <- tx
                    users.CommandText <- usersSql
                    let us = [| p users "$group"; p users "$users" |]

                    use counter = c.CreateCommand()
                    counter.Transaction <- tx
                    counter.CommandText <- countSql

                    let cs =
                        [|
                            p counter "$hash"
                            p counter "$count"
                            p counter "$created_on"
                            p counter "$last_seen"
                            p counter "$release"
                            p counter "$environment"
                        |]

                    use back = c.CreateCommand()
                    back.Transaction <- tx
                    back.CommandText <- writtenSql
                    let wh = p back "$hash"

                    use message = c.CreateCommand()
                    message.Transaction <- tx
                    message.CommandText <- messageSql
                    let ms = [| p message "$group"; p message "$message" |]

                    use unindexed = c.CreateCommand()
                    unindexed.Transaction <- tx
                    unindexed.CommandText <- unindexedSql
                    let ui = p unindexed "$group"

                    // The batch's hourly buckets, written together after its groups.
                    let hours = ResizeArray<int64 * Bucket>()

                    let addHours (group: int64) (buckets: Bucket seq) =
                        for b in buckets do
                            hours.Add(group, b)

                    // What every written group gains besides its row: its hours, its users.
                    let gained (id: int64) (d: GroupDelta) =
                        addHours id d.Hours

                        if d.Users.Length > 0 then
                            us.[0].Value <- id
                            us.[1].Value <- System.Text.Json.JsonSerializer.Serialize d.Users
                            users.ExecuteNonQuery() |> ignore

                    let written = ResizeArray<GroupWritten>()

                    let nullableTime (r: SqliteDataReader) (i: int) =
                        if r.IsDBNull i then
                            Nullable()
                        else
                            Nullable(parseTime (r.GetString i))

                    // The row's previous-seen, notified and ticket times, when the statement touched a row.
                    // SQLite does its work synchronously whatever the API: the async calls only add cost.
                    let run (command: SqliteCommand) (hash: string) : int64 voption =
                        if command.ExecuteNonQuery() = 0 then
                            ValueNone
                        else
                            wh.Value <- hash
                            use r = back.ExecuteReader()

                            if r.Read() then
                                let status, regressed = Rows.triageWritten (r.GetValue 3) (r.GetValue 4)

                                written.Add
                                    {
                                        Hash = hash
                                        PreviousSeen = nullableTime r 0
                                        LastNotified = nullableTime r 1
                                        TicketRaised = nullableTime r 2
                                        Status = status
                                        Regressed = regressed
                                    }

                                ValueSome(r.GetInt64 5)
                            else
                                ValueNone

                    // A count-only delta updates its group's count when the group is stored, else inserts it; either
                    // statement first gives the same row. Which goes first follows the last count-only delta's group:
                    // a storm's drain is all new groups (the update would find no row each time), a batch of repeats
                    // all known ones (the insert would meet its conflict each time).
                    let mutable countFirst = true

                    // Writes `d` with the upsert (its group stored or not), and what comes with it.
                    let insert (d: GroupDelta) =
                        let e = d.Latest
                        ps.[0].Value <- e.Hash
                        ps.[1].Value <- e.Host
                        ps.[2].Value <- e.Path
                        ps.[3].Value <- e.Method
                        ps.[4].Value <- e.ExceptionName
                        ps.[5].Value <- e.Message
                        ps.[6].Value <- d.Count
                        ps.[7].Value <- time d.FirstAt
                        ps.[8].Value <- time e.OccurredAt
                        ps.[9].Value <- Rows.hashKey e.Hash
                        ps.[10].Value <- e.Release
                        ps.[11].Value <- e.Environment
                        ps.[12].Value <- e.Project

                        match run cmd e.Hash with
                        | ValueSome id ->
                            // A new row waits for its search rows; a known one takes the newest message (not from a
                            // count-only delta: it leaves the row's details as they are).
                            let known = written.[written.Count - 1].PreviousSeen.HasValue

                            if not d.Detailed then
                                countFirst <- known

                            if known && d.Detailed then
                                ms.[0].Value <- id
                                ms.[1].Value <- e.Message
                                message.ExecuteNonQuery() |> ignore
                            elif not known then
                                ui.Value <- id
                                unindexed.ExecuteNonQuery() |> ignore

                            // A sample of the details (none for a count-only batch whose group was missing: a
                            // later occurrence brings them); a group that had samples drops those past the
                            // bound.
                            if d.Detailed then
                                ss.[0].Value <- id
                                ss.[1].Value <- time e.OccurredAt
                                ss.[2].Value <- e.Message
                                ss.[3].Value <- e.RequestData
                                ss.[4].Value <- e.Traceback
                                ss.[5].Value <- e.Release
                                ss.[6].Value <- e.Environment
                                sample.ExecuteNonQuery() |> ignore

                                if known then
                                    ts.Value <- id
                                    trim.ExecuteNonQuery() |> ignore

                            gained id d
                        | ValueNone -> ()

                    // In hash order: the inserts walk the hash index from one end to the other instead of jumping
                    // around it (a large batch of new groups touches each index page once).
                    for d in
                        batch
                        |> Seq.sortWith (fun a b -> String.CompareOrdinal(a.Latest.Hash, b.Latest.Hash)) do
                        let e = d.Latest

                        let counted =
                            if d.Detailed || not countFirst then
                                ValueNone
                            else
                                cs.[0].Value <- e.Hash
                                cs.[1].Value <- d.Count
                                cs.[2].Value <- time d.FirstAt
                                cs.[3].Value <- time e.OccurredAt
                                cs.[4].Value <- e.Release
                                cs.[5].Value <- e.Environment
                                run counter e.Hash

                        match counted with
                        | ValueSome id -> gained id d
                        | ValueNone -> insert d

                    // All groups together (id 0).
                    addHours 0L (History.sum (batch |> Seq.collect (fun d -> d.Hours)))
                    addBuckets c tx "hours" hours

                    // The search rows of the batch's new groups (the rows without a previous time), unless the
                    // writer defers them (groups written without theirs before wait for the writer's catch-up).
                    let behind =
                        if deferSearch then
                            true
                        else
                            indexSearch c tx (written |> Seq.sumBy (fun w -> if w.PreviousSeen.HasValue then 0 else 1))

                    match mark with
                    | Some(journal, segment, now) ->
                        use m = c.CreateCommand()
                        m.Transaction <- tx

                        m.CommandText <-
                            $"INSERT INTO {table}_journal (id, segment, updated_at) VALUES ($id, $segment, $now) ON CONFLICT (id) DO UPDATE SET segment = excluded.segment, updated_at = excluded.updated_at"

                        m.Parameters.AddWithValue("$id", journal) |> ignore
                        m.Parameters.AddWithValue("$segment", segment) |> ignore
                        m.Parameters.AddWithValue("$now", time now) |> ignore
                        m.ExecuteNonQuery() |> ignore
                    | None -> ()

                    do! tx.CommitAsync ct
                    searchBehind <- behind
                    return Some(written :> IReadOnlyList<GroupWritten>)
            else
                return Some(Array.empty<GroupWritten> :> IReadOnlyList<GroupWritten>)
        }

    /// Runs a write, dropping read-only pooled connections when SQLite says the database is read-only.
    member private _.Recovering(write: unit -> Task<'T>) : Task<'T> =
        task {
            try
                return! write ()
            with ex ->
                recoverFrom ex
                Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(ex).Throw()
                return Unchecked.defaultof<'T>
        }

    interface IJournalMarks with
        member _.ReadMarkAsync(journal, forgetBefore, ct) =
            task {
                do! ensure ()
                use! c = openBackground ()
                use forget = c.CreateCommand()
                forget.CommandText <- $"DELETE FROM {table}_journal WHERE updated_at < $before AND id <> $id"
                forget.Parameters.AddWithValue("$before", time forgetBefore) |> ignore
                forget.Parameters.AddWithValue("$id", journal) |> ignore
                let! _ = forget.ExecuteNonQueryAsync ct
                use m = c.CreateCommand()
                m.CommandText <- $"SELECT segment FROM {table}_journal WHERE id = $id"
                m.Parameters.AddWithValue("$id", journal) |> ignore
                let! v = m.ExecuteScalarAsync ct

                return
                    match v with
                    | :? int64 as stored -> stored
                    | _ -> 0L
            }

        member this.UpsertMarkedAsync(batch, journal, segment, now, deferSearch, ct) =
            this.Recovering(fun () -> this.Upsert(batch, Some(journal, segment, now), deferSearch, ct))

    interface ISearchBacklog with
        member _.SearchBehind = searchBehind

        member this.IndexSearchStepAsync ct =
            this.Recovering(fun () ->
                task {
                    do! ensure ()
                    use! c = openBackground ()
                    use tx = c.BeginTransaction()
                    let behind = indexSearch c tx Limits.searchStep
                    do! tx.CommitAsync ct
                    searchBehind <- behind
                })

    interface IErrorStore with
        member _.InitializeAsync _ = ensure ()

        member this.UpsertAsync(batch, ct) =
            task {
                let! written = this.Recovering(fun () -> this.Upsert(batch, None, false, ct))

                return
                    written
                    |> Option.defaultValue (Array.empty<GroupWritten> :> IReadOnlyList<GroupWritten>)
            }

        member _.TryClaimAsync(hash, kind, expected, now, ct) =
            task {
                do! ensure ()
                use! c = openBackground ()
                use cmd = c.CreateCommand()

                let column =
                    if kind = ClaimKind.Ticket then
                        "ticket_at"
                    else
                        "notified_at"

                cmd.CommandText <- $"UPDATE {table} SET {column} = $now WHERE hash = $hash AND {column} IS $expected"
                cmd.Parameters.AddWithValue("$now", time now) |> ignore

                cmd.Parameters.AddWithValue("$hash", (Rows.key hash)) |> ignore

                cmd.Parameters.AddWithValue(
                    "$expected",
                    (if expected.HasValue then
                         box (time expected.Value)
                     else
                         box DBNull.Value)
                )
                |> ignore

                let! n = cmd.ExecuteNonQueryAsync ct
                return n = 1
            }

        member _.GetAsync(hash, ct) =
            task {
                do! ensure ()
                use! c = openConnection ()
                use cmd = c.CreateCommand()
                cmd.CommandText <- withDetails $"SELECT * FROM {table} WHERE hash = $hash" "t.hash"

                cmd.Parameters.AddWithValue("$hash", (Rows.key hash)) |> ignore

                use! r = cmd.ExecuteReaderAsync ct
                let! found = r.ReadAsync ct
                return if found then read r else Unchecked.defaultof<ErrorRecord>
            }

        member _.ListAsync(query, offset, count, ct) =
            task {
                do! ensure ()
                use! c = openConnection ()
                use cmd = c.CreateCommand()
                cmd.Parameters.AddWithValue("$count", max 0 count) |> ignore
                cmd.Parameters.AddWithValue("$offset", max 0L offset) |> ignore

                let where =
                    selection
                        cmd
                        query
                        "1 = 1"
                        (order query.Sort CursorDirection.Older String.Empty)
                        (count + int (min offset 100000L))

                cmd.CommandText <-
                    withDetails
                        $"SELECT * FROM {table} WHERE {where} ORDER BY {order query.Sort CursorDirection.Older String.Empty} LIMIT $count OFFSET $offset"
                        (order query.Sort CursorDirection.Older "t.")

                use! r = cmd.ExecuteReaderAsync ct
                let! acc = Rows.readAll read r ct

                return acc :> IReadOnlyList<ErrorRecord>
            }

        member _.ListFromAsync(query, cursor, count, ct) =
            task {
                do! ensure ()
                use! c = openConnection ()
                use cmd = c.CreateCommand()

                let d = cursor.Direction

                cmd.Parameters.AddWithValue(
                    "$key",
                    (if query.Sort = ListSort.Count then
                         box cursor.Key
                     else
                         box (time (Paging.timeOf cursor.Key)))
                )
                |> ignore

                cmd.Parameters.AddWithValue("$hkey", Rows.hashKey cursor.Hash) |> ignore
                cmd.Parameters.AddWithValue("$count", max 0 count) |> ignore
                let past = Rows.pastCursorBy "hkey" query.Sort d "$"
                let ordered = order query.Sort d ""
                let where = selection cmd query past ordered count

                let picked =
                    if query.Sort = ListSort.Count then
                        // Two exact range reads (the rows tied with the cursor's count past its hash, then the rows
                        // past its count), so a count many groups share (1) is not scanned from its start. Times are
                        // all but unique: one range read is quicker for them.
                        let tied, beyond = Rows.pastCursorPartsBy "hkey" query.Sort d "$"

                        $"""SELECT * FROM (SELECT * FROM (SELECT * FROM {table} WHERE {where} AND {tied} ORDER BY {ordered} LIMIT $count)
UNION ALL SELECT * FROM (SELECT * FROM {table} WHERE {where} AND {beyond} ORDER BY {ordered} LIMIT $count))
ORDER BY {ordered} LIMIT $count"""
                    else
                        $"SELECT * FROM {table} WHERE {where} AND {past} ORDER BY {ordered} LIMIT $count"

                cmd.CommandText <- withDetails picked (order query.Sort d "t.")

                use! r = cmd.ExecuteReaderAsync ct
                let! acc = Rows.readAll read r ct

                if cursor.Direction = CursorDirection.Newer then
                    acc.Reverse()

                return acc :> IReadOnlyList<ErrorRecord>
            }

        member _.SetStatusAsync(hash, change, ct) =
            task {
                do! ensure ()
                use! c = openConnection ()
                use cmd = c.CreateCommand()

                cmd.CommandText <-
                    $"UPDATE {table} SET status = $status, ignore_until = $until, ignore_until_count = CASE WHEN $n IS NULL THEN NULL ELSE count + $n END WHERE hash = $hash"

                cmd.Parameters.AddWithValue("$status", Rows.status change.Status) |> ignore

                cmd.Parameters.AddWithValue(
                    "$until",
                    (if change.Status = GroupStatus.Ignored && change.IgnoreUntil.HasValue then
                         box (time change.IgnoreUntil.Value)
                     else
                         box DBNull.Value)
                )
                |> ignore

                cmd.Parameters.AddWithValue(
                    "$n",
                    (if change.Status = GroupStatus.Ignored && change.IgnoreCount.HasValue then
                         box change.IgnoreCount.Value
                     else
                         box DBNull.Value)
                )
                |> ignore

                cmd.Parameters.AddWithValue("$hash", Rows.key hash) |> ignore
                let! n = cmd.ExecuteNonQueryAsync ct

                if n = 0 then
                    return Unchecked.defaultof<ErrorRecord>
                else
                    use get = c.CreateCommand()
                    get.CommandText <- withDetails $"SELECT * FROM {table} WHERE hash = $hash" "t.hash"
                    get.Parameters.AddWithValue("$hash", Rows.key hash) |> ignore
                    use! r = get.ExecuteReaderAsync ct
                    let! found = r.ReadAsync ct
                    return if found then read r else Unchecked.defaultof<ErrorRecord>
            }

        member _.ExpireIgnoresAsync(now, ct) =
            task {
                do! ensure ()
                use! c = openConnection ()
                use cmd = c.CreateCommand()

                cmd.CommandText <-
                    $"UPDATE {table} SET status = 0, ignore_until = NULL, ignore_until_count = NULL WHERE status = 2 AND ignore_until <= $now"

                cmd.Parameters.AddWithValue("$now", time now) |> ignore
                let! _ = cmd.ExecuteNonQueryAsync ct
                ()
            }

        member _.SamplesAsync(hash, ct) =
            task {
                do! ensure ()
                use! c = openConnection ()
                use cmd = c.CreateCommand()

                cmd.CommandText <-
                    $"SELECT s.id, s.occurred_at, s.message, s.request_data, s.traceback, s.release, s.environment FROM {table}_samples s WHERE s.group_id = (SELECT id FROM {table} WHERE hash = $hash) ORDER BY s.id DESC"

                cmd.Parameters.AddWithValue("$hash", Rows.key hash) |> ignore
                use r = cmd.ExecuteReader()
                let found = ResizeArray<Sample>()

                while r.Read() do
                    found.Add
                        {
                            Id = r.GetInt64 0
                            OccurredAt = parseTime (r.GetString 1)
                            Message = r.GetString 2
                            RequestData = r.GetString 3
                            Traceback = r.GetString 4
                            Release = r.GetString 5
                            Environment = r.GetString 6
                        }

                return found :> IReadOnlyList<Sample>
            }

        member _.DeleteAsync(hash, ct) =
            task {
                do! ensure ()
                use! c = openConnection ()
                use tx = c.BeginTransaction()
                use cmd = c.CreateCommand()
                cmd.Transaction <- tx

                // Its history leaves the all-groups history too.
                cmd.CommandText <-
                    $"""UPDATE {table}_hours AS t SET count = t.count - g.count
FROM (SELECT h.start, h.count FROM {table}_hours h JOIN {table} e ON e.id = h.group_id WHERE e.hash = $hash) g
WHERE t.group_id = 0 AND t.start = g.start;
UPDATE {table}_days AS t SET count = t.count - g.count
FROM (SELECT h.start, h.count FROM {table}_days h JOIN {table} e ON e.id = h.group_id WHERE e.hash = $hash) g
WHERE t.group_id = 0 AND t.start = g.start;
DELETE FROM {table}_hours WHERE group_id IN (SELECT id FROM {table} WHERE hash = $hash);
DELETE FROM {table}_days WHERE group_id IN (SELECT id FROM {table} WHERE hash = $hash);
DELETE FROM {table}_samples WHERE group_id IN (SELECT id FROM {table} WHERE hash = $hash);
DELETE FROM {table}_users WHERE group_id IN (SELECT id FROM {table} WHERE hash = $hash);
DELETE FROM {table} WHERE hash = $hash"""

                cmd.Parameters.AddWithValue("$hash", (Rows.key hash)) |> ignore

                use exists = c.CreateCommand()
                exists.Transaction <- tx
                exists.CommandText <- $"SELECT count(*) FROM {table} WHERE hash = $hash"
                exists.Parameters.AddWithValue("$hash", (Rows.key hash)) |> ignore
                let! found = exists.ExecuteScalarAsync ct
                let! _ = cmd.ExecuteNonQueryAsync ct
                do! tx.CommitAsync ct
                return (found :?> int64) > 0L
            }

        member _.HistoryAsync(hash, from, ct) =
            task {
                do! ensure ()
                use! c = openConnection ()

                let read (kind: string) =
                    use cmd = c.CreateCommand()

                    let group =
                        if isNull hash then
                            "0"
                        else
                            $"(SELECT id FROM {table} WHERE hash = $hash)"

                    cmd.CommandText <-
                        $"SELECT start, count FROM {table}_{kind} WHERE group_id = {group} AND start >= $from ORDER BY start"

                    cmd.Parameters.AddWithValue("$hash", Rows.key hash) |> ignore

                    cmd.Parameters.AddWithValue("$from", from.ToUnixTimeSeconds()) |> ignore
                    use r = cmd.ExecuteReader()

                    [|
                        while r.Read() do
                            {
                                Start = DateTimeOffset.FromUnixTimeSeconds(r.GetInt64 0)
                                Count = r.GetInt64 1
                            }
                    |]

                return
                    {
                        Hours = read "hours"
                        Days = read "days"
                    }
            }

        member _.HoursAsync(hashes, from, ct) =
            task {
                do! ensure ()
                let found = Dictionary<string, Bucket[]>()

                if hashes.Count > 0 then
                    use! c = openConnection ()
                    use cmd = c.CreateCommand()

                    let names = hashes |> Seq.mapi (fun i _ -> sprintf "$h%d" i) |> List.ofSeq

                    cmd.CommandText <-
                        $"""SELECT e.hash, h.start, h.count FROM {table} e JOIN {table}_hours h ON h.group_id = e.id
WHERE e.hash IN ({String.Join(", ", names)}) AND h.start >= $from ORDER BY e.hash, h.start"""

                    hashes
                    |> Seq.iteri (fun i h -> cmd.Parameters.AddWithValue(names.[i], Rows.key h) |> ignore)

                    cmd.Parameters.AddWithValue("$from", from.ToUnixTimeSeconds()) |> ignore
                    use r = cmd.ExecuteReader()
                    let rows = ResizeArray<string * Bucket>()

                    while r.Read() do
                        rows.Add(
                            r.GetString 0,
                            {
                                Start = DateTimeOffset.FromUnixTimeSeconds(r.GetInt64 1)
                                Count = r.GetInt64 2
                            }
                        )

                    for hash, buckets in rows |> Seq.groupBy fst do
                        found.[hash] <- buckets |> Seq.map snd |> Array.ofSeq

                return found :> IReadOnlyDictionary<_, _>
            }

        member this.PruneAsync(request, ct) =
            this.Recovering(fun () ->
                task {
                    do! ensure ()
                    use! c = openBackground ()
                    use tx = c.BeginTransaction()

                    let command (sql: string) =
                        let cmd = c.CreateCommand()
                        cmd.Transaction <- tx
                        cmd.CommandText <- sql
                        cmd

                    let ids (sql: string) (bind: SqliteCommand -> unit) =
                        use cmd = command sql
                        bind cmd
                        use r = cmd.ExecuteReader()

                        [
                            while r.Read() do
                                r.GetInt64 0
                        ]

                    // Groups with their samples, users and history (the search rows go with them, by trigger); the
                    // all-groups history (id 0) keeps what they added.
                    let remove (groups: int64 list) =
                        if not groups.IsEmpty then
                            use cmd =
                                command
                                    $"""DELETE FROM {table}_hours WHERE group_id IN (SELECT value FROM json_each($ids));
DELETE FROM {table}_days WHERE group_id IN (SELECT value FROM json_each($ids));
DELETE FROM {table}_samples WHERE group_id IN (SELECT value FROM json_each($ids));
DELETE FROM {table}_users WHERE group_id IN (SELECT value FROM json_each($ids));
DELETE FROM {table} WHERE id IN (SELECT value FROM json_each($ids))"""

                            cmd.Parameters.AddWithValue("$ids", "[" + String.Join(",", groups) + "]")
                            |> ignore

                            cmd.ExecuteNonQuery() |> ignore

                    // The reverse of the list's order: least recently seen first, ties by hash, highest first.
                    let stale =
                        ids
                            $"SELECT id FROM {table} WHERE last_seen < $before ORDER BY last_seen, hkey DESC LIMIT $batch"
                            (fun cmd ->
                                cmd.Parameters.AddWithValue("$before", time request.SeenBefore) |> ignore
                                cmd.Parameters.AddWithValue("$batch", request.Batch) |> ignore)

                    remove stale

                    let count =
                        use cmd = command $"SELECT count(*) FROM {table}"
                        cmd.ExecuteScalar() :?> int64

                    let over =
                        let room = int64 (request.Batch - stale.Length)

                        if count > request.MaxGroups && room > 0L then
                            ids $"SELECT id FROM {table} ORDER BY last_seen, hkey DESC LIMIT $n" (fun cmd ->
                                cmd.Parameters.AddWithValue("$n", min room (count - request.MaxGroups))
                                |> ignore)
                        else
                            []

                    remove over

                    // Hourly buckets past their span, added to their day.
                    let hourRows =
                        use cmd =
                            command
                                $"SELECT group_id, start, count FROM {table}_hours WHERE start < $before LIMIT $batch"

                        cmd.Parameters.AddWithValue("$before", request.HoursBefore.ToUnixTimeSeconds())
                        |> ignore

                        cmd.Parameters.AddWithValue("$batch", request.Batch) |> ignore
                        use r = cmd.ExecuteReader()

                        [
                            while r.Read() do
                                r.GetInt64 0,
                                {
                                    Start = DateTimeOffset.FromUnixTimeSeconds(r.GetInt64 1)
                                    Count = r.GetInt64 2
                                }
                        ]

                    if not hourRows.IsEmpty then
                        use drop =
                            command $"DELETE FROM {table}_hours WHERE group_id = $group AND start = $start"

                        let dg = drop.Parameters.Add(SqliteParameter("$group", null))
                        let ds = drop.Parameters.Add(SqliteParameter("$start", null))

                        for group, b in hourRows do
                            dg.Value <- group
                            ds.Value <- b.Start.ToUnixTimeSeconds()
                            drop.ExecuteNonQuery() |> ignore

                        addBuckets c tx "days" (Retention.fold hourRows)

                    // Daily buckets past theirs.
                    let days =
                        use cmd =
                            command
                                $"DELETE FROM {table}_days WHERE (group_id, start) IN (SELECT group_id, start FROM {table}_days WHERE start < $before LIMIT $batch)"

                        cmd.Parameters.AddWithValue("$before", request.DaysBefore.ToUnixTimeSeconds())
                        |> ignore

                        cmd.Parameters.AddWithValue("$batch", request.Batch) |> ignore
                        cmd.ExecuteNonQuery()

                    do! tx.CommitAsync ct

                    let result =
                        {
                            Groups = stale.Length + over.Length
                            Hours = hourRows.Length
                            Days = days
                        }

                    // Free pages back to the file system.
                    if Retention.did result then
                        use vacuum = c.CreateCommand()
                        vacuum.CommandText <- "PRAGMA incremental_vacuum;"
                        vacuum.ExecuteNonQuery() |> ignore

                    return result
                })
