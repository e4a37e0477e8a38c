/// Samples and users through the app: each group keeps its first occurrence and the newest ones, each with its
/// own (masked) details, listed and read through the JSON API and walked through on the detail page; the
/// distinct authenticated users of a group, exact below the bound, then "100+".
module internal ErrorMonitor.Web.Tests.SampleTests

open System
open System.Net
open System.Net.Http
open System.Security.Claims
open System.Text.Json
open System.Text.RegularExpressions
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Http
open Microsoft.Extensions.DependencyInjection
open Expecto
open ErrorMonitor
open ErrorMonitor.Web.Tests.TestApp

let private routes (app: WebApplication) =
    app.MapGet(
        "/orders/{id}",
        Func<string, string>(fun id -> raise (InvalidOperationException(sprintf "order %s failed" id)))
    )
    |> ignore

let private json (app: RunningApp) (path: string) =
    task {
        use! r = app.Client.GetAsync(path: string)
        let! text = r.Content.ReadAsStringAsync()

        return
            r.StatusCode,
            (if text = "" then
                 JsonDocument.Parse "null"
             else
                 JsonDocument.Parse text)
                .RootElement
    }

let private page (app: RunningApp) (path: string) =
    task {
        use! r = app.Client.GetAsync(path: string)
        let! text = r.Content.ReadAsStringAsync()
        return r.StatusCode, text
    }

/// The only group's hash.
let private onlyHash (app: RunningApp) =
    task {
        let! _, list = json app "/dev/error/api/errors?status=all"
        let items = list.GetProperty("items")
        Expect.equal (items.GetArrayLength()) 1 "one group"
        return items.[0].GetProperty("hash").GetString()
    }

/// A test app whose requests are signed in as the user named in the X-User header (none without it).
let private signedIn (settings: (string * string) list) =
    start settings (fun s -> s.AddErrorMonitor() |> ignore) (fun app ->
        app.Use(fun (ctx: HttpContext) (next: RequestDelegate) ->
            match ctx.Request.Headers.["X-User"].ToString() with
            | "" -> ()
            | name -> ctx.User <- ClaimsPrincipal(ClaimsIdentity([ Claim(ClaimTypes.Name, name) ], "test"))

            next.Invoke ctx)
        |> ignore

        app.UseErrorMonitor() |> ignore
        app.MapErrorMonitor() |> ignore
        routes app)

[<Tests>]
let tests =
    testSequenced
    <| testList
        "samples"
        [
            testTask'
                "a group keeps its first and newest samples, each its own masked details, in the API and on the detail page"
            <| fun () ->
                task {
                    use! app =
                        start
                            [ "APP_ERROR_DETAILS_INTERVAL", "0s"; "APP_ERROR_SAMPLES_PER_GROUP", "2" ]
                            (fun s -> s.AddErrorMonitor() |> ignore)
                            (fun app ->
                                app.UseErrorMonitor() |> ignore
                                app.MapErrorMonitor() |> ignore
                                routes app)

                    // Five occurrences, each written on its own (a flush between them): five samples taken.
                    for i in 1..5 do
                        use! r = app.Client.GetAsync(sprintf "/orders/%d?password=secret-%d&page=%d" i i i)
                        Expect.equal r.StatusCode HttpStatusCode.InternalServerError "the route fails"
                        do! app.Monitor.FlushAsync()

                    let! hash = onlyHash app
                    let! status, list = json app (sprintf "/dev/error/api/errors/%s/occurrences" hash)
                    Expect.equal status HttpStatusCode.OK "listed"
                    let items = [ for s in list.GetProperty("items").EnumerateArray() -> s ]

                    Expect.equal
                        [ for s in items -> s.GetProperty("message").GetString() ]
                        [ "order 5 failed"; "order 4 failed"; "order 1 failed" ]
                        "the newest two and the first, newest first"

                    let ids = [ for s in items -> s.GetProperty("id").GetInt64() ]
                    Expect.isTrue (ids |> List.pairwise |> List.forall (fun (a, b) -> a > b)) "ids fall"

                    let times =
                        [ for s in items -> DateTimeOffset.Parse(s.GetProperty("occurredAt").GetString()) ]

                    Expect.isTrue (times |> List.pairwise |> List.forall (fun (a, b) -> a >= b)) "times fall"

                    let! status, first =
                        json app (sprintf "/dev/error/api/errors/%s/occurrences/%d" hash ids.[2])

                    Expect.equal status HttpStatusCode.OK "read"
                    let data = first.GetProperty("requestData")
                    Expect.stringContains (data.GetProperty("url").GetString()) "/orders/1?" "its own request"
                    let args = data.GetProperty("args")
                    Expect.equal (args.GetProperty("page").GetString()) "1" "its own query"

                    Expect.isFalse (args.GetProperty("password").GetString().Contains "secret") "masked as the group is"

                    Expect.isFalse (first.ToString().Contains "secret-") "no secret anywhere in the sample"
                    Expect.stringContains (first.GetProperty("traceback").GetString()) "order 1 failed" "its traceback"

                    let! gone, _ =
                        json app (sprintf "/dev/error/api/errors/%s/occurrences/%d" hash (ids.[0] + 1000L))

                    Expect.equal gone HttpStatusCode.NotFound "an id the group does not keep"
                    let! bad, _ = json app (sprintf "/dev/error/api/errors/%s/occurrences/abc" hash)
                    Expect.equal bad HttpStatusCode.NotFound "an id that is no number"

                    let! unknown, _ =
                        json app (sprintf "/dev/error/api/errors/%s/occurrences" (String('0', 64)))

                    Expect.equal unknown HttpStatusCode.NotFound "an unknown group"

                    // The detail page: the newest sample, links to the older one and to the first.
                    let! _, newest = page app (sprintf "/dev/error/%s" hash)
                    Expect.stringContains newest "Sample 1 of 3" "the newest first"
                    Expect.stringContains newest "order 5 failed" "its message"

                    let link (cls: string) (html: string) =
                        let m =
                            Regex.Match(html, sprintf "href=\"([^\"]*\\?sample=(\\d+))\" class=\"sample-link %s\"" cls)

                        if m.Success then Some(int64 m.Groups.[2].Value) else None

                    Expect.equal (link "older" newest) (Some ids.[1]) "older goes to the next sample"
                    Expect.equal (link "first" newest) (Some ids.[2]) "first goes to the first"
                    Expect.equal (link "newer" newest) None "nothing newer"
                    let! _, older = page app (sprintf "/dev/error/%s?sample=%d" hash ids.[1])
                    Expect.stringContains older "Sample 2 of 3" "the second"
                    Expect.equal (link "newer" older) (Some ids.[0]) "newer goes back"
                    Expect.equal (link "older" older) (Some ids.[2]) "older goes on"
                    let! _, firstPage = page app (sprintf "/dev/error/%s?sample=%d" hash ids.[2])
                    Expect.stringContains firstPage "Sample 3 of 3" "the last"
                    Expect.stringContains firstPage "the first occurrence kept" "marked as the first"
                    Expect.stringContains firstPage "/orders/1?" "its own request data"
                    Expect.isFalse (firstPage.Contains "secret-") "masked on the page too"
                    let! _, stale = page app (sprintf "/dev/error/%s?sample=%d" hash (ids.[0] + 1000L))
                    Expect.stringContains stale "Sample 1 of 3" "an id no longer kept shows the newest"
                }
            testTask' "the detail page shows the method of the occurrence it shows, not the group's first"
            <| fun () ->
                task {
                    use! app =
                        start
                            [ "APP_ERROR_DETAILS_INTERVAL", "0s" ]
                            (fun s -> s.AddErrorMonitor() |> ignore)
                            (fun app ->
                                app.UseErrorMonitor() |> ignore
                                app.MapErrorMonitor() |> ignore

                                app.MapMethods(
                                    "/pay",
                                    [ "GET"; "POST" ],
                                    Func<string>(fun () -> raise (InvalidOperationException "payment failed"))
                                )
                                |> ignore)

                    use! first = app.Client.GetAsync "/pay"
                    Expect.equal first.StatusCode HttpStatusCode.InternalServerError "GET fails"
                    do! app.Monitor.FlushAsync()
                    use! second = app.Client.PostAsync("/pay", new StringContent(""))
                    Expect.equal second.StatusCode HttpStatusCode.InternalServerError "POST fails"
                    do! app.Monitor.FlushAsync()

                    let! hash = onlyHash app
                    let! _, list = json app (sprintf "/dev/error/api/errors/%s/occurrences" hash)

                    let ids =
                        [ for s in list.GetProperty("items").EnumerateArray() -> s.GetProperty("id").GetInt64() ]

                    Expect.equal ids.Length 2 "two samples"

                    let methodOf (html: string) =
                        Regex.Match(html, "<dd class=\"method\">([A-Z]+)</dd>").Groups.[1].Value

                    let! _, newest = page app (sprintf "/dev/error/%s" hash)
                    Expect.equal (methodOf newest) "POST" "the newest occurrence's method"
                    let! _, oldest = page app (sprintf "/dev/error/%s?sample=%d" hash ids.[1])
                    Expect.equal (methodOf oldest) "GET" "the first occurrence's method"
                }

            testTask' "distinct signed-in users per group: exact, then 100+ at the bound; in the list, detail and JSON"
            <| fun () ->
                task {
                    use! app = signedIn []

                    let fail (user: string) =
                        task {
                            use m = new HttpRequestMessage(HttpMethod.Get, "/orders/1")

                            if user <> "" then
                                m.Headers.Add("X-User", user)

                            use! r = app.Client.SendAsync m
                            Expect.equal r.StatusCode HttpStatusCode.InternalServerError "the route fails"
                        }

                    // Three users, some more than once, and anonymous requests.
                    for user in [ "ada"; "grace"; "ada"; ""; "linus"; "grace"; "" ] do
                        do! fail user

                    do! app.Monitor.FlushAsync()
                    let! hash = onlyHash app
                    let! _, detail = json app (sprintf "/dev/error/api/errors/%s" hash)
                    Expect.equal (detail.GetProperty("count").GetInt64()) 7L "every occurrence counted"
                    Expect.equal (detail.GetProperty("users").GetInt64()) 3L "three distinct users"
                    Expect.isFalse (detail.GetProperty("usersAtLeast").GetBoolean()) "exact"
                    let! _, listPage = page app "/dev/error/"
                    Expect.stringContains listPage "<td class=\"users\">3</td>" "the list shows them"
                    let! _, detailPage = page app (sprintf "/dev/error/%s" hash)
                    Expect.stringContains detailPage "<dd class=\"users\">3</dd>" "the detail page too"

                    // Past the bound: 120 more users, over several passes.
                    for i in 1..120 do
                        do! fail (sprintf "user-%d" i)

                        if i % 40 = 0 then
                            do! app.Monitor.FlushAsync()

                    let! _, detail = json app (sprintf "/dev/error/api/errors/%s" hash)
                    Expect.equal (detail.GetProperty("users").GetInt64()) 100L "the bound"
                    Expect.isTrue (detail.GetProperty("usersAtLeast").GetBoolean()) "that many or more"
                    let! _, listPage = page app "/dev/error/"
                    Expect.stringContains listPage "<td class=\"users\">100+</td>" "shown as 100+"
                }
        ]
