using System.Diagnostics;
using System.Globalization;
using System.Text;
using ErrorMonitor.Core;
using ErrorMonitor.Web;
using ErrorMonitor.Web.Stores;

namespace ErrorMonitor.Benchmarks;

/// <summary>
/// The database's size under a storm of distinct new groups with a bound on groups: the groups go through the
/// engine (queue, writer, background pruning) into SQLite as an app's failures do; prints the groups and the
/// file size during and after the storm, and the size a group takes; each figure the median of the rounds (a
/// fresh database each) with their range. Usage:
/// retention [--groups N] [--max M] [--rounds R] [--out FILE]
/// </summary>
internal static class RetentionFigures
{
    /// <summary>What one storm showed.</summary>
    private sealed record Round(double Seconds, long FinalGroups, long MostGroups, long FinalSize, long Largest);

    public static async Task<int> Run(string[] args)
    {
        string Arg(string name, string fallback)
        {
            var i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
        }

        var groups = int.Parse(Arg("--groups", "1000000"), CultureInfo.InvariantCulture);
        var max = int.Parse(Arg("--max", "10000"), CultureInfo.InvariantCulture);
        var rounds = int.Parse(Arg("--rounds", "1"), CultureInfo.InvariantCulture);
        var output = Arg("--out", "");
        var results = new List<Round>();
        for (var r = 1; r <= rounds; r++)
        {
            Console.Error.WriteLine($"round {r} of {rounds}");
            results.Add(await Storm(groups, max));
        }

        static double Median(IEnumerable<double> xs)
        {
            var s = xs.OrderBy(x => x).ToArray();
            return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
        }

        string Figure(Func<Round, double> f, Func<double, string> show) =>
            $"{show(Median(results.Select(f)))} [{show(results.Min(f))}–{show(results.Max(f))}]";
        static string Mb(double bytes) => (bytes / 1048576.0).ToString("N1", CultureInfo.InvariantCulture) + " MB";
        static string N(double n) => n.ToString("N0", CultureInfo.InvariantCulture);

        var table = new StringBuilder();
        table.AppendLine(CultureInfo.InvariantCulture, $"Retention under a storm, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores: {groups:N0} distinct new groups through the engine into SQLite, APP_ERROR_MAX_GROUPS={max:N0}; {rounds} round(s), each a fresh database, median [range] of the rounds ({Figure(x => x.Seconds, N)} s a storm)");
        table.AppendLine();
        table.AppendLine("| figure | value |");
        table.AppendLine("| --- | --- |");
        table.AppendLine(CultureInfo.InvariantCulture, $"| groups at the end | {Figure(x => x.FinalGroups, N)} |");
        table.AppendLine(CultureInfo.InvariantCulture, $"| most groups seen during the storm (sampled every 2 s) | {Figure(x => x.MostGroups, N)} |");
        table.AppendLine(CultureInfo.InvariantCulture, $"| file at the end (database + WAL after a checkpoint) | {Figure(x => x.FinalSize, Mb)} |");
        table.AppendLine(CultureInfo.InvariantCulture, $"| largest file during the storm (database + WAL) | {Figure(x => x.Largest, Mb)} |");
        table.AppendLine(CultureInfo.InvariantCulture, $"| bytes a group at the end | {Figure(x => (double)x.FinalSize / Math.Max(1, x.FinalGroups), N)} |");
        Console.WriteLine(table);
        if (output != "")
        {
            await File.WriteAllTextAsync(output, table.ToString());
        }

        return results.All(x => x.FinalGroups <= max) ? 0 : 1;
    }

    /// <summary>One storm into a fresh database.</summary>
    private static async Task<Round> Storm(int groups, int max)
    {
        var folder = Directory.CreateTempSubdirectory("errormonitor-retention").FullName;
        var path = Path.Combine(folder, "storm.db");
        var store = new SqliteStore($"Data Source={path}", "app_error");
        var engine = EngineFactory.create(new EngineSources
        {
            Values = new Dictionary<string, string>
            {
                ["APP_ERROR_SPILL_FILE"] = "none",
                ["APP_ERROR_MAX_GROUPS"] = max.ToString(CultureInfo.InvariantCulture),
            },
            Store = store,
        });
        engine.Start();

        long Size() => new[] { path, path + "-wal" }.Where(File.Exists).Sum(f => new FileInfo(f).Length);
        long Groups()
        {
            using var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path}");
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "SELECT count(*) FROM app_error";
            return (long)cmd.ExecuteScalar()!;
        }

        // A storm of distinct groups (each with 1 KB of request data, a traceback and a message of its own),
        // at the pace the queue takes them; the largest file and group count seen along the way.
        var start = DateTimeOffset.UtcNow; // the engine's clock is the real one: occurrences are "now"
        var largest = 0L;
        var mostGroups = 0L;
        var sw = Stopwatch.StartNew();
        var sampled = Stopwatch.StartNew();
        for (var g = 0; g < groups; g++)
        {
            var e = new ErrorEvent(
                Fingerprint.sha256Hex("storm " + g.ToString(CultureInfo.InvariantCulture)), "shop.example.com",
                "/orders/" + g.ToString(CultureInfo.InvariantCulture), "GET", "{\"args\":{\"q\":\"" + new string('x', 1000) + "\"}}",
                "System.InvalidOperationException", "order " + g.ToString(CultureInfo.InvariantCulture) + " failed",
                "System.InvalidOperationException: failed\n   at Shop.Orders.Save()\n   at Shop.Orders.Checkout()", start.AddTicks(g), "1.4.2", "Production", "");
            while (engine.Queue.Enqueue(e, []) is null)
            {
                await Task.Delay(1); // the queue is full: wait for the writer, as nothing may be dropped here
            }

            if (sampled.ElapsedMilliseconds > 2000)
            {
                largest = Math.Max(largest, Size());
                mostGroups = Math.Max(mostGroups, Groups());
                sampled.Restart();
            }
        }

        await engine.FlushAsync(CancellationToken.None);
        var stormSeconds = sw.Elapsed.TotalSeconds;
        largest = Math.Max(largest, Size());
        mostGroups = Math.Max(mostGroups, Groups());
        await engine.PruneAsync(CancellationToken.None);
        await engine.StopAsync(TimeSpan.FromSeconds(5));
        using (var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path}"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "PRAGMA wal_checkpoint(TRUNCATE);";
            cmd.ExecuteNonQuery();
        }

        var finalGroups = Groups();
        var finalSize = Size();
        (store as IDisposable)?.Dispose();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(folder, true);
        return new Round(stormSeconds, finalGroups, mostGroups, finalSize, largest);
    }
}
