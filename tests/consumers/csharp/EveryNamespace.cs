// Compiled with warnings as errors and nullable checks on, from the packages, as a user's app is: every public
// namespace imported together (no type name may be ambiguous), and a store of the app's own that returns null
// for a hash it does not know, as IErrorStore documents. The app uses it when CONSUMER_STORE=own.
using System.Collections.Concurrent;
using ErrorMonitor;
using ErrorMonitor.Core;
using ErrorMonitor.Web;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace CSharpConsumer;

/// <summary>Groups in memory, keyed by hash: the smallest store a user could write.</summary>
public sealed class OwnStore : IErrorStore
{
    private readonly ConcurrentDictionary<string, ErrorRecord> _records = new();
    private readonly ConcurrentDictionary<(string, ClaimKind), DateTimeOffset> _claims = new();
    private readonly object _gate = new();

    public Task InitializeAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task<IReadOnlyList<GroupWritten>> UpsertAsync(IReadOnlyList<GroupDelta> batch, CancellationToken cancellationToken)
    {
        var written = new List<GroupWritten>();
        lock (_gate)
        {
            foreach (var delta in batch)
            {
                var e = delta.Latest;
                _records.TryGetValue(e.Hash, out var old);
                var after = StoreRules.Apply(old, delta);
                _records[e.Hash] = after;
                written.Add(new GroupWritten(e.Hash, old?.LastSeen, Claimed(e.Hash, ClaimKind.Notification),
                    Claimed(e.Hash, ClaimKind.Ticket), after.Status, StoreRules.Regressed(old, after)));
            }
        }

        return Task.FromResult<IReadOnlyList<GroupWritten>>(written);
    }

    private DateTimeOffset? Claimed(string hash, ClaimKind kind) =>
        _claims.TryGetValue((hash, kind), out var at) ? at : null;

    public Task<bool> TryClaimAsync(string hash, ClaimKind kind, DateTimeOffset? expected, DateTimeOffset now, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (Claimed(hash, kind) != expected)
            {
                return Task.FromResult(false);
            }

            _claims[(hash, kind)] = now;
            return Task.FromResult(true);
        }
    }

    // Null for a hash it does not know: no warning, no `null!`.
    public Task<ErrorRecord?> GetAsync(string hash, CancellationToken cancellationToken) =>
        Task.FromResult(_records.TryGetValue(hash, out var record) ? record : null);

    public Task<IReadOnlyList<ErrorRecord>> ListAsync(ListQuery query, long offset, int count, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<ErrorRecord>>(Ordered(query).Skip((int)offset).Take(count).ToList());

    public Task<IReadOnlyList<ErrorRecord>> ListFromAsync(ListQuery query, PageCursor cursor, int count, CancellationToken cancellationToken)
    {
        var beyond = Ordered(query).Where(r => StoreRules.Beyond(cursor, StoreRules.SortKey(query.Sort, r), r.Hash)).ToList();
        var rows = cursor.Direction == CursorDirection.Older
            ? beyond.Take(count).ToList()
            : beyond.Skip(Math.Max(0, beyond.Count - count)).ToList();
        return Task.FromResult<IReadOnlyList<ErrorRecord>>(rows);
    }

    public Task<ErrorRecord?> SetStatusAsync(string hash, StatusChange change, CancellationToken cancellationToken)
    {
        lock (_gate)
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
        lock (_gate)
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

    private IEnumerable<ErrorRecord> Ordered(ListQuery query) =>
        _records.Values.Where(r => StoreRules.Selects(query, r))
            .OrderByDescending(r => StoreRules.SortKey(query.Sort, r)).ThenBy(r => r.Hash, StringComparer.Ordinal);
}

/// <summary>A context builder of the app's own: HttpContext is null outside a request.</summary>
public sealed class OwnContext : DefaultContextBuilder
{
    public override void BuildContext(HttpContext? httpContext, IDictionary<string, object> context)
    {
        base.BuildContext(httpContext, context);
        context["consumer"] = httpContext?.Request.Path.Value ?? "outside a request";
    }
}

public static class Registration
{
    /// <summary>The three README lines' first one, with the app's own store when asked for.</summary>
    public static IServiceCollection AddMonitor(this IServiceCollection services, bool ownStore) =>
        services.AddErrorMonitor(options =>
        {
            if (ownStore)
            {
                options.ErrorStore = new OwnStore();
                options.ContextBuilder = new OwnContext();
            }
        });

    /// <summary>Types from every namespace, side by side.</summary>
    public static string Names() => string.Join(", ", new[]
    {
        nameof(AppErrorMonitor), nameof(MaskDecision), nameof(Notification), nameof(ErrorRecord),
        nameof(BrowseOptions), nameof(ErrorScope), nameof(WebApplication),
    });
}
