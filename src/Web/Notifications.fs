namespace ErrorMonitor.Web

open System
open System.Collections.Generic
open System.Net.Http
open System.Text
open System.Text.Json
open System.Threading
open System.Threading.Channels
open System.Threading.Tasks
open MailKit.Net.Smtp
open MailKit.Security
open Microsoft.Extensions.Logging
open MimeKit
open ErrorMonitor
open ErrorMonitor.Core

/// A record's fields as JSON properties, as the JSON API and the webhook show them.
[<RequireQualifiedAccess>]
module internal RecordJson =

    /// A time as JSON has it: ISO 8601 UTC, seven fractional digits.
    let time (t: DateTimeOffset) =
        t.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffffffZ", Globalization.CultureInfo.InvariantCulture)

    let private nullableTime (w: Utf8JsonWriter) (name: string) (t: Nullable<DateTimeOffset>) =
        if t.HasValue then
            w.WriteString(name, time t.Value)
        else
            w.WriteNull name

    /// Writes a release or environment name: null when empty (unknown).
    let name (w: Utf8JsonWriter) (field: string) (value: string) =
        if String.IsNullOrEmpty value then
            w.WriteNull field
        else
            w.WriteString(field, value)

    /// Writes hash, host, path, method, exceptionName, message, count, createdOn and lastSeen (ISO 8601 UTC),
    /// status, regressions, lastRegression, ignoreUntil and ignoreUntilCount (null when none), and the culprit
    /// (the top frame of the app's own code, `Traceback.culprit`; null when none), users (distinct users, exact
    /// below `Users.Bound`) and usersAtLeast (true at the bound: that many or more); firstRelease, lastRelease,
    /// environment (of the latest occurrence), regressionRelease (the release it last came back in) and project (the
    /// Sentry project id it was reported under), each null when unknown.
    let fields (w: Utf8JsonWriter) (r: ErrorRecord) =
        w.WriteString("hash", r.Hash)
        w.WriteString("host", r.Host)
        w.WriteString("path", r.Path)
        w.WriteString("method", r.Method)
        w.WriteString("exceptionName", r.ExceptionName)
        w.WriteString("message", r.Message)
        w.WriteNumber("count", r.Count)
        w.WriteString("createdOn", time r.CreatedOn)
        w.WriteString("lastSeen", time r.LastSeen)
        w.WriteString("status", Triage.statusName r.Status)
        w.WriteNumber("regressions", r.Regressions)
        nullableTime w "lastRegression" r.LastRegression
        nullableTime w "ignoreUntil" r.IgnoreUntil

        if r.IgnoreUntilCount.HasValue then
            w.WriteNumber("ignoreUntilCount", r.IgnoreUntilCount.Value)
        else
            w.WriteNull "ignoreUntilCount"

        match Traceback.culprit r.Traceback with
        | Some c -> w.WriteString("culprit", c)
        | None -> w.WriteNull "culprit"

        w.WriteNumber("users", r.Users)
        w.WriteBoolean("usersAtLeast", r.Users >= int64 Users.Bound)
        name w "firstRelease" r.FirstRelease
        name w "lastRelease" r.LastRelease
        name w "environment" r.Environment
        name w "regressionRelease" r.RegressionRelease
        name w "project" r.Project

    /// Writes request data (JSON text) as the object it is: `{"raw": text}` if it is not JSON.
    let requestData (w: Utf8JsonWriter) (data: string) =
        w.WritePropertyName "requestData"

        try
            use doc = JsonDocument.Parse data
            doc.RootElement.WriteTo w
        with _ ->
            w.WriteStartObject()
            w.WriteString("raw", data)
            w.WriteEndObject()

    /// Writes the breadcrumbs of an occurrence (the log entries before it, kept in its request data), oldest
    /// first: each its time, level, category and message; an empty array when it has none.
    let breadcrumbs (w: Utf8JsonWriter) (data: string) =
        w.WritePropertyName "breadcrumbs"

        try
            use doc = JsonDocument.Parse data

            match doc.RootElement.TryGetProperty LogCapture.BreadcrumbsKey with
            | true, b when b.ValueKind = JsonValueKind.Array -> b.WriteTo w
            | _ ->
                w.WriteStartArray()
                w.WriteEndArray()
        with _ ->
            w.WriteStartArray()
            w.WriteEndArray()

    /// Writes a sample's id, occurredAt, message, release and environment (null when unknown) (`full`: its
    /// requestData, an object, breadcrumbs and traceback too).
    let sample (w: Utf8JsonWriter) (full: bool) (s: Sample) =
        w.WriteNumber("id", s.Id)
        w.WriteString("occurredAt", time s.OccurredAt)
        w.WriteString("message", s.Message)
        name w "release" s.Release
        name w "environment" s.Environment

        if full then
            requestData w s.RequestData
            breadcrumbs w s.RequestData
            w.WriteString("traceback", s.Traceback)

/// The built-in email notifier: SMTP through MailKit, configured by the APP_ERROR_SMTP_* keys.
type internal EmailNotifier(n: NotifySettings) =
    interface INotifier with
        member _.NotifyAsync(notification, ct) =
            task {
                let message = new MimeMessage()
                message.From.Add(MailboxAddress.Parse notification.Sender)

                for r in notification.Recipients do
                    message.To.Add(MailboxAddress.Parse r)

                message.Subject <- notification.Subject
                message.Body <- new TextPart("plain", Text = notification.Body)
                use client = new SmtpClient()

                let security =
                    match n.SmtpSecurity with
                    | SmtpSecurity.None -> SecureSocketOptions.None
                    | SmtpSecurity.StartTls -> SecureSocketOptions.StartTls
                    | SmtpSecurity.Tls -> SecureSocketOptions.SslOnConnect

                do! client.ConnectAsync(Option.get n.SmtpHost, n.SmtpPort, security, ct)

                match n.SmtpUser with
                | Some user -> do! client.AuthenticateAsync(user, Option.defaultValue "" n.SmtpPassword, ct)
                | None -> ()

                let! _ = client.SendAsync(message, ct)
                do! client.DisconnectAsync(true, ct)
            }
            :> Task

/// The built-in webhook notifier: POSTs JSON with a Slack-compatible `text` and the record's fields.
type internal WebhookNotifier(url: string, client: HttpClient) =

    /// The JSON message for a notification.
    static member Payload(notification: Notification) : byte array =
        use ms = new IO.MemoryStream()

        (use w = new Utf8JsonWriter(ms)
         w.WriteStartObject()

         let text =
             match notification.DetailLink with
             | null -> notification.Subject
             | link -> sprintf "%s\n%s" notification.Subject link

         w.WriteString("text", text)
         w.WriteString("reason", notification.Reason)
         w.WriteString("subject", notification.Subject)
         w.WriteString("url", notification.Url)

         match notification.DetailLink with
         | null -> ()
         | link -> w.WriteString("detailLink", link)

         match box notification.Record with
         | null -> ()
         | _ ->
             RecordJson.fields w notification.Record
             w.WriteString("traceback", notification.Record.Traceback)

         w.WriteEndObject())

        ms.ToArray()

    interface INotifier with
        member _.NotifyAsync(notification, ct) =
            task {
                use content = new ByteArrayContent(WebhookNotifier.Payload notification)
                content.Headers.ContentType <- Headers.MediaTypeHeaderValue("application/json")
                use! response = client.PostAsync(url, content, ct)
                response.EnsureSuccessStatusCode() |> ignore
            }
            :> Task

/// Runs notifiers and ticketing after groups are written: the policy (Core) decides, the store's conditional
/// update makes one instance the sender, and each call runs with a timeout and retries, off the request path.
type internal Dispatcher
    (
        settings: Settings,
        store: IErrorStore,
        notifiers: INotifier list,
        ticketing: ITicketing list,
        clock: TimeProvider,
        logger: ILogger
    ) =
    let n = settings.Notify
    let notifying = settings.SendNotification && not notifiers.IsEmpty

    let channel =
        Channel.CreateBounded<GroupDelta * GroupWritten>(
            BoundedChannelOptions(10000, FullMode = BoundedChannelFullMode.Wait)
        )

    let gate = obj ()
    let mutable window = Policy.openWindow (clock.GetUtcNow())
    let mutable dropped = 0L
    let mutable posted = 0L
    let mutable handled = 0L
    let mutable running = 0L
    let inFlight = new SemaphoreSlim(8)
    let stopping = new CancellationTokenSource()
    let mutable loops: Task list = []

    let attempts = 3

    /// Runs one plug-in call with a timeout (also for calls that ignore their token) and retries.
    let call (what: string) (hash: string) (f: CancellationToken -> Task) : Task =
        task {
            let mutable attempt = 1
            let mutable fin = false

            while not fin do
                use cts = new CancellationTokenSource(n.Timeout)

                try
                    do! (f cts.Token).WaitAsync(n.Timeout)
                    fin <- true
                with ex ->
                    if attempt >= attempts then
                        Log.PlugInFailed logger ex what hash attempts

                        fin <- true
                    else
                        Log.PlugInRetry logger ex what hash attempt

                        attempt <- attempt + 1

                        try
                            do!
                                Task.Delay(
                                    Limits.backoff (TimeSpan.FromMilliseconds 400.0) (TimeSpan.FromSeconds 30.0) attempt,
                                    stopping.Token
                                )
                        with :? OperationCanceledException ->
                            fin <- true
        }

    /// Starts a call without waiting for it (at most 8 at once), so one slow plug-in holds up nothing else.
    let launch (what: string) (hash: string) (f: CancellationToken -> Task) =
        Interlocked.Increment &running |> ignore

        Task.Run(fun () ->
            task {
                try
                    do! inFlight.WaitAsync()

                    try
                        do! call what hash f
                    finally
                        inFlight.Release() |> ignore
                finally
                    Interlocked.Decrement &running |> ignore
            }
            :> Task)
        |> ignore

    let notification
        (reason: string)
        (record: ErrorRecord)
        (subject: string)
        (body: string)
        (url: string)
        (link: string option)
        =
        {
            Subject = subject
            Body = body
            Sender = Option.toObj settings.EmailSender
            Recipients = settings.RecipientEmails |> Array.ofList :> IReadOnlyList<string>
            Record = record
            Url = url
            DetailLink = Option.toObj link
            Reason = reason
        }

    let send (note: Notification) =
        let hash =
            if isNull (box note.Record) then
                "summary"
            else
                note.Record.Hash

        for notifier in notifiers do
            launch (notifier.GetType().Name) hash (fun ct -> notifier.NotifyAsync(note, ct))

    let sendSummary (ended: NotifyWindow) =
        match Policy.summary settings.SubjectPrefix n ended with
        | Some(subject, body) -> send (notification "summary" Unchecked.defaultof<ErrorRecord> subject body "" None)
        | None -> ()

    /// Closes the window when its interval is over, sending its summary.
    let rollWindow (now: DateTimeOffset) =
        let ended =
            lock gate (fun () ->
                let next, ended = Policy.roll n now window
                window <- next
                ended)

        ended |> Option.iter sendSummary

    let toOption (v: Nullable<DateTimeOffset>) =
        if v.HasValue then Some v.Value else None

    let handle (delta: GroupDelta, written: GroupWritten) : Task =
        task {
            let now = clock.GetUtcNow()
            rollWindow now

            let write =
                {
                    PreviousSeen = toOption written.PreviousSeen
                    FirstAt = delta.FirstAt
                    LastNotified = toOption written.LastNotified
                    TicketRaised = toOption written.TicketRaised
                    Status = written.Status
                    Regressed = written.Regressed
                }

            let reason = Policy.reason n now write

            let! record = store.GetAsync(written.Hash, stopping.Token)

            if not (isNull (box record)) then
                if notifying then
                    match reason with
                    | Some r ->
                        let! won =
                            if n.EveryOccurrence then
                                Task.FromResult true
                            else
                                store.TryClaimAsync(
                                    written.Hash,
                                    ClaimKind.Notification,
                                    written.LastNotified,
                                    now,
                                    stopping.Token
                                )

                        if won then
                            let admitted =
                                lock gate (fun () ->
                                    let next, ok =
                                        Policy.admit n (sprintf "%s %s" record.ExceptionName record.Path) window

                                    window <- next
                                    ok)

                            if admitted then
                                let url = Notification.recordUrl record
                                let link = Notification.detailLink n.BaseUrl settings.UrlPrefix record.Hash

                                let name =
                                    match r with
                                    | NotifyReason.FirstSeen -> "first-seen"
                                    | NotifyReason.Regression -> "regression"
                                    | NotifyReason.Occurrence -> "occurrence"

                                send (
                                    notification
                                        name
                                        record
                                        (Notification.subjectOf settings.SubjectPrefix record)
                                        (Notification.body record url link)
                                        url
                                        link
                                )
                    | None -> ()

                if not ticketing.IsEmpty && Policy.ticket n write reason then
                    // Once a group is claimed across instances; in the seed's mode every batch raises its own.
                    let! won =
                        if n.TicketEveryOccurrence then
                            Task.FromResult true
                        else
                            store.TryClaimAsync(
                                written.Hash,
                                ClaimKind.Ticket,
                                written.TicketRaised,
                                now,
                                stopping.Token
                            )

                    if won then
                        for t in ticketing do
                            launch (t.GetType().Name) record.Hash (fun ct -> t.RaiseTicketAsync(record, ct))
        }

    let run () : Task =
        task {
            let reader = channel.Reader

            try
                while not stopping.IsCancellationRequested do
                    let! more = reader.WaitToReadAsync(stopping.Token)

                    if not more then
                        stopping.Cancel()

                    let mutable item = Unchecked.defaultof<GroupDelta * GroupWritten>

                    while reader.TryRead(&item) do
                        try
                            try
                                do! handle item
                            with
                            | :? OperationCanceledException -> ()
                            | ex -> Log.NotifyFailed logger ex
                        finally
                            Interlocked.Increment &handled |> ignore
            with :? OperationCanceledException ->
                ()
        }

    let tick () : Task =
        task {
            try
                while not stopping.IsCancellationRequested do
                    do! Task.Delay(TimeSpan.FromSeconds 1.0, stopping.Token)
                    rollWindow (clock.GetUtcNow())
            with :? OperationCanceledException ->
                ()
        }

    /// True when there is anything to run.
    member _.Active = notifying || not ticketing.IsEmpty

    /// Notifications dropped because the dispatcher's queue was full.
    member _.Dropped = Interlocked.Read &dropped

    /// Hands a written batch over (never blocks the writer).
    member _.Post (rows: GroupDelta array) (written: IReadOnlyList<GroupWritten>) =
        let byHash = rows |> Array.map (fun d -> d.Latest.Hash, d) |> dict

        for w in written do
            match byHash.TryGetValue w.Hash with
            | true, d ->
                if channel.Writer.TryWrite((d, w)) then
                    Interlocked.Increment &posted |> ignore
                else
                    Interlocked.Increment &dropped |> ignore
            | _ -> ()

    /// Completes when everything posted so far is handled and no plug-in call is running (or still retrying).
    member _.WaitIdleAsync(ct: CancellationToken) : Task =
        task {
            while Interlocked.Read &handled < Interlocked.Read &posted
                  || Interlocked.Read &running > 0L do
                do! Task.Delay(20, ct)
        }

    /// Starts the dispatcher.
    member _.Start() =
        lock gate (fun () ->
            if loops.IsEmpty then
                loops <- [ Task.Run(fun () -> run ()); Task.Run(fun () -> tick ()) ])

    /// Stops it.
    member _.Stop() =
        channel.Writer.TryComplete() |> ignore
        stopping.Cancel()
