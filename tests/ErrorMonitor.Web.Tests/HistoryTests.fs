/// History through the app: occurrences counted in the hour they happened (across hours and days, also when
/// one pass of repeats spans an hour), the JSON series, the charts on the pages, and a deleted group leaving
/// the all-groups history.
module internal ErrorMonitor.Web.Tests.HistoryTests

open System
open System.Text.Json
open System.Text.RegularExpressions
open Microsoft.AspNetCore.Builder
open Microsoft.Extensions.DependencyInjection
open Expecto
open ErrorMonitor
open ErrorMonitor.Core
open ErrorMonitor.Web.Tests.TestApp

let private routes (app: WebApplication) =
    app.MapGet(
        "/orders/{id}",
        Func<string, string>(fun id -> raise (InvalidOperationException(sprintf "order %s failed" id)))
    )
    |> ignore

/// The (start, count) series of the detail JSON's history.
let private series (root: JsonElement) (name: string) =
    [
        for b in root.GetProperty("history").GetProperty(name).EnumerateArray() ->
            DateTimeOffset.Parse(b.GetProperty("start").GetString()), b.GetProperty("count").GetInt64()
    ]

/// The `data-total` of the chart or sparkline whose class attribute starts with `cls`.
let private total (html: string) (cls: string) =
    let m =
        Regex.Match(html, sprintf "class=\"%s[^\"]*\"[^>]*data-total=\"(\\d+)\"" (Regex.Escape cls))

    if m.Success then int64 m.Groups.[1].Value else -1L

[<Tests>]
let tests =
    testSequenced
    <| testList
        "history"
        [
            testTask'
                "each occurrence counts in its own hour (a pass of repeats across an hour too); the series, the charts and the count agree"
            <| fun () ->
                task {
                    let t0 = DateTimeOffset(2026, 11, 29, 22, 30, 0, TimeSpan.Zero)
                    let clock = ManualClock(t0)

                    use! app =
                        start
                            [ "APP_ERROR_DETAILS_INTERVAL", "1h" ]
                            (fun s -> s.AddSingleton<TimeProvider>(clock).AddErrorMonitor() |> ignore)
                            (fun app ->
                                app.UseErrorMonitor() |> ignore
                                app.MapErrorMonitor() |> ignore
                                routes app)

                    let fail (n: int) =
                        task {
                            for i in 1..n do
                                let! r = app.Client.GetAsync(sprintf "/orders/%d" i)
                                r.Dispose()
                        }

                    // 22:30: 3, flushed; 23:59:59 and 00:00:01 (no flush between: one pass of repeats spans the
                    // hour): 2 and 4; then 01:30 the next day: 1.
                    do! fail 3
                    do! app.Monitor.FlushAsync()
                    clock.Advance(TimeSpan.FromMinutes 89.0 + TimeSpan.FromSeconds 59.0)
                    do! fail 2
                    clock.Advance(TimeSpan.FromSeconds 2.0)
                    do! fail 4
                    do! app.Monitor.FlushAsync()
                    clock.Advance(TimeSpan.FromMinutes 90.0)
                    do! fail 1
                    do! app.Monitor.FlushAsync()

                    let! all = records app.Store
                    Expect.equal (all |> List.map (fun r -> r.Count)) [ 10L ] "one group, ten occurrences"
                    let hash = all.Head.Hash

                    let! body = app.Client.GetStringAsync("/dev/error/api/errors/" + hash)
                    use doc = JsonDocument.Parse body
                    let hourly = series doc.RootElement "hourly"
                    let daily = series doc.RootElement "daily"

                    let now = clock.GetUtcNow()
                    Expect.equal hourly.Length 24 "24 hours"

                    Expect.equal
                        (hourly |> List.map fst)
                        [ for i in 23..-1..0 -> History.hourOf now - TimeSpan.FromHours(float i) ]
                        "every hour, oldest first, up to the current one"

                    let at (h: int) (d: int) =
                        hourly
                        |> List.find (fun (t, _) -> t = DateTimeOffset(2026, 11, d, h, 0, 0, TimeSpan.Zero))
                        |> snd

                    Expect.equal (at 22 29) 3L "22:00"
                    Expect.equal (at 23 29) 2L "23:00: the pass's repeats before the hour"
                    Expect.equal (at 0 30) 4L "00:00: the pass's repeats after it"
                    Expect.equal (at 1 30) 1L "01:00"
                    Expect.equal (hourly |> List.sumBy snd) 10L "the hours add up to the count"
                    Expect.equal daily.Length 30 "30 days"
                    Expect.equal (daily |> List.map snd |> List.rev |> List.take 2) [ 5L; 5L ] "today, yesterday"
                    Expect.equal (daily |> List.sumBy snd) 10L "the days add up to the count"

                    let! detail = app.Client.GetStringAsync("/dev/error/" + hash)
                    Expect.equal (total detail "chart group-hours") 10L "the detail's 24-hour chart"
                    Expect.equal (total detail "chart group-days") 10L "the detail's 30-day chart"
                    Expect.stringContains detail "10 occurrences in the last 24 hours; most (4) at 00:00 UTC." "summary"
                    Expect.stringContains detail "role=\"img\"" "charts are images with a name"

                    let! list = app.Client.GetStringAsync("/dev/error/")
                    Expect.equal (total list "chart all-hours") 10L "the list's 24-hour chart of all groups"
                    Expect.equal (total list "chart all-days") 10L "the list's 14-day chart"
                    Expect.equal (total list "spark") 10L "the row's sparkline"

                    let! deleted = app.Store.DeleteAsync(hash, Threading.CancellationToken.None)
                    Expect.isTrue deleted "deleted"
                    let! after = app.Client.GetStringAsync("/dev/error/")
                    Expect.equal (total after "chart all-hours") 0L "a deleted group leaves the all-groups history"
                }
        ]
