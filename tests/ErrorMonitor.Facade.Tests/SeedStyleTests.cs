using System.Collections.Concurrent;
using System.Net;
using ErrorMonitor.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Xunit;

namespace ErrorMonitor.Facade.Tests;

/// <summary>A store of the app's own (the seed's custom model), implemented in C#.</summary>
public sealed class DictionaryStore : IErrorStore
{
    private readonly ConcurrentDictionary<string, ErrorRecord> _records = new();

    public int Upserts;

    /// <summary>Writes that fail (each logging an error with its exception first, as a store of an app's own
    /// might).</summary>
    public int FailingUpserts;

    public Microsoft.Extensions.Logging.ILogger? Logger;

    public Task InitializeAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task<IReadOnlyList<GroupWritten>> UpsertAsync(IReadOnlyList<GroupDelta> batch, CancellationToken cancellationToken)
    {
        if (Interlocked.Decrement(ref FailingUpserts) >= 0)
        {
            var failure = new IOException("the dictionary is away");
            if (Logger is not null)
            {
                Microsoft.Extensions.Logging.LoggerExtensions.LogError(Logger, failure, "Writing {Count} groups failed", batch.Count);
            }

            throw failure;
        }

        var written = new List<GroupWritten>();
        lock (_records)
        {
            foreach (var delta in batch)
            {
                Interlocked.Increment(ref Upserts);
                _records.TryGetValue(delta.Latest.Hash, out var before);
                var after = StoreRules.Apply(before, delta);
                _records[delta.Latest.Hash] = after;
                written.Add(new GroupWritten(delta.Latest.Hash, before?.LastSeen, Claimed(delta.Latest.Hash, ClaimKind.Notification),
                    Claimed(delta.Latest.Hash, ClaimKind.Ticket), after.Status, StoreRules.Regressed(before, after)));
            }
        }

        return Task.FromResult<IReadOnlyList<GroupWritten>>(written);
    }

    private readonly ConcurrentDictionary<(string, ClaimKind), DateTimeOffset> _claims = new();

    private DateTimeOffset? Claimed(string hash, ClaimKind kind) => _claims.TryGetValue((hash, kind), out var t) ? t : null;

    public Task<bool> TryClaimAsync(string hash, ClaimKind kind, DateTimeOffset? expected, DateTimeOffset now, CancellationToken cancellationToken)
    {
        lock (_claims)
        {
            if (Claimed(hash, kind) != expected)
            {
                return Task.FromResult(false);
            }

            _claims[(hash, kind)] = now;
            return Task.FromResult(true);
        }
    }

    public Task<ErrorRecord?> GetAsync(string hash, CancellationToken cancellationToken) =>
        Task.FromResult(_records.TryGetValue(hash, out var r) ? r : null);

    private IEnumerable<ErrorRecord> Ordered(ListQuery query) =>
        _records.Values.Where(r => StoreRules.Selects(query, r))
            .OrderByDescending(r => StoreRules.SortKey(query.Sort, r)).ThenBy(r => r.Hash, StringComparer.Ordinal);

    public Task<IReadOnlyList<ErrorRecord>> ListAsync(ListQuery query, long offset, int count, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<ErrorRecord>>(Ordered(query).Skip((int)offset).Take(count).ToList());

    public Task<IReadOnlyList<ErrorRecord>> ListFromAsync(ListQuery query, PageCursor cursor, int count, CancellationToken cancellationToken)
    {
        var beyond = Ordered(query).Where(r => StoreRules.Beyond(cursor, StoreRules.SortKey(query.Sort, r), r.Hash)).ToList();
        return Task.FromResult<IReadOnlyList<ErrorRecord>>(cursor.Direction == CursorDirection.Older
            ? beyond.Take(count).ToList()
            : beyond.Skip(Math.Max(0, beyond.Count - count)).ToList());
    }

    public Task<ErrorRecord?> SetStatusAsync(string hash, StatusChange change, CancellationToken cancellationToken)
    {
        lock (_records)
        {
            if (!_records.TryGetValue(hash, out var record))
            {
                return Task.FromResult<ErrorRecord?>(null);
            }

            var changed = StoreRules.Change(record, change);
            _records[hash] = changed;
            return Task.FromResult<ErrorRecord?>(changed);
        }
    }

    public Task ExpireIgnoresAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        lock (_records)
        {
            foreach (var record in _records.Values.ToList())
            {
                _records[record.Hash] = StoreRules.Expire(record, now);
            }
        }

        return Task.CompletedTask;
    }

    public Task<bool> DeleteAsync(string hash, CancellationToken cancellationToken) =>
        Task.FromResult(_records.TryRemove(hash, out _));

    // No history kept: the charts show nothing for this store.
    public Task<StoredHistory> HistoryAsync(string? hash, DateTimeOffset from, CancellationToken cancellationToken) =>
        Task.FromResult(new StoredHistory([], []));

    // No samples kept: the detail page shows the group's own details.
    public Task<IReadOnlyList<Sample>> SamplesAsync(string hash, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<Sample>>([]);

    // Nothing pruned: this store keeps every group.
    public Task<PruneResult> PruneAsync(PruneRequest request, CancellationToken cancellationToken) =>
        Task.FromResult(new PruneResult(0, 0, 0));

    public Task<IReadOnlyDictionary<string, Bucket[]>> HoursAsync(IReadOnlyList<string> hashes, DateTimeOffset from, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyDictionary<string, Bucket[]>>(new Dictionary<string, Bucket[]>());
}

/// <summary>Masks keys that mention a card.</summary>
public sealed class CardMasking : IMaskingRule
{
    public MaskDecision Decide(string key) =>
        key.Contains("card", StringComparison.OrdinalIgnoreCase) ? MaskDecision.MaskWith("###") : MaskDecision.Keep;
}

/// <summary>Extends the default context builder, as the seed's example does.</summary>
public sealed class DataCenterContext : DefaultContextBuilder
{
    public override void BuildContext(HttpContext? httpContext, IDictionary<string, object> context)
    {
        base.BuildContext(httpContext, context);
        context["dataCenter"] = "eu-west";
    }
}

public sealed class SeedStyleTests
{
    [Fact]
    public async Task New_AppErrorMonitor_with_app_and_plug_ins_captures_into_the_apps_store()
    {
        var app = TestHost.Builder().Build();
        var store = new DictionaryStore();
        var monitor = new AppErrorMonitor(app, store: store, contextBuilder: new DataCenterContext(), masking: new CardMasking());
        app.MapPost("/pay", async (HttpRequest request) =>
        {
            await request.ReadFormAsync();
            throw new InvalidOperationException("declined");
        });
        await using var host = await TestHost.StartAsync(app);

        using var form = new FormUrlEncodedContent(new Dictionary<string, string> { ["creditCard"] = "4111-1111", ["password"] = "kept-by-custom-rule" });
        var response = await host.Client.PostAsync("/pay", form);
        await monitor.FlushAsync();

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.True(monitor.IsInitialized);
        var record = Assert.Single(await store.ListAsync(ListQuery.All, 0, 10, CancellationToken.None));
        Assert.Equal(1, store.Upserts);
        Assert.Contains("\"creditCard\":\"###\"", record.RequestData, StringComparison.Ordinal);
        Assert.Contains("kept-by-custom-rule", record.RequestData, StringComparison.Ordinal);
        Assert.Contains("\"dataCenter\":\"eu-west\"", record.RequestData, StringComparison.Ordinal);
        Assert.Contains("\"machine\":", record.RequestData, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Configure_at_the_end_with_InitApp_and_a_masking_function()
    {
        var monitor = new AppErrorMonitor();
        Assert.False(monitor.IsInitialized);
        var app = TestHost.Builder(new Dictionary<string, string?> { ["APP_ERROR_STORE"] = "memory" }).Build();
        monitor.InitApp(app, configure: o => o.Masking = key => key == "pin" ? MaskDecision.MaskWith("----") : MaskDecision.Keep);
        app.MapGet("/pin", string () => throw new UnauthorizedAccessException("bad pin"));
        await using var host = await TestHost.StartAsync(app);

        await host.Client.GetAsync("/pin?pin=1234&password=visible");
        await monitor.FlushAsync();

        var record = Assert.Single(await monitor.Store.ListAsync(ListQuery.All, 0, 10, CancellationToken.None));
        Assert.Contains("\"pin\":\"----\"", record.RequestData, StringComparison.Ordinal);
        Assert.Contains("visible", record.RequestData, StringComparison.Ordinal);
    }

    [Fact]
    public void Initialising_twice_or_without_an_app_throws_a_configuration_exception()
    {
        var monitor = new AppErrorMonitor();
        var none = Assert.Throws<ErrorMonitorConfigException>(() => monitor.InitApp(null!));
        Assert.Contains("needs the app", none.Message, StringComparison.Ordinal);

        var app = TestHost.Builder(new Dictionary<string, string?> { ["APP_ERROR_STORE"] = "memory" }).Build();
        monitor.InitApp(app);
        var twice = Assert.Throws<ErrorMonitorConfigException>(() => monitor.InitApp(app));
        Assert.Contains("initialised already", twice.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Recording_before_initialisation_never_throws_and_records_nothing()
    {
        var monitor = new AppErrorMonitor();

        Assert.Null(monitor.RecordException(new InvalidOperationException("early")));
        Assert.Null(monitor.RecordException(new InvalidOperationException("early"), "while starting"));
        Assert.Null(await monitor.RecordExceptionAsync(new InvalidOperationException("early")));
        Assert.Null(monitor.CaptureMessage("early message"));
        monitor.Track(() => throw new FormatException("swallowed"), silent: true);

        // Not silent: the app's own exception comes back, never one of ErrorMonitor's.
        Assert.Throws<FormatException>(() => monitor.Track(() => throw new FormatException("rethrown")));
        await monitor.FlushAsync();
        Assert.False(monitor.IsInitialized);

        // What is not recording still says what to do.
        var ex = Assert.Throws<ErrorMonitorConfigException>(() => monitor.Store);
        Assert.Contains("InitApp", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_bad_configuration_names_the_key()
    {
        var app = TestHost.Builder(new Dictionary<string, string?>
        {
            ["APP_ERROR_SEND_NOTIFICATION"] = "true",
            ["APP_ERROR_RECIPIENT_EMAIL"] = "ops@example.com",
        }).Build();

        var ex = Assert.Throws<ErrorMonitorConfigException>(() => new AppErrorMonitor(app));
        Assert.Contains("APP_ERROR_EMAIL_SENDER", ex.Message, StringComparison.Ordinal);
    }
}
