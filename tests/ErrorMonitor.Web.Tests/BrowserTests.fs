/// Real Chromium (Debian's, at /usr/bin/chromium) driven by Playwright: nothing is downloaded.
module internal ErrorMonitor.Web.Tests.BrowserTests

open System
open System.IO
open System.Net.Http
open System.Text.Json
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Http
open Microsoft.Extensions.DependencyInjection
open Microsoft.Playwright
open Expecto
open ErrorMonitor
open ErrorMonitor.Web.Tests.TestApp
open ErrorMonitor.Web.Tests.DemoAppTests

/// Where screenshots go (./test.sh sets TEST_OUTPUT).
let outputFolder () =
    let d =
        match Environment.GetEnvironmentVariable "TEST_OUTPUT" with
        | null
        | "" -> Path.Combine(Path.GetTempPath(), "errormonitor-test-output")
        | d -> d

    Directory.CreateDirectory d |> ignore
    d

/// A headless Chromium with a fresh profile, and every dialog it opens.
type Browser(context: IBrowserContext, playwright: IPlaywright) =
    let dialogs = Collections.Concurrent.ConcurrentQueue<string>()

    static member LaunchAsync() =
        task {
            let! pw = Playwright.CreateAsync()
            let profile = tempFolder ()

            let options =
                BrowserTypeLaunchPersistentContextOptions(
                    ExecutablePath = "/usr/bin/chromium",
                    Headless = true,
                    Args =
                        [
                            "--no-sandbox"
                            "--disable-gpu"
                            "--disable-quic"
                            "--no-first-run"
                            "--disable-background-networking"
                            "--disable-component-update"
                            "--disable-sync"
                        ],
                    ViewportSize = ViewportSize(Width = 1200, Height = 800)
                )

            let! context = pw.Chromium.LaunchPersistentContextAsync(profile, options)
            return new Browser(context, pw)
        }

    /// Dialogs (alert, confirm, prompt) any page opened: script from recorded data would open them.
    member _.Dialogs = List.ofSeq dialogs

    /// A new page whose dialogs are recorded and dismissed.
    member _.NewPageAsync() =
        task {
            let! page = context.NewPageAsync()

            page.add_Dialog (fun _ d ->
                dialogs.Enqueue d.Message
                d.DismissAsync() |> ignore)

            return page
        }

    interface IAsyncDisposable with
        member _.DisposeAsync() =
            task {
                do! context.CloseAsync()
                playwright.Dispose()
            }
            |> ValueTask

/// Waits until the JSON list holds `groups` groups whose counts add up to `occurrences`.
let waitForGroups (client: HttpClient) (prefix: string) (groups: int) (occurrences: int64) =
    task {
        let deadline = DateTime.UtcNow.AddSeconds 30.0
        let mutable ok = false

        while not ok do
            let mutable page = 1
            let mutable more = true
            let mutable seen = 0
            let mutable total = 0L

            while more do
                let! body = client.GetStringAsync(sprintf "%s/api/errors?page=%d" prefix page)
                use doc = JsonDocument.Parse body

                for i in doc.RootElement.GetProperty("items").EnumerateArray() do
                    seen <- seen + 1
                    total <- total + i.GetProperty("count").GetInt64()

                more <- doc.RootElement.GetProperty("hasNext").GetBoolean()
                page <- page + 1

            ok <- seen = groups && total = occurrences

            if not ok then
                if DateTime.UtcNow > deadline then
                    failwithf "expected %d groups and %d occurrences, saw %d and %d" groups occurrences seen total

                do! Task.Delay 50
    }

let private rows (page: IPage) = page.Locator("tbody tr").CountAsync()

/// Waits until the page's address matches `pattern` (a regular expression) and its document has loaded, both
/// polled by Playwright (no event to miss). Not `WaitForURLAsync`: when the address already matches (a click waits for
/// its navigation to commit), it waits for the `load` event, and Playwright .NET can lose that event between
/// checking for it and subscribing to it (microsoft/playwright-dotnet#3364): a 30-s timeout now and then.
let private waitForPage (page: IPage) (pattern: string) =
    task {
        // As long as WaitForURLAsync waited (30 s), not an assertion's default 5 s.
        do!
            Assertions
                .Expect(page)
                .ToHaveURLAsync(
                    Text.RegularExpressions.Regex pattern,
                    PageAssertionsToHaveURLOptions(Timeout = 30000.0f)
                )

        let! _ = page.WaitForFunctionAsync "document.readyState === 'complete'"
        ()
    }

[<Tests>]
let tests =
    testSequenced
    <| testList
        "browser"
        [
            testTask' "a person lists the groups, opens one, reads it and deletes it"
            <| fun () ->
                task {
                    let folder = tempFolder ()
                    use demo = new DemoProcess(folder, [])
                    do! demo.WaitReadyAsync()

                    for path in [ "/value-error"; "/value-error?password=hunter2"; "/handled"; "/message" ] do
                        let! _ = demo.Client.GetAsync path
                        ()

                    do! waitForGroups demo.Client "/dev/error" 3 4L
                    let! browser = Browser.LaunchAsync()

                    use _ =
                        { new IDisposable with
                            member _.Dispose() =
                                (browser :> IAsyncDisposable).DisposeAsync().AsTask().Wait()
                        }

                    let! page = browser.NewPageAsync()
                    let! _ = page.GotoAsync(demo.Url + "/dev/error")
                    let! count = rows page
                    Expect.equal count 3 "three groups listed"

                    let! _ =
                        page.ScreenshotAsync(
                            PageScreenshotOptions(Path = Path.Combine(outputFolder (), "list.png"), FullPage = true)
                        )

                    do! page.GetByText("System.ArgumentException").ClickAsync()
                    do! waitForPage page "/dev/error/[^/?]+$"
                    let! occurrences = page.Locator("dd.count").InnerTextAsync()
                    Expect.equal occurrences "2" "two occurrences"
                    let! traceback = page.Locator("pre.traceback").InnerTextAsync()

                    Expect.stringContains
                        traceback
                        "System.ArgumentException: Value error"
                        "the exception, line breaks kept"

                    Expect.stringContains traceback "\n   at " "frames on their own lines"
                    let! data = page.Locator(".request-data").InnerTextAsync()
                    Expect.isFalse (data.Contains "hunter2") "the password is masked"

                    let! _ =
                        page.ScreenshotAsync(
                            PageScreenshotOptions(Path = Path.Combine(outputFolder (), "detail.png"), FullPage = true)
                        )

                    do! page.Locator("form.delete-form button").ClickAsync()
                    do! waitForPage page "/dev/error/$"
                    let! after = rows page
                    Expect.equal after 2 "one group fewer"
                    let! gone = page.GetByText("System.ArgumentException").CountAsync()
                    Expect.equal gone 0 "the deleted group is gone"
                    Expect.isEmpty browser.Dialogs "no dialog"
                }

            testTask' "45 groups with a page size of 20 give 3 pages with working Newer and Older links"
            <| fun () ->
                task {
                    let folder = tempFolder ()
                    use demo = new DemoProcess(folder, [ "APP_DEFAULT_LIST_SIZE", "20" ])
                    do! demo.WaitReadyAsync()

                    for i in 1..45 do
                        let! _ = demo.Client.GetAsync(sprintf "/group/%d" i)
                        ()

                    do! waitForGroups demo.Client "/dev/error" 45 45L
                    let! browser = Browser.LaunchAsync()

                    use _ =
                        { new IDisposable with
                            member _.Dispose() =
                                (browser :> IAsyncDisposable).DisposeAsync().AsTask().Wait()
                        }

                    let! page = browser.NewPageAsync()
                    let! _ = page.GotoAsync(demo.Url + "/dev/error")

                    let expectPage (n: int) (count: int) (newer: bool) (older: bool) =
                        task {
                            let! c = rows page
                            Expect.equal c count (sprintf "rows on page %d" n)
                            let! hasNewer = page.Locator("a.newer").CountAsync()
                            let! hasOlder = page.Locator("a.older").CountAsync()
                            Expect.equal (hasNewer = 1) newer (sprintf "newer link on page %d" n)
                            Expect.equal (hasOlder = 1) older (sprintf "older link on page %d" n)
                        }

                    do! expectPage 1 20 false true
                    let! href = page.Locator("a.older").GetAttributeAsync "href"
                    Expect.stringStarts href "/dev/error/?page=2&after=" "href form: the page number, and a cursor"
                    do! page.Locator("a.older").ClickAsync()
                    do! waitForPage page @"/dev/error/\?page=2(&|$)"
                    do! expectPage 2 20 true true
                    do! page.Locator("a.older").ClickAsync()
                    do! waitForPage page @"/dev/error/\?page=3(&|$)"
                    do! expectPage 3 5 true false
                    do! page.Locator("a.newer").ClickAsync()
                    do! waitForPage page @"/dev/error/\?page=2(&|$)"
                    do! expectPage 2 20 true true
                }

            testTask' "the F# demo records through Giraffe-shaped handlers and serves the pages from its own pipeline"
            <| fun () ->
                task {
                    use demo = new DemoProcess(tempFolder (), [], sampleDll "GiraffeDemo")
                    do! demo.WaitReadyAsync()

                    for _ in 1..2 do
                        use! r = demo.Client.GetAsync "/value-error"
                        Expect.equal r.StatusCode Net.HttpStatusCode.InternalServerError "fails"

                    use! missing = demo.Client.GetAsync "/nowhere"
                    Expect.equal missing.StatusCode Net.HttpStatusCode.NotFound "the app's own 404"
                    do! waitForGroups demo.Client "/dev/error" 1 2L
                    let! page = demo.Client.GetStringAsync "/dev/error"
                    Expect.stringContains page "System.ArgumentException" "the list page, from Browse.router"
                }

            testTask' "a page that includes client.js reports its error and its rejected promise, with parsed frames"
            <| fun () ->
                task {
                    let key = "browser-key-0123456789abcdef"

                    use! app =
                        start [ "APP_ERROR_INGEST_KEY", key ] (fun s -> s.AddErrorMonitor() |> ignore) (fun app ->
                            app.MapErrorMonitor() |> ignore

                            app.MapGet(
                                "/page",
                                Func<IResult>(fun () ->
                                    Results.Content(
                                        sprintf
                                            "<!doctype html><html><body><p>shop</p><script src=\"/dev/error/client.js\" data-key=\"%s\" data-release=\"2.0\"></script><script src=\"/static/app.js\"></script></body></html>"
                                            key,
                                        "text/html"
                                    ))
                            )
                            |> ignore

                            app.MapGet(
                                "/static/app.js",
                                Func<IResult>(fun () ->
                                    Results.Content(
                                        "function explode() { throw new TypeError('exploded in the page'); }\nfunction rejectLater() { return Promise.reject(new RangeError('rejected in the page')); }\nsetTimeout(function () { explode(); }, 0);\nrejectLater();\n",
                                        "text/javascript"
                                    ))
                            )
                            |> ignore)

                    let! browser = Browser.LaunchAsync()

                    use _ =
                        { new IDisposable with
                            member _.Dispose() =
                                (browser :> IAsyncDisposable).DisposeAsync().AsTask().Wait()
                        }

                    let! page = browser.NewPageAsync()
                    let! _ = page.GotoAsync(app.BaseUrl.TrimEnd('/') + "/page")
                    do! waitForGroups app.Client "/dev/error" 2 2L
                    let! _ = page.GotoAsync(app.BaseUrl.TrimEnd('/') + "/dev/error")
                    let! listText = page.Locator("tbody").InnerTextAsync()
                    Expect.stringContains listText "TypeError" "the error is listed"
                    Expect.stringContains listText "RangeError" "the rejected promise is listed"
                    do! page.GetByText("TypeError").ClickAsync()
                    do! waitForPage page "/dev/error/[^/?]+$"
                    let! traceback = page.Locator("pre.traceback").InnerTextAsync()

                    Expect.stringContains
                        traceback
                        "at /static/app.js.explode()"
                        "parsed frames: the function and its script"

                    let! _ =
                        page.ScreenshotAsync(
                            PageScreenshotOptions(
                                Path = Path.Combine(outputFolder (), "client-js.png"),
                                FullPage = true
                            )
                        )

                    ()
                }

            testTask' "script in a path, query, header, form field or message shows as text and never runs"
            <| fun () ->
                task {
                    use! app =
                        start [] (fun s -> s.AddErrorMonitor() |> ignore) (fun app ->
                            app.UseErrorMonitor() |> ignore
                            app.MapErrorMonitor() |> ignore

                            app.MapPost(
                                "/xss/{tail}",
                                Func<HttpContext, Task<string>>(fun ctx ->
                                    task {
                                        let! _ = ctx.Request.ReadFormAsync()

                                        return
                                            raise (
                                                InvalidOperationException(string ctx.Request.Headers.["X-Message"])
                                            )
                                    })
                            )
                            |> ignore)

                    let payload (n: int) =
                        sprintf "<img src=x onerror=alert(%d)><script>alert(%d)</script>" n n

                    use form = new FormUrlEncodedContent(dict [ "comment", payload 4 ])

                    use req =
                        new HttpRequestMessage(
                            HttpMethod.Post,
                            "/xss/"
                            + Uri.EscapeDataString(payload 1)
                            + "?q="
                            + Uri.EscapeDataString(payload 2),
                            Content = form
                        )

                    req.Headers.TryAddWithoutValidation("X-Evil", payload 3) |> ignore
                    req.Headers.TryAddWithoutValidation("X-Message", payload 5) |> ignore
                    let! _ = app.Client.SendAsync req
                    do! app.Monitor.FlushAsync()
                    let! all = records app.Store
                    let record = all |> List.exactlyOne

                    let! browser = Browser.LaunchAsync()

                    use _ =
                        { new IDisposable with
                            member _.Dispose() =
                                (browser :> IAsyncDisposable).DisposeAsync().AsTask().Wait()
                        }

                    let! page = browser.NewPageAsync()
                    let! _ = page.GotoAsync(app.BaseUrl.TrimEnd('/') + "/dev/error")
                    let! listText = page.Locator("tbody").InnerTextAsync()
                    Expect.stringContains listText "onerror" "the path shows as text"
                    let! _ = page.GotoAsync(app.BaseUrl.TrimEnd('/') + "/dev/error/" + record.Hash)
                    let! text = page.Locator("main").InnerTextAsync()

                    for n in 2..5 do
                        Expect.stringContains text (sprintf "alert(%d)" n) (sprintf "payload %d is shown as text" n)

                    Expect.stringContains text (payload 5) "the message, literally"
                    let! images = page.Locator("main img").CountAsync()
                    let! scripts = page.Locator("script").CountAsync()
                    Expect.equal images 0 "no element was injected"
                    Expect.equal scripts 0 "no script element"
                    Expect.isEmpty browser.Dialogs "no dialog fired"
                }

            testTask' "a person searches, sorts, resolves two groups together, and sees one come back as a regression"
            <| fun () ->
                task {
                    let folder = tempFolder ()
                    use demo = new DemoProcess(folder, [])
                    do! demo.WaitReadyAsync()

                    for id in [ "alpha"; "beta"; "gamma"; "gamma"; "gamma"; "delta" ] do
                        let! _ = demo.Client.GetAsync("/group/" + id)
                        ()

                    do! waitForGroups demo.Client "/dev/error" 4 6L
                    let! browser = Browser.LaunchAsync()

                    use _ =
                        { new IDisposable with
                            member _.Dispose() =
                                (browser :> IAsyncDisposable).DisposeAsync().AsTask().Wait()
                        }

                    let! page = browser.NewPageAsync()
                    let! _ = page.GotoAsync(demo.Url + "/dev/error")
                    let! all = rows page
                    Expect.equal all 4 "four unresolved groups"

                    // Search: a word of the message.
                    do! page.GetByLabel("Search").FillAsync("gamm")
                    do! page.GetByRole(AriaRole.Button, PageGetByRoleOptions(Name = "Search")).ClickAsync()
                    do! waitForPage page "[?&]q=gamm"
                    let! found = page.Locator("tbody").InnerTextAsync()
                    let! foundRows = rows page
                    Expect.equal foundRows 1 "one group found"
                    Expect.stringContains found "Failure of group gamma" "the message is under the type"

                    // Sort by occurrences, without the search.
                    let! _ = page.GotoAsync(demo.Url + "/dev/error")
                    do! page.GetByRole(AriaRole.Link, PageGetByRoleOptions(Name = "Occurrences")).ClickAsync()
                    do! waitForPage page "[?&]sort=count"
                    let! first = page.Locator("tbody tr").First.InnerTextAsync()
                    Expect.stringContains first "gamma" "most occurrences first"

                    // Select alpha and beta, resolve them together.
                    for id in [ "alpha"; "beta" ] do
                        do!
                            page
                                .Locator("tbody tr", PageLocatorOptions(HasText = "group " + id))
                                .Locator("input.select")
                                .CheckAsync()

                    do!
                        page
                            .GetByRole(AriaRole.Button, PageGetByRoleOptions(Name = "Resolve", Exact = true))
                            .ClickAsync()

                    do! waitForPage page "[?&]sort=count"
                    let! left = page.Locator("tbody").InnerTextAsync()
                    let! leftRows = rows page
                    Expect.equal leftRows 2 "two unresolved left"
                    Expect.isFalse (left.Contains "group alpha") "alpha is resolved"

                    do!
                        page
                            .GetByRole(AriaRole.Link, PageGetByRoleOptions(Name = "Resolved", Exact = true))
                            .ClickAsync()

                    do! waitForPage page "[?&]status=resolved"
                    let! resolvedRows = rows page
                    Expect.equal resolvedRows 2 "two resolved"

                    // Alpha fails again: back in the unresolved list, marked as a regression.
                    let! _ = demo.Client.GetAsync "/group/alpha"
                    do! waitForGroups demo.Client "/dev/error" 3 6L
                    let! _ = page.GotoAsync(demo.Url + "/dev/error")
                    let alpha = page.Locator("tbody tr", PageLocatorOptions(HasText = "group alpha"))
                    let! mark = alpha.Locator(".regression").InnerTextAsync()
                    Expect.stringContains mark "regression" "marked as a regression"

                    let! _ =
                        page.ScreenshotAsync(
                            PageScreenshotOptions(Path = Path.Combine(outputFolder (), "triage.png"), FullPage = true)
                        )

                    ()
                }


            testTask'
                "the charts are drawn, labelled and summed as the API counts: the list's, a row's sparkline, a group's"
            <| fun () ->
                task {
                    let folder = tempFolder ()
                    use demo = new DemoProcess(folder, [])
                    do! demo.WaitReadyAsync()

                    for id in [ "north"; "north"; "north"; "south"; "south" ] do
                        let! _ = demo.Client.GetAsync("/group/" + id)
                        ()

                    do! waitForGroups demo.Client "/dev/error" 2 5L
                    let! listJson = demo.Client.GetStringAsync "/dev/error/api/errors"
                    use list = JsonDocument.Parse listJson

                    let hashOf (id: string) =
                        list.RootElement.GetProperty("items").EnumerateArray()
                        |> Seq.find (fun i -> i.GetProperty("message").GetString().Contains id)
                        |> fun i -> i.GetProperty("hash").GetString()

                    let! browser = Browser.LaunchAsync()

                    use _ =
                        { new IDisposable with
                            member _.Dispose() =
                                (browser :> IAsyncDisposable).DisposeAsync().AsTask().Wait()
                        }

                    let! page = browser.NewPageAsync()

                    let bars (selector: string) =
                        task {
                            let! counts =
                                page
                                    .Locator(selector + " rect.bar")
                                    .EvaluateAllAsync<string[]>(
                                        "rs => rs.map(r => r.dataset.start + '=' + r.dataset.count)"
                                    )

                            return List.ofArray counts
                        }

                    let sum (bs: string list) =
                        bs |> List.sumBy (fun b -> int64 (b.Substring(b.IndexOf '=' + 1)))

                    let! _ = page.GotoAsync(demo.Url + "/dev/error")
                    let! allHours = bars "figure.all-hours"
                    Expect.equal allHours.Length 24 "a bar an hour"
                    Expect.equal (sum allHours) 5L "all five occurrences in the last 24 hours"
                    let! allDays = bars "figure.all-days"
                    Expect.equal allDays.Length 14 "a bar a day"
                    let! title = page.Locator("figure.all-hours svg title").First.TextContentAsync()
                    Expect.equal title "All errors, last 24 hours" "the chart's accessible name"
                    let! summary = page.Locator("figure.all-hours figcaption .summary").InnerTextAsync()
                    Expect.stringStarts summary "5 occurrences in the last 24 hours; most (" "its summary in words"
                    let! axis = page.Locator("figure.all-hours text.axis").AllTextContentsAsync()
                    Expect.contains axis "0" "the axis starts at 0"
                    Expect.contains axis "5" "and is labelled at its top"

                    let north =
                        page.Locator("tbody tr", PageLocatorOptions(HasText = "group north")).Locator("svg.spark")

                    let! sparkTotal = north.GetAttributeAsync "data-total"
                    Expect.equal sparkTotal "3" "the row's sparkline"

                    let! _ =
                        page.ScreenshotAsync(
                            PageScreenshotOptions(
                                Path = Path.Combine(outputFolder (), "history-list.png"),
                                FullPage = true
                            )
                        )

                    // The group's charts against its JSON history, hour by hour.
                    let hash = hashOf "north"
                    let! detailJson = demo.Client.GetStringAsync("/dev/error/api/errors/" + hash)
                    use detail = JsonDocument.Parse detailJson

                    let api =
                        [
                            for b in detail.RootElement.GetProperty("history").GetProperty("hourly").EnumerateArray() ->
                                b.GetProperty("start").GetString()
                                + "="
                                + string (b.GetProperty("count").GetInt64())
                        ]

                    let! _ = page.GotoAsync(demo.Url + "/dev/error/" + hash)
                    let! groupHours = bars "figure.group-hours"
                    Expect.equal groupHours api "the detail's bars are the API's hours"
                    let! groupDays = bars "figure.group-days"
                    Expect.equal groupDays.Length 30 "30 days"
                    Expect.equal (sum groupDays) 3L "the days add up to the group's count"

                    let! _ =
                        page.ScreenshotAsync(
                            PageScreenshotOptions(
                                Path = Path.Combine(outputFolder (), "history-detail.png"),
                                FullPage = true
                            )
                        )

                    ()
                }

            testTask' "the detail page walks a group's samples: newest, older, first and back, each its own request"
            <| fun () ->
                task {
                    use demo = new DemoProcess(tempFolder (), [ "APP_ERROR_DETAILS_INTERVAL", "0s" ])
                    do! demo.WaitReadyAsync()

                    // Four occurrences, each written before the next: four samples.
                    for n in 1..4 do
                        let! _ = demo.Client.GetAsync(sprintf "/group/west?n=%d" n)
                        do! waitForGroups demo.Client "/dev/error" 1 (int64 n)

                    let! listJson = demo.Client.GetStringAsync "/dev/error/api/errors"
                    use list = JsonDocument.Parse listJson
                    let hash = list.RootElement.GetProperty("items").[0].GetProperty("hash").GetString()
                    let! browser = Browser.LaunchAsync()

                    use _ =
                        { new IDisposable with
                            member _.Dispose() =
                                (browser :> IAsyncDisposable).DisposeAsync().AsTask().Wait()
                        }

                    let! page = browser.NewPageAsync()
                    let! _ = page.GotoAsync(demo.Url + "/dev/error/" + hash)

                    let place () =
                        page.Locator(".sample p").First.InnerTextAsync()

                    let request () =
                        page.Locator(".request-data").InnerTextAsync()

                    let follow (name: string) (position: string) =
                        task {
                            do!
                                page
                                    .GetByRole(AriaRole.Link, PageGetByRoleOptions(Name = name, Exact = true))
                                    .ClickAsync()

                            do!
                                page.WaitForFunctionAsync(
                                    "p => document.querySelector('.sample p').innerText.startsWith(p)",
                                    position
                                )
                                :> Threading.Tasks.Task
                        }

                    let! first = place ()
                    Expect.stringStarts first "Sample 1 of 4" "the newest first"
                    let! r = request ()
                    Expect.stringContains r "n=4" "its own request"
                    do! follow "Older →" "Sample 2 of 4"
                    let! r = request ()
                    Expect.stringContains r "n=3" "the one before"
                    do! follow "First" "Sample 4 of 4"
                    let! r = request ()
                    Expect.stringContains r "n=1" "the first occurrence"
                    let! last = place ()
                    Expect.stringContains last "first occurrence kept" "marked as the first"

                    let! _ =
                        page.ScreenshotAsync(
                            PageScreenshotOptions(Path = Path.Combine(outputFolder (), "samples.png"), FullPage = true)
                        )

                    do! follow "← Newer" "Sample 3 of 4"
                    do! follow "Newest" "Sample 1 of 4"
                    Expect.stringContains page.Url hash "still the same group"
                }
        ]
