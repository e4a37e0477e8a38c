namespace ErrorMonitor.Core

open System
open System.Globalization
open System.IO
open System.Text
open System.Text.Json

/// The spill file's format: one JSON object a pending group, one a line. Pure: text (or its UTF-8 bytes) in, text out.
[<RequireQualifiedAccess>]
module internal Spill =

    /// Writes one line of the spill file (a JSON object) with `w`. Optimized at once, like the journal's other
    /// paths a storm of new groups is the first to use (spilled lines, reading them back): they would otherwise
    /// run unoptimized through the storm's first seconds.
    [<Runtime.CompilerServices.MethodImpl(Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)>]
    let write (w: Utf8JsonWriter) (d: GroupDelta) : unit =
        let e = d.Latest
        w.WriteStartObject()
        w.WriteNumber("v", 1)
        w.WriteString("hash", e.Hash)
        w.WriteString("host", e.Host)
        w.WriteString("path", e.Path)
        w.WriteString("method", e.Method)
        w.WriteString("requestData", e.RequestData)
        w.WriteString("exceptionName", e.ExceptionName)
        w.WriteString("message", e.Message)
        w.WriteString("traceback", e.Traceback)
        w.WriteString("occurredAt", e.OccurredAt.UtcDateTime)
        w.WriteString("release", e.Release)
        w.WriteString("environment", e.Environment)
        w.WriteString("project", e.Project)
        w.WriteString("firstAt", d.FirstAt.UtcDateTime)
        w.WriteNumber("count", d.Count)
        w.WriteBoolean("detailed", d.Detailed)
        w.WriteStartArray("hours")

        for b in d.Hours do
            w.WriteStartArray()
            w.WriteStringValue(b.Start.UtcDateTime)
            w.WriteNumberValue(b.Count)
            w.WriteEndArray()

        w.WriteEndArray()
        w.WriteStartArray("users")

        for u in d.Users do
            w.WriteStringValue u

        w.WriteEndArray()
        w.WriteEndObject()

    /// One line of the spill file.
    let line (d: GroupDelta) : string = Json.text (fun w -> write w d)

    /// The whole file for these pending groups.
    let serialize (pending: GroupDelta seq) : string =
        let sb = StringBuilder()

        for d in pending do
            sb.Append(line d).Append('\n') |> ignore

        sb.ToString()

    /// The group of one line's JSON object (None when it does not read).
    [<Runtime.CompilerServices.MethodImpl(Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)>]
    let private ofDocument (doc: JsonDocument) : GroupDelta option =
        try
            let r = doc.RootElement
            let s (name: string) = r.GetProperty(name).GetString()

            let t (name: string) =
                DateTimeOffset.Parse(s name, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal)

            let optional (name: string) =
                match r.TryGetProperty name with
                | true, v when v.ValueKind = JsonValueKind.String -> Triage.releaseName (v.GetString())
                | _ -> ""

            let hash = s "hash"
            let count = r.GetProperty("count").GetInt64()
            let occurredAt = t "occurredAt"

            if
                r.GetProperty("v").GetInt32() <> 1
                || not (Fingerprint.isValid hash)
                || count < 1L
            then
                None
            else
                Some
                    {
                        Latest =
                            {
                                Hash = hash
                                Host = s "host"
                                Path = s "path"
                                Method = s "method"
                                RequestData = s "requestData"
                                ExceptionName = s "exceptionName"
                                Message = s "message"
                                Traceback = s "traceback"
                                OccurredAt = occurredAt
                                // Files written before releases were recorded: none known.
                                Release = optional "release"
                                Environment = optional "environment"
                                Project = optional "project"
                            }
                        FirstAt = t "firstAt"
                        Count = count
                        // Files written before count-only batches existed hold detailed batches only.
                        Detailed =
                            match r.TryGetProperty "detailed" with
                            | true, v -> v.ValueKind <> JsonValueKind.False
                            | _ -> true
                        // Files written before the history (or hours that do not add up): every occurrence in
                        // the hour of the latest.
                        Hours =
                            let hours =
                                match r.TryGetProperty "hours" with
                                | true, v when v.ValueKind = JsonValueKind.Array ->
                                    [|
                                        for b in v.EnumerateArray() ->
                                            {
                                                Start =
                                                    DateTimeOffset.Parse(
                                                        b.[0].GetString(),
                                                        CultureInfo.InvariantCulture,
                                                        DateTimeStyles.AssumeUniversal
                                                    )
                                                Count = b.[1].GetInt64()
                                            }
                                    |]
                                | _ -> [||]

                            History.read hours occurredAt count
                        // Files written before users were counted: none; keys of another shape are left out.
                        Users =
                            match r.TryGetProperty "users" with
                            | true, v when v.ValueKind = JsonValueKind.Array ->
                                [|
                                    for u in v.EnumerateArray() do
                                        if u.ValueKind = JsonValueKind.String then
                                            let k = u.GetString()

                                            if Users.isKey k then
                                                k
                                |]
                                |> Users.add [||]
                            | _ -> [||]
                    }
        with _ ->
            None

    /// The group of the JSON object `parse` reads (None when it does not read).
    let inline private parsed ([<InlineIfLambda>] parse: unit -> JsonDocument) : GroupDelta option =
        try
            use doc = parse ()
            ofDocument doc
        with _ ->
            None

    /// One line's group (None when it does not read).
    [<Runtime.CompilerServices.MethodImpl(Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)>]
    let parseLine (text: ReadOnlyMemory<char>) : GroupDelta option =
        parsed (fun () -> JsonDocument.Parse text)

    /// One line's group from its UTF-8 bytes, as the file holds them (None when it does not read).
    [<Runtime.CompilerServices.MethodImpl(Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)>]
    let parseUtf8 (bytes: ReadOnlyMemory<byte>) : GroupDelta option =
        parsed (fun () -> JsonDocument.Parse bytes)

    /// The pending groups of a spill file, and how many lines could not be read (a torn last line after a
    /// hard kill, say).
    let parse (text: string) : GroupDelta list * int =
        let lines =
            (if isNull text then "" else text).Split('\n', StringSplitOptions.RemoveEmptyEntries)

        let parsed = lines |> Array.map (fun l -> parseLine (l.AsMemory()))
        (parsed |> Array.choose id |> List.ofArray), (parsed |> Array.filter Option.isNone |> Array.length)
