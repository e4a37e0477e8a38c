namespace ErrorMonitor.Core

open System
open System.Text

/// The subject and body of a notification, in the seed's format.
[<RequireQualifiedAccess>]
module internal Notification =

    /// `[prefix] [METHOD] url ExceptionName`; without a prefix `[METHOD] url ExceptionName`; outside a request
    /// `[prefix] ExceptionName`.
    let subject (prefix: string) (request: (string * string) option) (exceptionName: string) : string =
        let parts =
            [
                if not (String.IsNullOrWhiteSpace prefix) then
                    yield sprintf "[%s]" (prefix.Trim())
                match request with
                | Some(m, url) ->
                    yield sprintf "[%s]" m
                    yield url
                | None -> ()
                yield exceptionName
            ]

        // A subject is one line: drop any line break a URL or name may carry.
        (String.Join(" ", parts)).Replace('\r', ' ').Replace('\n', ' ')

    /// A text field of a record's request data, else `fallback`.
    let private requestField (name: string) (fallback: string) (record: ErrorRecord) : string =
        try
            use doc = System.Text.Json.JsonDocument.Parse(record.RequestData)

            match doc.RootElement.TryGetProperty name with
            | true, u when u.ValueKind = System.Text.Json.JsonValueKind.String -> u.GetString()
            | _ -> fallback
        with _ ->
            fallback

    /// The URL of a record's request: the "url" of its request data, else host and path ("" outside a request).
    let recordUrl (record: ErrorRecord) : string =
        let fallback =
            if record.Host = "" then
                record.Path
            else
                record.Host + record.Path

        requestField "url" fallback record

    /// The HTTP method of a record's request: the "method" of its request data (each sample has its own), else
    /// the group's.
    let recordMethod (record: ErrorRecord) : string =
        requestField "method" record.Method record

    /// The detail page of a group when the app's public address is known.
    let detailLink (baseUrl: string option) (prefix: string) (hash: string) : string option =
        baseUrl
        |> Option.map (fun b -> sprintf "%s%s/%s" (b.TrimEnd '/') (prefix.TrimEnd '/') hash)

    /// The subject of a record's notification.
    let subjectOf (prefix: string) (record: ErrorRecord) : string =
        let request =
            if String.IsNullOrEmpty record.Method then
                None
            else
                Some(record.Method, recordUrl record)

        subject prefix request record.ExceptionName

    /// A plain-text body: where, how often, the release and environment (and the release a regression came back
    /// in), the traceback (masked, as stored), and a link when a base URL is set.
    let body (record: ErrorRecord) (url: string) (detailLink: string option) : string =
        let sb = StringBuilder()
        sb.Append("URL: ").Append(url).Append('\n') |> ignore
        sb.Append("Method: ").Append(record.Method).Append('\n') |> ignore
        sb.Append("Exception: ").Append(record.ExceptionName).Append('\n') |> ignore
        sb.Append("Occurrences: ").Append(record.Count).Append('\n') |> ignore

        sb.Append("First seen: ").Append(record.CreatedOn.UtcDateTime.ToString("u")).Append('\n')
        |> ignore

        sb.Append("Last seen: ").Append(record.LastSeen.UtcDateTime.ToString("u")).Append('\n')
        |> ignore

        let line (label: string) (value: string) =
            if not (String.IsNullOrEmpty value) then
                sb.Append(label).Append(value).Append('\n') |> ignore

        line "Release: " record.LastRelease

        line
            "First release: "
            (if record.FirstRelease = record.LastRelease then
                 ""
             else
                 record.FirstRelease)

        line "Environment: " record.Environment

        if record.Regressions > 0L then
            line "Came back in release: " record.RegressionRelease

        match detailLink with
        | Some link -> sb.Append("Details: ").Append(link).Append('\n') |> ignore
        | None -> ()

        sb.Append('\n').Append(record.Traceback).Append('\n') |> ignore
        sb.ToString()
