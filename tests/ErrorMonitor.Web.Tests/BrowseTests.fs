module internal ErrorMonitor.Web.Tests.BrowseTests

open System
open System.Net
open System.Net.Http
open System.Text.Json
open System.Text.RegularExpressions
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.HttpOverrides
open Microsoft.AspNetCore.Routing
open Microsoft.Extensions.DependencyInjection
open Expecto
open ErrorMonitor
open ErrorMonitor.Core
open ErrorMonitor.Web
open ErrorMonitor.Web.Tests.TestApp

/// Requests carrying X-Test-Remote appear to come from that address (a non-local client).
let remoteAddress (app: WebApplication) =
    app.Use(
        Func<HttpContext, RequestDelegate, Task>(fun ctx next ->
            match ctx.Request.Headers.TryGetValue "X-Test-Remote" with
            | true, v -> ctx.Connection.RemoteIpAddress <- IPAddress.Parse(string v)
            | _ -> ()

            next.Invoke ctx)
    )
    |> ignore

/// Signs a request in as the user named by its X-User header.
type HeaderAuthentication
    (
        options:
            Microsoft.Extensions.Options.IOptionsMonitor<Microsoft.AspNetCore.Authentication.AuthenticationSchemeOptions>,
        logger: Microsoft.Extensions.Logging.ILoggerFactory,
        encoder: System.Text.Encodings.Web.UrlEncoder
    ) =
    inherit
        Microsoft.AspNetCore.Authentication.AuthenticationHandler<
            Microsoft.AspNetCore.Authentication.AuthenticationSchemeOptions
         >(options, logger, encoder)

    override this.HandleAuthenticateAsync() =
        match this.Request.Headers.TryGetValue "X-User" with
        | true, v ->
            let identity =
                Security.Claims.ClaimsIdentity(
                    [ Security.Claims.Claim(Security.Claims.ClaimTypes.Name, string v) ],
                    "Header"
                )

            let ticket =
                Microsoft.AspNetCore.Authentication.AuthenticationTicket(
                    Security.Claims.ClaimsPrincipal identity,
                    "Header"
                )

            Task.FromResult(Microsoft.AspNetCore.Authentication.AuthenticateResult.Success ticket)
        | _ -> Task.FromResult(Microsoft.AspNetCore.Authentication.AuthenticateResult.NoResult())

/// `n` exceptions of `n` different groups (distinct type chains, so the default fingerprint splits them).
let distinctFailures (n: int) : exn list =
    [
        for i in 1..n ->
            let mutable e: exn = InvalidOperationException "root"

            for _ in 1 .. (i % 7) do
                e <- ArgumentException("wrap", e)

            for _ in 1 .. (i / 7) do
                e <- FormatException("wrap", e)

            e
    ]

let private failing (app: WebApplication) =
    app.MapGet("/fail/{n}", Func<string, string>(fun n -> raise (InvalidOperationException(sprintf "failure %s" n))))
    |> ignore

    app.MapGet("/other", Func<string>(fun () -> raise (FormatException "other")))
    |> ignore

/// A monitored app with the pages mapped; `configure` adds options.
let browseApp
    (settings: (string * string) list)
    (configure: ErrorMonitorOptions -> unit)
    (map: RouteGroupBuilder -> unit)
    =
    start settings (fun s -> s.AddErrorMonitor(Action<ErrorMonitorOptions> configure) |> ignore) (fun app ->
        remoteAddress app
        app.UseErrorMonitor() |> ignore
        map (app.MapErrorMonitor())
        failing app)

let private send (app: RunningApp) (m: HttpMethod) (path: string) (remote: string option) =
    task {
        use req = new HttpRequestMessage(m, path)

        match remote with
        | Some r -> req.Headers.Add("X-Test-Remote", r)
        | None -> ()

        let! resp = app.Client.SendAsync req
        let! body = resp.Content.ReadAsStringAsync()
        return resp, body
    }

let private seed (app: RunningApp) =
    task {
        let! _ = app.Client.GetAsync "/fail/1"
        let! _ = app.Client.GetAsync "/fail/2"
        let! _ = app.Client.GetAsync "/other"
        do! app.Monitor.FlushAsync()
        let! all = records app.Store
        return all
    }

[<Tests>]
let tests =
    testSequenced
    <| testList
        "browse"
        [
            testTask' "the JSON list has its documented shape, newest first"
            <| fun () ->
                task {
                    use! app = browseApp [] ignore ignore
                    let! all = seed app
                    let! resp, body = send app HttpMethod.Get "/dev/error/api/errors" None
                    Expect.equal resp.StatusCode HttpStatusCode.OK "200"
                    Expect.equal resp.Content.Headers.ContentType.MediaType "application/json" "JSON"
                    use doc = JsonDocument.Parse body
                    let root = doc.RootElement
                    Expect.equal (root.GetProperty("page").GetInt32()) 1 "page"
                    Expect.equal (root.GetProperty("pageSize").GetInt32()) 20 "page size"
                    Expect.isFalse (root.GetProperty("hasNext").GetBoolean()) "no older page"
                    Expect.isFalse (root.GetProperty("hasPrevious").GetBoolean()) "no newer page"
                    let items = root.GetProperty("items").EnumerateArray() |> List.ofSeq
                    Expect.equal items.Length 2 "two groups"

                    let keys = items.Head.EnumerateObject() |> Seq.map (fun p -> p.Name) |> List.ofSeq

                    Expect.equal
                        keys
                        [
                            "hash"
                            "host"
                            "path"
                            "method"
                            "exceptionName"
                            "message"
                            "count"
                            "createdOn"
                            "lastSeen"
                            "status"
                            "regressions"
                            "lastRegression"
                            "ignoreUntil"
                            "ignoreUntilCount"
                            "culprit"
                            "users"
                            "usersAtLeast"
                            "firstRelease"
                            "lastRelease"
                            "environment"
                            "regressionRelease"
                            "project"
                        ]
                        "item fields"

                    Expect.equal
                        (items |> List.map (fun i -> i.GetProperty("hash").GetString()))
                        (all |> List.map (fun r -> r.Hash))
                        "newest first"

                    let formatGroup =
                        items
                        |> List.find (fun i -> i.GetProperty("exceptionName").GetString() = "System.FormatException")

                    Expect.equal (formatGroup.GetProperty("count").GetInt64()) 1L "count"
                    Expect.stringEnds (formatGroup.GetProperty("lastSeen").GetString()) "Z" "UTC ISO 8601"

                    Expect.isTrue
                        (DateTimeOffset.TryParse(formatGroup.GetProperty("createdOn").GetString()) |> fst)
                        "a date"
                }

            testTask' "the JSON detail has requestData as an object and the traceback; unknown is a 404 problem"
            <| fun () ->
                task {
                    use! app = browseApp [] ignore ignore
                    let! all = seed app

                    let r =
                        all |> List.find (fun r -> r.ExceptionName = "System.InvalidOperationException")

                    let! resp, body = send app HttpMethod.Get ("/dev/error/api/errors/" + r.Hash) None
                    Expect.equal resp.StatusCode HttpStatusCode.OK "200"
                    use doc = JsonDocument.Parse body
                    Expect.equal (doc.RootElement.GetProperty("requestData").ValueKind) JsonValueKind.Object "an object"
                    Expect.equal (doc.RootElement.GetProperty("count").GetInt64()) 2L "count"

                    Expect.stringContains
                        (doc.RootElement.GetProperty("traceback").GetString())
                        "InvalidOperationException"
                        "traceback"

                    let! missing, problem =
                        send app HttpMethod.Get ("/dev/error/api/errors/" + String('a', 64)) None

                    Expect.equal missing.StatusCode HttpStatusCode.NotFound "404"

                    Expect.equal
                        missing.Content.Headers.ContentType.MediaType
                        "application/problem+json"
                        "problem details"

                    use p = JsonDocument.Parse problem
                    Expect.equal (p.RootElement.GetProperty("status").GetInt32()) 404 "status in the body"
                    let! bad, _ = send app HttpMethod.Get "/dev/error/api/errors/not-a-hash" None
                    Expect.equal bad.StatusCode HttpStatusCode.NotFound "malformed hash is unknown"
                }

            testTask' "requests from another machine are refused everywhere by default"
            <| fun () ->
                task {
                    use! app = browseApp [] ignore ignore
                    let! all = seed app
                    let hash = all.Head.Hash

                    for m, path in
                        [
                            HttpMethod.Get, "/dev/error"
                            HttpMethod.Get, "/dev/error/?page=2"
                            HttpMethod.Get, "/dev/error/" + hash
                            HttpMethod.Get, "/dev/error/api/errors"
                            HttpMethod.Get, "/dev/error/api/errors/" + hash
                            HttpMethod.Post, "/dev/error/delete/" + hash
                        ] do
                        let! resp, body = send app m path (Some "203.0.113.7")
                        Expect.equal resp.StatusCode HttpStatusCode.Forbidden (sprintf "%O %s" m path)

                        Expect.isFalse
                            (body.Contains hash && m = HttpMethod.Get && path.EndsWith "errors")
                            "nothing shown"

                    let! local, _ = send app HttpMethod.Get "/dev/error" None
                    Expect.equal local.StatusCode HttpStatusCode.OK "the local machine may look"
                    let! after = records app.Store
                    Expect.equal after.Length all.Length "nothing deleted"
                }

            testTask'
                "local only: a rebound DNS name or a forwarding header is refused on loopback; loopback names are not"
            <| fun () ->
                task {
                    use! app = browseApp [] ignore ignore
                    let! _ = seed app

                    let get (host: string) (headers: (string * string) list) =
                        task {
                            use req = new HttpRequestMessage(HttpMethod.Get, "/dev/error/api/errors")
                            req.Headers.Host <- host

                            for k, v in headers do
                                req.Headers.TryAddWithoutValidation(k, v) |> ignore

                            let! resp = app.Client.SendAsync req
                            let! body = resp.Content.ReadAsStringAsync()
                            return resp.StatusCode, body
                        }

                    let port = Uri(app.BaseUrl).Port

                    for host in
                        [
                            sprintf "attacker.example:%d" port
                            "attacker.example"
                            "127.0.0.1.nip.example"
                            "localhost.attacker.example"
                        ] do
                        let! status, body = get host []
                        Expect.equal status HttpStatusCode.Forbidden (sprintf "Host %s" host)
                        Expect.isFalse (body.Contains "\"hash\"") "no record shown"

                    for header in
                        [
                            "X-Forwarded-For", "203.0.113.9"
                            "Forwarded", "for=203.0.113.9"
                            "X-Real-IP", "203.0.113.9"
                            "x-forwarded-host", "errors.example"
                        ] do
                        let! status, _ = get (sprintf "127.0.0.1:%d" port) [ header ]
                        Expect.equal status HttpStatusCode.Forbidden (sprintf "through a proxy (%s)" (fst header))

                    for host in
                        [
                            sprintf "127.0.0.1:%d" port
                            sprintf "localhost:%d" port
                            "LOCALHOST"
                            sprintf "[::1]:%d" port
                            "app.localhost"
                        ] do
                        let! status, _ = get host []
                        Expect.equal status HttpStatusCode.OK (sprintf "Host %s" host)
                }

            testTask' "local only: the app's AllowedHosts may browse; the forwarded-headers middleware's client decides"
            <| fun () ->
                task {
                    use! app =
                        start
                            [ "AllowedHosts", "errors.internal;127.0.0.1" ]
                            (fun s -> s.AddErrorMonitor() |> ignore)
                            (fun app ->
                                app.UseForwardedHeaders(
                                    ForwardedHeadersOptions(ForwardedHeaders = ForwardedHeaders.XForwardedFor)
                                )
                                |> ignore

                                app.UseErrorMonitor() |> ignore
                                app.MapErrorMonitor() |> ignore)

                    let get (host: string) (forwardedFor: string option) =
                        task {
                            use req = new HttpRequestMessage(HttpMethod.Get, "/dev/error/api/errors")
                            req.Headers.Host <- host

                            match forwardedFor with
                            | Some f -> req.Headers.TryAddWithoutValidation("X-Forwarded-For", f) |> ignore
                            | None -> ()

                            let! resp = app.Client.SendAsync req
                            return resp.StatusCode
                        }

                    let! allowed = get "errors.internal" None
                    Expect.equal allowed HttpStatusCode.OK "an AllowedHost over loopback"
                    let! proxiedLocal = get "127.0.0.1" (Some "127.0.0.1")
                    Expect.equal proxiedLocal HttpStatusCode.OK "the middleware resolved a local client"
                    let! proxiedRemote = get "127.0.0.1" (Some "203.0.113.9")
                    Expect.equal proxiedRemote HttpStatusCode.Forbidden "the middleware resolved a remote client"
                }

            testTask' "a view-permission function replaces the local-only default"
            <| fun () ->
                task {
                    use! app =
                        browseApp
                            []
                            (fun o ->
                                o.ViewPermission <-
                                    Func<HttpContext, bool>(fun ctx -> ctx.Request.Headers.ContainsKey "X-Ops"))
                            ignore

                    let! _ = seed app

                    let! refused, _ = send app HttpMethod.Get "/dev/error/api/errors" None
                    Expect.equal refused.StatusCode HttpStatusCode.Forbidden "local but not allowed by the function"

                    use req = new HttpRequestMessage(HttpMethod.Get, "/dev/error/api/errors")
                    req.Headers.Add("X-Ops", "1")
                    req.Headers.Add("X-Test-Remote", "203.0.113.7")
                    use! allowed = app.Client.SendAsync req
                    Expect.equal allowed.StatusCode HttpStatusCode.OK "remote but allowed by the function"
                }

            testTask' "RequireAuthorization on the route group replaces the local-only default"
            <| fun () ->
                task {
                    use! app =
                        start
                            []
                            (fun s ->
                                s
                                    .AddAuthentication("Header")
                                    .AddScheme<
                                        Microsoft.AspNetCore.Authentication.AuthenticationSchemeOptions,
                                        HeaderAuthentication
                                      >("Header", ignore)
                                |> ignore

                                s.AddAuthorization(fun o ->
                                    o.AddPolicy("ops", fun p -> p.RequireUserName "alice" |> ignore))
                                |> ignore

                                s.AddErrorMonitor() |> ignore)
                            (fun app ->
                                remoteAddress app
                                app.UseErrorMonitor() |> ignore
                                app.MapErrorMonitor().RequireAuthorization("ops") |> ignore
                                failing app)

                    let! _ = seed app

                    let call (user: string option) (remote: string option) =
                        task {
                            use req = new HttpRequestMessage(HttpMethod.Get, "/dev/error/api/errors")
                            user |> Option.iter (fun u -> req.Headers.Add("X-User", u))
                            remote |> Option.iter (fun r -> req.Headers.Add("X-Test-Remote", r))
                            use! resp = app.Client.SendAsync req
                            return resp.StatusCode
                        }

                    let! remoteAlice = call (Some "alice") (Some "203.0.113.7")
                    Expect.equal remoteAlice HttpStatusCode.OK "the policy lets alice in from anywhere"
                    let! localBob = call (Some "bob") None
                    Expect.equal localBob HttpStatusCode.Forbidden "the policy keeps bob out, even locally"
                    let! localAnonymous = call None None
                    Expect.equal localAnonymous HttpStatusCode.Unauthorized "anonymous is challenged"
                }

            testTask' "a GET to the delete route deletes nothing, and a POST without the antiforgery token fails"
            <| fun () ->
                task {
                    use! app = browseApp [] ignore ignore
                    let! all = seed app
                    let hash = all.Head.Hash
                    let! get, _ = send app HttpMethod.Get ("/dev/error/delete/" + hash) None
                    Expect.equal get.StatusCode HttpStatusCode.MethodNotAllowed "GET refused"
                    use empty = new FormUrlEncodedContent(dict [])
                    use! post = app.Client.PostAsync("/dev/error/delete/" + hash, empty)
                    Expect.equal post.StatusCode HttpStatusCode.BadRequest "no token"
                    let! after = records app.Store
                    Expect.equal after.Length all.Length "still there"
                }

            testTask' "the delete form of the list page deletes the group and goes back to the list"
            <| fun () ->
                task {
                    use handler = new HttpClientHandler(UseCookies = true, AllowAutoRedirect = false)
                    use! app = browseApp [] ignore ignore
                    use client = new HttpClient(handler, BaseAddress = Uri app.BaseUrl)
                    let! all = seed app
                    let target = all.Head.Hash
                    let! page = client.GetStringAsync "/dev/error/"

                    // The row's Delete button posts the list's form (with its token) to the group's delete route.
                    let formOf =
                        Regex.Match(
                            page,
                            "action=\"/dev/error/status\" class=\"bulk\"><input type=\"hidden\" name=\"([^\"]+)\" value=\"([^\"]+)\""
                        )

                    Expect.isTrue formOf.Success "the list has a form with a token"

                    Expect.stringContains
                        page
                        (sprintf "formaction=\"/dev/error/delete/%s\"" target)
                        "and a Delete button for the group"

                    use form =
                        new FormUrlEncodedContent(dict [ formOf.Groups.[1].Value, formOf.Groups.[2].Value ])

                    use! resp = client.PostAsync("/dev/error/delete/" + target, form)
                    Expect.equal resp.StatusCode HttpStatusCode.Redirect "redirect"
                    Expect.equal (string resp.Headers.Location) "/dev/error/" "to the list"
                    let! after = records app.Store

                    Expect.equal
                        (after |> List.map (fun r -> r.Hash))
                        (all.Tail |> List.map (fun r -> r.Hash))
                        "only that one is gone"
                }

            testTask' "a page past the end is empty with a way back; a page that is not a number is page 1"
            <| fun () ->
                task {
                    use! app = browseApp [ "APP_DEFAULT_LIST_SIZE", "1" ] ignore ignore
                    let! _ = seed app
                    let! past = app.Client.GetStringAsync "/dev/error/?page=9"
                    Expect.stringContains past "No errors on this page." "empty"

                    Expect.stringContains
                        past
                        "href=\"/dev/error/?status=unresolved&amp;sort=lastSeen\""
                        "a way back (to page 1 of the same view)"

                    let! first = app.Client.GetStringAsync "/dev/error/?page=abc"
                    let! one = app.Client.GetStringAsync "/dev/error/?page=1"

                    let strip (s: string) =
                        Regex.Replace(s, "name=\"(__RequestVerificationToken|back)\" value=\"[^\"]+\"", "")

                    Expect.equal (strip first) (strip one) "page=abc is page 1"
                    Expect.stringContains one "href=\"/dev/error/?page=2&amp;after=" "an older page, with its cursor"
                    Expect.isFalse (one.Contains "page=0") "no newer page"
                }

            testTask' "the prefix comes from APP_ERROR_URL_PREFIX and an unknown hash is a 404 page"
            <| fun () ->
                task {
                    use! app = browseApp [ "APP_ERROR_URL_PREFIX", "/ops/errors/" ] ignore ignore
                    let! _ = seed app
                    let! resp, body = send app HttpMethod.Get "/ops/errors" None
                    Expect.equal resp.StatusCode HttpStatusCode.OK "list"
                    Expect.stringContains body "href=\"/ops/errors/" "links use the prefix"
                    let! missing, _ = send app HttpMethod.Get ("/ops/errors/" + String('b', 64)) None
                    Expect.equal missing.StatusCode HttpStatusCode.NotFound "404"
                    let! old, _ = send app HttpMethod.Get "/dev/error" None
                    Expect.equal old.StatusCode HttpStatusCode.NotFound "not at the default prefix"
                }

            testTask' "F# apps: the Giraffe-shaped router serves the pages and passes on other paths"
            <| fun () ->
                task {
                    use! app =
                        start [] (fun s -> s.AddErrorMonitor() |> ignore) (fun app ->
                            let engine = app.Services.GetRequiredService<Engine>()

                            let options = { Engine = engine; Permission = None }

                            let notFound: HttpHandler = setStatusCode 404 >=> text "app's own 404"
                            let pipeline = (Browse.router options) earlyReturn

                            app.Run(
                                RequestDelegate(fun ctx ->
                                    task {
                                        match! pipeline ctx with
                                        | Some _ -> ()
                                        | None ->
                                            let! _ = notFound earlyReturn ctx
                                            ()
                                    })
                            ))

                    let! _ = app.Monitor.RecordExceptionAsync(InvalidOperationException "recorded")
                    let! list = app.Client.GetStringAsync "/dev/error/api/errors"
                    Expect.stringContains list "System.InvalidOperationException" "served by the router"
                    use! other = app.Client.GetAsync "/elsewhere"
                    Expect.equal other.StatusCode HttpStatusCode.NotFound "passed on"
                    let! body = other.Content.ReadAsStringAsync()
                    Expect.equal body "app's own 404" "to the app's own handler"
                }

            testTask' "compose runs handlers in order and stops when one ends the request"
            <| fun () ->
                task {
                    let trace = Collections.Generic.List<string>()

                    let step name : HttpHandler =
                        fun next ctx ->
                            trace.Add name
                            next ctx

                    let stop: HttpHandler = fun _ ctx -> Task.FromResult(Some ctx)
                    let ctx = DefaultHttpContext()
                    let! _ = (step "a" >=> step "b" >=> stop >=> step "c") earlyReturn ctx
                    Expect.equal (List.ofSeq trace) [ "a"; "b" ] "c never runs"
                    trace.Clear()
                    let! _ = (compose (step "x") (step "y")) earlyReturn ctx
                    Expect.equal (List.ofSeq trace) [ "x"; "y" ] "compose is >=>"
                }

            testTask' "the Giraffe-shaped error handler records the exception and answers 500"
            <| fun () ->
                task {
                    use! app = start [] (fun s -> s.AddErrorMonitor() |> ignore) ignore
                    let engine = app.App.Services.GetRequiredService<Engine>()
                    let ctx = DefaultHttpContext()
                    ctx.Request.Path <- PathString "/giraffe"
                    let logger = Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance

                    let! _ =
                        (Browse.errorHandler engine (InvalidProgramException "from giraffe") logger) earlyReturn ctx

                    Expect.equal ctx.Response.StatusCode 500 "500"
                    do! app.Monitor.FlushAsync()
                    let! all = records app.Store

                    Expect.equal
                        (all |> List.map (fun r -> r.ExceptionName, r.Path))
                        [ "System.InvalidProgramException", "/giraffe" ]
                        "recorded"
                }
        ]
