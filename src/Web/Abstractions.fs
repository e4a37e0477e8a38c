namespace ErrorMonitor

open System
open System.Collections.Generic
open System.Threading
open System.Runtime.CompilerServices
open System.Threading.Tasks
open Microsoft.AspNetCore.Http
open ErrorMonitor.Core

/// What a store reports of one group it wrote: enough for the notification policy.
type GroupWritten =
    {
        /// The group.
        Hash: string
        /// Its last occurrence before this write; null when the write created the group.
        PreviousSeen: Nullable<DateTimeOffset>
        /// When it was last notified (claimed); null if never.
        LastNotified: Nullable<DateTimeOffset>
        /// When its ticket was last raised (claimed); null if never.
        TicketRaised: Nullable<DateTimeOffset>
    }

/// Which right a store claims for a group.
type ClaimKind =
    /// The right to notify about the group now.
    | Notification = 0
    /// The right to raise the group's ticket now.
    | Ticket = 1

/// Where groups of failures are kept (the seed's model). Implement it to bring your own store.
/// Every method may be called from several threads at once.
type IErrorStore =
    /// Creates or migrates the schema. Called before the first write, and again after a failure.
    abstract InitializeAsync: cancellationToken: CancellationToken -> Task

    /// Adds a batch of coalesced occurrences (one delta a group): counts add up exactly. A delta whose
    /// `Detailed` is false only adds its count and times (keep the stored request data, message and traceback;
    /// insert it as given when the group is missing). Reports, for each group, its last occurrence before the
    /// write (none for a group it inserted) and its notification state. `Events.apply` is the rule.
    abstract UpsertAsync:
        batch: IReadOnlyList<GroupDelta> * cancellationToken: CancellationToken -> Task<IReadOnlyList<GroupWritten>>

    /// Claims a right for a group with a conditional update: sets its time to `now` only if it still is
    /// `expected` (null: never claimed). True when this caller won the claim; false when another did.
    abstract TryClaimAsync:
        hash: string *
        kind: ClaimKind *
        expected: Nullable<DateTimeOffset> *
        now: DateTimeOffset *
        cancellationToken: CancellationToken ->
            Task<bool>

    /// One group by its hash, or null (a C# implementation declares it `Task<ErrorRecord?>`).
    abstract GetAsync: hash: string * cancellationToken: CancellationToken -> Task<ErrorRecord>

    /// Groups newest `LastSeen` first (ties by hash), skipping `offset`, at most `count` of them.
    abstract ListAsync:
        offset: int64 * count: int * cancellationToken: CancellationToken -> Task<IReadOnlyList<ErrorRecord>>

    /// Up to `count` groups beyond a cursor's row (older, or newer), newest `LastSeen` first (ties by hash), read
    /// through the index on (last_seen, hash) so a deep page costs what page 1 costs.
    abstract ListFromAsync:
        cursor: PageCursor * count: int * cancellationToken: CancellationToken -> Task<IReadOnlyList<ErrorRecord>>

    /// Deletes a group; true when it existed.
    abstract DeleteAsync: hash: string * cancellationToken: CancellationToken -> Task<bool>

/// A store that keeps, in the same transaction as a batch, how far a journal is stored (the journal's *mark*: the
/// last journal segment the store holds). The built-in SQLite and PostgreSQL stores do; with any other store the
/// mark lives in the journal file, written after the batch.
type internal IJournalMarks =
    /// The last segment of journal `journal` the store holds (0 when none). Forgets the marks of journals not
    /// written since `forgetBefore` (journals of processes long gone).
    abstract ReadMarkAsync:
        journal: string * forgetBefore: DateTimeOffset * cancellationToken: CancellationToken -> Task<int64>

    /// Writes `batch` and sets journal `journal`'s mark to `segment`, in one transaction; when the mark already is
    /// at least `segment` (the batch was stored and the answer lost on the way), writes nothing and returns None.
    abstract UpsertMarkedAsync:
        batch: IReadOnlyList<GroupDelta> *
        journal: string *
        segment: int64 *
        now: DateTimeOffset *
        cancellationToken: CancellationToken ->
            Task<IReadOnlyList<GroupWritten> option>

/// A notification about a group: what a notifier sends (the seed's notify gets the message and the record).
type Notification =
    {
        /// The subject, in the seed's format: `[prefix] [METHOD] url ExceptionName`.
        [<property: Nullable(1uy)>]
        Subject: string
        /// A plain-text body: URL, counts, traceback (masked, as stored), link to the detail page if known.
        [<property: Nullable(1uy)>]
        Body: string
        /// APP_ERROR_EMAIL_SENDER, or null.
        [<property: Nullable(2uy)>]
        Sender: string
        /// APP_ERROR_RECIPIENT_EMAIL.
        [<property: Nullable(1uy)>]
        Recipients: IReadOnlyList<string>
        /// The group as stored; null for a summary of held-back notifications.
        [<property: Nullable(2uy)>]
        Record: ErrorRecord
        /// The URL of the failing request ("" outside a request).
        [<property: Nullable(1uy)>]
        Url: string
        /// The detail page's address when APP_ERROR_BASE_URL is set, else null.
        [<property: Nullable(2uy)>]
        DetailLink: string
        /// Why: "first-seen", "regression", "occurrence" or "summary".
        [<property: Nullable(1uy)>]
        Reason: string
    }

/// Sends notifications (the seed's NotificationMixin). Runs after the record is stored, off the request
/// path, with a timeout; a failure is logged and retried, never felt by the app.
type INotifier =
    /// Sends one notification.
    abstract NotifyAsync: notification: Notification * cancellationToken: CancellationToken -> Task

/// Raises tickets in Jira, Bugzilla and the like (the seed's TicketingMixin): once a group by default.
type ITicketing =
    /// Raises a ticket for a group.
    abstract RaiseTicketAsync: record: ErrorRecord * cancellationToken: CancellationToken -> Task

/// Adds app-specific context to what is recorded in a request (the seed's context builder). Whatever it
/// adds passes through masking like the rest.
type IContextBuilder =
    /// Adds entries to `context` for an occurrence in `httpContext` (null outside a request).
    abstract BuildContext: [<Nullable(2uy)>] httpContext: HttpContext * context: IDictionary<string, obj> -> unit

/// The default context builder: adds the machine name. Subclass it and call the base to extend it.
type DefaultContextBuilder() =
    /// Adds the default entries; override and call the base method to add more.
    abstract BuildContext: [<Nullable(2uy)>] httpContext: HttpContext * context: IDictionary<string, obj> -> unit

    default _.BuildContext([<Nullable(2uy)>] httpContext: HttpContext, context: IDictionary<string, obj>) =
        ignore httpContext
        context.["machine"] <- Environment.MachineName

    interface IContextBuilder with
        member this.BuildContext(httpContext, context) = this.BuildContext(httpContext, context)

/// A configuration that cannot work: thrown at start-up, naming the key at fault.
type ErrorMonitorConfigException(message: string) =
    inherit InvalidOperationException(message)
