namespace ErrorMonitor.Core

/// What a masking rule decides for one key.
[<RequireQualifiedAccess>]
type MaskDecision =
    /// Keep the value as it is.
    | Keep
    /// Replace the value with this text.
    | MaskWith of string

/// A masking rule: key -> decision.
type MaskingRule = string -> MaskDecision

/// Masking of every keyed thing a record holds, at any depth.
[<RequireQualifiedAccess>]
module Masking =

    /// HTTP headers that carry credentials: masked whatever the key rule says.
    let credentialHeaders =
        set [ "authorization"; "proxy-authorization"; "cookie"; "set-cookie"; "x-api-key" ]

    /// The seed's rule: mask any key whose lower-case form contains one of `words` (compared lower-case).
    /// An empty word list keeps everything.
    let keyRule (words: string list) (maskWith: string) : MaskingRule =
        let words =
            words
            |> List.filter (fun w -> not (isNull w) && w <> "")
            |> List.map (fun w -> w.ToLowerInvariant())
            |> List.distinct

        fun key ->
            let k = if isNull key then "" else key.ToLowerInvariant()

            if words |> List.exists (fun w -> k.Contains w) then
                MaskDecision.MaskWith maskWith
            else
                MaskDecision.Keep

    /// A rule that keeps everything.
    let keepAll: MaskingRule = fun _ -> MaskDecision.Keep

    /// Masks a data tree: an object field whose key the rule masks is replaced whole; the rest is walked.
    let rec data (rule: MaskingRule) (value: Data) : Data =
        match value with
        | Data.Object fields ->
            fields
            |> List.map (fun (k, v) ->
                match rule k with
                | MaskDecision.MaskWith m -> k, Data.String m
                | MaskDecision.Keep -> k, data rule v)
            |> Data.Object
        | Data.Array items -> items |> List.map (data rule) |> Data.Array
        | other -> other

    /// Masks keyed data entries (custom context, Exception.Data).
    let entries (rule: MaskingRule) (fields: (string * Data) list) : (string * Data) list =
        match data rule (Data.Object fields) with
        | Data.Object masked -> masked
        | _ -> fields

    /// Masks string pairs (query, form, cookies, route values).
    let pairs (rule: MaskingRule) (fields: (string * string) list) : (string * string) list =
        fields
        |> List.map (fun (k, v) ->
            match rule k with
            | MaskDecision.MaskWith m -> k, m
            | MaskDecision.Keep -> k, v)

    /// Masks headers: credential headers always (with `maskWith`), the others by the rule.
    let headers (rule: MaskingRule) (maskWith: string) (fields: (string * string) list) : (string * string) list =
        fields
        |> List.map (fun (k, v) ->
            let lower = if isNull k then "" else k.ToLowerInvariant()

            if credentialHeaders.Contains lower then
                k, maskWith
            else
                match rule k with
                | MaskDecision.MaskWith m -> k, m
                | MaskDecision.Keep -> k, v)

    /// Masks every keyed part of a request.
    let request (rule: MaskingRule) (maskWith: string) (r: RequestContext) : RequestContext =
        { r with
            Query = pairs rule r.Query
            Headers = headers rule maskWith r.Headers
            Form = pairs rule r.Form
            // Cookies are credentials (the Cookie header is masked whatever the rule says): only names are kept.
            Cookies = r.Cookies |> List.map (fun (k, _) -> k, maskWith)
            RouteValues = pairs rule r.RouteValues
            Body =
                r.Body
                |> Option.map (function
                    | Body.Json d -> Body.Json(data rule d)
                    | Body.Text t -> Body.Text t)
            Custom = entries rule r.Custom
        }

    /// Masks Exception.Data at every level of an exception tree.
    let rec exceptionInfo (rule: MaskingRule) (e: ExceptionInfo) : ExceptionInfo =
        { e with
            Data = entries rule e.Data
            Inner = e.Inner |> List.map (exceptionInfo rule)
        }
