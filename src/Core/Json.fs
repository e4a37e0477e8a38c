namespace ErrorMonitor.Core

open System
open System.IO
open System.Text
open System.Text.Encodings.Web
open System.Text.Json

/// JSON text for data trees, and bounded parsing of JSON into data. Pure: in-memory only.
[<RequireQualifiedAccess>]
module internal Json =


    let rec private writeData (w: Utf8JsonWriter) (d: Data) =
        match d with
        | Data.Null -> w.WriteNullValue()
        | Data.Bool b -> w.WriteBooleanValue b
        | Data.Number n when Double.IsFinite n -> w.WriteNumberValue n
        | Data.Number n -> w.WriteStringValue(string n)
        | Data.String s -> w.WriteStringValue(if isNull s then "" else s)
        | Data.Array items ->
            w.WriteStartArray()

            for i in items do
                writeData w i

            w.WriteEndArray()
        | Data.Object fields ->
            w.WriteStartObject()

            for k, v in fields do
                w.WritePropertyName(if isNull k then "" else k)
                writeData w v

            w.WriteEndObject()

    /// Writes a data tree.
    let write (w: Utf8JsonWriter) (d: Data) = writeData w d

    /// The JSON text `f` writes (through the thread's buffer: `f` must not make JSON text itself).
    let text (f: Utf8JsonWriter -> unit) : string =
        let buffer = Buffers.Bytes()
        let w = Buffers.JsonWriter buffer
        f w
        w.Flush()
        Encoding.UTF8.GetString(buffer.WrittenSpan)

    /// JSON text of a data tree.
    let serialize (d: Data) : string = text (fun w -> writeData w d)

    let rec private ofElement (limits: Limits) (depth: int) (e: JsonElement) : Data =
        if depth > limits.MaxDataDepth then
            Data.String Limits.Markers.NestedTooDeep
        else
            match e.ValueKind with
            | JsonValueKind.Object ->
                let all = e.EnumerateObject() |> Seq.truncate (limits.MaxEntries + 1) |> List.ofSeq

                let kept =
                    all
                    |> List.truncate limits.MaxEntries
                    |> List.map (fun p -> p.Name, ofElement limits (depth + 1) p.Value)

                Data.Object(
                    if all.Length > limits.MaxEntries then
                        kept
                        @ [ Limits.Markers.MoreEntriesKey, Data.String(Limits.Markers.moreEntries None) ]
                    else
                        kept
                )
            | JsonValueKind.Array ->
                let all = e.EnumerateArray() |> Seq.truncate (limits.MaxEntries + 1) |> List.ofSeq

                let kept =
                    all
                    |> List.truncate limits.MaxEntries
                    |> List.map (ofElement limits (depth + 1))

                Data.Array(
                    if all.Length > limits.MaxEntries then
                        kept @ [ Data.String Limits.Markers.MoreItems ]
                    else
                        kept
                )
            | JsonValueKind.String -> Data.String(Text.truncate limits.MaxFieldValue (e.GetString()))
            | JsonValueKind.Number ->
                match e.TryGetDouble() with
                | true, n -> Data.Number n
                | _ -> Data.String(e.GetRawText())
            | JsonValueKind.True -> Data.Bool true
            | JsonValueKind.False -> Data.Bool false
            | _ -> Data.Null

    /// True when every key and text in `d` is well-formed Unicode (no lone surrogate).
    let rec isValidUnicode (d: Data) : bool =
        match d with
        | Data.String s -> Text.isValidUnicode s
        | Data.Array items -> items |> List.forall isValidUnicode
        | Data.Object fields -> fields |> List.forall (fun (k, v) -> Text.isValidUnicode k && isValidUnicode v)
        | _ -> true

    /// Parses JSON text into bounded data; Error with the reason when it is not JSON (or nests past 256 levels).
    let parse (limits: Limits) (text: string) : Result<Data, string> =
        try
            use doc =
                JsonDocument.Parse(
                    (if isNull text then "" else text),
                    JsonDocumentOptions(MaxDepth = 256, AllowTrailingCommas = false)
                )

            Ok(ofElement limits 0 doc.RootElement)
        with ex ->
            Error ex.Message

    /// Parses a JSON object (UTF-8 bytes) into bounded data, leaving out the top-level fields named in `skip`
    /// (never converted: a large field nobody reads costs only the parser's pass over it). Error with the reason
    /// when it is not JSON; a value that is not an object is read whole.
    let parseWithout (limits: Limits) (skip: Set<string>) (utf8: ReadOnlyMemory<byte>) : Result<Data, string> =
        try
            use doc =
                JsonDocument.Parse(utf8, JsonDocumentOptions(MaxDepth = 256, AllowTrailingCommas = false))

            let root = doc.RootElement

            if root.ValueKind <> JsonValueKind.Object then
                Ok(ofElement limits 0 root)
            else
                Ok(
                    Data.Object
                        [
                            for p in root.EnumerateObject() |> Seq.truncate limits.MaxEntries do
                                if not (skip.Contains p.Name) then
                                    p.Name, ofElement limits 1 p.Value
                        ]
                )
        with ex ->
            Error ex.Message

    let rec private distinct (ps: (string * string) list) =
        match ps with
        | [] -> true
        | (k, _) :: rest ->
            not (
                rest
                |> List.exists (fun (k2, _) -> String.Equals(k, k2, StringComparison.Ordinal))
            )
            && distinct rest

    /// String pairs as a JSON-like object; a key given more than once becomes an array of its values.
    let ofPairs (pairs: (string * string) list) : Data =
        if distinct pairs then
            pairs |> List.map (fun (k, v) -> k, Data.String v) |> Data.Object
        else
            pairs
            |> List.groupBy fst
            |> List.map (fun (k, vs) ->
                match vs with
                | [ _, v ] -> k, Data.String v
                | many -> k, Data.Array(many |> List.map (snd >> Data.String)))
            |> Data.Object

    /// Writes string pairs as `ofPairs` makes them (without the tree when no key repeats, the common case).
    let writePairs (w: Utf8JsonWriter) (pairs: (string * string) list) =
        if distinct pairs then
            w.WriteStartObject()

            for k, v in pairs do
                w.WriteString((if isNull k then "" else k), (if isNull v then "" else v))

            w.WriteEndObject()
        else
            writeData w (ofPairs pairs)

/// The kinds of request body ErrorMonitor reads: JSON (masked by key at any depth), a URL-encoded form (its
/// fields, masked by key) and text (masked as free text).
[<RequireQualifiedAccess>]
type internal BodyKind =
    | Json
    | Form
    | Text

/// Which request bodies are read, and what stands for one that is not. Pure.
[<RequireQualifiedAccess>]
module internal RequestBodies =

    /// The kind of a body by its content type; None for a body that is not read (multipart, binary, none).
    let kind (contentType: string) : BodyKind option =
        let has (s: string) =
            contentType.Contains(s, StringComparison.OrdinalIgnoreCase)

        if String.IsNullOrEmpty contentType then
            None
        elif has "application/json" || has "+json" then
            Some BodyKind.Json
        elif has "application/x-www-form-urlencoded" then
            Some BodyKind.Form
        elif contentType.StartsWith("text/", StringComparison.OrdinalIgnoreCase) || has "xml" then
            Some BodyKind.Text
        else
            None

    /// What is recorded instead of a body over the limit (a cut JSON or form text could not be masked by key).
    let over (limit: int) : string =
        sprintf "[request body over %d bytes (APP_ERROR_REQUEST_BODY): not recorded]" limit

    /// A body's text as data of its kind: JSON parsed (text when it is not valid JSON), a form's fields (bounded by
    /// `limits`), text as it is; `cut` bytes were left out after the text (then JSON and forms are kept as text,
    /// with the cut's marker: a cut document cannot be read by key).
    let parse (limits: Limits) (kind: BodyKind) (text: string) (cut: int) : Body option * (string * string) list =
        match kind with
        | BodyKind.Json when cut = 0 ->
            match Json.parse limits text with
            | Ok d -> Some(Body.Json d), []
            | Error _ -> Some(Body.Text text), []
        | BodyKind.Form when cut = 0 ->
            let all = Text.queryPairs text
            let kept = all |> List.truncate limits.MaxEntries
            None, Limits.closeEntries limits.MaxEntries (List.rev kept) all.Length
        | _ -> Some(Body.Text(if cut > 0 then text + Text.marker cut else text)), []
