using ErrorMonitor.Web;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;

namespace ErrorMonitor;

/// <summary>Records exceptions that reach <c>UseExceptionHandler</c>, then lets the app's handling go on.</summary>
internal sealed class ErrorMonitorExceptionHandler(Engine engine) : IExceptionHandler
{
    public ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        engine.RecordDeferred(exception, httpContext);
        return ValueTask.FromResult(false);
    }
}

/// <summary>Records what a minimal-API endpoint throws (the seed's decorator on a handler).</summary>
internal sealed class ErrorMonitorEndpointFilter(AppErrorMonitor? monitor, bool silent) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        try
        {
            return await next(context).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            var target = monitor ?? context.HttpContext.RequestServices.GetService(typeof(AppErrorMonitor)) as AppErrorMonitor;
            target?.RecordException(ex, context.HttpContext);
            if (!silent)
            {
                throw;
            }

            return Results.Problem(statusCode: StatusCodes.Status500InternalServerError, title: "An error occurred and was recorded.");
        }
    }
}
