using System.Diagnostics;
using System.Globalization;
using System.Text;
using ErrorMonitor.Core;
using ErrorMonitor.Web;
using ErrorMonitor.Web.Stores;

namespace ErrorMonitor.Benchmarks;

/// <summary>
/// Store figures for SQLite and PostgreSQL: occurrences stored a second when coalesced, new groups a second,
/// and list-page latency with many groups (page 1 against a deep page). Every figure is measured in several
/// rounds (reads: the figures take turns, round after round, over the same database; writes: the work split in
/// equal parts) and reported as the median of the rounds with their range. Prints a markdown table and saves it.
/// Usage: store [--groups N] [--rounds R] [--postgres CONNECTION] [--only SQLite|PostgreSQL] [--out FILE]
/// [--writes-only] (the two write figures, no reads: a quick check of a change to the writes) [--count-only] (the
/// new groups come without details, as a storm's groups past the queue's bound on details reach the store)
/// [--table NAME --existing M]: PostgreSQL only, a table an earlier run of this benchmark left (its first M groups,
/// M less than N): the new-group rounds add the last N − M groups to it, the reads are of all N.
/// </summary>
internal static class StoreFigures
{
    private static readonly DateTimeOffset Base = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static ErrorEvent Event(int group, int n) => new(
        Fingerprint.sha256Hex("group " + group.ToString(CultureInfo.InvariantCulture)),
        "shop.example.com", "/orders/" + group, "GET", "{\"args\":{}}", "System.InvalidOperationException",
        "failure of order code" + group.ToString(CultureInfo.InvariantCulture),
        "System.InvalidOperationException: failure\n   at Shop.Orders.Save()", Base.AddMilliseconds(n), "1.4.2", "Production", "");

    private static GroupDelta Delta(int group, int n, bool detailed = true) => new(Event(group, n), Base.AddMilliseconds(n), 1, detailed, History.one(Base.AddMilliseconds(n), 1), []);

    public static async Task<int> Run(string[] args)
    {
        string Arg(string name, string fallback)
        {
            var i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
        }

        var groups = int.Parse(Arg("--groups", "1000000"), CultureInfo.InvariantCulture);
        var postgres = Arg("--postgres", Environment.GetEnvironmentVariable("ERRORMONITOR_TEST_POSTGRES") ?? "");
        var output = Arg("--out", "");
        var rounds = int.Parse(Arg("--rounds", "5"), CultureInfo.InvariantCulture);
        var existing = int.Parse(Arg("--existing", "0"), CultureInfo.InvariantCulture);
        var writesOnly = args.Contains("--writes-only");
        var countOnly = args.Contains("--count-only");
        // Past a million groups a read by offset takes seconds (more on a PostgreSQL table larger than the memory).
        var large = groups > 1_000_000;
        var rows = new List<string[]>();
        var folder = Directory.CreateTempSubdirectory("errormonitor-bench").FullName;

        var stores = new List<(string Name, Func<IErrorStore> Make, double NewGoal)>
        {
            ("SQLite", () => new SqliteStore($"Data Source={Path.Combine(folder, "bench.db")}", "app_error"), 20_000),
        };
        var table = Arg("--table", "bench_" + Guid.NewGuid().ToString("N"));
        if (existing < 0 || existing >= groups || (existing > 0 && (string.IsNullOrEmpty(postgres) || Arg("--only", "") != "PostgreSQL")))
        {
            Console.Error.WriteLine("--existing M: 0 ≤ M < --groups, with --only PostgreSQL and --table (a table an earlier run left)");
            return 2;
        }

        if (!string.IsNullOrEmpty(postgres))
        {
            // Longer than Npgsql's default command timeout (30 s) for a large store's reads by offset.
            var connection = new Npgsql.NpgsqlConnectionStringBuilder(postgres);
            if (large)
            {
                connection.CommandTimeout = Math.Max(connection.CommandTimeout, 600);
            }

            stores.Add(("PostgreSQL", () => PostgresStore.Create(connection.ConnectionString, table), 10_000));
        }

        var only = Arg("--only", "");
        stores.RemoveAll(s => only.Length > 0 && !string.Equals(s.Name, only, StringComparison.OrdinalIgnoreCase));
        if (stores.Count == 0)
        {
            Console.Error.WriteLine($"--only {only}: no such store here (SQLite, or PostgreSQL with --postgres)");
            return 2;
        }

        foreach (var (name, make, newGoal) in stores)
        {
            var store = make();
            await store.InitializeAsync(CancellationToken.None);

            // Coalesced: 2,000,000 occurrences of 10 groups through the engine's queue and writer, in rounds.
            var engine = EngineFactory.create(new EngineSources
            {
                Values = new Dictionary<string, string> { ["APP_ERROR_SPILL_FILE"] = "none" },
                Store = store,
            });
            engine.Start();
            var occurrences = 2_000_000 / rounds;
            var events = Enumerable.Range(0, 10).Select(g => Event(g, g)).ToArray();
            var coalesced = new List<double>();
            for (var round = 0; round < rounds; round++)
            {
                var sw = Stopwatch.StartNew();
                for (var i = 0; i < occurrences; i++)
                {
                    engine.Queue.Enqueue(events[i % 10], []);
                }

                await engine.FlushAsync(CancellationToken.None);
                coalesced.Add(occurrences / sw.Elapsed.TotalSeconds);
            }

            await engine.StopAsync(TimeSpan.FromSeconds(5));
            rows.Add([$"{name}: occurrences stored a second, coalesced", Rate(coalesced), "≥ 200,000", Met(Median(coalesced) >= 200_000)]);

            // New groups: batches of 1,000 distinct groups until `groups` exist (each round a part of them).
            var fresh = new List<double>();
            var part = (groups - existing + rounds - 1) / rounds;
            for (var from = existing; from < groups; from += part)
            {
                var until = Math.Min(groups, from + part);
                var sw = Stopwatch.StartNew();
                for (var start = from; start < until; start += 1000)
                {
                    var batch = Enumerable.Range(start, Math.Min(1000, until - start)).Select(g => Delta(g + 100, g, !countOnly)).ToArray();
                    await store.UpsertAsync(batch, CancellationToken.None);
                }

                fresh.Add((until - from) / sw.Elapsed.TotalSeconds);
                Console.Error.WriteLine($"{name}: groups {from:N0} to {until:N0}: {fresh[^1]:N0} new groups a second");
            }

            rows.Add([$"{name}: new groups a second{(countOnly ? ", count-only" : "")} (each round the next {part:N0}{(existing > 0 ? $", after the {existing:N0} a table held" : "")})", Rate(fresh), $"≥ {newGoal:N0}", Met(Median(fresh) >= newGoal)]);
            if (writesOnly)
            {
                (store as IDisposable)?.Dispose();
                continue;
            }

            // Pages with `groups` groups, 20 a page (21 rows fetched): page 1, and the deep page as the Older
            // link reaches it (a cursor: the last row of the page before it), and as a bare ?page=N jump.
            var deepPage = Math.Max(2, groups / 20);
            var edge = (await store.ListAsync(ListQuery.All, Paging.offset(deepPage, 20) - 1, 1, CancellationToken.None))[0];
            var cursor = new PageCursor(edge.LastSeen.UtcTicks, edge.Hash, CursorDirection.Older);
            var reads = new Reads(rounds);
            reads.Add("page 1", () => store.ListAsync(ListQuery.All, 0, 21, CancellationToken.None));
            reads.Add("deep", () => store.ListFromAsync(ListQuery.All, cursor, 21, CancellationToken.None));
            // The offset read walks every row before the page: in a large store it is read twice a round, without
            // warm-up calls.
            var jumps = large ? 2 : 20;
            reads.Add("jump", () => store.ListAsync(ListQuery.All, Paging.offset(deepPage, 20), 21, CancellationToken.None), samples: jumps, warmUp: large ? 0 : 20);
            await reads.Run();
            var ratio = reads.P50("deep") / reads.P50("page 1");
            rows.Add([$"{name}: page 1 latency p50 / p99 (ms)", reads.Shown("page 1"), "p99 ≤ 20", Met(reads.P99("page 1") <= 20)]);
            rows.Add([$"{name}: page {deepPage:N0} by its Older link, p50 / p99 (ms)", reads.Shown("deep"), "p99 ≤ 20", Met(reads.P99("deep") <= 20)]);
            rows.Add([$"{name}: deep page / page 1 (p50)", $"{ratio:F2}", "≤ 1.5", Met(ratio <= 1.5)]);
            rows.Add([$"{name}: page {deepPage:N0} by a typed ?page=N (offset), p50 of {jumps} a round (ms)", $"{reads.P50("jump"):F2}", "none (no cursor: reads past every row before it)", "n/a"]);

            var bytes = await SizeOf(name, folder, postgres, table);
            rows.Add([$"{name}: database size per group, one small sample each (bytes){(existing > 0 ? " (a reused table: with the space its earlier writes left)" : "")}", F(bytes / (double)groups), "none", "n/a"]);

            // Triage: one group in ten resolved, one in fifty ignored (set through the store, as the pages do, for a
            // sample; the rest straight in the database, which is what a million status changes leave behind).
            await Triage(name, store, groups, folder, postgres, rounds, rows);
            (store as IDisposable)?.Dispose();
        }

        var table2 = new StringBuilder();
        table2.AppendLine(CultureInfo.InvariantCulture, $"Store figures, {groups:N0} groups, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, {rounds} rounds: each figure the median of the rounds [their range]{(writesOnly ? " (--writes-only: the write figures alone)" : "; a latency figure p50 / p99 of each round's 200 reads, the median p99's range in brackets")}");
        table2.AppendLine();
        table2.AppendLine("| figure | ErrorMonitor | target | met? |");
        table2.AppendLine("| --- | --- | --- | --- |");
        foreach (var r in rows)
        {
            table2.AppendLine("| " + string.Join(" | ", r) + " |");
        }

        Console.WriteLine(table2);
        if (output != "")
        {
            await File.WriteAllTextAsync(output, table2.ToString());
        }

        Directory.Delete(folder, true);
        return 0;
    }

    /// <summary>Status filters with each sort (page 1 and a deep keyset page), a word search, a status change.</summary>
    private static async Task Triage(string name, IErrorStore store, int groups, string folder, string postgres, int rounds, List<string[]> rows)
    {
        if (store is SqliteStore)
        {
            await using var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(folder, "bench.db")}");
            await c.OpenAsync();
            await using var cmd = c.CreateCommand();
            // Every tenth group resolved, every fiftieth ignored; the rest stay as written (0, unresolved): only the
            // rows that change are written (at 10,000,000 groups rewriting every row outlasted a 10-minute timeout).
            cmd.CommandText = "UPDATE app_error SET status = CASE WHEN id % 50 = 0 THEN 2 ELSE 1 END WHERE id % 10 = 0";
            cmd.CommandTimeout = 600;
            await cmd.ExecuteNonQueryAsync();
        }
        else
        {
            var table = ((PostgresStore)store).Table;
            await using var source = Npgsql.NpgsqlDataSource.Create(postgres);
            await using var cmd = source.CreateCommand(
                $"UPDATE {table} SET status = CASE WHEN abs(hashtext(hash)) % 50 = 0 THEN 2 ELSE 1 END WHERE abs(hashtext(hash)) % 10 = 0");
            cmd.CommandTimeout = 600;
            await cmd.ExecuteNonQueryAsync();
            // What autovacuum does in a running database: statistics for the planner (the search's selectivity).
            await using var analyze = source.CreateCommand($"ANALYZE {table}");
            analyze.CommandTimeout = 600;
            await analyze.ExecuteNonQueryAsync();
        }

        var reads = new Reads(rounds);
        var sorts = new[] { ListSort.LastSeen, ListSort.FirstSeen, ListSort.Count };
        var deepPage = Math.Max(2, groups / 10 / 20 / 2);
        foreach (var sort in sorts)
        {
            var query = new ListQuery(GroupStatus.Resolved, null, sort, null, null, null);
            var edge = (await store.ListAsync(query, Paging.offset(deepPage, 20) - 1, 1, CancellationToken.None))[0];
            var cursor = new PageCursor(global::ErrorMonitor.Core.Triage.sortKey(sort, edge), edge.Hash, CursorDirection.Older);
            reads.Add($"{sort} 1", () => store.ListAsync(query, 0, 21, CancellationToken.None));
            reads.Add($"{sort} deep", () => store.ListFromAsync(query, cursor, 21, CancellationToken.None));
        }

        var word = "code" + (groups / 3).ToString(CultureInfo.InvariantCulture)[..^1];
        reads.Add("rare", () => store.ListAsync(new ListQuery(null, word, ListSort.LastSeen, null, null, null), 0, 21, CancellationToken.None));
        reads.Add("common", () => store.ListAsync(new ListQuery(GroupStatus.Unresolved, "failure", ListSort.LastSeen, null, null, null), 0, 21, CancellationToken.None));
        var random = new Random(7);
        var flip = 0;
        reads.Add("change", async () =>
        {
            var hash = Fingerprint.sha256Hex("group " + (random.Next(groups) + 100).ToString(CultureInfo.InvariantCulture));
            var change = new StatusChange(flip++ % 2 == 0 ? GroupStatus.Resolved : GroupStatus.Unresolved, null, null);
            await store.SetStatusAsync(hash, change, CancellationToken.None);
            return [];
        });
        await reads.Run();

        foreach (var sort in sorts)
        {
            rows.Add([$"{name}: resolved groups by {sort}, page 1 / page {deepPage:N0}, p50 / p99 (ms)", reads.Shown($"{sort} 1") + "; " + reads.Shown($"{sort} deep"), "p99 ≤ 20", Met(reads.P99($"{sort} 1") <= 20 && reads.P99($"{sort} deep") <= 20)]);
        }

        rows.Add([$"{name}: search for a word prefix (\"{word}\", ~10 groups), p50 / p99 (ms)", reads.Shown("rare"), "p99 ≤ 50", Met(reads.P99("rare") <= 50)]);
        rows.Add([$"{name}: search for a word every group has (\"failure\"), p50 / p99 (ms)", reads.Shown("common"), "p99 ≤ 50", Met(reads.P99("common") <= 50)]);
        rows.Add([$"{name}: status change, p50 / p99 (ms)", reads.Shown("change"), "≤ 5", Met(reads.P99("change") <= 5)]);
    }

    /// <summary>The bytes the store's database takes: the SQLite file after a checkpoint, or every PostgreSQL
    /// relation of the store's tables with their indexes and TOAST.</summary>
    private static async Task<long> SizeOf(string name, string folder, string postgres, string table)
    {
        if (name == "SQLite")
        {
            var path = Path.Combine(folder, "bench.db");
            await using (var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path}"))
            {
                await c.OpenAsync();
                await using var cmd = c.CreateCommand();
                cmd.CommandText = "PRAGMA wal_checkpoint(TRUNCATE);";
                await cmd.ExecuteNonQueryAsync();
            }

            return new FileInfo(path).Length;
        }

        await using var source = Npgsql.NpgsqlDataSource.Create(postgres);
        await using var size = source.CreateCommand(
            "SELECT coalesce(sum(pg_total_relation_size(oid)), 0)::bigint FROM pg_class WHERE relkind = 'r' AND relname LIKE $1");
        size.Parameters.AddWithValue(table + "%");
        return (long)(await size.ExecuteScalarAsync())!;
    }

    private static string F(double v) => v.ToString("N0", CultureInfo.InvariantCulture);

    private static string Met(bool ok) => ok ? "yes" : "**no**";

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static string Rate(List<double> values) => $"{F(Median(values))} [{F(values.Min())}–{F(values.Max())}]";

    /// <summary>Reads measured side by side: each round runs every read in turn (its warm-up calls, 20 unless said, then its samples).</summary>
    private sealed class Reads(int rounds)
    {
        private readonly List<(string Name, Func<Task<IReadOnlyList<ErrorRecord>>> Read, int Samples, int WarmUp)> reads = [];
        private readonly Dictionary<string, List<(double P50, double P99)>> results = [];

        public void Add(string name, Func<Task<IReadOnlyList<ErrorRecord>>> read, int samples = 200, int warmUp = 20) => reads.Add((name, read, samples, warmUp));

        public async Task Run()
        {
            for (var round = 0; round < rounds; round++)
            {
                foreach (var (name, read, count, warmUp) in reads)
                {
                    var samples = new List<double>();
                    for (var i = 0; i < count + warmUp; i++)
                    {
                        var sw = Stopwatch.StartNew();
                        await read();
                        if (i >= warmUp)
                        {
                            samples.Add(sw.Elapsed.TotalMilliseconds);
                        }
                    }

                    samples.Sort();
                    var list = results.TryGetValue(name, out var l) ? l : results[name] = [];
                    list.Add((samples[samples.Count / 2], samples[Math.Min(samples.Count - 1, (int)(samples.Count * 0.99))]));
                }
            }
        }

        public double P50(string name) => Median(results[name].Select(r => r.P50).ToList());

        public double P99(string name) => Median(results[name].Select(r => r.P99).ToList());

        public string Shown(string name)
        {
            var p99s = results[name].Select(r => r.P99).ToList();
            return $"{P50(name):F2} / {P99(name):F2} [{p99s.Min():F2}–{p99s.Max():F2}]";
        }
    }
}
