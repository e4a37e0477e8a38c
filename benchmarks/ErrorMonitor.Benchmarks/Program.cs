using BenchmarkDotNet.Running;

namespace ErrorMonitor.Benchmarks;

/// <summary>Runs the benchmarks (pass BenchmarkDotNet's own arguments, e.g. --filter *Capture*).</summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "alloc")
        {
            return AllocationSteps.Run();
        }

        if (args.Length > 0 && args[0] == "store")
        {
            return StoreFigures.Run(args[1..]).GetAwaiter().GetResult();
        }

        if (args.Length > 0 && args[0] == "record-envelope")
        {
            return RecordEnvelope.Run(args[1..]);
        }

        if (args.Length > 0 && args[0] == "retention")
        {
            return RetentionFigures.Run(args[1..]).GetAwaiter().GetResult();
        }

        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }
}
