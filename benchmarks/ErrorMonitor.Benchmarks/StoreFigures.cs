using System.Diagnostics;
using System.Globalization;
using System.Text;
using ErrorMonitor.Core;
using ErrorMonitor.Web;
using ErrorMonitor.Web.Stores;

namespace ErrorMonitor.Benchmarks;

/// <summary>
/// Store figures for SQLite and PostgreSQL: occurrences stored a second when coalesced, new groups a second,
/// and list-page latency with many groups (page 1 against a deep page). Prints a markdown table and saves it.
/// Usage: store [--groups N] [--postgres CONNECTION] [--out FILE]
/// </summary>
internal static class StoreFigures
{
    private static readonly DateTimeOffset Base = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static ErrorEvent Event(int group, int n) => new(
        Fingerprint.sha256Hex("group " + group.ToString(CultureInfo.InvariantCulture)),
        "shop.example.com", "/orders/" + group, "GET", "{\"args\":{}}", "System.InvalidOperationException",
        "failure of order code" + group.ToString(CultureInfo.InvariantCulture),
        "System.InvalidOperationException: failure\n   at Shop.Orders.Save()", Base.AddMilliseconds(n));

    private static GroupDelta Delta(int group, int n) => new(Event(group, n), Base.AddMilliseconds(n), 1, true);

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
        var rows = new List<string[]>();
        var folder = Directory.CreateTempSubdirectory("errormonitor-bench").FullName;

        var stores = new List<(string Name, Func<IErrorStore> Make, double NewGoal)>
        {
            ("SQLite", () => new SqliteStore($"Data Source={Path.Combine(folder, "bench.db")}", "app_error"), 20_000),
        };
        if (!string.IsNullOrEmpty(postgres))
        {
            var table = "bench_" + Guid.NewGuid().ToString("N");
            stores.Add(("PostgreSQL", () => PostgresStore.Create(postgres, table), 10_000));
        }

        foreach (var (name, make, newGoal) in stores)
        {
            var store = make();
            await store.InitializeAsync(CancellationToken.None);

            // Coalesced: 2,000,000 occurrences of 10 groups through the engine's queue and writer.
            var engine = EngineFactory.create(new EngineSources
            {
                Values = new Dictionary<string, string> { ["APP_ERROR_SPILL_FILE"] = "none" },
                Store = store,
            });
            engine.Start();
            const int occurrences = 2_000_000;
            var events = Enumerable.Range(0, 10).Select(g => Event(g, g)).ToArray();
            var sw = Stopwatch.StartNew();
            for (var i = 0; i < occurrences; i++)
            {
                engine.Queue.Enqueue(events[i % 10]);
            }

            await engine.FlushAsync(CancellationToken.None);
            var coalesced = occurrences / sw.Elapsed.TotalSeconds;
            await engine.StopAsync(TimeSpan.FromSeconds(5));
            rows.Add([$"{name}: occurrences stored a second, coalesced", F(coalesced), "≥ 200,000", Met(coalesced >= 200_000)]);

            // New groups: batches of 1,000 distinct groups until `groups` exist.
            sw.Restart();
            for (var start = 0; start < groups; start += 1000)
            {
                var batch = Enumerable.Range(start, Math.Min(1000, groups - start)).Select(g => Delta(g + 100, g)).ToArray();
                await store.UpsertAsync(batch, CancellationToken.None);
            }

            var fresh = groups / sw.Elapsed.TotalSeconds;
            rows.Add([$"{name}: new groups a second", F(fresh), $"≥ {newGoal:N0}", Met(fresh >= newGoal)]);

            // Pages with `groups` groups, 20 a page (21 rows fetched): page 1, and the deep page as the Older
            // link reaches it (a cursor: the last row of the page before it), and as a bare ?page=N jump.
            var deepPage = Math.Max(2, groups / 20);
            var edge = (await store.ListAsync(ListQuery.All, Paging.offset(deepPage, 20) - 1, 1, CancellationToken.None))[0];
            var cursor = new PageCursor(edge.LastSeen.UtcTicks, edge.Hash, CursorDirection.Older);
            var first = await Latencies(() => store.ListAsync(ListQuery.All, 0, 21, CancellationToken.None));
            var deep = await Latencies(() => store.ListFromAsync(ListQuery.All, cursor, 21, CancellationToken.None));
            var jump = await Latencies(() => store.ListAsync(ListQuery.All, Paging.offset(deepPage, 20), 21, CancellationToken.None));
            var ratio = deep.P50 / first.P50;
            rows.Add([$"{name}: page 1 latency p50 / p99 (ms)", $"{first.P50:F2} / {first.P99:F2}", "p99 ≤ 20", Met(first.P99 <= 20)]);
            rows.Add([$"{name}: page {deepPage:N0} by its Older link, p50 / p99 (ms)", $"{deep.P50:F2} / {deep.P99:F2}", "p99 ≤ 20", Met(deep.P99 <= 20)]);
            rows.Add([$"{name}: deep page / page 1 (p50)", $"{ratio:F2}", "≤ 1.5", Met(ratio <= 1.5)]);
            rows.Add([$"{name}: page {deepPage:N0} by a typed ?page=N (offset), p50 (ms)", $"{jump.P50:F2}", "none (no cursor: reads past every row before it)", "n/a"]);

            // Triage: one group in ten resolved, one in fifty ignored (set through the store, as the pages do, for a
            // sample; the rest straight in the database, which is what a million status changes leave behind).
            await Triage(name, store, groups, folder, postgres, rows);
            (store as IDisposable)?.Dispose();
        }

        var table2 = new StringBuilder();
        table2.AppendLine(CultureInfo.InvariantCulture, $"Store figures, {groups:N0} groups, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores");
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
    private static async Task Triage(string name, IErrorStore store, int groups, string folder, string postgres, List<string[]> rows)
    {
        if (store is SqliteStore)
        {
            await using var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(folder, "bench.db")}");
            await c.OpenAsync();
            await using var cmd = c.CreateCommand();
            cmd.CommandText = "UPDATE app_error SET status = CASE WHEN id % 50 = 0 THEN 2 WHEN id % 10 = 0 THEN 1 ELSE 0 END";
            cmd.CommandTimeout = 600;
            await cmd.ExecuteNonQueryAsync();
        }
        else
        {
            var table = ((PostgresStore)store).Table;
            await using var source = Npgsql.NpgsqlDataSource.Create(postgres);
            await using var cmd = source.CreateCommand(
                $"UPDATE {table} SET status = CASE WHEN abs(hashtext(hash)) % 50 = 0 THEN 2 WHEN abs(hashtext(hash)) % 10 = 0 THEN 1 ELSE 0 END");
            cmd.CommandTimeout = 600;
            await cmd.ExecuteNonQueryAsync();
            // What autovacuum does in a running database: statistics for the planner (the search's selectivity).
            await using var analyze = source.CreateCommand($"ANALYZE {table}");
            analyze.CommandTimeout = 600;
            await analyze.ExecuteNonQueryAsync();
        }

        foreach (var sort in new[] { ListSort.LastSeen, ListSort.FirstSeen, ListSort.Count })
        {
            var query = new ListQuery(GroupStatus.Resolved, null, sort);
            var deepPage = Math.Max(2, groups / 10 / 20 / 2);
            var edge = (await store.ListAsync(query, Paging.offset(deepPage, 20) - 1, 1, CancellationToken.None))[0];
            var cursor = new PageCursor(global::ErrorMonitor.Core.Triage.sortKey(sort, edge), edge.Hash, CursorDirection.Older);
            var first = await Latencies(() => store.ListAsync(query, 0, 21, CancellationToken.None));
            var deep = await Latencies(() => store.ListFromAsync(query, cursor, 21, CancellationToken.None));
            rows.Add([$"{name}: resolved groups by {sort}, page 1 / page {deepPage:N0} p99 (ms)", $"{first.P99:F2} / {deep.P99:F2}", "p99 ≤ 20", Met(first.P99 <= 20 && deep.P99 <= 20)]);
        }

        var word = "code" + (groups / 3).ToString(CultureInfo.InvariantCulture)[..^1];
        var search = await Latencies(() => store.ListAsync(new ListQuery(null, word, ListSort.LastSeen), 0, 21, CancellationToken.None));
        rows.Add([$"{name}: search for a word prefix (\"{word}\", ~10 groups), p50 / p99 (ms)", $"{search.P50:F2} / {search.P99:F2}", "p99 ≤ 50", Met(search.P99 <= 50)]);
        var common = await Latencies(() => store.ListAsync(new ListQuery(GroupStatus.Unresolved, "failure", ListSort.LastSeen), 0, 21, CancellationToken.None));
        rows.Add([$"{name}: search for a word every group has (\"failure\"), p50 / p99 (ms)", $"{common.P50:F2} / {common.P99:F2}", "p99 ≤ 50", Met(common.P99 <= 50)]);

        var changes = new List<double>();
        var random = new Random(7);
        for (var i = 0; i < 220; i++)
        {
            var hash = Fingerprint.sha256Hex("group " + (random.Next(groups) + 100).ToString(CultureInfo.InvariantCulture));
            var change = new StatusChange(i % 2 == 0 ? GroupStatus.Resolved : GroupStatus.Unresolved, null, null);
            var sw = Stopwatch.StartNew();
            await store.SetStatusAsync(hash, change, CancellationToken.None);
            if (i >= 20)
            {
                changes.Add(sw.Elapsed.TotalMilliseconds);
            }
        }

        changes.Sort();
        var p99 = changes[(int)(changes.Count * 0.99)];
        rows.Add([$"{name}: status change, p50 / p99 (ms)", $"{changes[changes.Count / 2]:F2} / {p99:F2}", "≤ 5", Met(p99 <= 5)]);
    }

    private static string F(double v) => v.ToString("N0", CultureInfo.InvariantCulture);

    private static string Met(bool ok) => ok ? "yes" : "**no**";

    private static async Task<(double P50, double P99)> Latencies(Func<Task<IReadOnlyList<ErrorRecord>>> read)
    {
        var samples = new List<double>();
        for (var i = 0; i < 220; i++)
        {
            var sw = Stopwatch.StartNew();
            await read();
            if (i >= 20)
            {
                samples.Add(sw.Elapsed.TotalMilliseconds);
            }
        }

        samples.Sort();
        return (samples[samples.Count / 2], samples[(int)(samples.Count * 0.99)]);
    }
}
