using ErrorMonitor;
using ErrorMonitor.Web;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers ErrorMonitor with an app's services.</summary>
public static class ErrorMonitorServiceCollectionExtensions
{
    /// <summary>
    /// Adds ErrorMonitor: the <see cref="AppErrorMonitor"/>, its background writer, an
    /// <see cref="IExceptionHandler"/> so apps using <c>UseExceptionHandler</c> are recorded too, a logging
    /// provider (log entries with an exception at Error and above become occurrences; entries without one at or
    /// above APP_ERROR_LOG_LEVEL, default Error, become messages grouped by their template), and a health
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

        // A second call only adds its options: the engine, hosted service and health check are registered once.
        if (services.Any(d => d.ServiceType == typeof(Engine)))
        {
            return services;
        }

        services.AddHttpContextAccessor();
        services.AddAntiforgery();
        services.TryAddSingleton(sp => EngineBuilder.Build(
            sp.GetService<IConfiguration>(),
            sp.GetRequiredService<IOptions<ErrorMonitorOptions>>().Value,
            sp.GetService<IHostEnvironment>()?.ContentRootPath,
            sp.GetService<ILoggerFactory>()?.CreateLogger(ErrorMonitor.Core.LogCapture.OwnCategory),
            sp));
        services.TryAddSingleton(sp => new AppErrorMonitor(
            sp.GetRequiredService<Engine>(),
            sp.GetService<IHttpContextAccessor>()));

        // The hosted service resolves the engine when the host starts, so a bad configuration stops start-up
        // (an ErrorMonitorConfigException naming the key) before the first request: the options are validated on start.
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, EngineHostedService>(
            sp => new EngineHostedService(sp.GetRequiredService<Engine>())));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IExceptionHandler, ErrorMonitorExceptionHandler>());

        // The logging integration: its own threshold (APP_ERROR_LOG_LEVEL) decides, whatever the app's logging
        // configuration says for its other providers.
        services.TryAddEnumerable(ServiceDescriptor.Singleton<ILoggerProvider, MonitorLoggerProvider>(
            sp => new MonitorLoggerProvider(sp.GetRequiredService<Engine>, sp.GetService<IHttpContextAccessor>())));
        services.Configure<LoggerFilterOptions>(o => o.AddFilter<MonitorLoggerProvider>(null, LogLevel.Trace));
        services.AddHealthChecks().Add(new HealthCheckRegistration(
            HealthCheckNames.HealthCheckName,
            sp => new ErrorMonitorHealthCheck(sp.GetRequiredService<Engine>()),
            failureStatus: null,
            tags: [HealthCheckNames.HealthCheckName]));
        return services;
    }
}
