namespace ErrorMonitor.Core

open System

/// A group's triage state after occurrences came in.
type internal Recurrence =
    {
        Status: GroupStatus
        Regressions: int64
        LastRegression: Nullable<DateTimeOffset>
        RegressionRelease: string
        IgnoreUntil: Nullable<DateTimeOffset>
        IgnoreUntilCount: Nullable<int64>
        /// True when these occurrences made a resolved group unresolved again.
        Regressed: bool
    }

/// Triage rules: statuses and how occurrences and changes move them, the list's filters and orders, and the
/// search's words. Every store follows them (the SQL stores in their statements, checked against these by the
/// store contract tests). Pure.
[<RequireQualifiedAccess>]
module internal Triage =

    /// A status's name in URLs and JSON.
    let statusName (s: GroupStatus) : string =
        match s with
        | GroupStatus.Resolved -> "resolved"
        | GroupStatus.Ignored -> "ignored"
        | _ -> "unresolved"

    /// A status from its name (exact, lower case).
    let parseStatus (raw: string) : GroupStatus option =
        match raw with
        | "unresolved" -> Some GroupStatus.Unresolved
        | "resolved" -> Some GroupStatus.Resolved
        | "ignored" -> Some GroupStatus.Ignored
        | _ -> None

    /// The status filter of a list from its query value: unresolved when absent; "all" for every status.
    let parseStatusFilter (raw: string option) : Result<Nullable<GroupStatus>, string> =
        match raw with
        | None
        | Some "" -> Ok(Nullable GroupStatus.Unresolved)
        | Some "all" -> Ok(Nullable())
        | Some v ->
            match parseStatus v with
            | Some s -> Ok(Nullable s)
            | None -> Error "status must be unresolved, resolved, ignored or all"

    /// The filter's name in URLs.
    let filterName (status: Nullable<GroupStatus>) : string =
        if status.HasValue then statusName status.Value else "all"

    /// A sort's name in URLs and JSON.
    let sortName (s: ListSort) : string =
        match s with
        | ListSort.FirstSeen -> "firstSeen"
        | ListSort.Count -> "count"
        | _ -> "lastSeen"

    /// The order of a list from its query value: last seen when absent.
    let parseSort (raw: string option) : Result<ListSort, string> =
        match raw with
        | None
        | Some ""
        | Some "lastSeen" -> Ok ListSort.LastSeen
        | Some "firstSeen" -> Ok ListSort.FirstSeen
        | Some "count" -> Ok ListSort.Count
        | Some _ -> Error "sort must be lastSeen, firstSeen or count"

    /// The words of a text: maximal runs of letters and digits, in lower case.
    let words (text: string) : string list =
        if String.IsNullOrEmpty text then
            []
        else
            let acc = Collections.Generic.List<string>()
            let sb = Text.StringBuilder()

            let flush () =
                if sb.Length > 0 then
                    acc.Add(sb.ToString())
                    sb.Clear() |> ignore

            for c in text do
                if Char.IsLetterOrDigit c then
                    sb.Append(Char.ToLowerInvariant c) |> ignore
                else
                    flush ()

            flush ()
            List.ofSeq acc

    /// The most words a search uses, and the longest word it keeps.
    let maxSearchWords = 8

    let maxWordLength = 64

    /// A search's words (each must prefix a word of the group), at most `maxSearchWords`, each cut to
    /// `maxWordLength`; empty for no search.
    let searchWords (q: string) : string list =
        words q
        |> List.distinct
        |> List.truncate maxSearchWords
        |> List.map (fun w ->
            if w.Length > maxWordLength then
                w.Substring(0, maxWordLength)
            else
                w)

    /// The text a search looks at: exception type, message, path and host.
    let searchText (r: ErrorRecord) : string =
        String.Join(" ", [| r.ExceptionName; r.Message; r.Path; r.Host |])

    /// True when every search word is a prefix of a word of `text`.
    let matchesText (search: string list) (text: string) : bool =
        search.IsEmpty
        || (let have = words text

            search
            |> List.forall (fun w -> have |> List.exists (fun h -> h.StartsWith(w, StringComparison.Ordinal))))

    /// True when every search word is a prefix of a word of the group's searched text.
    let matches (search: string list) (r: ErrorRecord) : bool = matchesText search (searchText r)

    /// A record's key in an order (larger first): ticks for the times, the count.
    let sortKey (sort: ListSort) (r: ErrorRecord) : int64 =
        match sort with
        | ListSort.FirstSeen -> r.CreatedOn.UtcTicks
        | ListSort.Count -> r.Count
        | _ -> r.LastSeen.UtcTicks

    /// The longest release or environment name kept (longer ones are cut).
    let maxReleaseLength = 200

    /// A release or environment name as kept: trimmed, at most `maxReleaseLength` characters; empty for none.
    let releaseName (raw: string) : string =
        if String.IsNullOrWhiteSpace raw then
            ""
        else
            let t = raw.Trim()

            if t.Length > maxReleaseLength then
                t.Substring(0, maxReleaseLength)
            else
                t

    /// A release or environment filter from its query value: None for any (absent or blank).
    let parseNameFilter (raw: string option) : string option =
        match raw with
        | Some v when not (String.IsNullOrWhiteSpace v) -> Some(releaseName v)
        | _ -> None

    /// True when the list's release filter takes a group: first or last seen in that release.
    let releaseMatches (release: string) (r: ErrorRecord) : bool =
        String.IsNullOrEmpty release
        || r.FirstRelease = release
        || r.LastRelease = release

    /// True when the list's environment filter takes a group: last seen in that environment.
    let environmentMatches (environment: string) (r: ErrorRecord) : bool =
        String.IsNullOrEmpty environment || r.Environment = environment

    /// True when a record belongs in a list.
    let selects (query: ListQuery) (r: ErrorRecord) : bool =
        (not query.Status.HasValue || r.Status = query.Status.Value)
        && releaseMatches query.Release r
        && environmentMatches query.Environment r
        && (String.IsNullOrEmpty query.Project || r.Project = query.Project)
        && matches (searchWords query.Search) r

    /// A list's view as URL parameters ("&status=...&sort=...[&q=...][&release=...][&environment=...][&project=...]"), carried
    /// by every link of the view; `status` and `sort` as given.
    let viewWith (status: Nullable<GroupStatus>) (sort: ListSort) (q: ListQuery) : string =
        let optional (name: string) (value: string) =
            if String.IsNullOrWhiteSpace value then
                ""
            else
                "&" + name + "=" + Uri.EscapeDataString value

        sprintf "&status=%s&sort=%s" (filterName status) (sortName sort)
        + optional "q" q.Search
        + optional "release" q.Release
        + optional "environment" q.Environment
        + optional "project" q.Project

    /// A list's view as URL parameters, carried by every link of the view.
    let viewParameters (q: ListQuery) : string = viewWith q.Status q.Sort q

    /// What `count` occurrences, the first at `firstAt` and the last at `lastAt`, in `release`, do to a group's
    /// triage state: a resolved group becomes unresolved, as a regression (counted, with the time of the first of
    /// them and the release it came back in); an ignored one whose time or count ran out becomes unresolved;
    /// anything else stays as it is.
    let recur
        (r: ErrorRecord)
        (count: int64)
        (firstAt: DateTimeOffset)
        (lastAt: DateTimeOffset)
        (release: string)
        : Recurrence =
        let stays =
            {
                Status = r.Status
                Regressions = r.Regressions
                LastRegression = r.LastRegression
                RegressionRelease = r.RegressionRelease
                IgnoreUntil = r.IgnoreUntil
                IgnoreUntilCount = r.IgnoreUntilCount
                Regressed = false
            }

        let unresolved =
            { stays with
                Status = GroupStatus.Unresolved
                IgnoreUntil = Nullable()
                IgnoreUntilCount = Nullable()
            }

        match r.Status with
        | GroupStatus.Resolved ->
            { unresolved with
                Regressions = r.Regressions + 1L
                LastRegression = Nullable firstAt
                RegressionRelease = release
                Regressed = true
            }
        | GroupStatus.Ignored when
            (r.IgnoreUntil.HasValue && lastAt >= r.IgnoreUntil.Value)
            || (r.IgnoreUntilCount.HasValue && r.Count + count >= r.IgnoreUntilCount.Value)
            ->
            unresolved
        | _ -> stays

    /// An ignored group whose time ran out by `now` is unresolved again (stores apply it before they list).
    let expire (now: DateTimeOffset) (r: ErrorRecord) : ErrorRecord =
        if
            r.Status = GroupStatus.Ignored
            && r.IgnoreUntil.HasValue
            && r.IgnoreUntil.Value <= now
        then
            { r with
                Status = GroupStatus.Unresolved
                IgnoreUntil = Nullable()
                IgnoreUntilCount = Nullable()
            }
        else
            r

    /// A status change applied to a group: ignoring for a count counts from the group's current count.
    let change (c: StatusChange) (r: ErrorRecord) : ErrorRecord =
        match c.Status with
        | GroupStatus.Ignored ->
            { r with
                Status = GroupStatus.Ignored
                IgnoreUntil = c.IgnoreUntil
                IgnoreUntilCount =
                    if c.IgnoreCount.HasValue then
                        Nullable(r.Count + c.IgnoreCount.Value)
                    else
                        Nullable()
            }
        | s ->
            { r with
                Status = s
                IgnoreUntil = Nullable()
                IgnoreUntilCount = Nullable()
            }

    /// A change as the API may ask for it: a known status; `ignoreUntil` and `ignoreCount` only with ignored,
    /// the count at least 1. The error names the field.
    let validate (c: StatusChange) : Result<StatusChange, string * string> =
        if not (Enum.IsDefined(typeof<GroupStatus>, c.Status)) then
            Error("status", "status must be unresolved, resolved or ignored")
        elif
            c.Status <> GroupStatus.Ignored
            && (c.IgnoreUntil.HasValue || c.IgnoreCount.HasValue)
        then
            Error(
                (if c.IgnoreUntil.HasValue then
                     "ignoreUntil"
                 else
                     "ignoreCount"),
                "only an ignored group has an ignore limit"
            )
        elif c.IgnoreCount.HasValue && c.IgnoreCount.Value < 1L then
            Error("ignoreCount", "ignoreCount must be a whole number of at least 1")
        else
            Ok c
