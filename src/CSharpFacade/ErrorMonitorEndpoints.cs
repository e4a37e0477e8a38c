using ErrorMonitor.Web;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.FSharp.Core;

namespace ErrorMonitor;

/// <summary>Maps the pages and the JSON API under the configured prefix (the F# handlers do the work).</summary>
internal static class ErrorMonitorEndpoints
{
    internal static RouteGroupBuilder Map(IEndpointRouteBuilder endpoints, Engine engine, ErrorMonitorOptions options)
    {
        var permission = options.ViewPermission is { } f
            ? FSharpOption<Func<HttpContext, bool>>.Some(f)
            : FSharpOption<Func<HttpContext, bool>>.None;
        return Browse.mapEndpoints(endpoints, new BrowseOptions(engine, permission));
    }
}
