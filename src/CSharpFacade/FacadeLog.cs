using Microsoft.Extensions.Logging;

namespace ErrorMonitor;

/// <summary>The facade's log events (source-generated), with event ids beside the shell's (1001-1033).</summary>
internal static partial class FacadeLog
{
    [LoggerMessage(EventId = 1011, EventName = "NoAntiforgery", Level = LogLevel.Warning,
        Message = "ErrorMonitor's delete button needs ASP.NET Core antiforgery: call builder.Services.AddAntiforgery()")]
    internal static partial void NoAntiforgery(ILogger logger);
}
