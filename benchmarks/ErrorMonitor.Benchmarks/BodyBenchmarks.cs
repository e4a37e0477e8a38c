using System.Text;
using BenchmarkDotNet.Attributes;
using ErrorMonitor.Web;
using Microsoft.AspNetCore.Http;

namespace ErrorMonitor.Benchmarks;

/// <summary>
/// What APP_ERROR_REQUEST_BODY costs a successful request: the capture middleware around a handler that does
/// nothing (a GET without a body) or reads a small JSON body to its end, with the setting off (none) and on
/// (small). Run: <c>dotnet benchmarks/ErrorMonitor.Benchmarks/bin/Release/net10.0/ErrorMonitor.Benchmarks.dll --filter *Body*</c>.
/// </summary>
[MemoryDiagnoser]
public class BodyBenchmarks
{
    private static readonly byte[] Json = Encoding.UTF8.GetBytes("{\"user\": \"ada\", \"password\": \"hunter2\"}");
    private readonly byte[] _scratch = new byte[4096];
    private ErrorMonitorMiddleware _off = null!;
    private ErrorMonitorMiddleware _on = null!;
    private ErrorMonitorMiddleware _offReading = null!;
    private ErrorMonitorMiddleware _onReading = null!;
    private DefaultHttpContext _get = null!;
    private DefaultHttpContext _post = null!;
    private MemoryStream _body = null!;

    private static Engine EngineWith(string body) => EngineFactory.create(new EngineSources
    {
        Values = new Dictionary<string, string>
        {
            ["APP_ERROR_STORE"] = "memory",
            ["APP_ERROR_SPILL_FILE"] = "none",
            ["APP_ERROR_REQUEST_BODY"] = body,
        },
    });

    [GlobalSetup]
    public void Setup()
    {
        RequestDelegate nothing = _ => Task.CompletedTask;
        RequestDelegate reading = async ctx =>
        {
            while (await ctx.Request.Body.ReadAsync(_scratch) > 0)
            {
            }
        };
        var off = EngineWith("none");
        var on = EngineWith("small");
        _off = new ErrorMonitorMiddleware(nothing, off);
        _on = new ErrorMonitorMiddleware(nothing, on);
        _offReading = new ErrorMonitorMiddleware(reading, off);
        _onReading = new ErrorMonitorMiddleware(reading, on);
        _get = new DefaultHttpContext();
        _get.Request.Method = "GET";
        _get.Request.Path = "/";
        _body = new MemoryStream(Json);
        _post = new DefaultHttpContext();
        _post.Request.Method = "POST";
        _post.Request.Path = "/json-echo";
        _post.Request.ContentType = "application/json";
        _post.Request.ContentLength = Json.Length;
    }

    [Benchmark(Baseline = true, Description = "GET, body none")]
    public Task GetOff() => _off.InvokeAsync(_get);

    [Benchmark(Description = "GET, body small")]
    public Task GetOn() => _on.InvokeAsync(_get);

    [Benchmark(Description = "POST JSON read, body none")]
    public Task PostOff()
    {
        _body.Position = 0;
        _post.Request.Body = _body;
        return _offReading.InvokeAsync(_post);
    }

    [Benchmark(Description = "POST JSON read, body small")]
    public Task PostOn()
    {
        _body.Position = 0;
        _post.Request.Body = _body;
        return _onReading.InvokeAsync(_post);
    }
}
