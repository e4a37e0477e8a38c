// The README's three lines in a fresh `dotnet new web` app, plus a route that fails. With CONSUMER_STORE=own
// the app brings its own IErrorStore (EveryNamespace.cs).
using CSharpConsumer;

var builder = WebApplication.CreateBuilder(args);
builder.Services.AddMonitor(ownStore: Environment.GetEnvironmentVariable("CONSUMER_STORE") == "own");
var app = builder.Build();
app.UseErrorMonitor();
app.MapErrorMonitor();

app.MapGet("/", () => "Hello from a consumer app");
app.MapGet("/consumer-failure", string () => throw new InvalidOperationException("A consumer app failed"));

app.Run();
