namespace ErrorMonitor.Core

open System
open System.Text.Json

/// The logging integration's rules: which log entries become occurrences, which are kept as breadcrumbs, how a
/// message entry is grouped, and a breadcrumb's shape in an occurrence's request data. Levels are numbered as
/// Microsoft.Extensions.Logging numbers them (`Config.LogLevels`).
[<RequireQualifiedAccess>]
module internal LogCapture =

    /// The category ErrorMonitor logs under: its own entries are never recorded.
    [<Literal>]
    let OwnCategory = "ErrorMonitor"

    /// Information: the least level kept as a breadcrumb.
    let Information = List.findIndex ((=) "information") Config.LogLevels

    /// Error: the least level whose exception is recorded.
    let Error = List.findIndex ((=) "error") Config.LogLevels

    /// None: as APP_ERROR_LOG_LEVEL, the integration off; as an entry's level, nothing to log.
    let Off = List.findIndex ((=) "none") Config.LogLevels

    /// The integration is on (capture on, APP_ERROR_LOG_LEVEL not None).
    let on (s: Settings) = s.Enabled && s.LogLevel < Off

    /// Breadcrumbs are kept (the integration on, APP_ERROR_BREADCRUMBS above 0).
    let crumbs (s: Settings) = on s && s.Breadcrumbs > 0

    /// An entry is recorded: with an exception at Error and up, without one at or above APP_ERROR_LOG_LEVEL.
    let records (s: Settings) (category: string) (level: int) (hasException: bool) =
        on s
        && category <> OwnCategory
        && level < Off
        && level >= (if hasException then Error else s.LogLevel)

    /// The framework's own categories: every request logs some, so they are not kept as breadcrumbs (a successful
    /// request would carry them); the app's entries are.
    let framework (category: string) =
        category.StartsWith("Microsoft.", StringComparison.Ordinal)
        || category.StartsWith("System.", StringComparison.Ordinal)

    /// An entry is kept as a breadcrumb: Information and up, not ErrorMonitor's, not the framework's.
    let keepsCrumb (s: Settings) (category: string) (level: int) =
        crumbs s
        && category <> OwnCategory
        && level < Off
        && level >= Information
        && not (framework category)

    /// ASP.NET Core's hosting diagnostics: its logger logs each request's start and end (an exception a request
    /// throws reaches the middleware, and the server's logger logs it; a start-up failure is logged here), and
    /// whether it is enabled at all decides whether the host starts an activity and a logging scope for every
    /// request. So the integration does not want it: a request does not pay for those because of ErrorMonitor (an
    /// entry another logger enabled still reaches `records`).
    [<Literal>]
    let HostingDiagnostics = "Microsoft.AspNetCore.Hosting.Diagnostics"

    /// A logger of `category` wants entries of `level` at all.
    let wants (s: Settings) (category: string) (level: int) =
        category <> HostingDiagnostics
        && (records s category level true
            || records s category level false
            || keepsCrumb s category level)

    /// The group key of a message entry: its category and template, not its formatted text.
    let groupKey (category: string) (template: string) = "log\n" + category + "\n" + template

    /// Where an occurrence keeps its breadcrumbs (the log entries before it): an extra, written beside the
    /// context in its request data.
    [<Literal>]
    let BreadcrumbsKey = "breadcrumbs"

    /// A breadcrumb as it is kept in an occurrence's request data.
    let crumbData (time: DateTimeOffset) (level: string) (category: string) (message: string) : Data =
        Data.Object
            [
                "time", Data.String(time.UtcDateTime.ToString("O", Globalization.CultureInfo.InvariantCulture))
                "level", Data.String level
                "category", Data.String category
                "message", Data.String message
            ]

    /// The breadcrumbs of an occurrence's request data, oldest first: time, level, category and message of each;
    /// none when it has none or is not JSON.
    let crumbsOf (requestData: string) : (string * string * string * string) list =
        try
            use doc = JsonDocument.Parse(requestData)

            match doc.RootElement.TryGetProperty BreadcrumbsKey with
            | true, b when b.ValueKind = JsonValueKind.Array ->
                [
                    for e in b.EnumerateArray() ->
                        let field (name: string) =
                            match e.TryGetProperty name with
                            | true, v when v.ValueKind = JsonValueKind.String -> v.GetString()
                            | _ -> ""

                        field "time", field "level", field "category", field "message"
                ]
            | _ -> []
        with _ ->
            []
