using System.Runtime.CompilerServices;
using BenchmarkDotNet.Attributes;
using ErrorMonitor.Web;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;
using Sentry;
using Sentry.Extensibility;
using Sentry.Protocol.Envelopes;

namespace ErrorMonitor.Benchmarks;

/// <summary>A Sentry transport that discards envelopes: no network in the measurement.</summary>
internal sealed class DiscardTransport : ITransport
{
    public Task SendEnvelopeAsync(Envelope envelope, CancellationToken cancellationToken = default) => Task.CompletedTask;
}

/// <summary>
/// The cost of one typical failure: an exception thrown through 10 frames with one inner exception, in a
/// request with 20 headers, 10 query args and 10 form fields. Every variant throws afresh, so the bare
/// throw + catch is the floor each one pays.
/// </summary>
[MemoryDiagnoser]
public class CaptureBenchmarks
{
    private HttpContext _context = null!;
    private Engine _engine = null!;
    private Engine _whole = null!;
    private IDisposable? _sentry;

    [GlobalSetup]
    public void Setup()
    {
        _context = Request.Typical();
        _engine = Setups.MemoryEngine();
        _engine.Start();
        _whole = Setups.MemoryEngine();
        _sentry = Setups.Sentry();
    }

    [GlobalCleanup]
    public void Cleanup() => _sentry?.Dispose();

    [Benchmark(Baseline = true, Description = "bare throw + catch")]
    public Exception ThrowCatch() => Failure.Throw();

    /// <summary>What the capture middleware does before the request goes on; its background thread runs.</summary>
    [Benchmark(Description = "ErrorMonitor, request thread")]
    public void ErrorMonitorRequestThread() => _engine.RecordDeferred(Failure.Throw(), _context);

    /// <summary>All of it on one thread: exception data, masking, traceback, fingerprint, coalescing, and
    /// the write to the (in-memory) store.</summary>
    [Benchmark(Description = "ErrorMonitor, whole (stored)")]
    public bool ErrorMonitorWhole()
    {
        _whole.Record(Failure.Throw(), _context);
        return _whole.Writer.FlushOnceAsync(CancellationToken.None).GetAwaiter().GetResult();
    }

    [Benchmark(Description = "Sentry CaptureException")]
    public SentryId SentryCaptureException()
    {
        var ex = Failure.Throw();
        return SentrySdk.CaptureException(ex, scope =>
        {
            scope.Request = Request.ForSentry(_context);
            foreach (var (key, value) in _context.Request.Query)
            {
                scope.SetTag(key, value.ToString());
            }
        });
    }
}

/// <summary>What the capture benchmarks set up alike.</summary>
internal static class Setups
{
    /// <summary>An engine with the in-memory store and no journal.</summary>
    internal static Engine MemoryEngine() => EngineFactory.create(new EngineSources
    {
        Values = new Dictionary<string, string> { ["APP_ERROR_STORE"] = "memory", ["APP_ERROR_SPILL_FILE"] = "none" },
    });

    /// <summary>Sentry's SDK with a transport that discards envelopes, as an app without PII would set it up.</summary>
    internal static IDisposable Sentry() => SentrySdk.Init(o =>
    {
        o.Dsn = "https://public@127.0.0.1/1";
        o.Transport = new DiscardTransport();
        o.AutoSessionTracking = false;
        o.IsGlobalModeEnabled = true;
        o.SendDefaultPii = false;
    });
}

/// <summary>The typical request.</summary>
internal static class Request
{
    internal static HttpContext Typical()
    {
        var context = new DefaultHttpContext();
        var r = context.Request;
        r.Method = "POST";
        r.Scheme = "https";
        r.Host = new HostString("shop.example.com");
        r.Path = "/orders/checkout";
        r.QueryString = new QueryString("?" + string.Join("&", Enumerable.Range(1, 10).Select(i => $"arg{i}=value{i}")));
        for (var i = 1; i <= 18; i++)
        {
            r.Headers[$"X-Header-{i}"] = $"header value {i}";
        }

        r.Headers.Authorization = "Bearer secret-token";
        r.Headers.UserAgent = "Mozilla/5.0 (X11; Linux x86_64)";
        r.ContentType = "application/x-www-form-urlencoded";
        var form = new FormCollection(Enumerable.Range(1, 10).ToDictionary(i => i == 1 ? "password" : $"field{i}", i => new StringValues($"form value {i}")));
        context.Features.Set<IFormFeature>(new FormFeature(form));
        return context;
    }

    internal static SentryRequest ForSentry(HttpContext context)
    {
        var r = context.Request;
        var sentry = new SentryRequest
        {
            Method = r.Method,
            Url = $"{r.Scheme}://{r.Host}{r.Path}",
            QueryString = r.QueryString.Value,
            Data = r.Form.ToDictionary(kv => kv.Key, kv => kv.Value.ToString()),
        };
        foreach (var (key, value) in r.Headers)
        {
            sentry.Headers[key] = value.ToString();
        }

        return sentry;
    }
}

/// <summary>Throws through 10 frames, wrapping an inner exception.</summary>
internal static class Failure
{
    internal static Exception Throw()
    {
        try
        {
            Outer();
        }
        catch (Exception ex)
        {
            return ex;
        }

        throw new InvalidOperationException("unreachable");
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Outer()
    {
        try
        {
            Level(9);
        }
        catch (ArgumentException inner)
        {
            throw new InvalidOperationException("Checkout failed for order 42", inner);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Level(int n)
    {
        if (n == 0)
        {
            throw new ArgumentException("Quantity must be positive");
        }

        Level(n - 1);
    }
}

/// <summary>
/// How capture cost grows with the stack: the typical failure thrown from 1, 100 and 10,000 frames deep
/// (`--filter '*Depth*'`). ErrorMonitor keeps at most 200 of a traceback's frames (Limits.MaxFrames); the throw
/// itself, and reading the stack, grow with the depth whatever is kept.
/// </summary>
[MemoryDiagnoser]
public class DepthBenchmarks
{
    private HttpContext _context = null!;
    private Engine _whole = null!;
    private IDisposable? _sentry;

    [Params(1, 100, 10000)]
    public int Depth { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _context = Request.Typical();
        _whole = Setups.MemoryEngine();
        _sentry = Setups.Sentry();
    }

    [GlobalCleanup]
    public void Cleanup() => _sentry?.Dispose();

    [Benchmark(Baseline = true, Description = "bare throw + catch")]
    public Exception ThrowCatch() => DeepFailure.Throw(Depth);

    [Benchmark(Description = "ErrorMonitor, whole (stored)")]
    public bool ErrorMonitorWhole()
    {
        _whole.Record(DeepFailure.Throw(Depth), _context);
        return _whole.Writer.FlushOnceAsync(CancellationToken.None).GetAwaiter().GetResult();
    }

    [Benchmark(Description = "Sentry CaptureException")]
    public SentryId SentryCaptureException()
    {
        var ex = DeepFailure.Throw(Depth);
        return SentrySdk.CaptureException(ex, scope => scope.Request = Request.ForSentry(_context));
    }
}

/// <summary>Throws from `depth` frames down (the thread's stack holds 10,000 such frames easily).</summary>
internal static class DeepFailure
{
    internal static Exception Throw(int depth)
    {
        try
        {
            Level(depth - 1);
        }
        catch (Exception ex)
        {
            return ex;
        }

        throw new InvalidOperationException("unreachable");
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Level(int n)
    {
        if (n <= 0)
        {
            throw new ArgumentException("Quantity must be positive");
        }

        Level(n - 1);
    }
}
