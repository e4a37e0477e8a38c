using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ErrorMonitor.Facade.Tests;

/// <summary>A real app on Kestrel at 127.0.0.1, a port the OS picks, with its own temp folder.</summary>
public sealed class TestHost : IAsyncDisposable
{
    private TestHost(WebApplication app, HttpClient client, string folder)
    {
        App = app;
        Client = client;
        Folder = folder;
    }

    public WebApplication App { get; }

    public HttpClient Client { get; }

    public string Folder { get; }

    public static WebApplicationBuilder Builder(IDictionary<string, string?>? settings = null)
    {
        var folder = Path.Combine(Path.GetTempPath(), "errormonitor-facade-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            ContentRootPath = folder,
            EnvironmentName = "Production",
        });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Configuration.AddInMemoryCollection(settings ?? new Dictionary<string, string?>());
        return builder;
    }

    public static async Task<TestHost> StartAsync(WebApplication app)
    {
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new TestHost(app, new HttpClient { BaseAddress = new Uri(address) }, app.Environment.ContentRootPath);
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}
