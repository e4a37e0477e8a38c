namespace ErrorMonitor.Core

open System
open System.Text.RegularExpressions

/// Bounded text: truncation with a visible marker, and the normalisation used by fingerprints.
[<RequireQualifiedAccess>]
module internal Text =

    /// True when `s` is well-formed UTF-16: every surrogate is half of a pair (a lone one cannot be encoded as
    /// UTF-8, stored or shown faithfully).
    let isValidUnicode (s: string) : bool =
        if isNull s then
            true
        else
            let mutable ok = true
            let mutable i = 0

            while ok && i < s.Length do
                let c = s.[i]

                if Char.IsHighSurrogate c then
                    if i + 1 < s.Length && Char.IsLowSurrogate s.[i + 1] then
                        i <- i + 2
                    else
                        ok <- false
                elif Char.IsLowSurrogate c then
                    ok <- false
                else
                    i <- i + 1

            ok

    /// The marker appended to text that was cut: "…[truncated N chars]".
    let marker (dropped: int) = sprintf "…[truncated %d chars]" dropped

    /// The pairs of a URL-encoded query or form text ("a=1&b=x+y", a leading '?' ignored), unescaped, `+` as a
    /// space; a part without '=' is a key with an empty value.
    let queryPairs (text: string) : (string * string) list =
        let unescape (t: string) =
            Uri.UnescapeDataString(t.Replace('+', ' '))

        (if isNull text then "" else text).TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries)
        |> Array.map (fun p ->
            match p.Split('=', 2) with
            | [| k; v |] -> unescape k, unescape v
            | other -> unescape other.[0], "")
        |> List.ofArray

    /// Keeps at most `max` characters of `s` (never splitting a surrogate pair) and says how much was cut.
    let truncate (max: int) (s: string) : string =
        let s = if isNull s then "" else s
        let max = Math.Max(0, max)

        if s.Length <= max then
            s
        else
            let cut =
                if max > 0 && Char.IsHighSurrogate s.[max - 1] then
                    max - 1
                else
                    max

            s.Substring(0, cut) + marker (s.Length - cut)

    let private guid =
        Regex(
            @"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
            RegexOptions.CultureInvariant ||| RegexOptions.Compiled
        )

    let private hex =
        Regex(
            @"\b0[xX][0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{8,}\b",
            RegexOptions.CultureInvariant ||| RegexOptions.Compiled
        )

    let private digits =
        Regex(@"\d+", RegexOptions.CultureInvariant ||| RegexOptions.Compiled)

    /// Replaces GUIDs, hex runs and digit runs with placeholders, so ids inside a message do not split a group.
    let normalise (s: string) : string =
        let s = if isNull s then "" else s
        let s = guid.Replace(s, "<guid>")
        let s = hex.Replace(s, "<hex>")
        digits.Replace(s, "<n>")

/// Per-thread scratch buffers for the text every occurrence builds (traceback, JSON): reused, not
/// reallocated. Pure in effect: each call starts from an empty buffer and returns a fresh string.
[<AbstractClass; Sealed>]
type internal Buffers =
    [<ThreadStatic; DefaultValue>]
    static val mutable private sb: Text.StringBuilder

    [<ThreadStatic; DefaultValue>]
    static val mutable private bytesBuffer: Buffers.ArrayBufferWriter<byte>

    [<ThreadStatic; DefaultValue>]
    static val mutable private writer: Text.Json.Utf8JsonWriter

    /// An empty string builder (the thread's own; do not keep it).
    static member Builder() : Text.StringBuilder =
        match Buffers.sb with
        | null ->
            Buffers.sb <- Text.StringBuilder(4096)
            Buffers.sb
        | b when b.Capacity > 1048576 ->
            Buffers.sb <- Text.StringBuilder(4096)
            Buffers.sb
        | b -> b.Clear()

    /// An empty byte buffer (the thread's own; do not keep it).
    static member Bytes() : Buffers.ArrayBufferWriter<byte> =
        match Buffers.bytesBuffer with
        | null ->
            Buffers.bytesBuffer <- Buffers.ArrayBufferWriter<byte>(8192)
            Buffers.bytesBuffer
        | b when b.Capacity > 1048576 ->
            Buffers.bytesBuffer <- Buffers.ArrayBufferWriter<byte>(8192)
            Buffers.bytesBuffer
        | b ->
            b.ResetWrittenCount()
            b

    /// A JSON writer over `buffer`, reset to write from its start (the thread's own; do not keep it).
    static member JsonWriter(buffer: System.Buffers.IBufferWriter<byte>) : Text.Json.Utf8JsonWriter =
        match Buffers.writer with
        | null ->
            Buffers.writer <-
                new Text.Json.Utf8JsonWriter(
                    buffer,
                    Text.Json.JsonWriterOptions(
                        Encoder = Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping
                    )
                )

            Buffers.writer
        | w ->
            w.Reset buffer
            w
