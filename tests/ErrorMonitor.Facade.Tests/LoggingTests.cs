using ErrorMonitor.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit;

namespace ErrorMonitor.Facade.Tests;

/// <summary>The logging integration, through a real app on Kestrel.</summary>
public sealed class LoggingTests
{
    private sealed class Checkout;

    // The exception /throws-kept threw (the app keeps it and logs it again after the request).
    private static Exception? Kept;

    private static async Task<(TestHost Host, AppErrorMonitor Monitor)> Start(
        IDictionary<string, string?>? settings = null,
        Action<ErrorMonitorOptions>? configure = null)
    {
        var builder = TestHost.Builder(settings);
        builder.Services.AddErrorMonitor(configure);
        var app = builder.Build();
        app.UseErrorMonitor();
        app.MapGet("/logged", (ILogger<Checkout> log) =>
        {
            log.LogError(new InvalidOperationException("card declined"), "Charging order {Order} failed", 5);
            return "logged";
        });
        app.MapGet("/template/{id}", (int id, ILogger<Checkout> log) =>
        {
            log.LogError("Order {Id} could not be shipped", id);
            return "shipped?";
        });
        app.MapGet("/warning", (ILogger<Checkout> log) =>
        {
            log.LogWarning("Stock of {Sku} is low", "A-1");
            return "warned";
        });
        app.MapGet("/hosting-logs", (ILoggerFactory factory) =>
            factory.CreateLogger("Microsoft.AspNetCore.Hosting.Diagnostics").IsEnabled(LogLevel.Critical) ? "enabled" : "disabled");
        app.MapGet("/throws", string () => throw new ApplicationException("unhandled in a route"));
        app.MapGet("/throws-kept", string () => throw (Kept = new TimeoutException("kept by the app, logged later")));
        app.MapGet("/steps", string (ILogger<Checkout> log) =>
        {
            for (var i = 1; i <= 5; i++)
            {
                log.LogInformation("step {Step}", i);
            }

            log.LogInformation("Calling the bank with password=hunter2 and card 4111 1111 1111 1111");
            log.LogDebug("below Information: no breadcrumb");
            throw new NotSupportedException("bank said no");
        });
        var host = await TestHost.StartAsync(app);
        return (host, app.Services.GetRequiredService<AppErrorMonitor>());
    }

    private static async Task<IReadOnlyList<ErrorRecord>> All(AppErrorMonitor monitor)
    {
        await monitor.FlushAsync();
        return await monitor.Store.ListAsync(ListQuery.All, 0, 1000, CancellationToken.None);
    }

    [Fact]
    public async Task Logged_exceptions_and_error_messages_are_recorded_once_each_grouped_by_template()
    {
        var (host, monitor) = await Start();
        await using var _ = host;

        Assert.Equal("logged", await host.Client.GetStringAsync("/logged"));
        await host.Client.GetStringAsync("/template/17");
        await host.Client.GetStringAsync("/template/23");
        await host.Client.GetStringAsync("/warning");
        var thrown = await host.Client.GetAsync("/throws");
        Assert.Equal(500, (int)thrown.StatusCode);

        // The host logs the unhandled exception after the pipeline: wait for that entry to have been seen by
        // waiting for a later request's own entry, then for everything to be stored.
        await host.Client.GetStringAsync("/template/99");
        var records = await All(monitor);

        var logged = Assert.Single(records, r => r.ExceptionName == "System.InvalidOperationException");
        Assert.Equal("card declined", logged.Message);
        Assert.Contains("\"logCategory\":\"ErrorMonitor.Facade.Tests.LoggingTests.Checkout\"", logged.RequestData, StringComparison.Ordinal);
        Assert.Contains("\"logLevel\":\"Error\"", logged.RequestData, StringComparison.Ordinal);

        // One group for the template, whatever the values; its message is the latest formatted text.
        var shipped = Assert.Single(records, r => r.Message.StartsWith("Order ", StringComparison.Ordinal));
        Assert.Equal(3, shipped.Count);
        Assert.Equal("Order 99 could not be shipped", shipped.Message);

        // Below the threshold (Error by default): not recorded.
        Assert.DoesNotContain(records, r => r.Message.Contains("Stock of", StringComparison.Ordinal));

        // The route's exception: the middleware recorded it and the host's own log entry of it added nothing.
        var unhandled = Assert.Single(records, r => r.ExceptionName == "System.ApplicationException");
        Assert.Equal(1, unhandled.Count);
        Assert.Equal(3, records.Count);
    }

    [Fact]
    public async Task The_hosts_request_diagnostics_stay_disabled_so_a_request_starts_no_activity_for_ErrorMonitor()
    {
        // The app's own logging is off (the test host clears its providers): ErrorMonitor's logger is the only one.
        // Were it to want the host's diagnostics at Critical, ASP.NET Core would start an activity and a logging
        // scope for every request, successful ones included.
        var (host, monitor) = await Start();
        await using var _ = host;

        Assert.Equal("disabled", await host.Client.GetStringAsync("/hosting-logs"));
        // The integration is on all the same: a logged exception is recorded.
        await host.Client.GetStringAsync("/logged");
        Assert.Single(await All(monitor), r => r.ExceptionName == "System.InvalidOperationException");
    }

    [Fact]
    public async Task The_threshold_records_warnings_and_None_turns_the_integration_off()
    {
        var (host, monitor) = await Start(new Dictionary<string, string?> { ["APP_ERROR_LOG_LEVEL"] = "Warning" });
        await using (host)
        {
            await host.Client.GetStringAsync("/warning");
            var records = await All(monitor);
            var warning = Assert.Single(records);
            Assert.Equal("Stock of A-1 is low", warning.Message);
            Assert.Contains("\"logLevel\":\"Warning\"", warning.RequestData, StringComparison.Ordinal);
        }

        var (off, offMonitor) = await Start(new Dictionary<string, string?> { ["APP_ERROR_LOG_LEVEL"] = "None" });
        await using (off)
        {
            await off.Client.GetStringAsync("/logged");
            await off.Client.GetStringAsync("/template/1");
            var thrown = await off.Client.GetAsync("/throws");
            Assert.Equal(500, (int)thrown.StatusCode);
            var records = await All(offMonitor);

            // Only what the middleware saw.
            Assert.Equal(["System.ApplicationException"], records.Select(r => r.ExceptionName));
        }
    }

    private static List<(string Level, string Category, string Message)> Breadcrumbs(ErrorRecord record)
    {
        using var doc = System.Text.Json.JsonDocument.Parse(record.RequestData);
        return doc.RootElement.TryGetProperty("breadcrumbs", out var crumbs)
            ? crumbs.EnumerateArray()
                .Select(b => (b.GetProperty("level").GetString()!, b.GetProperty("category").GetString()!, b.GetProperty("message").GetString()!))
                .ToList()
            : [];
    }

    [Fact]
    public async Task A_failing_request_keeps_its_last_log_entries_as_masked_breadcrumbs()
    {
        var (host, monitor) = await Start(new Dictionary<string, string?>
        {
            ["APP_ERROR_BREADCRUMBS"] = "3",
            ["Logging:LogLevel:Default"] = "Information",
        });
        await using var _ = host;

        var failed = await host.Client.GetAsync("/steps");
        Assert.Equal(500, (int)failed.StatusCode);
        var record = Assert.Single(await All(monitor));
        var crumbs = Breadcrumbs(record);

        // The last three Information entries of the app's code in the request (the bound), oldest first; the
        // framework's own entries (routing's "Executed endpoint", the host's "Request starting") are not kept.
        Assert.Equal(["step 4", "step 5"], crumbs.Take(2).Select(c => c.Message));
        Assert.Equal(3, crumbs.Count);
        Assert.All(crumbs, c => Assert.Equal("Information", c.Level));
        Assert.All(crumbs, c => Assert.Equal("ErrorMonitor.Facade.Tests.LoggingTests.Checkout", c.Category));
        Assert.StartsWith("Calling the bank", crumbs[2].Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", record.RequestData, StringComparison.Ordinal);
        Assert.DoesNotContain("4111 1111 1111 1111", record.RequestData, StringComparison.Ordinal);

        // Another request starts with none of them.
        await host.Client.GetAsync("/throws");
        var other = (await All(monitor)).Single(r => r.ExceptionName == "System.ApplicationException");
        Assert.DoesNotContain(Breadcrumbs(other), c => c.Message.StartsWith("step", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Outside_a_request_breadcrumbs_are_those_of_the_async_flow_and_0_keeps_none()
    {
        var (host, monitor) = await Start();
        await using (host)
        {
            var log = host.App.Services.GetRequiredService<ILogger<Checkout>>();
            var hash = await Task.Run(() =>
            {
                log.LogInformation("nightly import started");
                return monitor.RecordException(new IOException("import file missing"));
            });
            await monitor.FlushAsync();
            var record = await monitor.Store.GetAsync(hash!, CancellationToken.None);
            Assert.Equal(["nightly import started"], Breadcrumbs(record).Select(c => c.Message));
        }

        var (off, offMonitor) = await Start(new Dictionary<string, string?> { ["APP_ERROR_BREADCRUMBS"] = "0" });
        await using (off)
        {
            await off.Client.GetAsync("/steps");
            var record = Assert.Single(await All(offMonitor));
            Assert.Empty(Breadcrumbs(record));
        }
    }

    [Fact]
    public async Task The_app_s_own_logging_configuration_does_not_turn_the_integration_off()
    {
        // The app silences its logging; ErrorMonitor's own threshold still decides for its provider.
        var (host, monitor) = await Start(new Dictionary<string, string?> { ["Logging:LogLevel:Default"] = "None" });
        await using var _ = host;

        Assert.Equal("logged", await host.Client.GetStringAsync("/logged"));
        var records = await All(monitor);
        Assert.Equal(["System.InvalidOperationException"], records.Select(r => r.ExceptionName));
    }

    [Fact]
    public async Task A_bad_level_stops_start_up_naming_the_key()
    {
        var builder = TestHost.Builder(new Dictionary<string, string?> { ["APP_ERROR_LOG_LEVEL"] = "loud" });
        builder.Services.AddErrorMonitor();
        var app = builder.Build();
        var error = await Assert.ThrowsAsync<ErrorMonitorConfigException>(() => app.StartAsync());
        Assert.Contains("APP_ERROR_LOG_LEVEL", error.Message, StringComparison.Ordinal);
        await app.DisposeAsync();
    }

    [Fact]
    public async Task The_monitor_never_records_its_own_entries_nor_a_failing_store_s()
    {
        var store = new DictionaryStore();
        var (host, monitor) = await Start(configure: o => o.ErrorStore = store);
        await using var _ = host;
        var factory = host.App.Services.GetRequiredService<ILoggerFactory>();

        // ErrorMonitor's own category.
        factory.CreateLogger("ErrorMonitor").LogError(new TimeoutException("own"), "ErrorMonitor's own entry");

        // A store that logs an error with its exception on each failed write (two), then works.
        store.Logger = factory.CreateLogger<DictionaryStore>();
        Volatile.Write(ref store.FailingUpserts, 2);
        var hash = monitor.RecordException(new FormatException("recorded while the store fails"));
        Assert.NotNull(hash);

        // Once the store writes again, flush twice: whatever the failed writes' log entries recorded (they come
        // after the first flush began) is stored by the second.
        await monitor.FlushAsync();
        var records = await All(monitor);

        Assert.Equal(["System.FormatException"], records.Select(r => r.ExceptionName));
        Assert.True(Volatile.Read(ref store.FailingUpserts) < 0, "the store failed twice before it wrote");
    }

    [Fact]
    public async Task An_exception_the_middleware_recorded_and_the_app_logs_again_after_its_request_is_counted_once()
    {
        var (host, monitor) = await Start();
        await using var _ = host;

        var thrown = await host.Client.GetAsync("/throws-kept");
        Assert.Equal(500, (int)thrown.StatusCode);
        await monitor.FlushAsync();

        // Logged again outside any request (no HttpContext to find it by): still the occurrence recorded.
        var kept = Assert.IsType<TimeoutException>(Kept);
        host.App.Services.GetRequiredService<ILoggerFactory>().CreateLogger<Checkout>()
            .LogError(kept, "the kept exception, logged from a background job");

        var records = await All(monitor);
        var record = Assert.Single(records);
        Assert.Equal("System.TimeoutException", record.ExceptionName);
        Assert.Equal(1, record.Count);
    }

    [Fact]
    public async Task An_entry_with_an_exception_recorded_already_is_not_formatted_and_a_new_one_is()
    {
        var (host, monitor) = await Start();
        await using var _ = host;
        var log = host.App.Services.GetRequiredService<ILoggerFactory>().CreateLogger<Checkout>();
        var formatted = 0;
        string Format(string state, Exception? ex)
        {
            Interlocked.Increment(ref formatted);
            return state;
        }

        // Recorded by the app first, then logged (as the host logs what the middleware recorded): the entry
        // would record nothing, so the integration does not pay for its text.
        var recorded = new InvalidOperationException("recorded, then logged");
        Assert.NotNull(monitor.RecordException(recorded));
        log.Log(LogLevel.Error, default, "entry of a recorded exception", recorded, Format);
        Assert.Equal(0, Volatile.Read(ref formatted));

        // An exception seen first in the log is recorded from the entry, with its text (a breadcrumb of the
        // earlier entry may be formatted with it).
        log.Log(LogLevel.Error, default, "entry of a new exception", new FormatException("logged only"), Format);
        Assert.True(Volatile.Read(ref formatted) >= 1, "the new exception's entry was formatted");

        var records = await All(monitor);
        Assert.Equal(
            ["System.FormatException", "System.InvalidOperationException"],
            records.Select(r => r.ExceptionName).Order(StringComparer.Ordinal));
    }
}
