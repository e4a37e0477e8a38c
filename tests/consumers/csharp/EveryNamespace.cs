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
                var keepDetails = old is not null && !delta.Detailed;
                _records[e.Hash] = new ErrorRecord(
                    e.Hash, e.Host, e.Path, e.Method,
                    keepDetails ? old!.RequestData : e.RequestData,
                    e.ExceptionName,
                    keepDetails ? old!.Message : e.Message,
                    keepDetails ? old!.Traceback : e.Traceback,
                    (old?.Count ?? 0) + delta.Count,
                    old is null || delta.FirstAt < old.CreatedOn ? delta.FirstAt : old.CreatedOn,
                    old is null || e.OccurredAt > old.LastSeen ? e.OccurredAt : old.LastSeen);
                written.Add(new GroupWritten(e.Hash, old?.LastSeen, Claimed(e.Hash, ClaimKind.Notification), Claimed(e.Hash, ClaimKind.Ticket)));
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

    public Task<IReadOnlyList<ErrorRecord>> ListAsync(long offset, int count, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<ErrorRecord>>(Ordered().Skip((int)offset).Take(count).ToList());

    public Task<IReadOnlyList<ErrorRecord>> ListFromAsync(PageCursor cursor, int count, CancellationToken cancellationToken)
    {
        bool Older(ErrorRecord r) => r.LastSeen < cursor.LastSeen
            || (r.LastSeen == cursor.LastSeen && string.CompareOrdinal(r.Hash, cursor.Hash) > 0);
        var rows = cursor.Direction == CursorDirection.Older
            ? Ordered().Where(Older).Take(count).ToList()
            : Ordered().Where(r => !Older(r) && r.Hash != cursor.Hash).Reverse().Take(count).Reverse().ToList();
        return Task.FromResult<IReadOnlyList<ErrorRecord>>(rows);
    }

    public Task<bool> DeleteAsync(string hash, CancellationToken cancellationToken) =>
        Task.FromResult(_records.TryRemove(hash, out _));

    private IEnumerable<ErrorRecord> Ordered() =>
        _records.Values.OrderByDescending(r => r.LastSeen).ThenBy(r => r.Hash, StringComparer.Ordinal);
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
