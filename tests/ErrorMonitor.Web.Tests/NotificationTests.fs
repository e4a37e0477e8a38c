/// Notifications through a real SMTP server (aiosmtpd, Maildir) and a real local webhook listener.
module internal ErrorMonitor.Web.Tests.NotificationTests

open System
open System.Collections.Concurrent
open System.Diagnostics
open System.IO
open System.Net
open System.Net.Http
open System.Text.Json
open System.Threading
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Http
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Logging
open MimeKit
open Expecto
open ErrorMonitor
open ErrorMonitor.Web
open ErrorMonitor.Web.Tests.TestApp
open ErrorMonitor.Web.Tests.DemoAppTests
open ErrorMonitor.Web.Tests.StoreContractTests

let private env (name: string) =
    match Environment.GetEnvironmentVariable name with
    | null
    | "" -> failwithf "%s is not set: run the suites with ./test.sh, which starts the SMTP server" name
    | v -> v

/// The mails the test SMTP server received whose subject contains `marker`.
let mails (marker: string) : MimeMessage list =
    let dir = Path.Combine(env "ERRORMONITOR_TEST_MAILDIR", "new")

    Directory.GetFiles dir
    |> Array.choose (fun f ->
        try
            let m = MimeMessage.Load f

            if not (isNull m.Subject) && m.Subject.Contains marker then
                Some m
            else
                None
        with _ ->
            None)
    |> List.ofArray

/// Waits until at least `n` mails with `marker` arrived.
let waitForMails (marker: string) (n: int) =
    task {
        let sw = Stopwatch.StartNew()

        while (mails marker).Length < n do
            if sw.Elapsed > TimeSpan.FromSeconds 30.0 then
                failwithf "expected %d mails with '%s', got %d" n marker (mails marker).Length

            do! Task.Delay 50
    }

/// Collects log entries.
type LogSink() =
    let entries = ConcurrentQueue<EventId * string>()
    member _.Entries = List.ofSeq entries

    interface ILoggerProvider with
        member this.CreateLogger _ =
            { new ILogger with
                member _.BeginScope _ = null
                member _.IsEnabled _ = true

                member _.Log(_, id, state, ex, formatter) =
                    entries.Enqueue(id, formatter.Invoke(state, ex))
            }

        member _.Dispose() = ()

let private smtpSettings (marker: string) =
    [
        "APP_ERROR_SEND_NOTIFICATION", "true"
        "APP_ERROR_SMTP_HOST", "127.0.0.1"
        "APP_ERROR_SMTP_PORT", env "ERRORMONITOR_TEST_SMTP_PORT"
        "APP_ERROR_SMTP_SECURITY", "none"
        "APP_ERROR_RECIPIENT_EMAIL:0", "ops@example.com"
        "APP_ERROR_RECIPIENT_EMAIL:1", "dev@example.com"
        "APP_ERROR_EMAIL_SENDER", "monitor@example.com"
        "APP_ERROR_SUBJECT_PREFIX", marker
    ]

let private marker () =
    "T" + Guid.NewGuid().ToString("N").Substring(0, 10)

/// An app with email notifications, a clock the test moves, and the failing routes.
let private notifyingApp
    (settings: (string * string) list)
    (clock: ManualClock option)
    (extra: IServiceCollection -> unit)
    =
    start
        settings
        (fun s ->
            clock |> Option.iter (fun c -> s.AddSingleton<TimeProvider>(c) |> ignore)
            extra s
            s.AddErrorMonitor() |> ignore)
        (fun app ->
            app.UseErrorMonitor() |> ignore

            app.MapGet(
                "/orders/{id}",
                Func<string, string>(fun id -> raise (InvalidOperationException(sprintf "order %s failed" id)))
            )
            |> ignore)

let private settle (app: RunningApp) =
    app.App.Services.GetRequiredService<Engine>().SettleAsync(CancellationToken.None)

/// A notifier that throws.
type ThrowingNotifier() =
    interface INotifier with
        member _.NotifyAsync(_, _) =
            raise (InvalidOperationException "notifier broke")

/// A notifier that never finishes and ignores its token.
type HangingNotifier() =
    interface INotifier with
        member _.NotifyAsync(_, _) = TaskCompletionSource().Task

/// Counts tickets.
type CountingTicketing() =
    let raised = ConcurrentQueue<string>()
    member _.Raised = List.ofSeq raised

    interface ITicketing with
        member _.RaiseTicketAsync(record, _) =
            raised.Enqueue record.Hash
            Task.CompletedTask

[<Tests>]
let tests =
    testSequenced
    <| testList
        "notifications"
        [
            testTask'
                "APP_ERROR_TICKET_EVERY_OCCURRENCE raises a ticket for every written batch, once a group without it"
            <| fun () ->
                task {
                    for every, expected in [ true, 3; false, 1 ] do
                        let tickets = CountingTicketing()

                        use! app =
                            notifyingApp
                                [
                                    "APP_ERROR_TICKET_EVERY_OCCURRENCE", (if every then "true" else "false")
                                    "APP_ERROR_DETAILS_INTERVAL", "0s"
                                ]
                                None
                                (fun s -> s.AddSingleton<ITicketing>(tickets) |> ignore)

                        // Three occurrences of one group, each written in a batch of its own.
                        for _ in 1..3 do
                            use! r = app.Client.GetAsync "/orders/7"
                            Expect.equal r.StatusCode HttpStatusCode.InternalServerError "fails"
                            do! settle app

                        let! all = records app.Store
                        Expect.equal (all |> List.map (fun r -> r.Count)) [ 3L ] "one group, three occurrences"
                        Expect.equal tickets.Raised.Length expected (sprintf "tickets with every=%b" every)
                }
            testTask' "secrets in a failure's message and path reach neither the mail's subject nor its body"
            <| fun () ->
                task {
                    let m = marker ()
                    use! app = notifyingApp (smtpSettings m) None ignore
                    // The id lands in the path and in the exception's message ("order {id} failed").
                    use! _ = app.Client.GetAsync "/orders/4111111111111111%20token=MAIL-TOKEN-1"
                    do! waitForMails m 1
                    do! settle app
                    let mail = (mails m).Head

                    for secret in [ "MAIL-TOKEN-1"; "4111111111111111"; "4111 1111" ] do
                        Expect.isFalse
                            (mail.TextBody.Contains secret || mail.Subject.Contains secret)
                            (sprintf "%s is not in %s" secret mail.Subject)

                    Expect.stringContains mail.TextBody "order" "the message's plain words stay"
                }

            testTask' "mail arrives with the sender, recipients, subject and body, and without masked values"
            <| fun () ->
                task {
                    let m = marker ()

                    use! app =
                        notifyingApp
                            (smtpSettings m @ [ "APP_ERROR_BASE_URL", "https://shop.example.com/" ])
                            None
                            ignore

                    use! _ = app.Client.GetAsync "/orders/7?password=PW-IN-QUERY&page=1"
                    do! waitForMails m 1
                    do! settle app
                    let mail = (mails m).Head
                    let! all = records app.Store
                    let r = all.Head
                    Expect.equal (string mail.From) "monitor@example.com" "sender"

                    Expect.equal
                        (mail.To.Mailboxes |> Seq.map (fun a -> a.Address) |> List.ofSeq)
                        [ "ops@example.com"; "dev@example.com" ]
                        "recipients"

                    Expect.equal
                        mail.Subject
                        (sprintf
                            "[%s] [GET] %s/orders/7?password=**************&page=1 System.InvalidOperationException"
                            m
                            (app.BaseUrl.TrimEnd '/'))
                        "the seed's subject format"

                    let body = mail.TextBody
                    Expect.stringContains body "Occurrences: 1" "counts"
                    Expect.stringContains body "System.InvalidOperationException: order 7 failed" "traceback"

                    Expect.stringContains
                        body
                        (sprintf "https://shop.example.com/dev/error/%s" r.Hash)
                        "link to the detail page"

                    Expect.isFalse
                        (body.Contains "PW-IN-QUERY" || mail.Subject.Contains "PW-IN-QUERY")
                        "masked value absent"

                    Expect.equal (mails m).Length 1 "one mail"
                }

            testTask' "10,000 occurrences of one group send exactly one email"
            <| fun () ->
                task {
                    let m = marker ()
                    use! app = notifyingApp (smtpSettings m) None ignore

                    for i in 1..10000 do
                        app.Monitor.RecordException(InvalidOperationException(sprintf "storm %d" i))
                        |> ignore

                    do! settle app
                    let! all = records app.Store
                    Expect.equal (all |> List.map (fun r -> r.Count)) [ 10000L ] "all counted, one group"
                    Expect.equal (mails m).Length 1 "exactly one email"
                }

            testTask' "50 new groups with a cap of 10: ten emails, then one summary when the interval ends"
            <| fun () ->
                task {
                    let m = marker ()
                    let clock = ManualClock(DateTimeOffset.UtcNow)

                    use! app =
                        notifyingApp
                            (smtpSettings m @ [ "APP_ERROR_NOTIFY_MAX_PER_INTERVAL", "10" ])
                            (Some clock)
                            ignore

                    let distinct = ErrorMonitor.Web.Tests.BrowseTests.distinctFailures 50

                    for e in distinct do
                        app.Monitor.RecordException e |> ignore

                    do! settle app
                    let! all = records app.Store
                    Expect.equal all.Length 50 "fifty groups"
                    Expect.equal (mails m).Length 10 "ten emails"
                    clock.Advance(TimeSpan.FromMinutes 31.0)
                    do! waitForMails (m + "] 40 more notifications held back") 1
                    do! settle app
                    Expect.equal (mails m).Length 11 "and one summary"
                }

            testTask' "a group quiet past the regression period notifies again; a group that is not quiet does not"
            <| fun () ->
                task {
                    let m = marker ()
                    let clock = ManualClock(DateTimeOffset.UtcNow)
                    use! app = notifyingApp (smtpSettings m) (Some clock) ignore

                    let fail () =
                        app.Monitor.RecordException(InvalidOperationException "regression") |> ignore

                    fail ()
                    do! settle app
                    Expect.equal (mails m).Length 1 "first seen"
                    clock.Advance(TimeSpan.FromHours 1.0)
                    fail ()
                    do! settle app
                    Expect.equal (mails m).Length 1 "an hour later: not quiet, no mail"
                    clock.Advance(TimeSpan.FromHours 25.0)
                    fail ()
                    do! settle app
                    Expect.equal (mails m).Length 2 "after 25 quiet hours: a regression mail"
                }

            testTask'
                "a throwing notifier, a hanging one and a down SMTP server: responses stay fast, records stored, failures logged"
            <| fun () ->
                task {
                    let sink = new LogSink()
                    let closedPort = freePort ()

                    let settings =
                        [
                            "APP_ERROR_SEND_NOTIFICATION", "true"
                            "APP_ERROR_SMTP_HOST", "127.0.0.1"
                            "APP_ERROR_SMTP_PORT", string closedPort
                            "APP_ERROR_SMTP_SECURITY", "none"
                            "APP_ERROR_RECIPIENT_EMAIL", "ops@example.com"
                            "APP_ERROR_EMAIL_SENDER", "monitor@example.com"
                            "APP_ERROR_NOTIFY_TIMEOUT", "1s"
                        ]

                    let tickets = CountingTicketing()

                    use! app =
                        notifyingApp settings None (fun s ->
                            s.AddLogging(fun l -> l.AddProvider sink |> ignore) |> ignore
                            s.AddSingleton<INotifier, ThrowingNotifier>() |> ignore
                            s.AddSingleton<INotifier, HangingNotifier>() |> ignore
                            s.AddSingleton<ITicketing>(tickets) |> ignore)

                    let slowest = Stopwatch()

                    for i in 1..20 do
                        let sw = Stopwatch.StartNew()
                        use! r = app.Client.GetAsync(sprintf "/orders/%d" i)
                        Expect.equal r.StatusCode HttpStatusCode.InternalServerError "the app's own answer"

                        if sw.Elapsed > slowest.Elapsed then
                            slowest.Restart()

                        Expect.isLessThan
                            sw.Elapsed
                            (TimeSpan.FromSeconds 1.0)
                            "no request waits for a notifier (timeout 1 s)"

                    do! settle app
                    let! all = records app.Store
                    Expect.equal (all |> List.map (fun r -> r.Count)) [ 20L ] "every occurrence stored"
                    Expect.equal tickets.Raised.Length 1 "one ticket for the group"

                    let failedPlugIns =
                        sink.Entries |> List.filter (fun (id, _) -> id.Id = 1020) |> List.map snd

                    for name in [ "ThrowingNotifier"; "HangingNotifier"; "EmailNotifier" ] do
                        Expect.isTrue
                            (failedPlugIns |> List.exists (fun m -> m.Contains name))
                            (sprintf "%s's failure is logged" name)
                }

            testTask' "the webhook notifier posts a Slack-compatible message to a real local listener"
            <| fun () ->
                task {
                    let received = ConcurrentQueue<string>()

                    use! listener =
                        start [] ignore (fun hook ->
                            hook.MapPost(
                                "/hook",
                                Func<HttpContext, Task>(fun ctx ->
                                    task {
                                        use reader = new StreamReader(ctx.Request.Body)
                                        let! body = reader.ReadToEndAsync()
                                        received.Enqueue body
                                    })
                            )
                            |> ignore)

                    use! app =
                        notifyingApp
                            [
                                "APP_ERROR_SEND_NOTIFICATION", "true"
                                "APP_ERROR_WEBHOOK_URL", listener.BaseUrl.TrimEnd('/') + "/hook"
                            ]
                            None
                            ignore

                    use! _ = app.Client.GetAsync "/orders/1"
                    use! _ = app.Client.GetAsync "/orders/2"
                    do! settle app
                    Expect.equal received.Count 1 "one message for the group"
                    let ok, body = received.TryPeek()
                    Expect.isTrue ok "a body"
                    use doc = JsonDocument.Parse body
                    let root = doc.RootElement

                    Expect.stringContains
                        (root.GetProperty("text").GetString())
                        "System.InvalidOperationException"
                        "Slack text"

                    Expect.equal
                        (root.GetProperty("exceptionName").GetString())
                        "System.InvalidOperationException"
                        "fields"

                    Expect.equal (root.GetProperty("reason").GetString()) "first-seen" "reason"
                    Expect.equal (root.GetProperty("hash").GetString().Length) 64 "hash"
                }

            testTask' "two demo instances on one PostgreSQL store, configured by environment alone: one email per group"
            <| fun () ->
                task {
                    let m = marker ()
                    let table = "notify_" + Guid.NewGuid().ToString "N"

                    let envs =
                        (smtpSettings m |> List.map (fun (k, v) -> k.Replace(":", "__"), v))
                        @ [
                            "APP_ERROR_STORE", "postgres"
                            "ConnectionStrings__ErrorMonitor", postgres ()
                            "APP_ERROR_TABLE", table
                            "APP_ERROR_NOTIFY_MAX_PER_INTERVAL", "100"
                        ]

                    use a = new DemoProcess(tempFolder (), envs)
                    use b = new DemoProcess(tempFolder (), envs)
                    do! a.WaitReadyAsync()
                    do! b.WaitReadyAsync()

                    let! _ =
                        Task.WhenAll
                            [
                                for i in 1..20 do
                                    for client in [ a.Client; b.Client; a.Client; b.Client ] ->
                                        task {
                                            use! r = client.GetAsync(sprintf "/group/n%d" i)
                                            return r.StatusCode
                                        }
                            ]

                    do! waitForMails m 20
                    do! a.StopAsync()
                    do! b.StopAsync()
                    let subjects = mails m |> List.map (fun x -> x.Subject)
                    Expect.equal subjects.Length 20 "twenty mails in all"
                    Expect.equal (subjects |> List.distinct |> List.length) 20 "one a group"
                }
        ]
