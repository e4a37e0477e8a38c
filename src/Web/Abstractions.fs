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
        /// Its status after the write.
        Status: GroupStatus
        /// True when this write made a resolved group unresolved again (a regression): exactly one write, across
        /// every instance, sees it.
        Regressed: bool
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
    /// insert it as given when the group is missing). A detailed delta adds a sample (its latest occurrence)
    /// and drops the group's samples `StoreRules.KeptSamples` leaves out; a delta's `Users` are added to the
    /// group's while it holds fewer than `StoreRules.UserBound`. Reports, for each group, its last occurrence before the
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

    /// The groups `query` selects (status, search: `Triage.selects`), in its order (largest key first, ties by
    /// hash), skipping `offset`, at most `count` of them.
    abstract ListAsync:
        query: ListQuery * offset: int64 * count: int * cancellationToken: CancellationToken ->
            Task<IReadOnlyList<ErrorRecord>>

    /// Up to `count` of the groups `query` selects beyond a cursor's row (older, or newer), in its order, read
    /// through an index on (status, key, hash) so a deep page costs what page 1 costs.
    abstract ListFromAsync:
        query: ListQuery * cursor: PageCursor * count: int * cancellationToken: CancellationToken ->
            Task<IReadOnlyList<ErrorRecord>>

    /// Changes a group's status (`Triage.change`) in one conditional statement, so a change racing an
    /// occurrence loses neither; returns the group as changed, or null when there is none.
    abstract SetStatusAsync:
        hash: string * change: StatusChange * cancellationToken: CancellationToken -> Task<ErrorRecord>

    /// Makes the ignored groups whose time ran out by `now` unresolved again (`Triage.expire`); called before a
    /// list is read.
    abstract ExpireIgnoresAsync: now: DateTimeOffset * cancellationToken: CancellationToken -> Task

    /// A group's samples (`Sample`), newest first, so its first occurrence comes last; empty when there is no such
    /// group.
    abstract SamplesAsync: hash: string * cancellationToken: CancellationToken -> Task<IReadOnlyList<Sample>>

    /// Deletes a group (and its history, samples and users); true when it existed.
    abstract DeleteAsync: hash: string * cancellationToken: CancellationToken -> Task<bool>

    /// The history of a group (`hash`), or of all groups together (`hash` null), from `from` on: the hourly
    /// buckets each batch's `Hours` added (all groups: the sum of every group's), and the daily ones (`History`'s
    /// rules turn them into series).
    abstract HistoryAsync:
        [<Nullable(2uy)>] hash: string * from: DateTimeOffset * cancellationToken: CancellationToken ->
            Task<StoredHistory>

    /// Removes in one short pass what `request` says is past retention, at most `request.Batch` of each kind:
    /// groups not seen since `SeenBefore`, then the least recently seen past `MaxGroups` (ties: the reverse
    /// of the list's order), each with its history; hourly buckets before `HoursBefore` are added to their day
    /// (`History.dayOf`); daily buckets before `DaysBefore` go. The all-groups history keeps what removed groups
    /// added (it records what happened; only `DeleteAsync` takes a group's part out). Called again while a pass
    /// does something.
    abstract PruneAsync: request: PruneRequest * cancellationToken: CancellationToken -> Task<PruneResult>

    /// The hourly buckets from `from` on of each of `hashes` (a list page's sparklines); a group with none is
    /// left out.
    abstract HoursAsync:
        hashes: IReadOnlyList<string> * from: DateTimeOffset * cancellationToken: CancellationToken ->
            Task<IReadOnlyDictionary<string, Bucket[]>>

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
    /// `deferSearch`: a store that keeps a search index may write the batch's new groups without their search
    /// rows (`ISearchBacklog`).
    abstract UpsertMarkedAsync:
        batch: IReadOnlyList<GroupDelta> *
        journal: string *
        segment: int64 *
        now: DateTimeOffset *
        deferSearch: bool *
        cancellationToken: CancellationToken ->
            Task<IReadOnlyList<GroupWritten> option>

/// A store whose search index may lag its groups (SQLite's, after a drain): its searches still find every group;
/// the writer indexes the rest a step at a time when it has nothing else to write.
type internal ISearchBacklog =
    /// Whether groups may be waiting for their search rows.
    abstract SearchBehind: bool

    /// Writes the search rows of up to `Limits.searchStep` waiting groups, in one transaction.
    abstract IndexSearchStepAsync: cancellationToken: CancellationToken -> Task

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

/// The rules every store follows, for a store of your own (`IErrorStore`): the built-in stores follow the same
/// rules in their SQL, checked against these by their contract tests.
[<AbstractClass; Sealed>]
type StoreRules =
    /// The group after a batch is written to it (`existing` null for a new group): counts, times, details,
    /// and the triage rule (a resolved group becomes unresolved as a regression; an ignored one whose limit ran
    /// out becomes unresolved).
    static member Apply([<Nullable(2uy)>] existing: ErrorRecord, delta: GroupDelta) : ErrorRecord =
        Events.apply (if isNull (box existing) then None else Some existing) delta

    /// True when the written batch made a resolved group unresolved again.
    static member Regressed([<Nullable(2uy)>] existing: ErrorRecord, after: ErrorRecord) : bool =
        not (isNull (box existing)) && after.Regressions > existing.Regressions

    /// The group after a status change.
    static member Change(record: ErrorRecord, change: StatusChange) : ErrorRecord = Triage.change change record

    /// The group once `now` has passed (an ignored group whose time ran out is unresolved again).
    static member Expire(record: ErrorRecord, now: DateTimeOffset) : ErrorRecord = Triage.expire now record

    /// True when a list shows the group (its status filter and search).
    static member Selects(query: ListQuery, record: ErrorRecord) : bool = Triage.selects query record

    /// The group's key in a list's order (larger first; ties by hash, ordinal).
    static member SortKey(sort: ListSort, record: ErrorRecord) : int64 = Triage.sortKey sort record

    /// The ids of a group's samples (any order) that stay after one is added: its first (the smallest id) and
    /// the `recent` newest (the largest), in ascending order.
    static member KeptSamples(recent: int, ids: IEnumerable<int64>) : IReadOnlyList<int64> =
        Samples.kept recent ids |> Array.ofList :> IReadOnlyList<int64>

    /// The most distinct users a group holds and counts exactly (from there on its count reads "100+").
    static member UserBound: int = Users.Bound

    /// A group's user count when it holds `stored` user keys.
    static member UserCount(stored: int64) : int64 = Users.count stored

    /// True when a row with this key and hash comes after the cursor's row (older) or before it (newer).
    static member Beyond(cursor: PageCursor, key: int64, hash: string) : bool = Paging.beyond cursor key hash
