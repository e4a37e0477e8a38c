using ErrorMonitor.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace ErrorMonitor.Facade.Tests;

public sealed class ClientTests
{
    private const string Key = "client-key-0123456789abcdef";

    [Fact]
    public async Task A_worker_process_reports_through_the_capture_route()
    {
        var builder = TestHost.Builder(new Dictionary<string, string?> { ["APP_ERROR_INGEST_KEY"] = Key });
        builder.Services.AddErrorMonitor();
        var app = builder.Build();
        app.MapErrorMonitor();
        await using var host = await TestHost.StartAsync(app);
        var monitor = app.Services.GetRequiredService<AppErrorMonitor>();

        await using (var client = new ErrorMonitorClient(new Uri(host.Client.BaseAddress!, "/dev/error/api/errors"), Key,
            new ErrorMonitorClientOptions { Release = "7.1" }))
        {
            Exception thrown;
            try
            {
                Worker.Run();
                throw new InvalidOperationException("unreachable");
            }
            catch (FormatException ex)
            {
                thrown = ex;
            }

            Assert.True(client.Report(thrown, new Dictionary<string, object?> { ["job"] = 12, ["apiSecret"] = "CLIENT-SECRET" }));
            await client.FlushAsync();
            Assert.Equal(0, client.Failed);
        }

        await monitor.FlushAsync();
        var record = Assert.Single(await monitor.Store.ListAsync(ListQuery.All, 0, 10, CancellationToken.None));
        Assert.Equal("System.FormatException", record.ExceptionName);
        Assert.Contains("ErrorMonitor.Facade.Tests.Worker.Run()", record.Traceback, StringComparison.Ordinal);
        Assert.Contains("\"job\":12", record.RequestData, StringComparison.Ordinal);
        Assert.Contains("\"release\":\"7.1\"", record.RequestData, StringComparison.Ordinal);
        Assert.DoesNotContain("CLIENT-SECRET", record.RequestData, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_monitor_that_is_away_costs_retries_not_exceptions_and_a_full_queue_counts_drops()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();

        await using var client = new ErrorMonitorClient(new Uri($"http://127.0.0.1:{port}/dev/error/api/errors"), Key,
            new ErrorMonitorClientOptions { MaxAttempts = 2, QueueCapacity = 1, Timeout = TimeSpan.FromSeconds(2) });
        var accepted = Enumerable.Range(0, 50).Count(i => client.Report(new InvalidOperationException("away " + i)));
        await client.FlushAsync();

        Assert.True(accepted >= 1);
        Assert.Equal(50 - accepted, client.Dropped);
        Assert.Equal(accepted, client.Failed);
        Assert.Throws<ArgumentException>(() => new ErrorMonitorClient(new Uri("ftp://x/"), Key));
    }
}

/// <summary>A worker's code that fails.</summary>
internal static class Worker
{
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    internal static void Run() => throw new FormatException("bad input in job");
}
