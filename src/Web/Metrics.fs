namespace ErrorMonitor.Web

open System
open System.Collections.Concurrent
open System.Diagnostics.Metrics

/// The `ErrorMonitor` meter (System.Diagnostics.Metrics): what was captured, stored, coalesced, dropped,
/// how long the store takes. The queue length is observed per engine.
[<RequireQualifiedAccess>]
module internal Metrics =

    /// The meter's name.
    [<Literal>]
    let MeterName = "ErrorMonitor"

    /// The meter.
    let meter = new Meter(MeterName)

    /// Occurrences captured on the request path.
    let captured =
        meter.CreateCounter<int64>("errormonitor.captured", "{occurrence}", "Occurrences captured")

    /// Occurrences written to the store.
    let stored =
        meter.CreateCounter<int64>("errormonitor.stored", "{occurrence}", "Occurrences written to the store")

    /// Occurrences merged into a group already waiting to be written.
    let coalesced =
        meter.CreateCounter<int64>("errormonitor.coalesced", "{occurrence}", "Occurrences merged into a pending group")

    /// Occurrences dropped because the queue held as many groups as it may.
    let dropped =
        meter.CreateCounter<int64>(
            "errormonitor.dropped",
            "{occurrence}",
            "Occurrences dropped because the queue was full"
        )

    /// Failed store writes.
    let storeFailures =
        meter.CreateCounter<int64>(
            "errormonitor.store.failures",
            "{write}",
            "Store writes that failed and will be retried"
        )

    /// How long a store write takes.
    let storeLatency =
        meter.CreateHistogram<float>("errormonitor.store.latency", "ms", "Time to write one batch to the store")

    /// The queues of the live engines, for the queue-length gauge.
    let queues = ConcurrentDictionary<obj, Func<int64>>()

    /// Groups waiting to be written, over every engine of the process.
    let queueLength =
        meter.CreateObservableGauge<int64>(
            "errormonitor.queue.length",
            (fun () -> queues.Values |> Seq.sumBy (fun f -> f.Invoke())),
            "{group}",
            "Groups waiting to be written"
        )
