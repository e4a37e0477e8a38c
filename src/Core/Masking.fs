namespace ErrorMonitor.Core

open System

/// What a masking rule decides for one key.
[<RequireQualifiedAccess>]
type internal MaskDecision =
    /// Keep the value as it is.
    | Keep
    /// Replace the value with this text.
    | MaskWith of string

/// A masking rule: key -> decision.
type internal MaskingRule = string -> MaskDecision

/// Masking of every keyed thing a record holds, at any depth.
[<RequireQualifiedAccess>]
module internal Masking =

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

    let rec private anyMasked (rule: MaskingRule) (value: Data) : bool =
        match value with
        | Data.Object fields ->
            fields
            |> List.exists (fun (k, v) -> rule k <> MaskDecision.Keep || anyMasked rule v)
        | Data.Array items -> items |> List.exists (anyMasked rule)
        | _ -> false

    /// Masks a data tree: an object field whose key the rule masks is replaced whole; the rest is walked. A
    /// tree with nothing to mask is returned as it is.
    let rec data (rule: MaskingRule) (value: Data) : Data =
        if not (anyMasked rule value) then
            value
        else

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
        if fields |> List.forall (fun (k, _) -> rule k = MaskDecision.Keep) then
            fields
        else

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

    let private jsonString (s: string) =
        "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\""

    /// Index just past a JSON string starting at `i` (a quote), or the end of the text when it is cut.
    let private skipString (t: string) (i: int) =
        let mutable j = i + 1
        let mutable fin = false

        while not fin && j < t.Length do
            match t.[j] with
            | '\\' -> j <- j + 2
            | '"' ->
                j <- j + 1
                fin <- true
            | _ -> j <- j + 1

        min j t.Length

    /// Index just past the JSON value starting at `i`: a string, a bracketed structure (strings inside it
    /// honoured), or a bare word; the end of the text when it is cut.
    let private skipValue (t: string) (i: int) =
        if i >= t.Length then
            i
        else
            match t.[i] with
            | '"' -> skipString t i
            | '{'
            | '[' ->
                let mutable depth = 0
                let mutable j = i
                let mutable fin = false

                while not fin && j < t.Length do
                    match t.[j] with
                    | '"' -> j <- skipString t j
                    | '{'
                    | '[' ->
                        depth <- depth + 1
                        j <- j + 1
                    | '}'
                    | ']' ->
                        depth <- depth - 1
                        j <- j + 1

                        if depth = 0 then
                            fin <- true
                    | _ -> j <- j + 1

                j
            | _ ->
                let mutable j = i

                while j < t.Length
                      && not (t.[j] = ',' || t.[j] = '}' || t.[j] = ']' || Char.IsWhiteSpace t.[j]) do
                    j <- j + 1

                j

    /// Masks JSON-like text by key, tolerating text that is cut, too deep or not quite JSON: after a quoted
    /// key and a colon, the whole value (nested structures included) is replaced when the rule masks the key.
    let jsonText (rule: MaskingRule) (text: string) : string =
        let t = if isNull text then "" else text
        let sb = Text.StringBuilder(t.Length)
        let mutable i = 0

        while i < t.Length do
            if t.[i] = '"' then
                let fin = skipString t i
                let token = t.Substring(i, fin - i)
                sb.Append token |> ignore
                let mutable k = fin

                while k < t.Length && Char.IsWhiteSpace t.[k] do
                    k <- k + 1

                if k < t.Length && t.[k] = ':' then
                    let key = token.Trim('"')

                    match rule key with
                    | MaskDecision.MaskWith m ->
                        let mutable v = k + 1

                        while v < t.Length && Char.IsWhiteSpace t.[v] do
                            v <- v + 1

                        sb.Append(':').Append(jsonString m) |> ignore
                        i <- skipValue t v
                    | MaskDecision.Keep -> i <- fin
                else
                    i <- fin
            else
                sb.Append t.[i] |> ignore
                i <- i + 1

        sb.ToString()

    let private formPair =
        Text.RegularExpressions.Regex(
            @"(?<![\w.\-\[\]])(?<key>[\w.\-\[\]]{1,256})(?<sep>\s*[=:]\s*)(?<value>[^&\r\n]*)",
            Text.RegularExpressions.RegexOptions.CultureInvariant,
            TimeSpan.FromMilliseconds 200.0
        )

    let private xmlElement =
        Text.RegularExpressions.Regex(
            @"<(?<key>[A-Za-z_][\w.\-:]{0,255})(?<attrs>[^<>]*)>(?<value>[^<]*)",
            Text.RegularExpressions.RegexOptions.CultureInvariant,
            TimeSpan.FromMilliseconds 200.0
        )

    /// Masks free text by key, as far as keys can be seen in it: JSON-like `"key": value`, form-like
    /// `key=value` and `key: value`, XML-like `<key>value`. Text that cannot be checked in time is replaced.
    let text (rule: MaskingRule) (text: string) : string =
        try
            let t = jsonText rule text

            let t =
                formPair.Replace(
                    t,
                    fun m ->
                        match rule m.Groups.["key"].Value with
                        | MaskDecision.MaskWith mask -> m.Groups.["key"].Value + m.Groups.["sep"].Value + mask
                        | MaskDecision.Keep -> m.Value
                )

            xmlElement.Replace(
                t,
                fun m ->
                    match rule m.Groups.["key"].Value with
                    | MaskDecision.MaskWith mask -> "<" + m.Groups.["key"].Value + m.Groups.["attrs"].Value + ">" + mask
                    | MaskDecision.Keep -> m.Value
            )
        with :? Text.RegularExpressions.RegexMatchTimeoutException ->
            "…[text could not be checked for masked keys in time, so it is not kept]"

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
                    | Body.Text t -> Body.Text(text rule t))
            Custom = entries rule r.Custom
        }

    /// Masks Exception.Data at every level of an exception tree.
    let rec exceptionInfo (rule: MaskingRule) (e: ExceptionInfo) : ExceptionInfo =
        { e with
            Data = entries rule e.Data
            Inner = e.Inner |> List.map (exceptionInfo rule)
        }
