namespace ErrorMonitor.Core

open System

/// How values are shown on the pages: relative times, shortened paths.
[<RequireQualifiedAccess>]
module internal Display =

    /// "just now", "5 seconds ago", "1 minute ago", "3 hours ago", "2 days ago", "4 months ago", "1 year ago".
    let relative (now: DateTimeOffset) (t: DateTimeOffset) : string =
        let span = now - t

        let ago (n: int64) (unit: string) =
            if n = 1L then
                sprintf "1 %s ago" unit
            else
                sprintf "%d %ss ago" n unit

        if span < TimeSpan.FromSeconds 10.0 then
            "just now"
        elif span < TimeSpan.FromMinutes 1.0 then
            ago (int64 span.TotalSeconds) "second"
        elif span < TimeSpan.FromHours 1.0 then
            ago (int64 span.TotalMinutes) "minute"
        elif span < TimeSpan.FromDays 1.0 then
            ago (int64 span.TotalHours) "hour"
        elif span < TimeSpan.FromDays 30.0 then
            ago (int64 span.TotalDays) "day"
        elif span < TimeSpan.FromDays 365.0 then
            ago (int64 (span.TotalDays / 30.0)) "month"
        else
            ago (int64 (span.TotalDays / 365.0)) "year"

    /// The exact UTC time, as shown in tooltips: "2026-01-02 03:04:05 UTC".
    let exact (t: DateTimeOffset) : string =
        t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", Globalization.CultureInfo.InvariantCulture)
        + " UTC"

    /// A path of at most `max` characters: its start and end around an ellipsis.
    let shorten (max: int) (path: string) : string =
        let path = if isNull path then "" else path

        if path.Length <= max || max < 5 then
            path
        else
            let tail = (max - 1) / 2
            let head = max - 1 - tail
            path.Substring(0, head) + "…" + path.Substring(path.Length - tail)
