namespace ErrorMonitor.Core

open System

/// A JSON-like tree: custom context, JSON request bodies and the request data of a record.
[<RequireQualifiedAccess>]
type internal Data =
    | Null
    | Bool of bool
    | Number of float
    | String of string
    | Array of Data list
    | Object of (string * Data) list

/// One stack frame, with compiler-generated names already mapped back to their source method.
type internal Frame =
    {
        /// Declaring type, namespace-qualified (nested types joined with '+').
        Type: string
        /// The source method's name.
        Method: string
        /// Source file, when the runtime knows it.
        File: string option
        /// Line in the source file, when known (never part of a fingerprint).
        Line: int option
        /// Column in the source file, when known.
        Column: int option
    }

/// An exception as plain, bounded data.
type internal ExceptionInfo =
    {
        /// Full type name, e.g. System.InvalidOperationException.
        TypeName: string
        /// The message, bounded, with a truncation marker when it was cut.
        Message: string
        /// Frames, innermost call first as .NET prints them.
        Frames: Frame list
        /// Frames left out because of the frame limit.
        FramesOmitted: int
        /// Exception.Data entries, keyed.
        Data: (string * Data) list
        /// Inner exceptions: the single inner one, or every inner of an AggregateException.
        Inner: ExceptionInfo list
        /// Inner exceptions left out because of the depth or count limits.
        InnerOmitted: int
    }

/// The request an error happened in, as plain data read by the web shell.
type internal RequestContext =
    {
        Method: string
        Scheme: string
        Host: string
        /// Path, without the query string.
        Path: string
        Query: (string * string) list
        Headers: (string * string) list
        Form: (string * string) list
        Cookies: (string * string) list
        RouteValues: (string * string) list
        UserName: string option
        TraceId: string option
        /// A JSON body parsed into data (masked by key like everything else), or a text excerpt.
        Body: Body option
        /// Extra context: scope extras and whatever a context builder adds.
        Custom: (string * Data) list
    }

/// A bounded excerpt of a request body that the app had buffered.
and [<RequireQualifiedAccess>] internal Body =
    | Json of Data
    | Text of string

/// What an occurrence is about: an exception or a plain message.
[<RequireQualifiedAccess>]
type internal Subject =
    | Exception of ExceptionInfo
    | Message of string

/// One occurrence, fully masked and formatted, ready to be grouped by its hash.
type ErrorEvent =
    {
        /// Fingerprint: 64 lowercase hex characters.
        Hash: string
        Host: string
        Path: string
        Method: string
        /// Masked request data as a JSON object.
        RequestData: string
        ExceptionName: string
        Message: string
        Traceback: string
        /// When it happened (UTC), supplied by the shell: the core has no clock.
        OccurredAt: DateTimeOffset
        /// The release of the app it happened in (APP_ERROR_RELEASE, else the entry assembly's informational
        /// version); empty when unknown.
        Release: string
        /// The environment it happened in (the host's: Production, Development, ...); empty when unknown.
        Environment: string
        /// The Sentry project id it was reported under (the Sentry endpoint's DSN); empty for the app's own.
        Project: string
    }

/// Where a group stands in triage.
type GroupStatus =
    /// Every new group; a resolved group that occurs again (a regression); an ignored one whose ignore ran out.
    | Unresolved = 0
    /// Fixed: its next occurrence makes it unresolved again, as a regression.
    | Resolved = 1
    /// Accepted: it keeps counting, notifies nobody and is left out of the default list.
    | Ignored = 2

/// The orders a list of groups comes in (each with ties broken by hash, so paging is exact).
type ListSort =
    /// Most recently seen first (the default).
    | LastSeen = 0
    /// Most recently first seen first (the newest groups).
    | FirstSeen = 1
    /// Most occurrences first.
    | Count = 2

/// Which groups a list shows, and in which order.
type ListQuery =
    {
        /// Only groups with this status; null for all of them.
        Status: Nullable<GroupStatus>
        /// Words the group's exception type, message, path or host must have (each a prefix of one of its words,
        /// case-insensitive); null or blank for no search.
        Search: string
        /// The order.
        Sort: ListSort
        /// Only groups first or last seen in this release; null or empty for any.
        Release: string
        /// Only groups last seen in this environment; null or empty for any.
        Environment: string
        /// Only groups of this Sentry project id; null or empty for any.
        Project: string
    }

    /// Every group, most recently seen first.
    static member All: ListQuery =
        {
            Status = Nullable()
            Search = null
            Sort = ListSort.LastSeen
            Release = null
            Environment = null
            Project = null
        }

    /// Unresolved groups, most recently seen first: the list the pages open on.
    static member Unresolved: ListQuery =
        { ListQuery.All with
            Status = Nullable GroupStatus.Unresolved
        }

/// A change of a group's status (from the pages, the API, or code).
type StatusChange =
    {
        /// The new status.
        Status: GroupStatus
        /// With `Ignored`: it returns to unresolved at this time (null: no time limit).
        IgnoreUntil: Nullable<DateTimeOffset>
        /// With `Ignored`: it returns to unresolved after this many more occurrences (null: no count limit).
        IgnoreCount: Nullable<int64>
    }

/// A stored group of identical failures.
type ErrorRecord =
    {
        /// Fingerprint, 64 lowercase hex characters: the group's key and its URL.
        Hash: string
        /// Host of the first occurrence.
        Host: string
        /// Path of the first occurrence.
        Path: string
        /// HTTP method of the first occurrence.
        Method: string
        /// Masked request data as JSON (latest occurrence).
        RequestData: string
        /// Full type name of the outermost exception.
        ExceptionName: string
        /// Its message, bounded.
        Message: string
        /// The formatted exception, masked and bounded.
        Traceback: string
        /// Occurrences, exact.
        Count: int64
        /// First occurrence (UTC).
        CreatedOn: DateTimeOffset
        /// Last occurrence (UTC).
        LastSeen: DateTimeOffset
        /// Where it stands in triage.
        Status: GroupStatus
        /// How many times it came back after being resolved.
        Regressions: int64
        /// When it last came back after being resolved (the first occurrence that did); null if never.
        LastRegression: Nullable<DateTimeOffset>
        /// Ignored until this time (then unresolved again); null when not ignored for a while.
        IgnoreUntil: Nullable<DateTimeOffset>
        /// Ignored until its count reaches this (then unresolved again); null when not ignored for a count.
        IgnoreUntilCount: Nullable<int64>
        /// Distinct authenticated users it happened to, exact below `Users.Bound`; `Users.Bound` means that many
        /// or more (shown "100+").
        Users: int64
        /// The release of its first occurrence; empty when unknown.
        FirstRelease: string
        /// The release of its latest occurrence; empty when unknown.
        LastRelease: string
        /// The environment of its latest occurrence; empty when unknown.
        Environment: string
        /// The release it last came back in after being resolved; empty if it never did (or the release was
        /// unknown).
        RegressionRelease: string
        /// The Sentry project id its occurrences were reported under; empty for the app's own groups.
        Project: string
    }

/// One occurrence a group keeps as a sample: its own time, message, request data and traceback, masked as the
/// group's are. A group keeps its first sample and the most recent ones (`Samples.kept`).
type Sample =
    {
        /// The store's id of the sample, unique within its group (a larger id is a later sample).
        Id: int64
        /// When it happened (UTC).
        OccurredAt: DateTimeOffset
        /// Its message, bounded.
        Message: string
        /// Its masked request data as JSON.
        RequestData: string
        /// Its formatted exception, masked and bounded.
        Traceback: string
        /// The release it happened in; empty when unknown.
        Release: string
        /// The environment it happened in; empty when unknown.
        Environment: string
    }

/// How many occurrences fell in one span of time (an hour or a day, UTC): a bucket of a history.
[<Struct>]
type Bucket =
    {
        /// The span's start (UTC, on the hour or on the day).
        Start: DateTimeOffset
        /// Occurrences in it.
        Count: int64
    }

/// The history buckets a store holds for a group (or for all groups together) from some time on: hourly ones
/// (not yet added to their day) and daily ones.
type StoredHistory =
    {
        /// Hourly buckets, oldest first.
        Hours: Bucket[]
        /// Daily buckets, oldest first.
        Days: Bucket[]
    }

/// One pass of pruning: what a store removes, at most `Batch` of each kind, least recently seen first (ties:
/// the reverse of the list's order, so pruning takes from the end of the list).
type PruneRequest =
    {
        /// Groups not seen since this time are removed.
        SeenBefore: DateTimeOffset
        /// Past this many groups, the least recently seen are removed.
        MaxGroups: int64
        /// Hourly buckets before this time are added to their day (`History.dayOf`) and removed.
        HoursBefore: DateTimeOffset
        /// Daily buckets before this time are removed.
        DaysBefore: DateTimeOffset
        /// The most of each kind one pass removes (a short transaction: capture never waits long).
        Batch: int
    }

/// What one pass of pruning did; all zero when there was nothing to do.
type PruneResult =
    {
        /// Groups removed (with their history).
        Groups: int
        /// Hourly buckets added to their day.
        Hours: int
        /// Daily buckets removed.
        Days: int
    }

/// A batch of occurrences of one group, coalesced before it is written.
type GroupDelta =
    {
        /// The latest occurrence. When `Detailed`, its request data, message and traceback replace the stored
        /// ones; its OccurredAt is the batch's last occurrence either way.
        Latest: ErrorEvent
        /// The first occurrence in this batch.
        FirstAt: DateTimeOffset
        /// How many occurrences this batch holds (at least 1).
        Count: int64
        /// False for a count-only batch: repeats of a group whose details were stored recently. Its `Latest`
        /// then has the group's hash, host, path, method, exception name and message but empty request data
        /// ("{}") and traceback: a store adds the count and times and keeps the details it has (inserting the
        /// row as given only when the group is missing, deleted meanwhile, say).
        Detailed: bool
        /// Its occurrences by hour (oldest first, one bucket an hour; they add up to `Count`): what the group's
        /// history gains.
        Hours: Bucket[]
        /// The distinct authenticated users of this batch's occurrences, by key (`Users.key`), at most
        /// `Users.Bound` of them; empty when none had a user.
        Users: string[]
    }

/// Instants compared without F#'s generic comparison: `max`, `min` and `<` on a `DateTimeOffset` or a `TimeSpan` box
/// both values (64 and 48 bytes a call), and these run for every occurrence. Same results as `max` and `min`.
[<RequireQualifiedAccess>]
module internal Instants =
    /// The later of two instants (`max a b`: `a` when neither is earlier).
    let later (a: DateTimeOffset) (b: DateTimeOffset) : DateTimeOffset =
        if DateTimeOffset.Compare(a, b) < 0 then b else a

    /// The earlier of two instants (`min a b`: `b` when neither is earlier).
    let earlier (a: DateTimeOffset) (b: DateTimeOffset) : DateTimeOffset =
        if DateTimeOffset.Compare(a, b) < 0 then a else b
