using ErrorMonitor;
using ErrorMonitor.Web;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers ErrorMonitor with an app's services.</summary>
public static class ErrorMonitorServiceCollectionExtensions
{
    /// <summary>
    /// Adds ErrorMonitor: the <see cref="AppErrorMonitor"/>, its background writer, and an
    /// <see cref="IExceptionHandler"/> so apps using <c>UseExceptionHandler</c> are recorded too, and a health
    /// check named "errormonitor" for the store (<c>app.MapHealthChecks("/health")</c> shows it). Settings come
    /// from the APP_ERROR_* keys (root or <c>ErrorMonitor</c> section) and from <paramref name="configure"/>;
    /// a bad configuration stops start-up with an <see cref="ErrorMonitorConfigException"/> naming the key.
    /// </summary>
    /// <param name="services">The app's services.</param>
    /// <param name="configure">Options in code; they win over configuration keys.</param>
    public static IServiceCollection AddErrorMonitor(
        this IServiceCollection services,
        Action<ErrorMonitorOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<ErrorMonitorOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        services.AddHttpContextAccessor();
        services.AddAntiforgery();
        services.TryAddSingleton(sp => EngineBuilder.Build(
            sp.GetService<IConfiguration>(),
            sp.GetRequiredService<IOptions<ErrorMonitorOptions>>().Value,
            sp.GetService<IHostEnvironment>()?.ContentRootPath,
            sp.GetService<ILoggerFactory>()?.CreateLogger("ErrorMonitor"),
            sp));
        services.TryAddSingleton(sp => new AppErrorMonitor(
            sp.GetRequiredService<Engine>(),
            sp.GetService<IHttpContextAccessor>()));
        services.AddHostedService(sp => new EngineHostedService(sp.GetRequiredService<Engine>()));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IExceptionHandler, ErrorMonitorExceptionHandler>());
        services.AddHealthChecks().AddCheck<ErrorMonitorHealthCheck>("errormonitor", tags: ["errormonitor"]);
        return services;
    }
}
