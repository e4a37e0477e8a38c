/// Triage through the JSON API and the pages: status changes, regressions (notified once, across instances),
/// ignore limits, search, filters and sorts, bad input.
module internal ErrorMonitor.Web.Tests.TriageTests

open System
open System.Collections.Concurrent
open System.IO
open System.Net
open System.Net.Http
open System.Text
open System.Text.Json
open System.Text.RegularExpressions
open System.Threading
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Http
open Microsoft.Extensions.DependencyInjection
open Expecto
open ErrorMonitor
open ErrorMonitor.Core
open ErrorMonitor.Web
open ErrorMonitor.Web.Tests.TestApp
open ErrorMonitor.Web.Tests.StoreContractTests

/// Remembers every notification it is given.
type RecordingNotifier() =
    member val Sent = ConcurrentQueue<Notification>()

    interface INotifier with
        member this.NotifyAsync(n, _) =
            this.Sent.Enqueue n
            Task.CompletedTask

/// An app with the pages, a recording notifier and failing routes: `/orders/{id}` (one group an id) and
/// `/search/{word}` (messages with the word).
let private triageApp (settings: (string * string) list) =
    task {
        let notifier = RecordingNotifier()

        let! app =
            start
                ([
                    "APP_ERROR_SEND_NOTIFICATION", "true"
                    "APP_ERROR_RECIPIENT_EMAIL", "ops@example.com"
                    "APP_ERROR_EMAIL_SENDER", "monitor@example.com"
                 ]
                 @ settings)
                (fun s ->
                    s.AddErrorMonitor(fun o ->
                        o.Notifier <- notifier
                        // A group a path: each route value its own group.
                        o.Fingerprint <-
                            Func<exn, HttpContext, string>(fun _ ctx ->
                                if isNull ctx then null else ctx.Request.Path.Value))
                    |> ignore)
                (fun app ->
                    app.UseErrorMonitor() |> ignore
                    app.MapErrorMonitor() |> ignore

                    app.MapGet(
                        "/orders/{id}",
                        Func<string, string>(fun id -> raise (InvalidOperationException(sprintf "order %s failed" id)))
                    )
                    |> ignore

                    app.MapGet(
                        "/search/{word}",
                        Func<string, string>(fun word ->
                            raise (FormatException(sprintf "cannot parse the %s field" word)))
                    )
                    |> ignore)

        return app, notifier
    }

let private settle (app: RunningApp) =
    app.App.Services.GetRequiredService<Engine>().SettleAsync(CancellationToken.None)

let private fail (app: RunningApp) (path: string) (times: int) =
    task {
        for _ in 1..times do
            use! r = app.Client.GetAsync path
            Expect.equal r.StatusCode HttpStatusCode.InternalServerError "the route fails"

        do! settle app
    }

/// The items of a JSON list (`path` and query under /dev/error/api/errors).
let private items (client: HttpClient) (query: string) =
    task {
        let! body = client.GetStringAsync("/dev/error/api/errors" + query)
        use doc = JsonDocument.Parse body

        return
            [
                for i in doc.RootElement.GetProperty("items").EnumerateArray() ->
                    i.GetProperty("path").GetString(), i.GetProperty("status").GetString()
            ]
    }

let private item (client: HttpClient) (hash: string) =
    task {
        let! body = client.GetStringAsync("/dev/error/api/errors/" + hash)
        return JsonDocument.Parse(body).RootElement.Clone()
    }

/// POSTs a status change; the answer and its body.
let private postStatus (client: HttpClient) (hash: string) (contentType: string) (body: string) =
    task {
        use content = new StringContent(body, Encoding.UTF8)
        content.Headers.ContentType <- Headers.MediaTypeHeaderValue.Parse contentType
        let! r = client.PostAsync(sprintf "/dev/error/api/errors/%s/status" hash, content)
        let! text = r.Content.ReadAsStringAsync()
        return r, text
    }

let private hashOfPath (app: RunningApp) (path: string) =
    task {
        let! all = records app.Store
        return (all |> List.find (fun r -> r.Path = path)).Hash
    }

[<Tests>]
let tests =
    testSequenced
    <| testList
        "triage"
        [
            testTask' "resolve through the API; failing again makes it a regression, notified once"
            <| fun () ->
                task {
                    let! (app: RunningApp), notifier = triageApp []
                    use _ = app
                    do! fail app "/orders/1" 1
                    do! fail app "/orders/2" 1
                    let! hash = hashOfPath app "/orders/1"
                    Expect.equal notifier.Sent.Count 2 "two first-seen notifications"

                    let! r, body =
                        postStatus app.Client hash "application/json" """{"status":"resolved"}"""

                    Expect.equal r.StatusCode HttpStatusCode.OK body

                    Expect.equal
                        (JsonDocument.Parse(body).RootElement.GetProperty("status").GetString())
                        "resolved"
                        "the item"

                    let! open' = items app.Client ""
                    Expect.equal open' [ "/orders/2", "unresolved" ] "the default list shows unresolved groups only"
                    let! resolved = items app.Client "?status=resolved"
                    Expect.equal resolved [ "/orders/1", "resolved" ] "the resolved filter"
                    do! fail app "/orders/1" 3
                    let! back = item app.Client hash
                    Expect.equal (back.GetProperty("status").GetString()) "unresolved" "unresolved again"
                    Expect.equal (back.GetProperty("regressions").GetInt64()) 1L "one regression"
                    Expect.equal (back.GetProperty("count").GetInt64()) 4L "counted"
                    Expect.equal (back.GetProperty("lastRegression").ValueKind) JsonValueKind.String "its time"

                    let reasons = notifier.Sent |> Seq.map (fun n -> n.Reason) |> List.ofSeq
                    Expect.equal reasons [ "first-seen"; "first-seen"; "regression" ] "one regression notification"
                    let! all = items app.Client "?status=all"
                    Expect.equal (all |> List.map fst |> List.sort) [ "/orders/1"; "/orders/2" ] "all"
                }

            testTask' "an ignored group keeps counting, notifies nobody, and returns after N more occurrences"
            <| fun () ->
                task {
                    let! (app: RunningApp), notifier = triageApp []
                    use _ = app
                    do! fail app "/orders/7" 1
                    let! hash = hashOfPath app "/orders/7"

                    let! r, body =
                        postStatus app.Client hash "application/json" """{"status":"ignored","ignoreCount":3}"""

                    Expect.equal r.StatusCode HttpStatusCode.OK body
                    let sent = notifier.Sent.Count
                    do! fail app "/orders/7" 2
                    let! still = item app.Client hash
                    Expect.equal (still.GetProperty("status").GetString()) "ignored" "still ignored after 2"
                    Expect.equal (still.GetProperty("count").GetInt64()) 3L "counting"
                    let! hidden = items app.Client ""
                    Expect.isEmpty hidden "hidden from the default list"
                    do! fail app "/orders/7" 1
                    let! back = item app.Client hash
                    Expect.equal (back.GetProperty("status").GetString()) "unresolved" "back after 3 more"
                    Expect.equal (back.GetProperty("regressions").GetInt64()) 0L "not a regression"

                    Expect.equal notifier.Sent.Count sent "no notification while it was ignored"
                }

            testTask' "ignored until a time: unresolved once the time has passed, without a new occurrence"
            <| fun () ->
                task {
                    let! (app: RunningApp), _ = triageApp []
                    use _ = app
                    do! fail app "/orders/8" 1
                    let! hash = hashOfPath app "/orders/8"
                    let soon = DateTimeOffset.UtcNow.AddSeconds 1.5

                    let! r, body =
                        postStatus
                            app.Client
                            hash
                            "application/json"
                            (sprintf """{"status":"ignored","ignoreUntil":"%s"}""" (soon.ToString "O"))

                    Expect.equal r.StatusCode HttpStatusCode.OK body
                    let! hidden = items app.Client ""
                    Expect.isEmpty hidden "ignored for now"
                    let sw = Diagnostics.Stopwatch.StartNew()
                    let mutable shown = []

                    while shown.IsEmpty && sw.Elapsed < TimeSpan.FromSeconds 20.0 do
                        do! Task.Delay 100
                        let! now = items app.Client ""
                        shown <- now

                    Expect.equal shown [ "/orders/8", "unresolved" ] "back once the time passed"
                    Expect.isGreaterThanOrEqual DateTimeOffset.UtcNow soon "not before its time"
                }

            testTask' "bad status changes are refused and change nothing"
            <| fun () ->
                task {
                    let! (app: RunningApp), _ = triageApp []
                    use _ = app
                    do! fail app "/orders/3" 1
                    let! hash = hashOfPath app "/orders/3"

                    for contentType, body, status, field in
                        [
                            "application/json", """{"status":"fixed"}""", 400, Some "status"
                            "application/json", """{"state":"resolved"}""", 400, Some "status"
                            "application/json",
                            """{"status":"ignored","ignoreUntil":"tomorrow"}""",
                            400,
                            Some "ignoreUntil"
                            "application/json", """{"status":"ignored","ignoreCount":0}""", 400, Some "ignoreCount"
                            "application/json", """{"status":"ignored","ignoreCount":1.5}""", 400, Some "ignoreCount"
                            "application/json", """{"status":"resolved","ignoreCount":2}""", 400, Some "ignoreCount"
                            "application/json", """not json""", 400, Some "body"
                            "text/plain", """{"status":"resolved"}""", 415, None
                            "application/x-www-form-urlencoded", "status=resolved", 415, None
                        ] do
                        let! r, text = postStatus app.Client hash contentType body
                        Expect.equal (int r.StatusCode) status (sprintf "%s %s: %s" contentType body text)

                        match field with
                        | Some f ->
                            Expect.equal
                                (JsonDocument.Parse(text).RootElement.GetProperty("field").GetString())
                                f
                                "names the field"
                        | None -> ()

                    let! unknown, _ =
                        postStatus
                            app.Client
                            (Fingerprint.sha256Hex "none")
                            "application/json"
                            """{"status":"resolved"}"""

                    Expect.equal unknown.StatusCode HttpStatusCode.NotFound "unknown hash"
                    let! after = item app.Client hash
                    Expect.equal (after.GetProperty("status").GetString()) "unresolved" "nothing changed"

                    for query, field in [ "?status=open", "status"; "?sort=newest", "sort" ] do
                        let! r = app.Client.GetAsync("/dev/error/api/errors" + query)
                        Expect.equal r.StatusCode HttpStatusCode.BadRequest query
                        let! text = r.Content.ReadAsStringAsync()

                        Expect.equal
                            (JsonDocument.Parse(text).RootElement.GetProperty("field").GetString())
                            field
                            "names the parameter"
                }

            testTask'
                "search finds a group by a word prefix of its message, type, path or host; sorts and keyset links keep the view"
            <| fun () ->
                task {
                    let! (app: RunningApp), _ = triageApp [ "APP_DEFAULT_LIST_SIZE", "2" ]
                    use _ = app

                    for word in [ "amount"; "currency"; "customer"; "address"; "quantity" ] do
                        do! fail app ("/search/" + word) 1

                    do! fail app "/search/currency" 4
                    let! found = items app.Client "?q=CURR"
                    Expect.equal found [ "/search/currency", "unresolved" ] "a prefix of a message word, any case"
                    let! byType = items app.Client "?q=formatexc%20cust"
                    Expect.equal byType [ "/search/customer", "unresolved" ] "every word must match"
                    let! none = items app.Client "?q=zzz"
                    Expect.isEmpty none "nothing"
                    let! body = app.Client.GetStringAsync "/dev/error/api/errors?sort=count&q=search"
                    use doc = JsonDocument.Parse body
                    let root = doc.RootElement

                    let first =
                        [ for i in root.GetProperty("items").EnumerateArray() -> i.GetProperty("path").GetString() ]

                    Expect.equal first.Head "/search/currency" "most occurrences first"
                    let next = root.GetProperty("next").GetString()
                    Expect.stringContains next "sort=count" "the next link keeps the sort"
                    Expect.stringContains next "q=search" "and the search"
                    Expect.stringContains next "after=" "and carries a cursor"
                    let! second = app.Client.GetStringAsync next
                    use doc2 = JsonDocument.Parse second

                    let paths =
                        first
                        @ [
                            for i in doc2.RootElement.GetProperty("items").EnumerateArray() ->
                                i.GetProperty("path").GetString()
                        ]

                    Expect.equal (paths |> List.distinct |> List.length) 4 "no row twice across pages"
                    let! page = app.Client.GetStringAsync "/dev/error/?status=all&sort=count&q=search"
                    Expect.stringContains page "sort=count&amp;q=search" "the page's links keep the view"
                    Expect.stringContains page "value=\"search\"" "the search box shows the search"
                }

            testTask' "the list's bulk form resolves the selected groups; the detail page ignores one"
            <| fun () ->
                task {
                    use handler = new HttpClientHandler(UseCookies = true, AllowAutoRedirect = false)
                    let! (app: RunningApp), _ = triageApp []
                    use _ = app
                    use client = new HttpClient(handler, BaseAddress = Uri app.BaseUrl)

                    for i in 1..3 do
                        do! fail app (sprintf "/orders/%d" i) 1

                    let! all = records app.Store
                    let! page = client.GetStringAsync "/dev/error/"

                    let token =
                        Regex.Match(
                            page,
                            "action=\"/dev/error/status\" class=\"bulk\"><input type=\"hidden\" name=\"([^\"]+)\" value=\"([^\"]+)\""
                        )

                    Expect.isTrue token.Success "the list has a bulk form with a token"
                    let picked = all |> List.take 2 |> List.map (fun r -> r.Hash)

                    use form =
                        new FormUrlEncodedContent(
                            [
                                yield Collections.Generic.KeyValuePair(token.Groups.[1].Value, token.Groups.[2].Value)
                                yield Collections.Generic.KeyValuePair("status", "resolved")
                                yield Collections.Generic.KeyValuePair("back", "/dev/error/?status=all")
                                for h in picked -> Collections.Generic.KeyValuePair("hash", h)
                            ]
                        )

                    use! resp = client.PostAsync("/dev/error/status", form)
                    Expect.equal resp.StatusCode HttpStatusCode.Redirect "redirect"
                    Expect.equal (string resp.Headers.Location) "/dev/error/?status=all" "back to the view"
                    let! after = records app.Store

                    Expect.equal
                        (after
                         |> List.filter (fun r -> r.Status = GroupStatus.Resolved)
                         |> List.map (fun r -> r.Hash)
                         |> List.sort)
                        (List.sort picked)
                        "the two selected are resolved"

                    let last = (all |> List.last).Hash
                    let! detail = client.GetStringAsync("/dev/error/" + last)
                    Expect.stringContains detail "Resolve" "the detail page has the actions"

                    use ignore' =
                        new FormUrlEncodedContent(
                            dict
                                [
                                    token.Groups.[1].Value, token.Groups.[2].Value
                                    "status", "ignored"
                                    "ignoreCount", "5"
                                    "back", "https://evil.example/"
                                ]
                        )

                    use! r2 = client.PostAsync("/dev/error/status/" + last, ignore')
                    Expect.equal (string r2.Headers.Location) "/dev/error/" "never back to another site"
                    let! ignored = app.Store.GetAsync(last, CancellationToken.None)
                    Expect.equal ignored.Status GroupStatus.Ignored "ignored"
                    Expect.equal ignored.IgnoreUntilCount (Nullable 6L) "until 5 more"
                    use noToken = new FormUrlEncodedContent(dict [ "status", "resolved"; "hash", last ])
                    use! refused = client.PostAsync("/dev/error/status", noToken)
                    Expect.equal refused.StatusCode HttpStatusCode.BadRequest "no antiforgery token"
                    let! unchanged = app.Store.GetAsync(last, CancellationToken.None)
                    Expect.equal unchanged.Status GroupStatus.Ignored "nothing changed"
                }

            testTask' "two instances on PostgreSQL: a regression racing on both is notified once"
            <| fun () ->
                task {
                    let table = "triage_" + Guid.NewGuid().ToString "N"

                    let pg =
                        [
                            "APP_ERROR_STORE", "postgres"
                            "ConnectionStrings:ErrorMonitor", postgres ()
                            "APP_ERROR_TABLE", table
                        ]

                    let! (a: RunningApp), na = triageApp pg
                    use _ = a
                    let! (b: RunningApp), nb = triageApp pg
                    use _ = b
                    do! fail a "/orders/5" 1
                    do! settle b
                    let! body = a.Client.GetStringAsync "/dev/error/api/errors"

                    let hash =
                        JsonDocument.Parse(body).RootElement.GetProperty("items").[0].GetProperty("hash").GetString()

                    let! r, text =
                        postStatus b.Client hash "application/json" """{"status":"resolved"}"""

                    Expect.equal r.StatusCode HttpStatusCode.OK text

                    let! _ =
                        Task.WhenAll
                            [
                                for i in 1..40 ->
                                    task {
                                        let client = if i % 2 = 0 then a.Client else b.Client
                                        use! r = client.GetAsync "/orders/5"
                                        return r.StatusCode
                                    }
                            ]

                    do! settle a
                    do! settle b

                    let regressions =
                        Seq.append na.Sent nb.Sent
                        |> Seq.filter (fun n -> n.Reason = "regression")
                        |> Seq.length

                    Expect.equal regressions 1 "one regression notification across both instances"
                    let! back = item b.Client hash
                    Expect.equal (back.GetProperty("regressions").GetInt64()) 1L "one regression"

                    Expect.equal
                        (back.GetProperty("count").GetInt64())
                        41L
                        (sprintf "every occurrence counted: %O" back)
                }

            testTask'
                "each occurrence carries the app's release and environment: a group's first and last release, the release a regression came back in, filters in the list and API"
            <| fun () ->
                task {
                    let shared = Path.Combine(tempFolder (), "shared.db")

                    let only (client: HttpClient) =
                        task {
                            let! body = client.GetStringAsync("/dev/error/api/errors?status=all")
                            use doc = JsonDocument.Parse body
                            return (Seq.exactlyOne (doc.RootElement.GetProperty("items").EnumerateArray())).Clone()
                        }

                    let onShared release =
                        [ "ConnectionStrings:ErrorMonitor", "Data Source=" + shared; "APP_ERROR_RELEASE", release ]

                    // Release 1.0.0 fails, and the group is resolved.
                    let! a, _ = triageApp (onShared "1.0.0")
                    do! fail a "/orders/7" 1
                    let! listed = only a.Client
                    let hash = listed.GetProperty("hash").GetString()

                    let! resolved, _ =
                        postStatus a.Client hash "application/json" """{"status":"resolved"}"""

                    Expect.equal resolved.StatusCode HttpStatusCode.OK "resolved"
                    do! (a :> IAsyncDisposable).DisposeAsync()

                    // Release 1.1.0 of the same app, on the same database: it comes back.
                    let! b, notifier = triageApp (onShared "1.1.0")

                    try
                        do! fail b "/orders/7" 2
                        let! r = item b.Client hash
                        let text (name: string) = r.GetProperty(name).GetString()
                        Expect.equal (text "firstRelease") "1.0.0" "first seen in 1.0.0"
                        Expect.equal (text "lastRelease") "1.1.0" "last seen in 1.1.0"
                        Expect.equal (text "environment") "Production" "the host's environment"
                        Expect.equal (text "regressionRelease") "1.1.0" "came back in 1.1.0"

                        let mail = notifier.Sent |> Seq.find (fun n -> n.Reason = "regression")
                        Expect.stringContains mail.Body "Came back in release: 1.1.0" "the regression mail says where"

                        // Each sample keeps its own release.
                        let! samples =
                            b.Client.GetStringAsync(sprintf "/dev/error/api/errors/%s/occurrences" hash)

                        use doc = JsonDocument.Parse samples

                        let releases =
                            [
                                for s in doc.RootElement.GetProperty("items").EnumerateArray() ->
                                    s.GetProperty("release").GetString()
                            ]

                        Expect.equal (List.last releases) "1.0.0" "the first sample's release"
                        Expect.equal releases.Head "1.1.0" "the newest sample's release"

                        for query, expected in
                            [
                                "?status=all&release=1.0.0", 1
                                "?status=all&release=1.1.0", 1
                                "?status=all&release=1.0", 0
                                "?status=all&release=2.0.0", 0
                                "?status=all&environment=Production", 1
                                "?status=all&environment=Staging", 0
                                "?status=all&release=1.1.0&environment=Production", 1
                            ] do
                            let! found = items b.Client query
                            Expect.equal found.Length expected query

                        let! html = b.Client.GetStringAsync("/dev/error/" + hash)
                        Expect.stringContains html "in release 1.1.0" "the detail page notes the regression's release"
                        Expect.stringContains html "<dd class=\"first-release\">1.0.0</dd>" "and the first release"
                        let! filtered = b.Client.GetStringAsync("/dev/error/?status=all&release=2.0.0")
                        Expect.isFalse (filtered.Contains hash) "the page's filter leaves the group out"
                        Expect.stringContains filtered "value=\"2.0.0\"" "and shows the filter"
                    finally
                        (b :> IAsyncDisposable).DisposeAsync().AsTask().Wait()

                    // Without APP_ERROR_RELEASE: the entry assembly's informational version.
                    let! c, _ = triageApp []

                    try
                        do! fail c "/orders/8" 1
                        let! listed = only c.Client

                        let expected =
                            Reflection.Assembly
                                .GetEntryAssembly()
                                .GetCustomAttributes(typeof<Reflection.AssemblyInformationalVersionAttribute>, false)
                            |> Seq.exactlyOne
                            :?> Reflection.AssemblyInformationalVersionAttribute

                        Expect.equal
                            (listed.GetProperty("lastRelease").GetString())
                            expected.InformationalVersion
                            "the entry assembly's version"
                    finally
                        (c :> IAsyncDisposable).DisposeAsync().AsTask().Wait()
                }
        ]
