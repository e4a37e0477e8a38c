namespace ErrorMonitor.Web

open System
open Microsoft.Extensions.Logging

/// Every log event of ErrorMonitor's shell, defined once with `LoggerMessage.Define` (no formatting and no
/// boxing unless the level is enabled), each with an event id of its own. Call sites name the event, never a
/// format string.
[<RequireQualifiedAccess>]
module internal Log =

    let private storeWriteFailed =
        LoggerMessage.Define<int, int>(
            LogLevel.Warning,
            EventId(1001, "StoreWriteFailed"),
            "ErrorMonitor could not write {Groups} groups to its store (attempt {Attempt}); they are kept and retried"
        )

    let private writerFailed =
        LoggerMessage.Define(LogLevel.Error, EventId(1002, "WriterFailed"), "ErrorMonitor's writer loop failed")

    let private contextBuilderFailed =
        LoggerMessage.Define(
            LogLevel.Warning,
            EventId(1003, "ContextBuilderFailed"),
            "ErrorMonitor's context builder failed"
        )

    let private queueFull =
        LoggerMessage.Define<int, string, int64>(
            LogLevel.Warning,
            EventId(1004, "QueueFull"),
            "ErrorMonitor's queue holds {Groups} groups, its bound: an occurrence of {Hash} was dropped ({Dropped} in all)"
        )

    let private captureFailed =
        LoggerMessage.Define(
            LogLevel.Error,
            EventId(1005, "CaptureFailed"),
            "ErrorMonitor could not record an occurrence"
        )

    let private spilledOnStop =
        LoggerMessage.Define<int, string>(
            LogLevel.Warning,
            EventId(1006, "SpilledOnStop"),
            "ErrorMonitor stopped with {Groups} groups not written; they wait in {Path} for the next start"
        )

    let private fingerprintFailed =
        LoggerMessage.Define(
            LogLevel.Warning,
            EventId(1007, "FingerprintFailed"),
            "ErrorMonitor's fingerprint function failed"
        )

    let private afterWriteFailed =
        LoggerMessage.Define(
            LogLevel.Error,
            EventId(1008, "AfterWriteFailed"),
            "ErrorMonitor could not hand a written batch to its notifiers"
        )

    let private storeBack =
        LoggerMessage.Define<int>(
            LogLevel.Information,
            EventId(1009, "StoreBack"),
            "ErrorMonitor's store is back after {Attempts} failed attempts"
        )

    let private unhandled =
        LoggerMessage.Define(LogLevel.Error, EventId(1010, "UnhandledException"), "An unhandled exception has occurred")

    let private captureLoopFailed =
        LoggerMessage.Define(LogLevel.Error, EventId(1012, "CaptureLoopFailed"), "ErrorMonitor's capture loop failed")

    let private reportFailed =
        LoggerMessage.Define(LogLevel.Error, EventId(1013, "ReportFailed"), "ErrorMonitor could not record a report")

    let private lostOnStop =
        LoggerMessage.Define<int>(
            LogLevel.Error,
            EventId(1014, "LostOnStop"),
            "ErrorMonitor stopped with {Groups} groups not written and spilling off: they are lost"
        )

    let private plugInFailed =
        LoggerMessage.Define<string, string, int>(
            LogLevel.Error,
            EventId(1020, "PlugInFailed"),
            "ErrorMonitor's {What} failed for {Hash} after {Attempts} attempts"
        )

    let private plugInRetry =
        LoggerMessage.Define<string, string, int>(
            LogLevel.Warning,
            EventId(1021, "PlugInRetry"),
            "ErrorMonitor's {What} failed for {Hash} (attempt {Attempt}); retrying"
        )

    let private notifyFailed =
        LoggerMessage.Define(
            LogLevel.Error,
            EventId(1022, "NotifyFailed"),
            "ErrorMonitor could not process notifications"
        )

    let private spillFailed =
        LoggerMessage.Define<string>(
            LogLevel.Error,
            EventId(1030, "SpillFailed"),
            "ErrorMonitor could not save its spill file {Path}"
        )

    let private spillLinesUnreadable =
        LoggerMessage.Define<int, string>(
            LogLevel.Warning,
            EventId(1031, "SpillLinesUnreadable"),
            "ErrorMonitor skipped {Lines} unreadable lines of {Path}"
        )

    let private spillUnreadable =
        LoggerMessage.Define<string>(
            LogLevel.Error,
            EventId(1032, "SpillUnreadable"),
            "ErrorMonitor could not read its spill file {Path}"
        )

    let private spillReplayed =
        LoggerMessage.Define<int, int64, string>(
            LogLevel.Information,
            EventId(1033, "SpillReplayed"),
            "ErrorMonitor replays {Groups} groups ({Occurrences} occurrences) from {Path}"
        )

    let private pruneFailed =
        LoggerMessage.Define(
            LogLevel.Warning,
            EventId(1040, "PruneFailed"),
            "ErrorMonitor could not prune its store; it tries again later"
        )

    let private pruned =
        LoggerMessage.Define<int, int, int>(
            LogLevel.Information,
            EventId(1041, "Pruned"),
            "ErrorMonitor pruned {Groups} groups past their retention, folded {Hours} hourly buckets into days and removed {Days} daily buckets"
        )

    /// 1001: a store write failed; the batch is kept and retried.
    let StoreWriteFailed (logger: ILogger) (ex: exn) (groups: int) (attempt: int) =
        storeWriteFailed.Invoke(logger, groups, attempt, ex)

    /// 1002: the writer loop itself failed.
    let WriterFailed (logger: ILogger) (ex: exn) = writerFailed.Invoke(logger, ex)

    /// 1003: the app's context builder threw.
    let ContextBuilderFailed (logger: ILogger) (ex: exn) = contextBuilderFailed.Invoke(logger, ex)

    /// 1004: the queue was full and an occurrence was dropped (throttled by the caller).
    let QueueFull (logger: ILogger) (groups: int) (hash: string) (dropped: int64) =
        queueFull.Invoke(logger, groups, hash, dropped, null)

    /// 1005: an occurrence could not be recorded.
    let CaptureFailed (logger: ILogger) (ex: exn) = captureFailed.Invoke(logger, ex)

    /// 1006: groups left unwritten at stop went to the spill file.
    let SpilledOnStop (logger: ILogger) (groups: int) (path: string) =
        spilledOnStop.Invoke(logger, groups, path, null)

    /// 1007: the app's fingerprint function threw.
    let FingerprintFailed (logger: ILogger) (ex: exn) = fingerprintFailed.Invoke(logger, ex)

    /// 1008: a written batch could not be handed to the notifiers.
    let AfterWriteFailed (logger: ILogger) (ex: exn) = afterWriteFailed.Invoke(logger, ex)

    /// 1009: the store accepts writes again.
    let StoreBack (logger: ILogger) (attempts: int) =
        storeBack.Invoke(logger, attempts, null)

    /// 1010: the Giraffe-shaped error handler's entry for the app's own log.
    let UnhandledException (logger: ILogger) (ex: exn) = unhandled.Invoke(logger, ex)

    /// 1012: the background capture loop failed.
    let CaptureLoopFailed (logger: ILogger) (ex: exn) = captureLoopFailed.Invoke(logger, ex)

    /// 1013: a report from the capture route could not be recorded.
    let ReportFailed (logger: ILogger) (ex: exn) = reportFailed.Invoke(logger, ex)

    /// 1014: groups left unwritten at stop are lost (no spill file).
    let LostOnStop (logger: ILogger) (groups: int) = lostOnStop.Invoke(logger, groups, null)

    /// 1020: a notifier or ticketing plug-in failed for good.
    let PlugInFailed (logger: ILogger) (ex: exn) (what: string) (hash: string) (attempts: int) =
        plugInFailed.Invoke(logger, what, hash, attempts, ex)

    /// 1021: a notifier or ticketing plug-in failed and is retried.
    let PlugInRetry (logger: ILogger) (ex: exn) (what: string) (hash: string) (attempt: int) =
        plugInRetry.Invoke(logger, what, hash, attempt, ex)

    /// 1022: the notification pass failed.
    let NotifyFailed (logger: ILogger) (ex: exn) = notifyFailed.Invoke(logger, ex)

    /// 1030: the spill file could not be saved.
    let SpillFailed (logger: ILogger) (ex: exn) (path: string) = spillFailed.Invoke(logger, path, ex)

    /// 1031: unreadable lines of the spill file were skipped.
    let SpillLinesUnreadable (logger: ILogger) (lines: int) (path: string) =
        spillLinesUnreadable.Invoke(logger, lines, path, null)

    /// 1032: the spill file could not be read.
    let SpillUnreadable (logger: ILogger) (ex: exn) (path: string) =
        spillUnreadable.Invoke(logger, path, ex)

    /// 1033: groups from the spill file are replayed.
    let SpillReplayed (logger: ILogger) (groups: int) (occurrences: int64) (path: string) =
        spillReplayed.Invoke(logger, groups, occurrences, path, null)

    /// 1040: a pruning round failed (retried at the next one).
    let PruneFailed (logger: ILogger) (ex: exn) = pruneFailed.Invoke(logger, ex)

    /// 1041: a pruning round removed something.
    let Pruned (logger: ILogger) (groups: int) (hours: int) (days: int) =
        pruned.Invoke(logger, groups, hours, days, null)
