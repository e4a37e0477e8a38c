namespace ErrorMonitor.Web

open System
open System.Diagnostics.Metrics
open System.Threading

/// The `ErrorMonitor` meter's instruments (System.Diagnostics.Metrics) for one engine: what was captured, stored,
/// coalesced, dropped, how long the store takes, and how many groups wait. The meter comes from the app's
/// `IMeterFactory` when dependency injection has one (the ASP.NET Core convention: the host owns and disposes
/// it, and tests can listen to one app's meter alone); otherwise the engine creates and disposes its own.
[<Sealed>]
type internal Metrics(factory: IMeterFactory) =
    let owned = isNull factory

    let meter: Meter =
        if owned then
            new Meter(name = Metrics.MeterName)
        else
            factory.Create(MeterOptions(Metrics.MeterName))

    let mutable queueLength: Func<int64> = Func<int64>(fun () -> 0L)

    let captured =
        meter.CreateCounter<int64>("errormonitor.captured", "{occurrence}", "Occurrences captured")

    let stored =
        meter.CreateCounter<int64>("errormonitor.stored", "{occurrence}", "Occurrences written to the store")

    let coalesced =
        meter.CreateCounter<int64>("errormonitor.coalesced", "{occurrence}", "Occurrences merged into a pending group")

    let dropped =
        meter.CreateCounter<int64>(
            "errormonitor.dropped",
            "{occurrence}",
            "Occurrences dropped because the queue was full"
        )

    let storeFailures =
        meter.CreateCounter<int64>(
            "errormonitor.store.failures",
            "{write}",
            "Store writes that failed and will be retried"
        )

    let storeLatency =
        meter.CreateHistogram<float>("errormonitor.store.latency", "ms", "Time to write one batch to the store")

    let _queueLength =
        meter.CreateObservableGauge<int64>(
            "errormonitor.queue.length",
            (fun () -> Volatile.Read(&queueLength).Invoke()),
            "{group}",
            "Groups waiting to be written"
        )

    /// The meter's name.
    static member MeterName = "ErrorMonitor"

    /// Occurrences captured on the request path.
    member _.Captured = captured

    /// Occurrences written to the store.
    member _.Stored = stored

    /// Occurrences merged into a group already waiting to be written.
    member _.Coalesced = coalesced

    /// Occurrences dropped because the queue held as many groups as it may.
    member _.Dropped = dropped

    /// Failed store writes.
    member _.StoreFailures = storeFailures

    /// How long a store write takes.
    member _.StoreLatency = storeLatency

    /// Where the queue-length gauge reads from.
    member _.ObserveQueue(length: Func<int64>) = Volatile.Write(&queueLength, length)

    interface IDisposable with
        /// Disposes the meter when the engine created it (a factory's meters are the host's to dispose).
        member _.Dispose() =
            if owned then
                meter.Dispose()
