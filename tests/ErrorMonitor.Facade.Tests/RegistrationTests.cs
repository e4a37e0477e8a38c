using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Xunit;

namespace ErrorMonitor.Facade.Tests;

public sealed class RegistrationTests
{
    [Fact]
    public async Task AddErrorMonitor_twice_registers_once_and_keeps_both_option_callbacks()
    {
        var builder = TestHost.Builder();
        builder.Services.AddErrorMonitor(o => o.SubjectPrefix = "[first]");
        builder.Services.AddErrorMonitor(o => o.UrlPrefix = "/second");
        builder.Services.AddErrorMonitor();

        var hosted = builder.Services.Count(d => d.ServiceType == typeof(IHostedService)
            && (d.ImplementationType ?? d.ImplementationFactory?.Method.ReturnType)?.Name == "EngineHostedService");
        Assert.Equal(1, hosted);
        Assert.Equal(1, builder.Services.Count(d => d.ServiceType == typeof(AppErrorMonitor)));

        var app = builder.Build();
        app.UseErrorMonitor();
        app.MapErrorMonitor();
        await using var host = await TestHost.StartAsync(app);

        var checks = app.Services.GetRequiredService<IOptions<HealthCheckServiceOptions>>().Value.Registrations;
        Assert.Single(checks, r => r.Name == "errormonitor");
        var options = app.Services.GetRequiredService<IOptions<ErrorMonitorOptions>>().Value;
        Assert.Equal("[first]", options.SubjectPrefix);
        Assert.Equal("/second", options.UrlPrefix);

        // The pages answer at the prefix the second call set: one engine, built from every callback.
        var response = await host.Client.GetAsync("/second/api/errors");
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        var report = await app.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        Assert.Equal(HealthStatus.Healthy, report.Entries["errormonitor"].Status);
    }

    [Fact]
    public async Task A_table_of_the_configured_name_with_another_shape_stops_start_up_naming_it()
    {
        var builder = TestHost.Builder(new Dictionary<string, string?> { ["APP_ERROR_TABLE"] = "orders" });
        var file = Path.Combine(builder.Environment.ContentRootPath, "errormonitor.db");
        await using (var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={file}"))
        {
            await c.OpenAsync();
            await using var cmd = c.CreateCommand();
            cmd.CommandText = "CREATE TABLE orders (id INTEGER PRIMARY KEY, hash TEXT, total REAL)";
            await cmd.ExecuteNonQueryAsync();
        }

        builder.Services.AddErrorMonitor();
        var app = builder.Build();
        app.UseErrorMonitor();

        var error = await Assert.ThrowsAsync<ErrorMonitorConfigException>(() => app.StartAsync());
        Assert.Contains("'orders'", error.Message, StringComparison.Ordinal);
        Assert.Contains("'host'", error.Message, StringComparison.Ordinal);
        await app.DisposeAsync();

        // The app's own table is as it was: nothing added to it.
        await using var check = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={file}");
        await check.OpenAsync();
        await using var columns = check.CreateCommand();
        columns.CommandText = "SELECT group_concat(name) FROM pragma_table_info('orders')";
        Assert.Equal("id,hash,total", (string?)await columns.ExecuteScalarAsync());
    }

    [Fact]
    public async Task A_bad_configuration_stops_start_up_before_the_first_request()
    {
        var builder = TestHost.Builder(new Dictionary<string, string?> { ["APP_DEFAULT_LIST_SIZE"] = "0" });
        builder.Services.AddErrorMonitor();
        var app = builder.Build();

        // No request path touched the engine yet (UseErrorMonitor would build it too): starting the host does.
        var error = await Assert.ThrowsAsync<ErrorMonitorConfigException>(() => app.StartAsync());
        Assert.Contains("APP_DEFAULT_LIST_SIZE", error.Message, StringComparison.Ordinal);
        await app.DisposeAsync();
    }
}
