using ErrorMonitor.Core;
using ErrorMonitor.Web;

namespace ErrorMonitor.Benchmarks;

/// <summary>Bytes allocated by each step of one capture (a diagnostic: `alloc`).</summary>
internal static class AllocationSteps
{
    private static long Measure(string name, Action step)
    {
        for (var i = 0; i < 200; i++)
        {
            step();
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            step();
        }

        var bytes = (GC.GetAllocatedBytesForCurrentThread() - before) / 1000;
        Console.WriteLine($"{name,-40} {bytes,8:N0} B");
        return bytes;
    }

    public static int Run()
    {
        var context = Request.Typical();
        var limits = LimitsModule.defaults;
        var ex = Failure.Throw();
        var reader = new FrameReader(limits);
        var settings = Config.defaults;
        var rule = Config.maskingRule(settings);
        RequestContext request = null!;
        ExceptionInfo info = null!;
        Measure("throw + catch", () => Failure.Throw());
        Measure("RequestReader.read", () => request = RequestReader.read(limits, context));
        Measure("  headers", () => { foreach (var kv in context.Request.Headers) { _ = kv.Value.ToString(); } });
        Measure("  query", () => { foreach (var kv in context.Request.Query) { foreach (var v in kv.Value) { _ = v; } } });
        Measure("  cookies", () => { foreach (var kv in context.Request.Cookies) { _ = kv.Value; } });
        Measure("  route values", () => { foreach (var kv in context.Request.RouteValues) { _ = kv.Value; } });
        Measure("  form", () => { foreach (var kv in context.Request.Form) { foreach (var v in kv.Value) { _ = v; } } });
        Measure("  trace id", () => _ = context.TraceIdentifier);
        Measure("  user", () => RequestReader.userName(context));
        Measure("frames (cached)", () => reader.Read(ex));
        Measure("ExceptionInfo.captureWith", () => info = ExceptionInfoModule.captureWith(limits, Microsoft.FSharp.Core.FuncConvert.FromFunc<Exception, Tuple<Microsoft.FSharp.Collections.FSharpList<Frame>, int>>(reader.Read), ex));
        RequestContext bounded = null!;
        Measure("Events.boundRequest", () => bounded = Events.boundRequest(limits, request));
        RequestContext masked = null!;
        Measure("Masking.request", () => masked = Masking.request(rule, settings.MaskWith, bounded));
        Measure("  path (free text)", () => Masking.freeText(rule, settings.MaskWith, bounded.Path));
        Measure("  headers", () => Masking.headers(rule, settings.MaskWith, bounded.Headers));
        Measure("    a value's secret shapes", () => Masking.secrets(settings.MaskWith, "header value 12"));
        Measure("    a key's rule", () => rule.Invoke("X-Header-12"));
        Measure("  query", () => Masking.pairs(rule, bounded.Query));
        Measure("  form", () => Masking.pairs(rule, bounded.Form));
        Measure("  route values", () => Masking.pairs(rule, bounded.RouteValues));
        Measure("Events.requestDataText", () => Events.requestDataText(Microsoft.FSharp.Core.FSharpOption<RequestContext>.Some(masked), Microsoft.FSharp.Collections.FSharpList<Tuple<string, Data>>.Empty));
        Measure("Masking.exceptionInfo", () => Masking.exceptionInfo(rule, settings.MaskWith, info));
        Measure("Traceback.format", () => Traceback.format(limits, info));
        Measure("Fingerprint.ofException", () => Fingerprint.ofException(info));
        var capture = new Capture(Microsoft.FSharp.Core.FSharpOption<RequestContext>.Some(request), Subject.NewException(info), Microsoft.FSharp.Collections.FSharpList<Tuple<string, Data>>.Empty, DateTimeOffset.UtcNow, "1.4.2", "Production");
        Measure("Events.build (all)", () => Events.build(settings, rule, limits, null, capture));
        return 0;
    }
}
