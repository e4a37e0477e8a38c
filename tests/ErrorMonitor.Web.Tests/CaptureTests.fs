module internal ErrorMonitor.Web.Tests.CaptureTests

open System
open System.IO
open System.Net
open System.Net.Http
open System.Text
open System.Text.Json
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Http
open Microsoft.Data.Sqlite
open Microsoft.Extensions.DependencyInjection
open Expecto
open ErrorMonitor
open ErrorMonitor.Web.Tests.TestApp

let private throwingRoutes (app: WebApplication) =
    app.MapGet(
        "/orders/{id}",
        Func<string, string>(fun id -> raise (InvalidOperationException(sprintf "order %s failed" id)))
    )
    |> ignore

    app.MapGet("/payments", Func<string>(fun () -> raise (ArgumentException "payment failed")))
    |> ignore

    app.MapGet("/ok", Func<string>(fun () -> "fine")) |> ignore

/// An app with ErrorMonitor on SQLite and the capture middleware.
let private monitored (extra: WebApplication -> unit) =
    start [] (fun s -> s.AddErrorMonitor() |> ignore) (fun app ->
        app.UseErrorMonitor() |> ignore
        extra app
        throwingRoutes app)

/// Everything SQLite wrote for an app, as text: the database, its WAL and shared-memory files.
let private databaseText (app: RunningApp) =
    SqliteConnection.ClearAllPools()

    Directory.GetFiles(app.Folder, "errormonitor.db*")
    |> Array.map (fun f ->
        use s = new FileStream(f, FileMode.Open, FileAccess.Read, FileShare.ReadWrite)
        use ms = new MemoryStream()
        s.CopyTo ms
        Encoding.UTF8.GetString(ms.ToArray()))
    |> String.concat "\n"

let private get (app: RunningApp) (path: string) =
    task {
        use! r = app.Client.GetAsync(path)
        return r.StatusCode
    }

/// Made and remembered here, so nothing but `recent` could keep it alive once this returns.
[<Runtime.CompilerServices.MethodImpl(Runtime.CompilerServices.MethodImplOptions.NoInlining)>]
let private rememberedOnly (recent: ErrorMonitor.Web.RecentExceptions) : WeakReference<exn> =
    let ex = InvalidOperationException "remembered only"
    recent.Remember(ex, "h")
    WeakReference<exn>(ex)

[<Tests>]
let tests =
    testSequenced
    <| testList
        "capture"
        [
            test "throw-site keys are equal only when both frames and the app's key are, and equal keys hash alike" {
                let c = ErrorMonitor.Web.ShapeKeys.Comparer
                let k (a: int64) (b: int64) (key: string) = struct (a, b, key)
                Expect.isTrue (c.Equals(k 1L 2L "order-7", k 1L 2L (String.Concat("order-", "7")))) "equal keys"

                Expect.equal
                    (c.GetHashCode(k 1L 2L "order-7"))
                    (c.GetHashCode(k 1L 2L (String.Concat("order-", "7"))))
                    "hash alike"

                Expect.isFalse (c.Equals(k 1L 2L "order-7", k 1L 2L "order-8")) "the app's key told apart"
                Expect.isFalse (c.Equals(k 1L 2L "", k 1L 2L null)) "no key and an empty key: apart"
                Expect.isFalse (c.Equals(k 1L 2L "x", k 1L 3L "x")) "the second frame told apart"
                Expect.isFalse (c.Equals(k 1L 2L "x", k 9L 2L "x")) "the first frame told apart"
            }

            test
                "the table of recent exceptions finds what it remembered, by identity, keeps nothing alive, and forgets an exception when a later one takes its slot" {
                let recent = ErrorMonitor.Web.RecentExceptions(1000)
                Expect.equal recent.Size 1024 "a power of two"
                let a = InvalidOperationException "a"
                let twin = InvalidOperationException "a"
                recent.Remember(a, "hash-a")
                Expect.equal (recent.Find a) (ValueSome "hash-a") "found with its group"
                Expect.equal (recent.Find twin) ValueNone "an equal exception is another object"
                let unrecorded = FormatException "not recorded"
                recent.Remember(unrecorded, null)
                Expect.equal (recent.Find unrecorded) (ValueSome null) "seen, without a group"

                // Another exception in a's slot (by identity hash): a is forgotten, the newer one found.
                let slot (ex: exn) =
                    Runtime.CompilerServices.RuntimeHelpers.GetHashCode ex &&& (recent.Size - 1)

                let rival =
                    Seq.initInfinite (fun i -> InvalidOperationException(string i))
                    |> Seq.find (fun ex -> slot ex = slot a)

                recent.Remember(rival, "hash-rival")
                Expect.equal (recent.Find rival) (ValueSome "hash-rival") "the newer one"
                Expect.equal (recent.Find a) ValueNone "the older one is forgotten"

                let weak = rememberedOnly recent
                GC.Collect()
                GC.WaitForPendingFinalizers()
                GC.Collect()
                Expect.isFalse (fst (weak.TryGetTarget())) "the table kept it alive"
            }

            testTask' "an unhandled exception yields one record with the right fields"
            <| fun () ->
                task {
                    use! app = monitored ignore
                    let! status = get app "/orders/17?x=1"
                    Expect.equal status HttpStatusCode.InternalServerError "the app's own 500"
                    do! app.Monitor.FlushAsync()
                    let! all = records app.Store
                    Expect.equal all.Length 1 "one record"
                    let r = all.Head
                    Expect.equal r.Path "/orders/17" "path"
                    Expect.equal r.Method "GET" "method"
                    Expect.equal r.ExceptionName "System.InvalidOperationException" "exception name"
                    Expect.equal r.Message "order 17 failed" "message"
                    Expect.equal r.Count 1L "count"
                    Expect.stringStarts r.Host "127.0.0.1:" "host"
                    Expect.stringContains r.Traceback "System.InvalidOperationException: order 17 failed" "traceback"
                    Expect.stringContains r.RequestData "\"x\":\"1\"" "query args kept"
                    Expect.isTrue (ErrorMonitor.Core.Fingerprint.isValid r.Hash) "hash"
                }

            testTask' "the database, its WAL and the spill file are readable by their owner only (0600)"
            <| fun () ->
                task {
                    use! app = monitored ignore
                    let! _ = get app "/orders/9"
                    do! app.Monitor.FlushAsync()
                    let owner = IO.UnixFileMode.UserRead ||| IO.UnixFileMode.UserWrite

                    for f in [ app.DbPath; app.DbPath + "-wal" ] do
                        Expect.isTrue (IO.File.Exists f) f
                        Expect.equal (IO.File.GetUnixFileMode f) owner f

                    let spillPath = IO.Path.Combine(app.Folder, "private.spill.jsonl")

                    let spill =
                        ErrorMonitor.Web.JournalFile(
                            spillPath,
                            "test",
                            Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance,
                            fun () -> []
                        )

                    let! all = records app.Store
                    let r = all.Head

                    spill.Append(fun _ ->
                        [
                            {
                                Latest =
                                    {
                                        Hash = r.Hash
                                        Host = r.Host
                                        Path = r.Path
                                        Method = r.Method
                                        RequestData = r.RequestData
                                        ExceptionName = r.ExceptionName
                                        Message = r.Message
                                        Traceback = r.Traceback
                                        OccurredAt = r.LastSeen
                                        Release = r.LastRelease
                                        Environment = r.Environment
                                        Project = r.Project
                                    }
                                FirstAt = r.CreatedOn
                                Count = 1L
                                Detailed = true
                                Hours = ErrorMonitor.Core.History.one r.LastSeen 1L
                                Users = [||]
                            }
                        ])

                    spill.Close()
                    Expect.equal (IO.File.GetUnixFileMode spillPath) owner "spill file"
                }

            testTask' "300 query arguments: 200 are kept and the marker says exactly how many were left out"
            <| fun () ->
                task {
                    use! app = monitored ignore
                    let query = String.Join("&", [ 1..300 ] |> List.map (fun i -> sprintf "a%d=%d" i i))
                    let! status = get app ("/orders/5?" + query)
                    Expect.equal status HttpStatusCode.InternalServerError "the app's own 500"
                    do! app.Monitor.FlushAsync()
                    let! all = records app.Store
                    let data = all.Head.RequestData
                    Expect.stringContains data "\"a200\":\"200\"" "the 200th kept"
                    Expect.isFalse (data.Contains "\"a201\"") "the 201st left out"
                    Expect.stringContains data "[100 more entries not shown]" "the marker counts all that was left out"
                }

            testTask' "the same failure twice is one record with count 2, whatever the ids in its message"
            <| fun () ->
                task {
                    use! app = monitored ignore
                    let! _ = get app "/orders/1"
                    let! _ = get app "/orders/2"
                    do! app.Monitor.FlushAsync()
                    let! all = records app.Store
                    Expect.equal (all |> List.map (fun r -> r.Count)) [ 2L ] "one group, two occurrences"
                }

            testTask'
                "repeats within the details interval only count once the site repeats; then the details refresh; a group deleted while failing comes back"
            <| fun () ->
                task {
                    let clock = ManualClock(DateTimeOffset.UtcNow)

                    use! app =
                        start
                            [ "APP_ERROR_DETAILS_INTERVAL", "30s" ]
                            (fun s -> s.AddSingleton<TimeProvider>(clock).AddErrorMonitor() |> ignore)
                            (fun app ->
                                app.UseErrorMonitor() |> ignore
                                throwingRoutes app)

                    // One failure at `path` a second after the last, then the one group as stored.
                    let failThenRead (path: string) =
                        task {
                            clock.Advance(TimeSpan.FromSeconds 1.0)
                            let! _ = get app path
                            do! app.Monitor.FlushAsync()
                            let! all = records app.Store
                            Expect.equal all.Length 1 "one group"
                            return all.Head
                        }

                    let! r1 = failThenRead "/orders/1?x=first"
                    Expect.stringContains r1.RequestData "first" "the first occurrence's details"
                    // A site is remembered once it has shown it repeats (`RepeatingSites`): its second occurrence
                    // is captured whole, later ones within the interval only counted.
                    let! second = failThenRead "/orders/2?x=second"
                    Expect.stringContains second.RequestData "second" "the second occurrence's details, once"
                    let! _ = failThenRead "/orders/3?x=third"
                    let! r2 = failThenRead "/orders/4?x=fourth"
                    Expect.equal r2.Count 4L "every repeat counted"
                    Expect.stringContains r2.RequestData "second" "details kept within the interval"
                    Expect.equal r2.LastSeen (clock.GetUtcNow()) "last seen is the latest repeat's time"
                    Expect.equal r2.CreatedOn r1.CreatedOn "first seen unchanged"

                    clock.Advance(TimeSpan.FromSeconds 30.0)
                    let! r3 = failThenRead "/orders/5?x=refreshed"
                    Expect.equal r3.Count 5L "counted"
                    Expect.stringContains r3.RequestData "refreshed" "details refreshed after the interval"
                    Expect.stringContains r3.Message "order 5" "message refreshed too"

                    let! deleted = app.Store.DeleteAsync(r3.Hash, Threading.CancellationToken.None)
                    Expect.isTrue deleted "deleted"
                    let! r4 = failThenRead "/orders/6?x=after-delete"
                    Expect.equal r4.Count 1L "the group comes back with its new occurrence"
                    let! r5 = failThenRead "/orders/7?x=details-back"
                    Expect.equal r5.Count 2L "counted"
                    Expect.stringContains r5.RequestData "details-back" "its details come back with the next occurrence"
                    Expect.stringContains r5.Traceback "order 7 failed" "and its traceback"
                }

            testTask' "a throw site through a compiled lambda (as minimal APIs have) is identified on the request path"
            <| fun () ->
                task {
                    let fail (text: string) : string = raise (InvalidOperationException text)
                    let failOtherwise (text: string) : string = raise (InvalidOperationException text)

                    let compiled (fail: string -> string) =
                        let arg = Linq.Expressions.Expression.Parameter(typeof<string>, "x")

                        let call =
                            Linq.Expressions.Expression.Invoke(
                                Linq.Expressions.Expression.Constant(Func<string, string>(fun x -> fail x)),
                                arg
                            )

                        Linq.Expressions.Expression.Lambda<Func<string, string>>(call, arg).Compile()

                    let shapeOf (f: Func<string, string>) =
                        try
                            f.Invoke "!" |> ignore
                            failwith "did not throw"
                        with ex ->
                            ErrorMonitor.Web.ThrowSite.shapeOf ex

                    let one = compiled fail
                    let other = compiled failOtherwise
                    Expect.isTrue (shapeOf one).IsSome "identified"
                    Expect.equal (shapeOf one) (shapeOf one) "the same site, the same identity"
                    Expect.notEqual (shapeOf one) (shapeOf other) "another throw site, another identity"

                    // The same throwing method reached from two callers: two call chains, two identities.
                    let viaFirst () = fail "1"
                    let viaSecond () = fail "2"

                    let shapeOfCall (f: unit -> string) =
                        try
                            f () |> ignore
                            failwith "did not throw"
                        with ex ->
                            ErrorMonitor.Web.ThrowSite.shapeOf ex

                    Expect.notEqual (shapeOfCall viaFirst) (shapeOfCall viaSecond) "another caller, another identity"
                    Expect.equal (shapeOfCall viaFirst) (shapeOfCall viaFirst) "the same chain, the same identity"

                    Expect.isTrue
                        (ErrorMonitor.Web.ThrowSite.readsRawFrames ())
                        "on this runtime identities come from the runtime's frame array (the cheap way)"
                }

            test
                "a repeat of a throw site reads its frames from the cache, as a fresh read gives them; another caller, others" {
                let fail (text: string) : string = raise (InvalidOperationException text)
                let viaFirst () = fail "1"
                let viaSecond () = fail "2"

                let thrown (f: unit -> string) =
                    try
                        f () |> ignore
                        failwith "did not throw"
                    with ex ->
                        ex

                let reader = ErrorMonitor.Web.FrameReader(ErrorMonitor.Core.Limits.defaults)
                let first = reader.Read(thrown viaFirst)
                let again = reader.Read(thrown viaFirst)

                let fresh =
                    ErrorMonitor.Web.FrameReader(ErrorMonitor.Core.Limits.defaults).Read(thrown viaFirst)

                let second = reader.Read(thrown viaSecond)
                Expect.isNonEmpty (fst first) "frames read"
                Expect.equal again first "a repeat: the same frames"
                Expect.equal fresh first "the same as a reader that never saw the site"
                Expect.notEqual second first "another caller: other frames"

                Expect.isTrue
                    (ErrorMonitor.Web.ThrowSite.framesOf (thrown viaFirst)).IsSome
                    "on this runtime the cache key comes from the runtime's frame array"
            }

            testTask' "200 concurrent identical failures give a count of exactly 200"
            <| fun () ->
                task {
                    use! app = monitored ignore
                    let! statuses = Task.WhenAll [ for i in 1..200 -> get app (sprintf "/orders/%d" i) ]
                    Expect.allEqual statuses HttpStatusCode.InternalServerError "every request failed as the app would"
                    do! app.Monitor.FlushAsync()
                    let! all = records app.Store
                    Expect.equal (all |> List.map (fun r -> r.Count)) [ 200L ] "exact count"
                }

            testTask' "two different throw sites give two records"
            <| fun () ->
                task {
                    use! app = monitored ignore
                    let! _ = get app "/orders/1"
                    let! _ = get app "/payments"
                    do! app.Monitor.FlushAsync()
                    let! all = records app.Store

                    Expect.equal
                        (all |> List.map (fun r -> r.ExceptionName) |> List.sort)
                        [ "System.ArgumentException"; "System.InvalidOperationException" ]
                        "two groups"
                }

            testTask' "masked values never reach the database file"
            <| fun () ->
                task {
                    use! app =
                        monitored (fun app ->
                            app.MapPost(
                                "/signup",
                                Func<HttpContext, Task<string>>(fun ctx ->
                                    task {
                                        let! _ = ctx.Request.ReadFormAsync()
                                        return raise (InvalidOperationException "signup failed")
                                    })
                            )
                            |> ignore

                            app.MapPost(
                                "/api/login",
                                Func<HttpContext, Task<string>>(fun ctx ->
                                    task {
                                        ctx.Request.EnableBuffering()

                                        use reader =
                                            new StreamReader(ctx.Request.Body, Encoding.UTF8, false, 1024, true)

                                        let! _ = reader.ReadToEndAsync()
                                        return raise (InvalidOperationException "login failed")
                                    })
                            )
                            |> ignore)

                    use form =
                        new FormUrlEncodedContent(
                            dict [ "user", "bob"; "Password", "FORM-PW-1"; "client_secret", "FORM-SECRET-2" ]
                        )

                    use req =
                        new HttpRequestMessage(
                            HttpMethod.Post,
                            "/signup?apiSecret=QUERY-SECRET-3&page=2",
                            Content = form
                        )

                    req.Headers.Add("Authorization", "Bearer AUTH-TOKEN-4")
                    req.Headers.Add("X-Secret-Header", "HEADER-SECRET-5")
                    req.Headers.Add("Cookie", "session=COOKIE-6; my_password=COOKIE-PW-7")
                    use! r1 = app.Client.SendAsync req
                    Expect.equal r1.StatusCode HttpStatusCode.InternalServerError "failed"

                    use json =
                        new StringContent(
                            """{"user":"bob","credentials":{"password":"JSON-PW-8","list":[{"secretKey":"JSON-SECRET-9"}]}}""",
                            Encoding.UTF8,
                            "application/json"
                        )

                    use! r2 = app.Client.PostAsync("/api/login", json)
                    Expect.equal r2.StatusCode HttpStatusCode.InternalServerError "failed"
                    do! app.Monitor.FlushAsync()
                    let! all = records app.Store
                    Expect.equal all.Length 2 "both recorded"

                    let bytes = databaseText app

                    for secret in
                        [
                            "FORM-PW-1"
                            "FORM-SECRET-2"
                            "QUERY-SECRET-3"
                            "AUTH-TOKEN-4"
                            "HEADER-SECRET-5"
                            "COOKIE-6"
                            "COOKIE-PW-7"
                            "JSON-PW-8"
                            "JSON-SECRET-9"
                        ] do
                        Expect.isFalse (bytes.Contains secret) (sprintf "%s is not in the database files" secret)

                    let login = all |> List.find (fun r -> r.Path = "/api/login")
                    Expect.stringContains login.RequestData "\"user\":\"bob\"" "the rest of the JSON body is kept"
                    let signup = all |> List.find (fun r -> r.Path = "/signup")
                    Expect.stringContains signup.RequestData "\"user\":\"bob\"" "other form fields are kept"
                    Expect.stringContains signup.RequestData "**************" "masked with the default text"
                }

            testTask' "common secrets reach neither the database files, nor the JSON API, nor the pages"
            <| fun () ->
                task {
                    use! app =
                        monitored (fun app ->
                            app.MapErrorMonitor() |> ignore

                            app.MapGet(
                                "/pay",
                                Func<string>(fun () ->
                                    raise (
                                        InvalidOperationException
                                            "charge failed: password=MSG-PW-1 token=MSG-TOKEN-2 card 4111 1111 1111 1111 auth Bearer MSG-BEARER-3"
                                    ))
                            )
                            |> ignore)

                    use req =
                        new HttpRequestMessage(
                            HttpMethod.Get,
                            "/pay?access_token=Q-TOKEN-4&api_key=Q-KEY-5&pwd=Q-PWD-6&sig=Q-SIG-7&page=2"
                        )

                    for k, v in
                        [
                            "X-Auth-Token", "H-TOKEN-8"
                            "Api-Key", "H-KEY-9"
                            "Private-Token", "H-PT-10"
                            "X-Amz-Security-Token", "H-AMZ-11"
                            "X-Forwarded-Authorization", "Bearer H-FWD-12"
                            "X-CSRF-Token", "H-CSRF-13"
                            "Referer", "https://shop.example/cart?session=R-SESS-14&step=3"
                        ] do
                        req.Headers.TryAddWithoutValidation(k, v) |> ignore

                    use! r = app.Client.SendAsync req
                    Expect.equal r.StatusCode HttpStatusCode.InternalServerError "failed"
                    do! app.Monitor.FlushAsync()
                    let! all = records app.Store
                    let hash = all.Head.Hash
                    let files = databaseText app

                    let! api = app.Client.GetStringAsync "/dev/error/api/errors"
                    let! detailApi = app.Client.GetStringAsync("/dev/error/api/errors/" + hash)
                    let! page = app.Client.GetStringAsync("/dev/error/" + hash)

                    for secret in
                        [
                            "MSG-PW-1"
                            "MSG-TOKEN-2"
                            "4111 1111 1111 1111"
                            "MSG-BEARER-3"
                            "Q-TOKEN-4"
                            "Q-KEY-5"
                            "Q-PWD-6"
                            "Q-SIG-7"
                            "H-TOKEN-8"
                            "H-KEY-9"
                            "H-PT-10"
                            "H-AMZ-11"
                            "H-FWD-12"
                            "H-CSRF-13"
                            "R-SESS-14"
                        ] do
                        for where, text in
                            [ "database files", files; "JSON list", api; "JSON detail", detailApi; "detail page", page ] do
                            Expect.isFalse (text.Contains secret) (sprintf "%s is not in the %s" secret where)

                    Expect.stringContains detailApi "step=3" "the Referer's other arguments stay"
                    Expect.stringContains page "charge failed" "the message's plain words stay"
                }

            testTask' "the app's response is identical with and without ErrorMonitor"
            <| fun () ->
                task {
                    let appRoutes (withMonitor: bool) (app: WebApplication) =
                        app.UseExceptionHandler(
                            Action<IApplicationBuilder>(fun eh ->
                                eh.Run(fun ctx ->
                                    ctx.Response.StatusCode <- 503
                                    ctx.Response.Headers.["X-Handled"] <- "yes"
                                    ctx.Response.WriteAsync "handled by the app"))
                        )
                        |> ignore

                        if withMonitor then
                            app.UseErrorMonitor() |> ignore

                        throwingRoutes app

                    use! plain = start [] ignore (appRoutes false)

                    use! monitoredApp =
                        start [] (fun s -> s.AddErrorMonitor() |> ignore) (appRoutes true)

                    for path in [ "/orders/5"; "/payments"; "/ok"; "/missing" ] do
                        use! a = plain.Client.GetAsync path
                        use! b = monitoredApp.Client.GetAsync path
                        let! bodyA = a.Content.ReadAsStringAsync()
                        let! bodyB = b.Content.ReadAsStringAsync()
                        Expect.equal b.StatusCode a.StatusCode (sprintf "status of %s" path)
                        Expect.equal bodyB bodyA (sprintf "body of %s" path)

                        Expect.equal
                            (b.Headers.Contains "X-Handled")
                            (a.Headers.Contains "X-Handled")
                            (sprintf "the app's handler ran for %s" path)

                    do! monitoredApp.Monitor.FlushAsync()
                    let! all = records monitoredApp.Store
                    Expect.equal all.Length 2 "and both failures were recorded, once each"

                    Expect.allEqual
                        (all |> List.map (fun r -> r.Count))
                        1L
                        "recorded once, not again by the exception handler"
                }

            testTask' "a bad configuration stops start-up with one message naming the key"
            <| fun () ->
                task {
                    let! (result: exn option) =
                        task {
                            try
                                use! _ =
                                    start
                                        [
                                            "APP_DEFAULT_LIST_SIZE", "0"
                                            "ErrorMonitor:APP_ERROR_URL_PREFIX", "no-slash"
                                        ]
                                        (fun s -> s.AddErrorMonitor() |> ignore)
                                        (fun app -> app.UseErrorMonitor() |> ignore)

                                return None
                            with ex ->
                                return Some ex
                        }

                    match result with
                    | Some(:? ErrorMonitorConfigException as e) ->
                        Expect.stringContains e.Message "APP_DEFAULT_LIST_SIZE" "names the list size key"
                        Expect.stringContains e.Message "APP_ERROR_URL_PREFIX" "and the prefix key from the section"
                    | other -> failtestf "expected ErrorMonitorConfigException, got %A" other
                }

            testTask' "APP_ERROR_ENABLED=false records nothing and changes nothing"
            <| fun () ->
                task {
                    use! app =
                        start [ "APP_ERROR_ENABLED", "false" ] (fun s -> s.AddErrorMonitor() |> ignore) (fun app ->
                            app.UseErrorMonitor() |> ignore
                            throwingRoutes app)

                    let! status = get app "/orders/3"
                    Expect.equal status HttpStatusCode.InternalServerError "same failure"
                    do! app.Monitor.FlushAsync()
                    let! all = records app.Store
                    Expect.isEmpty all "nothing recorded"
                }

            testTask'
                "APP_ERROR_REQUEST_BODY records JSON, form and text bodies the app bound or never read, masked; over the limit noted; none by default; reads pass through"
            <| fun () ->
                task {
                    let routes (app: WebApplication) =
                        app.UseErrorMonitor() |> ignore

                        app.MapPost(
                            "/bind",
                            Func<JsonElement, string>(fun body ->
                                raise (InvalidOperationException(sprintf "bound %d" (body.GetRawText().Length))))
                        )
                        |> ignore

                        app.MapPost(
                            "/unread",
                            Func<HttpContext, string>(fun _ -> raise (InvalidOperationException "before reading"))
                        )
                        |> ignore

                        app.MapPost(
                            "/unread-form",
                            Func<HttpContext, string>(fun _ -> raise (FormatException "before reading the form"))
                        )
                        |> ignore

                        app.MapPost(
                            "/bind-big",
                            Func<JsonElement, string>(fun _ -> raise (NotSupportedException "too big"))
                        )
                        |> ignore

                        app.MapPost(
                            "/echo",
                            Func<HttpContext, Task<string>>(fun ctx ->
                                task {
                                    use reader = new StreamReader(ctx.Request.Body)
                                    let! text = reader.ReadToEndAsync()
                                    return string text.Length + ":" + text.Substring(text.Length - 5)
                                })
                        )
                        |> ignore

                    let bodyOf (app: RunningApp) (path: string) =
                        task {
                            do! app.Monitor.FlushAsync()
                            let! all = records app.Store
                            let r = all |> List.find (fun r -> r.Path = path)
                            let data = JsonDocument.Parse(r.RequestData).RootElement.Clone()

                            return
                                data,
                                (match data.TryGetProperty "body" with
                                 | true, b -> Some b
                                 | _ -> None)
                        }

                    let post (app: RunningApp) (path: string) (content: HttpContent) =
                        task {
                            use c = content
                            use! r = app.Client.PostAsync(path, c)
                            let! text = r.Content.ReadAsStringAsync()
                            return r.StatusCode, text
                        }

                    let json (text: string) =
                        new StringContent(text, Encoding.UTF8, "application/json") :> HttpContent

                    use! app =
                        start [ "APP_ERROR_REQUEST_BODY", "small" ] (fun s -> s.AddErrorMonitor() |> ignore) routes

                    // Bound by the framework, never buffered by the app.
                    let! status, _ =
                        post
                            app
                            "/bind"
                            (json """{"user":"bob","token":"TOK-BODY-1","nested":{"password":"PW-BODY-2"}}""")

                    Expect.equal status HttpStatusCode.InternalServerError "fails after binding"
                    let! _, bound = bodyOf app "/bind"
                    let bound = Expect.wantSome bound "the bound body is recorded"
                    Expect.equal (bound.GetProperty("user").GetString()) "bob" "as JSON"
                    Expect.equal (bound.GetProperty("token").GetString()) "**************" "a token masked"

                    Expect.equal
                        (bound.GetProperty("nested").GetProperty("password").GetString())
                        "**************"
                        "a password masked at depth"

                    // Never read by the app: read when the request fails.
                    let! _ = post app "/unread" (json """{"order":7}""")
                    let! _, unread = bodyOf app "/unread"

                    Expect.equal
                        ((Expect.wantSome unread "an unread body is recorded").GetProperty("order").GetInt32())
                        7
                        "its content"

                    // A form the app never read: its fields, masked by key.
                    let! _ =
                        post
                            app
                            "/unread-form"
                            (new FormUrlEncodedContent(dict [ "user", "ann"; "password", "PW-FORM-3" ]))

                    let! formData, _ = bodyOf app "/unread-form"
                    let fields = formData.GetProperty("form")
                    Expect.equal (fields.GetProperty("user").GetString()) "ann" "the form's fields"
                    Expect.equal (fields.GetProperty("password").GetString()) "**************" "masked by key"

                    // Over the limit: noted, not recorded (a cut JSON text could not be masked by key).
                    let big =
                        sprintf """{"user":"bob","pad":"%s","password":"PW-BIG-4"}""" (String('x', 2000))

                    let! _ = post app "/bind-big" (json big)
                    let! _, over = bodyOf app "/bind-big"
                    Expect.stringContains ((Expect.wantSome over "a note").GetString()) "over 1000 bytes" "noted"

                    // A successful request with a large body reads it whole, unchanged.
                    let large = String('y', 50000) + "tail!"

                    let! echoed, text =
                        post app "/echo" (new StringContent(large, Encoding.UTF8, "text/plain"))

                    Expect.equal echoed HttpStatusCode.OK "answers"
                    Expect.equal text "50005:tail!" "the app reads the body as sent"

                    let db = databaseText app

                    for secret in [ "TOK-BODY-1"; "PW-BODY-2"; "PW-FORM-3"; "PW-BIG-4" ] do
                        Expect.isFalse (db.Contains secret) (secret + " never reaches the database")

                    // The default: no body recorded.
                    use! plain = start [] (fun s -> s.AddErrorMonitor() |> ignore) routes
                    let! _ = post plain "/bind" (json """{"user":"bob"}""")
                    let! data, none = bodyOf plain "/bind"
                    Expect.isNone none (sprintf "no body without APP_ERROR_REQUEST_BODY: %O" data)
                }

            testTask'
                "with capture off (APP_ERROR_ENABLED=false) APP_ERROR_REQUEST_BODY wraps no request body: the app reads the server's own stream"
            <| fun () ->
                task {
                    let routes (app: WebApplication) =
                        app.UseErrorMonitor() |> ignore

                        app.MapPost(
                            "/body-type",
                            Func<HttpContext, string>(fun ctx -> ctx.Request.Body.GetType().FullName)
                        )
                        |> ignore

                    let bodyType (settings: (string * string) list) =
                        task {
                            use! app = start settings (fun s -> s.AddErrorMonitor() |> ignore) routes

                            use content =
                                new StringContent("""{"order":7}""", Encoding.UTF8, "application/json")

                            use! r = app.Client.PostAsync("/body-type", content)
                            Expect.equal r.StatusCode HttpStatusCode.OK "answers"
                            return! r.Content.ReadAsStringAsync()
                        }

                    // On: the app reads through ErrorMonitor's recording body (so this test can tell the two apart).
                    let! on = bodyType [ "APP_ERROR_REQUEST_BODY", "small" ]
                    Expect.stringStarts on "ErrorMonitor." (sprintf "capture on wraps the body: %s" on)

                    let! off =
                        bodyType [ "APP_ERROR_REQUEST_BODY", "small"; "APP_ERROR_ENABLED", "false" ]

                    Expect.isFalse
                        (off.StartsWith "ErrorMonitor.")
                        (sprintf "capture off leaves the server's body stream: %s" off)
                }
        ]
