using Sentry;
using Sentry.Extensibility;
using Sentry.Protocol.Envelopes;

namespace ErrorMonitor.Benchmarks;

/// <summary>
/// Records what the Sentry .NET SDK sends for one exception (a nested one, with a scope user, tags and extras)
/// as an envelope file, gzipped as the SDK sends it: the body the Sentry endpoint's load benchmark replays.
/// Usage: <c>record-envelope FILE</c>.
/// </summary>
internal static class RecordEnvelope
{
    private sealed class FileTransport(string path) : ITransport
    {
        public async Task SendEnvelopeAsync(Envelope envelope, CancellationToken cancellationToken = default)
        {
            if (!envelope.Items.Any(i => i.TryGetType() == "event"))
            {
                return;
            }

            await using var file = File.Create(path);
            await using var gzip = new System.IO.Compression.GZipStream(file, System.IO.Compression.CompressionLevel.Fastest);
            await envelope.SerializeAsync(gzip, null, cancellationToken);
        }
    }

    public static int Run(string[] args)
    {
        var path = args.Length > 0 ? args[0] : "dotnet-exception.envelope.gz";
        using (SentrySdk.Init(o =>
        {
            o.Dsn = "http://0123456789abcdef0123456789abcdef@127.0.0.1/dev/error/1";
            o.Transport = new FileTransport(path);
            o.AutoSessionTracking = false;
            o.Release = "checkout@3.1.4";
            o.Environment = "production";
            o.SendDefaultPii = true;
        }))
        {
            SentrySdk.ConfigureScope(scope =>
            {
                scope.User = new SentryUser { Username = "ada", Email = "ada@example.com" };
                scope.SetTag("region", "eu-west");
                scope.SetExtra("password", "hunter2");
                scope.SetExtra("cart", 3);
            });
            try
            {
                try
                {
                    throw new ArgumentException("the amount must be positive");
                }
                catch (ArgumentException inner)
                {
                    throw new InvalidOperationException("charging order 1042 failed", inner);
                }
            }
            catch (InvalidOperationException ex)
            {
                SentrySdk.CaptureException(ex);
            }

            SentrySdk.Flush(TimeSpan.FromSeconds(10));
        }

        Console.WriteLine($"{path}: {new FileInfo(path).Length} bytes (gzip)");
        return 0;
    }
}
