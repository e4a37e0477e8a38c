namespace ErrorMonitor.Web

open System
open System.Text.Json
open Giraffe.ViewEngine
open ErrorMonitor.Core

/// The HTML pages. Every value from a request or an exception goes through `str` (HTML-encoded); the only
/// `rawText` is the constant style sheet below.
[<RequireQualifiedAccess>]
module internal Views =

    /// A delete form's antiforgery field: its name and token.
    type Antiforgery = { FieldName: string; Token: string }

    let private css =
        """
:root { color-scheme: light dark; --fg:#1d2330; --muted:#667085; --line:#d0d5dd; --bg:#fff; --accent:#b42318; }
@media (prefers-color-scheme: dark) { :root { --fg:#e6e8ec; --muted:#98a2b3; --line:#344054; --bg:#101828; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { padding: 12px 16px; border-bottom: 1px solid var(--line); display: flex; gap: 12px; align-items: baseline; flex-wrap: wrap; }
header h1 { font-size: 18px; margin: 0; }
header a { color: inherit; text-decoration: none; }
main { padding: 16px; max-width: 1200px; margin: 0 auto; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 13px; color: var(--muted); font-weight: 600; }
td.count, td.users { text-align: right; font-variant-numeric: tabular-nums; }
td.path { max-width: 320px; overflow-wrap: anywhere; }
pre { font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; white-space: pre-wrap; overflow-wrap: anywhere; background: rgba(127,127,127,.08); padding: 12px; border-radius: 6px; }
.muted { color: var(--muted); }
.pager { display: flex; gap: 16px; margin: 16px 0; }
.tabs { display: flex; gap: 18px; margin: 0 0 10px; }
.tab.current { border-bottom: 2px solid var(--accent); }
.search { display: flex; gap: 6px; margin: 0 0 8px; }
.search input[type=search] { width: min(420px, 100%); padding: 4px 6px; }
.sorts, .bulk-actions { margin: 6px 0; display: flex; gap: 6px; align-items: baseline; flex-wrap: wrap; }
.regression { color: var(--accent); white-space: nowrap; }
.status-ignored, .status-resolved { color: var(--muted); }
input.short { width: 5em; }
button.delete { background: none; border: 1px solid var(--accent); color: var(--accent); border-radius: 4px; padding: 2px 8px; cursor: pointer; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.banner { border: 1px solid var(--accent); color: var(--accent); padding: 8px 12px; border-radius: 6px; margin-bottom: 12px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
table.data th { width: 1%; white-space: nowrap; color: var(--muted); }
table.data table.data { margin: -4px 0; }
table.data td { overflow-wrap: anywhere; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 12px 24px; margin: 0 0 12px; }
figure.chart { margin: 0; }
figure.chart figcaption { font-size: 13px; }
svg .bar { fill: var(--accent); }
svg .axis { font-size: 10px; fill: var(--muted); }
svg .axis-line { stroke: var(--line); }
svg.spark { vertical-align: middle; }
.culprit { font-size: 13px; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
details.framework-frames { color: var(--muted); }
details.framework-frames summary { cursor: pointer; }
"""

    let private layout (prefix: string) (pageTitle: string) (content: XmlNode list) =
        html
            [ _lang "en" ]
            [
                head
                    []
                    [
                        meta [ _charset "utf-8" ]
                        meta [ _name "viewport"; _content "width=device-width, initial-scale=1" ]
                        meta [ _name "robots"; _content "noindex" ]
                        title [] [ str pageTitle ]
                        style [] [ rawText css ]
                    ]
                body
                    []
                    [
                        header
                            []
                            [
                                h1 [] [ a [ _href (prefix + "/") ] [ str "ErrorMonitor" ] ]
                                span [ _class "muted" ] [ str pageTitle ]
                            ]
                        main [] content
                    ]
            ]

    let private time (now: DateTimeOffset) (t: DateTimeOffset) =
        span [ _title (Display.exact t); attr "data-utc" (t.UtcDateTime.ToString "O") ] [ str (Display.relative now t) ]

    let private deleteForm (prefix: string) (token: Antiforgery option) (hash: string) =
        form
            [ _method "post"; _action (sprintf "%s/delete/%s" prefix hash); _class "delete-form" ]
            [
                match token with
                | Some t -> input [ _type "hidden"; _name t.FieldName; _value t.Token ]
                | None -> ()
                button [ _type "submit"; _class "delete" ] [ str "Delete" ]
            ]

    let private hidden (token: Antiforgery option) =
        match token with
        | Some t -> input [ _type "hidden"; _name t.FieldName; _value t.Token ]
        | None -> str ""

    let private statusMark (r: ErrorRecord) =
        span
            [ _class ("status status-" + Triage.statusName r.Status) ]
            [
                str (Triage.statusName r.Status)
                if r.Regressions > 0L then
                    span
                        [
                            _class "regression"
                            _title (
                                sprintf
                                    "came back after being resolved %d time%s"
                                    r.Regressions
                                    (if r.Regressions = 1L then "" else "s")
                            )
                        ]
                        [ str (sprintf " ↺ regression ×%d" r.Regressions) ]
            ]

    /// A group's release and environment in a few words ("1.2.0 → 1.3.0 · Production"); empty when unknown.
    let private releaseText (r: ErrorRecord) =
        let release =
            if r.FirstRelease = r.LastRelease || r.FirstRelease = "" then
                r.LastRelease
            else
                r.FirstRelease + " → " + r.LastRelease

        [ release; r.Environment ]
        |> List.filter (String.IsNullOrEmpty >> not)
        |> String.concat " · "

    let private number (x: float) =
        x.ToString("0.##", Globalization.CultureInfo.InvariantCulture)

    /// A history chart in inline SVG (no script and no style attribute: the pages' CSP holds): a bar a span, the
    /// axes labelled (the top count and 0; the first, middle and last span), a title and a description for screen
    /// readers, and the same summary in words under it. Each bar carries its count (`data-count`).
    let chart (name: string) (heading: string) (c: Chart) : XmlNode =
        let w, h, left, top, bottom = 600.0, 130.0, 44.0, 10.0, 22.0
        let n = max 1 c.Bars.Length
        let step = (w - left) / float n
        let plot = h - top - bottom
        let id = "chart-" + name

        let text (x: float) (y: float) (anchor: string) (s: string) =
            tag
                "text"
                [ attr "x" (number x); attr "y" (number y); attr "text-anchor" anchor; attr "class" "axis" ]
                [ str s ]

        figure
            [ _class ("chart " + name); attr "data-total" (string c.Total) ]
            [
                tag
                    "svg"
                    [
                        attr "viewBox" (sprintf "0 0 %s %s" (number w) (number h))
                        attr "width" "100%"
                        attr "role" "img"
                        attr "aria-labelledby" (id + "-title " + id + "-desc")
                    ]
                    [
                        tag "title" [ _id (id + "-title") ] [ str heading ]
                        tag "desc" [ _id (id + "-desc") ] [ str c.Summary ]
                        tag
                            "line"
                            [
                                attr "x1" (number left)
                                attr "y1" (number (top + plot))
                                attr "x2" (number w)
                                attr "y2" (number (top + plot))
                                attr "class" "axis-line"
                            ]
                            []
                        text
                            (left - 6.0)
                            (top + 8.0)
                            "end"
                            (c.Top.ToString("N0", Globalization.CultureInfo.InvariantCulture))
                        text (left - 6.0) (top + plot) "end" "0"
                        // The first, middle and last span's labels, kept inside the chart at its edges.
                        for i in List.distinct [ 0; (n - 1) / 2; n - 1 ] do
                            if i < c.Labels.Length then
                                if i = n - 1 && n > 1 then
                                    text w (h - 6.0) "end" c.Labels.[i]
                                elif i = 0 then
                                    text left (h - 6.0) "start" c.Labels.[i]
                                else
                                    text (left + (float i + 0.5) * step) (h - 6.0) "middle" c.Labels.[i]
                        for i, b in Array.indexed c.Bars do
                            let barHeight = plot * float b.Count / float (max 1L c.Top)

                            tag
                                "rect"
                                [
                                    attr "x" (number (left + float i * step + 1.0))
                                    attr "y" (number (top + plot - barHeight))
                                    attr "width" (number (max 1.0 (step - 2.0)))
                                    attr "height" (number barHeight)
                                    attr "class" "bar"
                                    attr "data-start" (b.Start.UtcDateTime.ToString "O")
                                    attr "data-count" (string b.Count)
                                ]
                                [ tag "title" [] [ str (sprintf "%s: %d" c.Labels.[i] b.Count) ] ]
                    ]
                figcaption [] [ strong [] [ str heading ]; str ": "; span [ _class "summary" ] [ str c.Summary ] ]
            ]

    /// A row's 24-hour sparkline: small bars, no axes, its summary as its accessible name.
    let private sparkline (c: Chart) : XmlNode =
        let w, h = 96.0, 20.0
        let step = w / float (max 1 c.Bars.Length)

        tag
            "svg"
            [
                attr "viewBox" (sprintf "0 0 %s %s" (number w) (number h))
                attr "width" (number w)
                attr "height" (number h)
                attr "class" "spark"
                attr "role" "img"
                attr "aria-label" c.Summary
                attr "data-total" (string c.Total)
            ]
            [
                tag "title" [] [ str c.Summary ]
                for i, b in Array.indexed c.Bars do
                    if b.Count > 0L then
                        let barHeight = max 1.0 (h * float b.Count / float (max 1L c.Top))

                        tag
                            "rect"
                            [
                                attr "x" (number (float i * step))
                                attr "y" (number (h - barHeight))
                                attr "width" (number (max 1.0 (step - 1.0)))
                                attr "height" (number barHeight)
                                attr "class" "bar"
                                attr "data-count" (string b.Count)
                            ]
                            []
            ]

    /// The list page: status tabs, a search box, sort links, and the groups with a check box each for the bulk
    /// actions (resolve, ignore, unresolve, delete: one form, posted with the antiforgery token). `here` is the
    /// page's own URL (the actions come back to it).
    let list
        (prefix: string)
        (now: DateTimeOffset)
        (token: Antiforgery option)
        (banner: string option)
        (q: ListQuery)
        (here: string)
        (newerHref: string option)
        (olderHref: string option)
        (page: Page<ErrorRecord>)
        (charts: XmlNode list)
        (sparks: Collections.Generic.IReadOnlyDictionary<string, Chart>)
        : XmlNode =
        let viewHref (status: Nullable<GroupStatus>) (sort: ListSort) =
            prefix + "/?" + (Triage.viewWith status sort q).Substring 1

        let tabs =
            nav
                [ _class "tabs"; attr "aria-label" "Status" ]
                [
                    for label, status in
                        [
                            "Unresolved", Nullable GroupStatus.Unresolved
                            "Resolved", Nullable GroupStatus.Resolved
                            "Ignored", Nullable GroupStatus.Ignored
                            "All", Nullable()
                        ] do
                        if status = q.Status then
                            strong [ _class "tab current"; attr "aria-current" "page" ] [ str label ]
                        else
                            a [ _class "tab"; _href (viewHref status q.Sort) ] [ str label ]
                ]

        let search =
            form
                [ _method "get"; _action (prefix + "/"); _class "search" ]
                [
                    input [ _type "hidden"; _name "status"; _value (Triage.filterName q.Status) ]
                    input [ _type "hidden"; _name "sort"; _value (Triage.sortName q.Sort) ]
                    if not (String.IsNullOrEmpty q.Project) then
                        input [ _type "hidden"; _name "project"; _value q.Project ]
                    input
                        [
                            _type "search"
                            _name "q"
                            _value (if isNull q.Search then "" else q.Search)
                            _placeholder "Search type, message, path, host"
                            attr "aria-label" "Search"
                        ]
                    input
                        [
                            _type "text"
                            _name "release"
                            _class "release-filter"
                            _value (if isNull q.Release then "" else q.Release)
                            _placeholder "Release"
                            attr "aria-label" "Release (first or last seen in)"
                        ]
                    input
                        [
                            _type "text"
                            _name "environment"
                            _class "environment-filter"
                            _value (if isNull q.Environment then "" else q.Environment)
                            _placeholder "Environment"
                            attr "aria-label" "Environment (last seen in)"
                        ]
                    button [ _type "submit" ] [ str "Search" ]
                ]

        let sortLink (label: string) (sort: ListSort) =
            if sort = q.Sort then
                strong [ _class "sort current" ] [ str label ]
            else
                a [ _class "sort"; _href (viewHref q.Status sort) ] [ str label ]

        let rows =
            page.Items
            |> List.map (fun r ->
                tr
                    []
                    [
                        td
                            []
                            [
                                input
                                    [
                                        _type "checkbox"
                                        _name "hash"
                                        _value r.Hash
                                        _class "select"
                                        attr "aria-label" ("Select " + r.ExceptionName)
                                    ]
                            ]
                        td [] [ str r.Host ]
                        td [] [ str r.Method ]
                        td [ _class "path"; _title r.Path ] [ str (Display.shorten 60 r.Path) ]
                        td
                            []
                            [
                                a
                                    [ _href (sprintf "%s/%s" prefix r.Hash); _class "detail-link" ]
                                    [ str r.ExceptionName ]
                                div [ _class "message muted"; _title r.Message ] [ str (Display.shorten 80 r.Message) ]
                                match Traceback.culprit r.Traceback with
                                | Some c -> div [ _class "culprit" ] [ str ("in " + c) ]
                                | None -> ()
                                match releaseText r with
                                | "" -> ()
                                | t -> div [ _class "release muted" ] [ str t ]
                            ]
                        td [] [ statusMark r ]
                        td
                            [ _class "history" ]
                            [
                                match sparks.TryGetValue r.Hash with
                                | true, c -> sparkline c
                                | _ -> ()
                            ]
                        td [] [ time now r.LastSeen ]
                        td [ _class "count" ] [ str (string r.Count) ]
                        td [ _class "users" ] [ str (Users.text r.Users) ]
                        td
                            []
                            [
                                button
                                    [
                                        _type "submit"
                                        _class "delete"
                                        attr "formaction" (sprintf "%s/delete/%s" prefix r.Hash)
                                    ]
                                    [ str "Delete" ]
                            ]
                    ])

        let pager =
            div
                [ _class "pager" ]
                [
                    match newerHref with
                    | Some href -> a [ _href href; _rel "prev"; _class "newer" ] [ str "← Newer" ]
                    | None -> ()
                    match olderHref with
                    | Some href -> a [ _href href; _rel "next"; _class "older" ] [ str "Older →" ]
                    | None -> ()
                ]

        layout
            prefix
            (sprintf "Errors, page %d" page.Number)
            [
                match banner with
                | Some b -> div [ _class "banner"; attr "role" "alert" ] [ str b ]
                | None -> ()
                div [ _class "charts" ] charts
                tabs
                search
                div
                    [ _class "sorts" ]
                    [
                        str "Sort: "
                        sortLink "Last seen" ListSort.LastSeen
                        str " · "
                        sortLink "First seen" ListSort.FirstSeen
                        str " · "
                        sortLink "Occurrences" ListSort.Count
                    ]
                if page.Items.IsEmpty then
                    p
                        [ _class "empty" ]
                        [
                            str (
                                if page.Number = 1 then
                                    "No errors here."
                                else
                                    "No errors on this page. "
                            )
                            if page.Number > 1 then
                                a [ _href (viewHref q.Status q.Sort) ] [ str "Back to the first page" ]
                        ]
                else
                    form
                        [ _method "post"; _action (prefix + "/status"); _class "bulk" ]
                        [
                            hidden token
                            input [ _type "hidden"; _name "back"; _value here ]
                            div
                                [ _class "bulk-actions" ]
                                [
                                    str "Selected: "
                                    button [ _type "submit"; _name "status"; _value "resolved" ] [ str "Resolve" ]
                                    button [ _type "submit"; _name "status"; _value "ignored" ] [ str "Ignore" ]
                                    button [ _type "submit"; _name "status"; _value "unresolved" ] [ str "Unresolve" ]
                                    button [ _type "submit"; _name "status"; _value "delete" ] [ str "Delete" ]
                                ]
                            div
                                [ _class "table-wrap" ]
                                [
                                    table
                                        []
                                        [
                                            thead
                                                []
                                                [
                                                    tr
                                                        []
                                                        [
                                                            th [] []
                                                            th [] [ str "Host" ]
                                                            th [] [ str "Method" ]
                                                            th [] [ str "Path" ]
                                                            th [] [ str "Exception" ]
                                                            th [] [ str "Status" ]
                                                            th [] [ str "Last 24 hours" ]
                                                            th [] [ str "Last seen" ]
                                                            th [] [ str "Occurrences" ]
                                                            th [] [ str "Users" ]
                                                            th [] []
                                                        ]
                                                ]
                                            tbody [] rows
                                        ]
                                ]
                        ]
                pager
            ]

    let rec private jsonNode (e: JsonElement) : XmlNode =
        match e.ValueKind with
        | JsonValueKind.Object when e.EnumerateObject() |> Seq.isEmpty -> span [ _class "muted" ] [ str "(none)" ]
        | JsonValueKind.Object ->
            table
                [ _class "data" ]
                [
                    tbody
                        []
                        [
                            for p in e.EnumerateObject() do
                                tr [] [ th [] [ str p.Name ]; td [] [ jsonNode p.Value ] ]
                        ]
                ]
        | JsonValueKind.Array -> ul [] [ for i in e.EnumerateArray() -> li [] [ jsonNode i ] ]
        | JsonValueKind.String -> str (e.GetString())
        | _ -> code [] [ str (e.GetRawText()) ]

    /// The request data as nested tables (falls back to the raw text when it is not JSON).
    let requestData (json: string) : XmlNode =
        try
            use doc = JsonDocument.Parse(json)
            jsonNode (doc.RootElement.Clone())
        with _ ->
            pre [] [ str json ]

    /// The breadcrumbs of an occurrence (kept in its request data) as a table, oldest first; none: nothing.
    let breadcrumbs (json: string) : XmlNode list =
        let rows = LogCapture.crumbsOf json

        if rows.IsEmpty then
            []
        else
            [
                h2 [] [ str "Breadcrumbs" ]
                div
                    [ _class "table-wrap breadcrumbs" ]
                    [
                        table
                            []
                            [
                                thead
                                    []
                                    [
                                        tr
                                            []
                                            [
                                                th [] [ str "Time" ]
                                                th [] [ str "Level" ]
                                                th [] [ str "Category" ]
                                                th [] [ str "Message" ]
                                            ]
                                    ]
                                tbody
                                    []
                                    [
                                        for time, level, category, message in rows ->
                                            tr
                                                []
                                                [
                                                    td [] [ str time ]
                                                    td [] [ str level ]
                                                    td [] [ str category ]
                                                    td [ _class "breadcrumb-message" ] [ str message ]
                                                ]
                                    ]
                            ]
                    ]
            ]

    /// The detail page of one group.
    let detail
        (prefix: string)
        (now: DateTimeOffset)
        (token: Antiforgery option)
        (r: ErrorRecord)
        (charts: XmlNode list)
        (samples: Sample list)
        (shown: Sample option)
        : XmlNode =

        // What the page shows of one occurrence: the chosen sample, else the newest, else the group's details.
        let shown =
            match shown with
            | Some _ -> shown
            | None -> List.tryHead samples

        let traceback, data =
            match shown with
            | Some s -> s.Traceback, s.RequestData
            | None -> r.Traceback, r.RequestData

        // The URL and method of the occurrence shown.
        let url = Notification.recordUrl { r with RequestData = data }
        let httpMethod = Notification.recordMethod { r with RequestData = data }

        let sampleLink (label: string) (cls: string) (id: int64 option) =
            match id with
            | Some i ->
                a [ _href (sprintf "%s/%s?sample=%d" prefix r.Hash i); _class ("sample-link " + cls) ] [ str label ]
            | None -> span [ _class ("sample-link muted " + cls) ] [ str label ]

        layout
            prefix
            r.ExceptionName
            [
                dl
                    [ _class "facts" ]
                    [
                        dt [] [ str "URL" ]
                        dd [ _class "url" ] [ str url ]
                        dt [] [ str "Method" ]
                        dd [ _class "method" ] [ str httpMethod ]
                        dt [] [ str "Exception" ]
                        dd [] [ str r.ExceptionName ]
                        match Traceback.culprit r.Traceback with
                        | Some c ->
                            dt [] [ str "Culprit" ]
                            dd [ _class "culprit" ] [ str c ]
                        | None -> ()
                        dt [] [ str "Message" ]
                        dd [ _class "message" ] [ str r.Message ]
                        dt [] [ str "First seen" ]
                        dd [] [ time now r.CreatedOn ]
                        dt [] [ str "Last seen" ]
                        dd [] [ time now r.LastSeen ]
                        dt [] [ str "Occurrences" ]
                        dd [ _class "count" ] [ str (string r.Count) ]
                        dt [] [ str "Users" ]
                        dd [ _class "users" ] [ str (Users.text r.Users) ]
                        dt [] [ str "Status" ]
                        dd [ _class "status-fact" ] [ statusMark r ]
                        if r.FirstRelease <> "" || r.LastRelease <> "" then
                            dt [] [ str "First release" ]
                            dd [ _class "first-release" ] [ str r.FirstRelease ]
                            dt [] [ str "Last release" ]
                            dd [ _class "last-release" ] [ str r.LastRelease ]
                        if r.Environment <> "" then
                            dt [] [ str "Environment" ]
                            dd [ _class "environment" ] [ str r.Environment ]
                        if r.Project <> "" then
                            dt [] [ str "Sentry project" ]
                            dd [ _class "project" ] [ str r.Project ]
                        if r.LastRegression.HasValue then
                            dt [] [ str "Last regression" ]

                            dd
                                []
                                [
                                    time now r.LastRegression.Value
                                    if r.RegressionRelease <> "" then
                                        span
                                            [ _class "regression-release" ]
                                            [ str (" in release " + r.RegressionRelease) ]
                                ]
                        if r.IgnoreUntil.HasValue then
                            dt [] [ str "Ignored until" ]
                            dd [] [ time now r.IgnoreUntil.Value ]
                        if r.IgnoreUntilCount.HasValue then
                            dt [] [ str "Ignored until its count reaches" ]
                            dd [] [ str (string r.IgnoreUntilCount.Value) ]
                    ]
                h2 [] [ str "History" ]
                div [ _class "charts" ] charts
                h2 [] [ str "Occurrence" ]
                match
                    shown
                    |> Option.bind (fun s -> Samples.around (samples |> List.map (fun x -> x.Id)) s.Id)
                with
                | Some place ->
                    let s = shown.Value

                    div
                        [ _class "sample"; attr "data-sample" (string s.Id) ]
                        [
                            p
                                []
                                [
                                    str (sprintf "Sample %d of %d, " place.Position place.Total)
                                    time now s.OccurredAt
                                    if place.Position = place.Total then
                                        str " (the first occurrence kept)"
                                    match [ s.Release; s.Environment ] |> List.filter (String.IsNullOrEmpty >> not) with
                                    | [] -> ()
                                    | parts ->
                                        span [ _class "sample-release" ] [ str (", " + String.concat " · " parts) ]
                                ]
                            nav
                                [ _class "samples"; attr "aria-label" "Samples" ]
                                [
                                    sampleLink "Newest" "newest" place.Newest
                                    str " "
                                    sampleLink "← Newer" "newer" place.Newer
                                    str " "
                                    sampleLink "Older →" "older" place.Older
                                    str " "
                                    sampleLink "First" "first" place.First
                                ]
                            p [ _class "sample-message" ] [ str s.Message ]
                        ]
                | None -> p [ _class "muted" ] [ str "No sample of this error's occurrences is kept." ]
                h2 [] [ str "Exception" ]
                // The app's frames in view; runs of framework frames folded (no script: <details>).
                pre
                    [ _class "traceback" ]
                    [
                        for framework, lines in Traceback.runs traceback do
                            let text = String.Join("\n", lines) + "\n"

                            if framework then
                                details
                                    [ _class "framework-frames" ]
                                    [ summary [] [ str (sprintf "%d framework frames" lines.Length) ]; str text ]
                            else
                                str text
                    ]
                yield! breadcrumbs data
                h2 [] [ str "Request data" ]
                div [ _class "table-wrap request-data" ] [ requestData data ]
                h2 [] [ str "Actions" ]
                form
                    [ _method "post"; _action (sprintf "%s/status/%s" prefix r.Hash); _class "status-form" ]
                    [
                        hidden token
                        input [ _type "hidden"; _name "back"; _value (sprintf "%s/%s" prefix r.Hash) ]
                        if r.Status <> GroupStatus.Resolved then
                            button [ _type "submit"; _name "status"; _value "resolved" ] [ str "Resolve" ]
                        if r.Status <> GroupStatus.Unresolved then
                            button [ _type "submit"; _name "status"; _value "unresolved" ] [ str "Unresolve" ]
                        button [ _type "submit"; _name "status"; _value "ignored" ] [ str "Ignore" ]
                        label
                            []
                            [
                                str " for "
                                input [ _type "number"; _name "ignoreHours"; _min "1"; _class "short" ]
                                str " hours, or until "
                                input [ _type "number"; _name "ignoreCount"; _min "1"; _class "short" ]
                                str " more occurrences (blank: for good)"
                            ]
                    ]
                deleteForm prefix token r.Hash
                p [] [ a [ _href (prefix + "/") ] [ str "← All errors" ] ]
            ]

    /// A plain page with a heading and a sentence (not found, forbidden, bad request).
    let message (prefix: string) (heading: string) (text: string) : XmlNode =
        layout
            prefix
            heading
            [
                h2 [] [ str heading ]
                p [] [ str text ]
                p [] [ a [ _href (prefix + "/") ] [ str "← All errors" ] ]
            ]

    /// The HTML text of a page.
    let render (node: XmlNode) : string = RenderView.AsString.htmlDocument node
