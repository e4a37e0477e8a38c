using ErrorMonitor;
using ErrorMonitor.Web;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Adds ErrorMonitor's capture middleware, pages and endpoint filter to an app.</summary>
public static class ErrorMonitorApplicationBuilderExtensions
{
    /// <summary>
    /// Adds the capture middleware: every unhandled exception of the requests after it is recorded and
    /// continues unchanged. Call it early, after <c>UseExceptionHandler</c> if the app has one.
    /// </summary>
    /// <param name="app">The app.</param>
    public static IApplicationBuilder UseErrorMonitor(this IApplicationBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var engine = app.ApplicationServices.GetService<Engine>()
            ?? throw new InvalidOperationException(
                "ErrorMonitor is not registered: call builder.Services.AddErrorMonitor() before app.UseErrorMonitor().");
        return Middleware.useIn(app, engine);
    }

    /// <summary>
    /// Maps the pages and JSON API under APP_ERROR_URL_PREFIX (default /dev/error). Returns the route group,
    /// so <c>.RequireAuthorization("policy")</c> can replace the local-only default.
    /// </summary>
    /// <param name="endpoints">The app's endpoints.</param>
    public static RouteGroupBuilder MapErrorMonitor(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var services = endpoints.ServiceProvider;
        var engine = services.GetService<Engine>()
            ?? throw new InvalidOperationException(
                "ErrorMonitor is not registered: call builder.Services.AddErrorMonitor() before app.MapErrorMonitor().");
        var options = services.GetRequiredService<IOptions<ErrorMonitorOptions>>().Value;
        return ErrorMonitorEndpoints.Map(endpoints, engine, options);
    }

    /// <summary>Records what the endpoints of <paramref name="builder"/> throw (the seed's decorator).</summary>
    /// <param name="builder">An endpoint or a route group.</param>
    /// <param name="silent">True: record and answer 500 with a problem body; false: record and rethrow.</param>
    /// <param name="monitor">The monitor to record into; default the one registered with AddErrorMonitor.</param>
    public static TBuilder TrackErrors<TBuilder>(this TBuilder builder, bool silent = false, AppErrorMonitor? monitor = null)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.AddEndpointFilter(new ErrorMonitorEndpointFilter(monitor, silent));
    }
}
