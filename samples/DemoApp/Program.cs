using ErrorMonitor;
using Microsoft.AspNetCore.Mvc;

var builder = WebApplication.CreateBuilder(args);

// The demo listens on http://127.0.0.1:5000 unless --urls (or ASPNETCORE_URLS) says otherwise.
if (string.IsNullOrEmpty(builder.Configuration["urls"]))
{
    builder.WebHost.UseUrls("http://127.0.0.1:5000");
}

builder.Services.AddAntiforgery();
builder.Services.AddErrorMonitor(options =>
{
    // Failures of /group/{id} group by their id (a custom fingerprint); everything else by the default.
    options.Fingerprint = (exception, context) =>
        context?.Request.RouteValues["groupId"] is { } id && exception is not null ? $"group:{id}" : null;
});

var app = builder.Build();

app.UseErrorMonitor();
app.UseAntiforgery();
app.MapErrorMonitor();

app.MapGet("/", () => "No Exception!");

app.MapMethods("/value-error", ["GET", "POST"], (HttpContext _) =>
{
    throw new ArgumentException("Value error: the value is not valid");
});

app.MapPost("/post-view", async (HttpRequest request) =>
{
    var form = await request.ReadFormAsync();
    var lookup = form.ToDictionary(kv => kv.Key, kv => kv.Value.ToString());
    return lookup["missing-key"];
}).DisableAntiforgery();

app.MapGet("/handled", (AppErrorMonitor monitor, HttpContext context) =>
{
    try
    {
        throw new InvalidOperationException("Handled and recorded");
    }
    catch (InvalidOperationException ex)
    {
        monitor.RecordException(ex, context);
    }

    return "Recorded a handled exception";
});

app.MapGet("/message", (AppErrorMonitor monitor) =>
{
    monitor.CaptureMessage("A message from the demo app");
    return "Recorded a message";
});

app.MapGet("/group/{groupId}", (string groupId) =>
{
    throw new InvalidOperationException($"Failure of group {groupId}");
});

// Logs an exception at Error through ILogger<T> and answers 200: the logging integration records it.
app.MapGet("/logged-error", (ILogger<Program> logger) =>
{
    try
    {
        throw new TimeoutException("The payment gateway did not answer in time");
    }
    catch (TimeoutException ex)
    {
        logger.LogError(ex, "Charging the card of order {OrderId} failed", 1042);
    }

    return "Logged an error";
});

// Logs two steps at Information, then fails: the occurrence keeps them as breadcrumbs.
app.MapGet("/breadcrumbs", string (ILogger<Program> logger) =>
{
    logger.LogInformation("loading cart");
    logger.LogInformation("charging card");
    throw new InvalidOperationException("The card was declined");
});

// Binds a JSON body with [FromBody] (never buffered by the app), then fails: with APP_ERROR_REQUEST_BODY=small
// the occurrence keeps the body, its password masked.
app.MapPost("/json-body", string ([FromBody] SignIn signIn) =>
    throw new InvalidOperationException($"Signing in {signIn.User} failed"));

// Binds the same body and answers 200: a successful request with a body (the load benchmark's "body" scenario).
app.MapPost("/json-echo", string ([FromBody] SignIn signIn) => $"Hello {signIn.User}");

app.Run();

/// <summary>The demo app (visible to tests that host it).</summary>
public partial class Program
{
}

/// <summary>The body POST /json-body binds.</summary>
/// <param name="User">Who signs in.</param>
/// <param name="Password">Their password (masked in what is recorded).</param>
public sealed record SignIn(
    [property: System.Text.Json.Serialization.JsonPropertyName("user")] string? User,
    [property: System.Text.Json.Serialization.JsonPropertyName("password")] string? Password);
