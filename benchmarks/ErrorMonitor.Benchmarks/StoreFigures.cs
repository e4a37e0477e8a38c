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
        "failure", "System.InvalidOperationException: failure\n   at Shop.Orders.Save()", Base.AddMilliseconds(n));

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
