using ErrorMonitor.Web;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;

namespace ErrorMonitor;

/// <summary>Maps the pages and the JSON API under the configured prefix.</summary>
internal static class ErrorMonitorEndpoints
{
    internal static RouteGroupBuilder Map(IEndpointRouteBuilder endpoints, Engine engine, ErrorMonitorOptions options)
    {
        var group = endpoints.MapGroup(engine.Settings.UrlPrefix);
        return group;
    }
}
