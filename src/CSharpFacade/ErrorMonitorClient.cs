using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Threading.Channels;
using ErrorMonitor.Core;

namespace ErrorMonitor;

/// <summary>Options of an <see cref="ErrorMonitorClient"/>.</summary>
public sealed class ErrorMonitorClientOptions
{
    /// <summary>Reports waiting to be sent; past it, new reports are counted as dropped. Default 1,000.</summary>
    public int QueueCapacity { get; set; } = 1000;

    /// <summary>Attempts for one report (network errors, 429 and 5xx answers are retried). Default 5.</summary>
    public int MaxAttempts { get; set; } = 5;

    /// <summary>How long one attempt may take. Default 10 s.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The release of this process, sent with each report. Default none.</summary>
    public string? Release { get; set; }
}

/// <summary>
/// Sends errors of a process without a web app of its own (a worker, a console tool) to a central
/// ErrorMonitor's capture route (<c>POST {prefix}/api/errors</c>). Reports wait in a bounded queue and are sent
/// in the background with retries; <see cref="Report"/> never blocks and never throws for a send failure.
/// </summary>
public sealed class ErrorMonitorClient : IAsyncDisposable
{
    private readonly Uri _endpoint;
    private readonly string _key;
    private readonly ErrorMonitorClientOptions _options;
    private readonly HttpClient _http;
    private readonly Channel<byte[]> _queue;
    private readonly Task _sender;
    private readonly CancellationTokenSource _stopping = new();
    private long _dropped;
    private long _failed;
    private long _queued;
    private long _done;

    /// <summary>A client for the capture route at <paramref name="endpoint"/>.</summary>
    /// <param name="endpoint">The route, e.g. https://monitor.example.com/dev/error/api/errors.</param>
    /// <param name="key">One of the monitor's APP_ERROR_INGEST_KEY keys.</param>
    /// <param name="options">Queue size, retries, timeout, release.</param>
    public ErrorMonitorClient(Uri endpoint, string key, ErrorMonitorClientOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        ArgumentException.ThrowIfNullOrWhiteSpace(key);
        if (!endpoint.IsAbsoluteUri || (endpoint.Scheme != Uri.UriSchemeHttp && endpoint.Scheme != Uri.UriSchemeHttps))
        {
            throw new ArgumentException("The endpoint must be an absolute http or https URL.", nameof(endpoint));
        }

        _endpoint = endpoint;
        _key = key;
        _options = options ?? new ErrorMonitorClientOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.QueueCapacity, 1, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.MaxAttempts, 1, nameof(options));
        _http = new HttpClient { Timeout = _options.Timeout };
        _queue = Channel.CreateBounded<byte[]>(new BoundedChannelOptions(_options.QueueCapacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
        });
        _sender = Task.Run(SendLoopAsync);
    }

    /// <summary>Reports dropped because the queue was full.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Reports given up after every attempt failed (or refused by the monitor as invalid).</summary>
    public long Failed => Interlocked.Read(ref _failed);

    /// <summary>Queues an exception to be sent. False when the queue is full (the report is counted as dropped).</summary>
    /// <param name="exception">The exception.</param>
    /// <param name="context">Extra context (masked by the monitor like the rest).</param>
    public bool Report(Exception exception, IReadOnlyDictionary<string, object?>? context = null)
    {
        ArgumentNullException.ThrowIfNull(exception);
        byte[] body;
        try
        {
            body = Serialize(exception, context);
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException or InvalidOperationException)
        {
            body = Serialize(exception, null);
        }

        if (!_queue.Writer.TryWrite(body))
        {
            Interlocked.Increment(ref _dropped);
            return false;
        }

        Interlocked.Increment(ref _queued);
        return true;
    }

    /// <summary>Completes when every queued report was sent or given up.</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    public async Task FlushAsync(CancellationToken cancellationToken = default)
    {
        while (Interlocked.Read(ref _done) < Interlocked.Read(ref _queued))
        {
            await Task.Delay(10, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Sends what is queued (waiting at most the timeout for each report), then stops.</summary>
    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _sender.ConfigureAwait(false);
        _stopping.Dispose();
        _http.Dispose();
    }

    private byte[] Serialize(Exception exception, IReadOnlyDictionary<string, object?>? context)
    {
        var info = ExceptionInfoModule.capture(
            LimitsModule.defaults,
            Microsoft.FSharp.Core.FuncConvert.FromFunc<Exception, StackTrace>(e => new StackTrace(e, true)),
            exception);
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WriteString("type", info.TypeName);
            w.WriteString("message", info.Message);
            w.WriteStartArray("frames");
            foreach (var f in info.Frames)
            {
                w.WriteStartObject();
                w.WriteString("function", f.Type + "." + f.Method);
                if (f.File is { } file)
                {
                    w.WriteString("file", file.Value);
                }

                if (f.Line is { } line)
                {
                    w.WriteNumber("line", line.Value);
                }

                w.WriteEndObject();
            }

            w.WriteEndArray();
            if (_options.Release is { } release)
            {
                w.WriteString("release", release);
            }

            w.WriteStartObject("context");
            w.WriteString("machine", Environment.MachineName);
            w.WriteString("process", Process.GetCurrentProcess().ProcessName);
            if (!info.Inner.IsEmpty)
            {
                w.WriteStartArray("inner");
                foreach (var inner in ExceptionInfoModule.flatten(info).Tail)
                {
                    w.WriteStringValue(inner.TypeName + ": " + inner.Message);
                }

                w.WriteEndArray();
            }

            if (context is not null)
            {
                foreach (var (k, v) in context)
                {
                    w.WritePropertyName(k);
                    JsonSerializer.Serialize(w, v);
                }
            }

            w.WriteEndObject();
            w.WriteEndObject();
        }

        return stream.ToArray();
    }

    private async Task SendLoopAsync()
    {
        await foreach (var body in _queue.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            try
            {
                await SendAsync(body).ConfigureAwait(false);
            }
            finally
            {
                Interlocked.Increment(ref _done);
            }
        }
    }

    private async Task SendAsync(byte[] body)
    {
        for (var attempt = 1; attempt <= _options.MaxAttempts; attempt++)
        {
            TimeSpan wait = Core.LimitsModule.backoff(TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(30), attempt);
            try
            {
                using var content = new ByteArrayContent(body);
                content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
                using var request = new HttpRequestMessage(HttpMethod.Post, _endpoint) { Content = content };
                request.Headers.Add(Core.Report.KeyHeader, _key);
                using var response = await _http.SendAsync(request).ConfigureAwait(false);
                if (response.IsSuccessStatusCode)
                {
                    return;
                }

                var status = (int)response.StatusCode;
                if (status != 429 && status < 500)
                {
                    Interlocked.Increment(ref _failed);
                    return;
                }

                if (response.Headers.RetryAfter?.Delta is { } after && after > wait)
                {
                    wait = after;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or WebException)
            {
                // Retried below.
            }

            if (attempt < _options.MaxAttempts)
            {
                await Task.Delay(wait).ConfigureAwait(false);
            }
        }

        Interlocked.Increment(ref _failed);
    }
}
