namespace ErrorMonitor.Core

open System

/// One key's fixed window of a rate limit: when it started and how many requests it admitted.
type internal RateWindow = { Start: DateTimeOffset; Count: int }

/// One key's window of new groups: when it started and the groups it admitted reports of.
type internal GroupWindow =
    {
        Start: DateTimeOffset
        Groups: Set<string>
    }

/// The capture route's per-key limits, as pure decisions: requests a minute (a fixed window) and distinct
/// groups an hour (what bounds the storage one key can use). A refusal says how long until its window ends, which
/// is what Retry-After tells the client.
[<RequireQualifiedAccess>]
module internal KeyLimits =

    let private inside (start: DateTimeOffset) (length: TimeSpan) (now: DateTimeOffset) =
        now >= start && now - start < length

    /// One more request at `now`, in a window of `length` that admits `limit`: the updated window, or the
    /// time until the current window ends.
    let admitRequest (limit: int) (length: TimeSpan) (now: DateTimeOffset) (w: RateWindow option) =
        match w with
        | Some w when inside w.Start length now ->
            if w.Count < limit then
                Ok { w with Count = w.Count + 1 }
            else
                Error(w.Start + length - now)
        | _ -> Ok { Start = now; Count = 1 }

    /// A report of group `hash` at `now`: a group already admitted in the window always passes; a new one
    /// while fewer than `limit` were admitted. The updated window, or the time until the window ends.
    let admitGroup (limit: int) (length: TimeSpan) (now: DateTimeOffset) (hash: string) (w: GroupWindow option) =
        match w with
        | Some w when inside w.Start length now ->
            if w.Groups.Contains hash then
                Ok w
            elif w.Groups.Count < limit then
                Ok { w with Groups = w.Groups.Add hash }
            else
                Error(w.Start + length - now)
        | _ ->
            Ok
                {
                    Start = now
                    Groups = Set.singleton hash
                }

    /// Retry-After in whole seconds: rounded up, at least 1.
    let retryAfterSeconds (wait: TimeSpan) : int =
        max 1 (int (Math.Ceiling wait.TotalSeconds))
