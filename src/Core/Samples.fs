namespace ErrorMonitor.Core

open System

/// Where a sample is among its group's, and the ones a page links to (None: it is the one shown, or there is
/// none).
type internal SampleNav =
    {
        /// Its place, 1 for the newest.
        Position: int
        /// How many samples the group has.
        Total: int
        Newest: int64 option
        Newer: int64 option
        Older: int64 option
        /// The group's first sample (its first occurrence).
        First: int64 option
    }

/// Which occurrences a group keeps as samples: its first, and the `recent` most recent (APP_ERROR_SAMPLES_PER_GROUP).
/// A sample is taken whenever the group's details are refreshed (a batch with details). Pure.
[<RequireQualifiedAccess>]
module internal Samples =

    /// APP_ERROR_SAMPLES_PER_GROUP's default: recent samples a group keeps besides its first.
    [<Literal>]
    let DefaultRecent = 10

    /// The ids of a group's samples that stay (any order in, ascending out): the smallest (its first sample) and
    /// the `recent` largest. Every store removes the others when a sample is added.
    let kept (recent: int) (ids: int64 seq) : int64 list =
        let sorted = ids |> Seq.distinct |> Seq.sort |> List.ofSeq

        match sorted with
        | [] -> []
        | first :: _ ->
            let newest = sorted |> List.rev |> List.truncate (max 0 recent)
            first :: newest |> List.distinct |> List.sort

    /// Where sample `shown` is among a group's sample ids (newest first, as a store lists them); None when it is
    /// not one of them.
    let around (newestFirst: int64 list) (shown: int64) : SampleNav option =
        let ids = Array.ofList newestFirst

        match Array.tryFindIndex ((=) shown) ids with
        | None -> None
        | Some i ->
            let at j =
                if j >= 0 && j < ids.Length && j <> i then
                    Some ids.[j]
                else
                    None

            Some
                {
                    Position = i + 1
                    Total = ids.Length
                    Newest = at 0
                    Newer = at (i - 1)
                    Older = at (i + 1)
                    First = at (ids.Length - 1)
                }


    /// The sample an occurrence leaves, with the store's id.
    let ofEvent (id: int64) (e: ErrorEvent) : Sample =
        {
            Id = id
            OccurredAt = e.OccurredAt
            Message = e.Message
            RequestData = e.RequestData
            Traceback = e.Traceback
            Release = e.Release
            Environment = e.Environment
        }

/// Distinct users per group: each authenticated user's name becomes a key (not kept as given); a group keeps at
/// most `Bound` keys, so its user count is exact below `Bound` and "`Bound`+" from there on. Pure.
[<RequireQualifiedAccess>]
module internal Users =

    /// The most distinct users a group counts exactly; from here on it shows "100+".
    [<Literal>]
    let Bound = 100

    /// The key of a user name: the first 16 hex characters of its SHA-256 (the name itself is not stored).
    let key (name: string) : string =
        (Fingerprint.sha256Hex ("user\n" + name)).Substring(0, 16)

    /// True when `text` has the shape of a key (16 lowercase hex characters).
    let isKey (text: string) : bool =
        not (isNull text)
        && text.Length = 16
        && text |> Seq.forall (fun c -> (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))

    /// The keys of an occurrence's user: none without an authenticated user (or a blank name).
    let ofName (name: string option) : string[] =
        match name with
        | Some n when not (String.IsNullOrWhiteSpace n) -> [| key n |]
        | _ -> [||]

    /// Two sets of user keys together: distinct, `a`'s first, at most `Bound`.
    let add (a: string[]) (b: string[]) : string[] =
        if b.Length = 0 then
            a
        elif a.Length = 0 && b.Length <= Bound then
            b
        else
            Array.append a b |> Array.distinct |> Array.truncate Bound

    /// The keys a group holds after a batch brings `added`: all of them while it holds fewer than `Bound` (so a
    /// few past it may come in one batch), none once it holds `Bound`. Every store follows it.
    let hold (held: Set<string>) (added: string[]) : Set<string> =
        if held.Count < Bound then
            Set.union held (Set.ofArray added)
        else
            held

    /// The user count of a group that holds `stored` keys (a store may hold a few past the bound: it checks the
    /// bound before a batch, not within it).
    let count (stored: int64) : int64 = min (int64 Bound) stored

    /// How a user count reads: "7", or "100+" at the bound.
    let text (users: int64) : string =
        if users >= int64 Bound then
            sprintf "%d+" Bound
        else
            string users
