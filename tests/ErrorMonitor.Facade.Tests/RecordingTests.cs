using System.Net;
using ErrorMonitor.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace ErrorMonitor.Facade.Tests;

public sealed class RecordingTests
{
    private static async Task<IReadOnlyList<ErrorRecord>> All(AppErrorMonitor monitor)
    {
        await monitor.FlushAsync();
        return await monitor.Store.ListAsync(ListQuery.All, 0, 1000, CancellationToken.None);
    }

    private static async Task<(TestHost Host, AppErrorMonitor Monitor)> StartDi(Action<WebApplication> routes, Action<ErrorMonitorOptions>? configure = null)
    {
        var builder = TestHost.Builder();
        builder.Services.AddErrorMonitor(configure);
        var app = builder.Build();
        app.UseErrorMonitor();
        routes(app);
        var host = await TestHost.StartAsync(app);
        return (host, app.Services.GetRequiredService<AppErrorMonitor>());
    }

    [Fact]
    public async Task RecordException_stores_a_handled_exception_with_its_request()
    {
        var (host, monitor) = await StartDi(app => app.MapGet("/handled", (AppErrorMonitor m, HttpContext ctx) =>
        {
            try
            {
                throw new InvalidOperationException("handled 42");
            }
            catch (InvalidOperationException ex)
            {
                return m.RecordException(ex, ctx) ?? "none";
            }
        }));
        await using var _ = host;

        var hash = await host.Client.GetStringAsync("/handled?q=1");

        var records = await All(monitor);
        var record = Assert.Single(records);
        Assert.Equal(hash, record.Hash);
        Assert.Equal("/handled", record.Path);
        Assert.Equal("System.InvalidOperationException", record.ExceptionName);
        Assert.Contains("\"q\":\"1\"", record.RequestData, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RecordExceptionAsync_completes_once_the_record_is_stored()
    {
        var (host, monitor) = await StartDi(_ => { });
        await using var _ = host;

        var hash = await monitor.RecordExceptionAsync(new TimeoutException("slow"));

        Assert.NotNull(hash);
        var record = await monitor.Store.GetAsync(hash!, CancellationToken.None);
        Assert.NotNull(record);
        Assert.Equal(1, record.Count);
        Assert.Equal("", record.Path);
    }

    [Fact]
    public async Task CaptureMessage_records_a_message_grouped_despite_ids()
    {
        var (host, monitor) = await StartDi(_ => { });
        await using var _ = host;

        var first = monitor.CaptureMessage("Job 17 took too long");
        var second = monitor.CaptureMessage("Job 99 took too long");

        Assert.Equal(first, second);
        var record = Assert.Single(await All(monitor));
        Assert.Equal("Message", record.ExceptionName);
        Assert.Equal(2, record.Count);
    }

    [Fact]
    public async Task Track_records_and_rethrows_unless_silent()
    {
        var (host, monitor) = await StartDi(_ => { });
        await using var _ = host;

        Assert.Throws<FormatException>(() => monitor.Track(() => throw new FormatException("loud")));
        var value = monitor.Track<int>(() => throw new ArithmeticException("quiet"), silent: true);
        await Assert.ThrowsAsync<IOException>(() => monitor.TrackAsync(() => throw new IOException("async loud")));
        var asyncValue = await monitor.TrackAsync<string>(() => Task.FromException<string>(new KeyNotFoundException("async quiet")), silent: true);

        Assert.Equal(0, value);
        Assert.Null(asyncValue);
        var names = (await All(monitor)).Select(r => r.ExceptionName).Order().ToArray();
        Assert.Equal(
            ["System.ArithmeticException", "System.Collections.Generic.KeyNotFoundException", "System.FormatException", "System.IO.IOException"],
            names);
    }

    [Fact]
    public async Task The_endpoint_filter_records_and_rethrows_or_answers_500_when_silent()
    {
        var builder = TestHost.Builder();
        builder.Services.AddErrorMonitor();
        var app = builder.Build();
        app.MapGet("/loud", string () => throw new InvalidOperationException("loud")).TrackErrors();
        var group = app.MapGroup("/quiet").TrackErrors(silent: true);
        group.MapGet("/x", string () => throw new NotSupportedException("quiet"));
        await using var host = await TestHost.StartAsync(app);
        var monitor = app.Services.GetRequiredService<AppErrorMonitor>();

        var loud = await host.Client.GetAsync("/loud");
        var quiet = await host.Client.GetAsync("/quiet/x");

        Assert.Equal(HttpStatusCode.InternalServerError, loud.StatusCode);
        Assert.Equal(HttpStatusCode.InternalServerError, quiet.StatusCode);
        Assert.Contains("recorded", await quiet.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var names = (await All(monitor)).Select(r => r.ExceptionName).Order().ToArray();
        Assert.Equal(["System.InvalidOperationException", "System.NotSupportedException"], names);
    }

    [Fact]
    public async Task Apps_using_UseExceptionHandler_are_recorded_through_IExceptionHandler()
    {
        var builder = TestHost.Builder();
        builder.Services.AddErrorMonitor();
        var app = builder.Build();
        app.UseExceptionHandler(eh => eh.Run(ctx =>
        {
            ctx.Response.StatusCode = 418;
            var feature = ctx.Features.Get<IExceptionHandlerFeature>();
            return ctx.Response.WriteAsync("app handler saw " + feature?.Error.GetType().Name);
        }));
        app.MapGet("/fail", string () => throw new InvalidCastException("cast"));
        await using var host = await TestHost.StartAsync(app);
        var monitor = app.Services.GetRequiredService<AppErrorMonitor>();

        var response = await host.Client.GetAsync("/fail");

        Assert.Equal((HttpStatusCode)418, response.StatusCode);
        Assert.Equal("app handler saw InvalidCastException", await response.Content.ReadAsStringAsync());
        var record = Assert.Single(await All(monitor));
        Assert.Equal("System.InvalidCastException", record.ExceptionName);
        Assert.Equal("/fail", record.Path);
    }

    [Fact]
    public async Task Track_with_a_scope_records_its_extras_and_RecordException_keeps_a_message()
    {
        var (host, monitor) = await StartDi(_ => { });
        await using var _ = host;

        // The seed's capturing scope: extras set for the work, the exception recorded and swallowed (or rethrown).
        monitor.Track(() => throw new InvalidOperationException("in a tracked scope"), s => s.SetExtra("cart", 7), silent: true);
        await Assert.ThrowsAsync<TimeoutException>(() => monitor.TrackAsync(
            () => throw new TimeoutException("async tracked"), s => s.SetExtra("attempt", 3)));
        var value = monitor.Track<int>(() => throw new ArithmeticException("valued"), s => s.SetExtra("step", "sum"), silent: true);
        Assert.Equal(0, value);

        // The seed's capture_message inside an except: the exception, with the message as context.
        string? handled;
        try
        {
            throw new KeyNotFoundException("sku 12");
        }
        catch (KeyNotFoundException ex)
        {
            handled = monitor.RecordException(ex, "stock lookup failed");
        }

        var records = await All(monitor);
        string DataOf(string type) => records.Single(r => r.ExceptionName == type).RequestData;
        Assert.Contains("\"cart\":7", DataOf("System.InvalidOperationException"), StringComparison.Ordinal);
        Assert.Contains("\"attempt\":3", DataOf("System.TimeoutException"), StringComparison.Ordinal);
        Assert.Contains("\"step\":\"sum\"", DataOf("System.ArithmeticException"), StringComparison.Ordinal);
        var lookup = records.Single(r => r.Hash == handled);
        Assert.Equal("System.Collections.Generic.KeyNotFoundException", lookup.ExceptionName);
        Assert.Contains("\"message\":\"stock lookup failed\"", lookup.RequestData, StringComparison.Ordinal);

        // The scopes closed with their work: a later record carries none of their extras.
        var after = monitor.RecordException(new ApplicationException("after"));
        await monitor.FlushAsync();
        var later = await monitor.Store.GetAsync(after!, CancellationToken.None);
        Assert.DoesNotContain("cart", later.RequestData, StringComparison.Ordinal);
        Assert.DoesNotContain("stock lookup", later.RequestData, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_scope_adds_its_extras_to_what_is_recorded_inside_it()
    {
        var (host, monitor) = await StartDi(_ => { });
        await using var _ = host;

        string? inside;
        using (monitor.BeginScope().SetExtra("order", 42).SetExtra("apiSecret", "SCOPE-SECRET"))
        {
            using (monitor.BeginScope().SetExtra("step", "charge"))
            {
                inside = monitor.RecordException(new InvalidOperationException("in scope"));
            }
        }

        var outside = monitor.RecordException(new ApplicationException("outside"));
        await monitor.FlushAsync();
        var recordInside = await monitor.Store.GetAsync(inside!, CancellationToken.None);
        var recordOutside = await monitor.Store.GetAsync(outside!, CancellationToken.None);

        Assert.Contains("\"order\":42", recordInside.RequestData, StringComparison.Ordinal);
        Assert.Contains("\"step\":\"charge\"", recordInside.RequestData, StringComparison.Ordinal);
        Assert.DoesNotContain("SCOPE-SECRET", recordInside.RequestData, StringComparison.Ordinal);
        Assert.DoesNotContain("order", recordOutside.RequestData, StringComparison.Ordinal);
    }
}
