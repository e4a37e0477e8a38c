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

    let private isAscii (s: string) =
        not (isNull s) && Text.Ascii.IsValid(s.AsSpan())

    /// A set of lower-case ASCII names looked up by a key's lower-case form; an ASCII key is looked up without
    /// making that form (the same answer: ASCII letters lower-case the same either way).
    let private lowerSet (names: Set<string>) =
        let ascii =
            Collections.Generic.HashSet<string>(names, StringComparer.OrdinalIgnoreCase)

        fun (key: string) ->
            if isNull key then false
            elif isAscii key then ascii.Contains key
            else names.Contains(key.ToLowerInvariant())

    let private isCredentialHeader = lowerSet credentialHeaders

    /// `key` contains one of `words` (a loop, not a closure: rules run for every key of every occurrence).
    let rec private containsAny (key: string) (comparison: StringComparison) (words: string list) =
        match words with
        | [] -> false
        | w :: rest -> key.Contains(w, comparison) || containsAny key comparison rest

    /// The seed's rule: mask any key whose lower-case form contains one of `words` (compared lower-case).
    /// An empty word list keeps everything.
    let keyRule (words: string list) (maskWith: string) : MaskingRule =
        let words =
            words
            |> List.filter (fun w -> not (isNull w) && w <> "")
            |> List.map (fun w -> w.ToLowerInvariant())
            |> List.distinct

        let masked = MaskDecision.MaskWith maskWith
        // ASCII words in an ASCII key: compared ignoring case, without making the key's lower-case form.
        let asciiWords = words |> List.forall isAscii

        fun key ->
            let found =
                if asciiWords && isAscii key then
                    containsAny key StringComparison.OrdinalIgnoreCase words
                else
                    let k = if isNull key then "" else key.ToLowerInvariant()
                    containsAny k StringComparison.Ordinal words

            if found then masked else MaskDecision.Keep

    /// A rule that keeps everything.
    let keepAll: MaskingRule = fun _ -> MaskDecision.Keep

    /// The names masked by default besides the `password`/`secret` words (APP_ERROR_MASKED_KEYS), after
    /// Sentry's SDKs' default deny list: a key matches when its normal form (lower case, without `-`, `_`, `.`
    /// and spaces) is one of these or ends with one, so `X-Auth-Token`, `access_token`, `Api-Key`,
    /// `X-Amz-Security-Token`, `X-Forwarded-Authorization` and `user_session` all match.
    let defaultNames =
        [
            "token"
            "apikey"
            "auth"
            "authorization"
            "pwd"
            "passwd"
            "session"
            "sessionid"
            "sid"
            "sig"
            "signature"
            "credentials"
            "credential"
            "privatekey"
            "accesskey"
            "secretkey"
            "jwt"
            "csrf"
            "xsrf"
            "phpsessid"
        ]

    /// A key's normal form for name matching: lower case, without `-`, `_`, `.` and spaces.
    let normalName (key: string) : string =
        if isNull key then
            ""
        else
            let sb = Text.StringBuilder(key.Length)

            for c in key do
                if c <> '-' && c <> '_' && c <> '.' && c <> ' ' then
                    sb.Append(Char.ToLowerInvariant c) |> ignore

            sb.ToString()

    /// True when `normalName key` ends with `name` (a name in normal form), without making the normal form.
    let private endsWithNormal (key: string) (name: string) : bool =
        let mutable i = (if isNull key then 0 else key.Length) - 1
        let mutable j = name.Length - 1
        let mutable ok = true

        while ok && j >= 0 do
            while i >= 0 && (key.[i] = '-' || key.[i] = '_' || key.[i] = '.' || key.[i] = ' ') do
                i <- i - 1

            if i < 0 || Char.ToLowerInvariant key.[i] <> name.[j] then
                ok <- false
            else
                i <- i - 1
                j <- j - 1

        ok

    /// `normalName key` ends with one of `names` (a loop, not a closure).
    let rec private endsWithAny (key: string) (names: string list) =
        match names with
        | [] -> false
        | n :: rest -> endsWithNormal key n || endsWithAny key rest

    /// Masks a key whose normal form is one of `names` (in normal form too) or ends with one.
    let nameRule (names: string list) (maskWith: string) : MaskingRule =
        let names =
            names |> List.map normalName |> List.filter (fun n -> n <> "") |> List.distinct

        let masked = MaskDecision.MaskWith maskWith

        if names.IsEmpty then
            keepAll
        else
            fun key -> if endsWithAny key names then masked else MaskDecision.Keep

    /// The first rule that masks decides; otherwise the value is kept.
    let either (a: MaskingRule) (b: MaskingRule) : MaskingRule =
        fun key ->
            match a key with
            | MaskDecision.Keep -> b key
            | masked -> masked

    let private bearer =
        Text.RegularExpressions.Regex(
            @"\b(?<scheme>Bearer|Basic|Token|Digest)\s+(?<credential>[A-Za-z0-9\-._~+/]{6,}=*)",
            Text.RegularExpressions.RegexOptions.CultureInvariant
            ||| Text.RegularExpressions.RegexOptions.IgnoreCase
            ||| Text.RegularExpressions.RegexOptions.Compiled,
            TimeSpan.FromMilliseconds 200.0
        )

    let private digitRun =
        Text.RegularExpressions.Regex(
            @"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])",
            Text.RegularExpressions.RegexOptions.CultureInvariant
            ||| Text.RegularExpressions.RegexOptions.Compiled,
            TimeSpan.FromMilliseconds 200.0
        )

    /// True when the digits pass the Luhn check (card numbers do).
    let luhn (digits: string) : bool =
        let mutable sum = 0
        let mutable double = false

        for i in digits.Length - 1 .. -1 .. 0 do
            let mutable d = int digits.[i] - int '0'

            if double then
                d <- d * 2

                if d > 9 then
                    d <- d - 9

            sum <- sum + d
            double <- not double

        digits.Length > 0 && sum % 10 = 0

    /// Masks secrets recognisable by their shape wherever they stand, whatever their key: `Bearer`/`Basic`
    /// (and `Token`, `Digest`) credentials, and card numbers (Luhn-valid runs of 13 to 19 digits, with or
    /// without spaces or dashes). Text that cannot be checked in time is replaced.
    let secrets (maskWith: string) (text: string) : string =
        if String.IsNullOrEmpty text then
            text
        else
            try
                let t =
                    if text.Length < 10 || not (bearer.IsMatch text) then
                        text
                    else
                        bearer.Replace(text, fun m -> m.Groups.["scheme"].Value + " " + maskWith)

                let mutable digits = 0

                for c in t do
                    if Char.IsAsciiDigit c then
                        digits <- digits + 1

                if digits < 13 then
                    t
                else
                    digitRun.Replace(
                        t,
                        fun m ->
                            let ds = String(m.Value |> Seq.filter Char.IsAsciiDigit |> Array.ofSeq)

                            if ds.Length >= 13 && ds.Length <= 19 && luhn ds then
                                maskWith
                            else
                                m.Value
                    )
            with :? Text.RegularExpressions.RegexMatchTimeoutException ->
                "…[text could not be checked for secrets in time, so it is not kept]"

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

    /// Masks secret shapes (see `secrets`) in every text of a data tree.
    let rec dataSecrets (maskWith: string) (value: Data) : Data =
        match value with
        | Data.String s ->
            let masked = secrets maskWith s

            if Object.ReferenceEquals(masked, s) then
                value
            else
                Data.String masked
        | Data.Array items -> items |> List.map (dataSecrets maskWith) |> Data.Array
        | Data.Object fields -> fields |> List.map (fun (k, v) -> k, dataSecrets maskWith v) |> Data.Object
        | other -> other

    /// Masks keyed data entries (custom context, Exception.Data).
    let entries (rule: MaskingRule) (fields: (string * Data) list) : (string * Data) list =
        match data rule (Data.Object fields) with
        | Data.Object masked -> masked
        | _ -> fields

    /// `List.map f`, sharing what `f` leaves as it is: the list itself when nothing changes, else the tail after
    /// the last change (most requests have one value to mask, or none).
    let rec private mapShared (f: 'a -> 'a) (list: 'a list) : 'a list =
        match list with
        | [] -> list
        | head :: tail ->
            let tail' = mapShared f tail
            let head' = f head

            if Object.ReferenceEquals(head', head) && Object.ReferenceEquals(tail', tail) then
                list
            else
                head' :: tail'

    /// Masks string pairs (query, form, cookies, route values).
    let pairs (rule: MaskingRule) (fields: (string * string) list) : (string * string) list =
        fields
        |> mapShared (fun ((k, _) as pair) ->
            match rule k with
            | MaskDecision.MaskWith m -> k, m
            | MaskDecision.Keep -> pair)

    /// A URL with the values of its query masked by key (a Referer names the page it came from, query and all).
    let urlQuery (rule: MaskingRule) (url: string) : string =
        match if isNull url then -1 else url.IndexOf '?' with
        | -1 -> url
        | q ->
            let fragment = url.IndexOf('#', q)

            let query =
                if fragment < 0 then
                    url.Substring(q + 1)
                else
                    url.Substring(q + 1, fragment - q - 1)

            let rest = if fragment < 0 then "" else url.Substring fragment

            let masked =
                query.Split('&')
                |> Array.map (fun pair ->
                    let eq = pair.IndexOf '='

                    let key =
                        Uri.UnescapeDataString((if eq < 0 then pair else pair.Substring(0, eq)).Replace('+', ' '))

                    match rule key with
                    | MaskDecision.MaskWith m when eq >= 0 -> pair.Substring(0, eq + 1) + Uri.EscapeDataString m
                    | _ -> pair)

            url.Substring(0, q + 1) + String.Join("&", masked) + rest

    /// Headers whose value is a URL with a query: its query is masked by key.
    let urlHeaders = set [ "referer"; "referrer"; "location"; "content-location" ]

    let private isUrlHeader = lowerSet urlHeaders

    /// Masks headers: credential headers always (with `maskWith`), the others by the rule; URL headers' queries
    /// by key, and secret shapes (see `secrets`) in every value kept.
    let headers (rule: MaskingRule) (maskWith: string) (fields: (string * string) list) : (string * string) list =
        let one (k: string) (v: string) =
            if isCredentialHeader k then
                maskWith
            else
                match rule k with
                | MaskDecision.MaskWith m -> m
                | MaskDecision.Keep when isUrlHeader k -> secrets maskWith (urlQuery rule v)
                | MaskDecision.Keep -> secrets maskWith v

        // Most requests have nothing to mask in their headers but a credential: only the pairs up to the last
        // changed one are made anew.
        fields
        |> mapShared (fun ((k, v) as pair) ->
            let v' = one k v
            if Object.ReferenceEquals(v', v) then pair else k, v')

    /// Text with parts replaced, left to right, made anew only once a part is replaced: most text has nothing
    /// to mask, and comes back as it is (the same string, nothing copied).
    [<Struct>]
    type private Rewrite =
        val private Original: string
        val mutable private Built: Text.StringBuilder
        // Where the text not yet in `Built` starts.
        val mutable private Copied: int

        new(t: string) =
            {
                Original = t
                Built = null
                Copied = 0
            }

        /// Replaces the characters from `start` to `finish` (past the last) with `text`.
        member this.Replace(start: int, finish: int, text: string) =
            if isNull this.Built then
                this.Built <- Text.StringBuilder(this.Original.Length)

            this.Built.Append(this.Original, this.Copied, start - this.Copied).Append(text)
            |> ignore

            this.Copied <- finish

        /// The text with its replacements (once, at the end).
        member this.Result() =
            if isNull this.Built then
                this.Original
            else
                this.Built.Append(this.Original, this.Copied, this.Original.Length - this.Copied).ToString()

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

    let private unescapeKey (raw: string) =
        if raw.IndexOf '\\' < 0 then
            raw
        else
            try
                Text.Json.JsonSerializer.Deserialize<string>("\"" + raw + "\"")
            with _ ->
                raw

    /// Masks JSON-like text by key, tolerating text that is cut, too deep or not quite JSON: after a quoted
    /// key and a colon, the whole value (nested structures included) is replaced when the rule masks the key.
    let jsonText (rule: MaskingRule) (text: string) : string =
        let t = if isNull text then "" else text
        let mutable out = Rewrite t
        let mutable i = if t.IndexOf '"' < 0 then t.Length else 0

        while i < t.Length do
            if t.[i] = '"' then
                let fin = skipString t i
                let mutable k = fin

                while k < t.Length && Char.IsWhiteSpace t.[k] do
                    k <- k + 1

                if k < t.Length && t.[k] = ':' then
                    // A key as JSON means it: escapes such as "pass\u0077ord" decoded.
                    let key = unescapeKey (t.Substring(i, fin - i).Trim('"'))

                    match rule key with
                    | MaskDecision.MaskWith m ->
                        let mutable v = k + 1

                        while v < t.Length && Char.IsWhiteSpace t.[v] do
                            v <- v + 1

                        i <- skipValue t v
                        out.Replace(fin, i, ":" + jsonString m)
                    | MaskDecision.Keep -> i <- fin
                else
                    i <- fin
            else
                i <- i + 1

        out.Result()

    /// The first match of `regex` in `t`, when `possible` (a cheap check found what every match needs); else none.
    let private firstMatch (regex: Text.RegularExpressions.Regex) (possible: bool) (t: string) =
        if possible then
            regex.Match t
        else
            Text.RegularExpressions.Match.Empty

    // A key and its separator, in form-like (`key=value`) and line-like (`key: value`, YAML) text.
    let private formKey =
        Text.RegularExpressions.Regex(
            @"(?<![\w.\-\[\]])(?<key>[\w.\-\[\]]{1,256})(?<sep>'?[ \t]*[=:][ \t]*)",
            Text.RegularExpressions.RegexOptions.CultureInvariant
            ||| Text.RegularExpressions.RegexOptions.Compiled,
            TimeSpan.FromMilliseconds 200.0
        )

    /// Masks `key=value` and `key: value` pairs by key: a masked key's value runs to the next `&`, `;` or line
    /// end. A kept key's value is read on, so `error: password=X` still finds `password`.
    let private formPairs (rule: MaskingRule) (t: string) : string =
        // A pair needs a separator: text without one is not searched.
        let mutable m = firstMatch formKey (t.AsSpan().IndexOfAny('=', ':') >= 0) t

        let mutable out = Rewrite t

        while m.Success do
            match rule m.Groups.["key"].Value with
            | MaskDecision.MaskWith mask ->
                let valueStart = m.Index + m.Length
                let mutable valueEnd = valueStart

                while valueEnd < t.Length
                      && not (
                          t.[valueEnd] = '&'
                          || t.[valueEnd] = ';'
                          || t.[valueEnd] = '\r'
                          || t.[valueEnd] = '\n'
                      ) do
                    valueEnd <- valueEnd + 1

                out.Replace(valueStart, valueEnd, mask)
                m <- formKey.Match(t, valueEnd)
            | MaskDecision.Keep -> m <- m.NextMatch()

        out.Result()

    let private xmlElement =
        Text.RegularExpressions.Regex(
            @"<(?<key>[A-Za-z_][\w.\-:]{0,255})(?<attrs>[^<>]*)>(?<value>[^<]*)",
            Text.RegularExpressions.RegexOptions.CultureInvariant
            ||| Text.RegularExpressions.RegexOptions.Compiled,
            TimeSpan.FromMilliseconds 200.0
        )

    /// Masks free text by key, as far as keys can be seen in it: JSON-like `"key": value`, form-like
    /// `key=value` and `key: value`, XML-like `<key>value`. Text that cannot be checked in time is replaced.
    let text (rule: MaskingRule) (text: string) : string =
        try
            let t = jsonText rule text

            let t = formPairs rule t

            // An element needs a `<`: text without one is not searched.
            let mutable m = firstMatch xmlElement (t.IndexOf '<' >= 0) t

            let mutable out = Rewrite t

            while m.Success do
                match rule m.Groups.["key"].Value with
                | MaskDecision.MaskWith mask ->
                    let element = "<" + m.Groups.["key"].Value + m.Groups.["attrs"].Value + ">"
                    out.Replace(m.Index, m.Index + m.Length, element + mask)
                | MaskDecision.Keep -> ()

                m <- m.NextMatch()

            out.Result()
        with :? Text.RegularExpressions.RegexMatchTimeoutException ->
            "…[text could not be checked for masked keys in time, so it is not kept]"

    /// Masks free text: by key as far as keys can be seen in it (see `text`), then secret shapes (see `secrets`).
    let freeText (rule: MaskingRule) (maskWith: string) (t: string) : string = secrets maskWith (text rule t)

    /// Masks every string of `value` as free text (`freeText`): log messages kept as data (breadcrumbs).
    let rec dataText (rule: MaskingRule) (maskWith: string) (value: Data) : Data =
        match value with
        | Data.String s -> Data.String(freeText rule maskWith s)
        | Data.Array items -> items |> List.map (dataText rule maskWith) |> Data.Array
        | Data.Object fields -> fields |> List.map (fun (k, v) -> k, dataText rule maskWith v) |> Data.Object
        | other -> other

    let private pairSecrets (maskWith: string) (fields: (string * string) list) =
        if
            fields
            |> List.forall (fun (_, v) -> Object.ReferenceEquals(secrets maskWith v, v))
        then
            fields
        else
            fields |> List.map (fun (k, v) -> k, secrets maskWith v)

    /// Masks every keyed part of a request, and secret shapes in every value.
    let request (rule: MaskingRule) (maskWith: string) (r: RequestContext) : RequestContext =
        { r with
            Path = freeText rule maskWith r.Path
            Query = pairs rule r.Query |> pairSecrets maskWith
            Headers = headers rule maskWith r.Headers
            Form = pairs rule r.Form |> pairSecrets maskWith
            // Cookies are credentials (the Cookie header is masked whatever the rule says): only names are kept.
            Cookies = r.Cookies |> List.map (fun (k, _) -> k, maskWith)
            RouteValues = pairs rule r.RouteValues |> pairSecrets maskWith
            Body =
                r.Body
                |> Option.map (function
                    | Body.Json d -> Body.Json(dataSecrets maskWith (data rule d))
                    | Body.Text t -> Body.Text(freeText rule maskWith t))
            Custom = entries rule r.Custom |> List.map (fun (k, v) -> k, dataSecrets maskWith v)
        }

    /// Masks an exception tree at every level: Exception.Data by key, and the message as free text (by key, and
    /// secret shapes), so neither the traceback nor a notification carries `password=...` or a card number.
    let rec exceptionInfo (rule: MaskingRule) (maskWith: string) (e: ExceptionInfo) : ExceptionInfo =
        { e with
            Message = freeText rule maskWith e.Message
            Data = entries rule e.Data |> List.map (fun (k, v) -> k, dataSecrets maskWith v)
            Inner = e.Inner |> List.map (exceptionInfo rule maskWith)
        }
