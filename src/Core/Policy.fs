namespace ErrorMonitor.Core

open System

/// Why a notification goes out.
[<RequireQualifiedAccess>]
type internal NotifyReason =
    /// The group was seen for the first time.
    | FirstSeen
    /// The group came back after a quiet period.
    | Regression
    /// The seed's behaviour: every written occurrence.
    | Occurrence

/// What the store said about a group as it wrote a batch of it.
type internal GroupWrite =
    {
        /// The group's last occurrence before this write; None when the write created the group.
        PreviousSeen: DateTimeOffset option
        /// The first occurrence in the written batch.
        FirstAt: DateTimeOffset
        /// When the group was last notified (claimed), if ever.
        LastNotified: DateTimeOffset option
        /// When the group's ticket was last raised (claimed), if ever.
        TicketRaised: DateTimeOffset option
        /// The group's status after the write.
        Status: GroupStatus
        /// True when the write made a resolved group unresolved again (one write sees it, across instances).
        Regressed: bool
    }

/// The overall cap: notifications sent in the current window, and what was held back.
type internal NotifyWindow =
    {
        /// When the window started.
        Start: DateTimeOffset
        /// Notifications sent in it.
        Sent: int
        /// Notifications held back in it because of the cap.
        Held: int
        /// Names of the groups held back (the first few), for the summary.
        HeldNames: string list
    }

/// The notification policy: who hears about what, and when. Pure.
[<RequireQualifiedAccess>]
module internal Policy =

    /// Whether a written group should notify, and why: never while it is ignored; the first time it is seen;
    /// when it fails again after being resolved (a regression, like a first occurrence); again when it comes
    /// back after the quiet period (at most once per interval); or every write in the seed's mode.
    let reason (n: NotifySettings) (now: DateTimeOffset) (g: GroupWrite) : NotifyReason option =
        if g.Status = GroupStatus.Ignored then
            None
        elif n.EveryOccurrence then
            Some NotifyReason.Occurrence
        elif g.Regressed then
            Some NotifyReason.Regression
        else
            match g.LastNotified with
            | None -> Some NotifyReason.FirstSeen
            | Some last ->
                match g.PreviousSeen with
                | Some previous when g.FirstAt - previous >= n.QuietPeriod && now - last >= n.Interval ->
                    Some NotifyReason.Regression
                | _ -> None

    /// Whether a ticket should be raised: once a group, or again on each regression when the setting allows; in
    /// the seed's mode, for every written batch of a group that is not ignored.
    let ticket (n: NotifySettings) (g: GroupWrite) (reason: NotifyReason option) : bool =
        if n.TicketEveryOccurrence then
            g.Status <> GroupStatus.Ignored
        else
            match g.TicketRaised, reason with
            | None, _ -> true
            | Some _, Some NotifyReason.Regression -> n.TicketPerRegression
            | _ -> false

    /// A new, empty window.
    let openWindow (now: DateTimeOffset) : NotifyWindow =
        {
            Start = now
            Sent = 0
            Held = 0
            HeldNames = []
        }

    /// The window in force at `now`, and the one that ended, if any (its summary is due when it held some).
    let roll (n: NotifySettings) (now: DateTimeOffset) (w: NotifyWindow) : NotifyWindow * NotifyWindow option =
        if now - w.Start >= n.Interval then
            openWindow now, Some w
        else
            w, None

    /// Admits one notification into the window: true to send it, false when the cap holds it back.
    let admit (n: NotifySettings) (name: string) (w: NotifyWindow) : NotifyWindow * bool =
        if w.Sent < n.MaxPerInterval then
            { w with Sent = w.Sent + 1 }, true
        else
            { w with
                Held = w.Held + 1
                HeldNames =
                    if w.HeldNames.Length < 20 then
                        w.HeldNames @ [ name ]
                    else
                        w.HeldNames
            },
            false

    /// The summary of a window that held notifications back: subject and body.
    let summary (prefix: string) (n: NotifySettings) (w: NotifyWindow) : (string * string) option =
        if w.Held = 0 then
            None
        else
            let subject =
                (if String.IsNullOrWhiteSpace prefix then
                     ""
                 else
                     sprintf "[%s] " (prefix.Trim()))
                + sprintf "%d more notifications held back" w.Held

            let names = w.HeldNames |> List.map (fun s -> "  " + s) |> String.concat "\n"

            let body =
                sprintf
                    "%d notifications were held back between %s and %s (at most %d an interval of %s).\nAmong them:\n%s\n"
                    w.Held
                    (Display.exact w.Start)
                    (Display.exact (w.Start + n.Interval))
                    n.MaxPerInterval
                    (string n.Interval)
                    names

            Some(subject, body)
