namespace ErrorMonitor.Web

open System
open System.Collections
open System.Text.Json
open ErrorMonitor.Core

/// Turns app values (scope extras, context-builder entries) into bounded data. Never throws.
[<RequireQualifiedAccess>]
module internal DataOf =

    let rec private go (limits: Limits) (depth: int) (value: obj) : Data =
        try
            match value with
            | null -> Data.Null
            | :? string as s -> Data.String(Text.truncate limits.MaxFieldValue s)
            | :? bool as b -> Data.Bool b
            | :? int as i -> Data.Number(float i)
            | :? int64 as i -> Data.Number(float i)
            | :? int16 as i -> Data.Number(float i)
            | :? byte as i -> Data.Number(float i)
            | :? uint32 as i -> Data.Number(float i)
            | :? float as f -> Data.Number f
            | :? float32 as f -> Data.Number(float f)
            | :? decimal as d -> Data.Number(float d)
            | :? DateTime as d -> Data.String(d.ToString "O")
            | :? DateTimeOffset as d -> Data.String(d.ToString "O")
            | :? Guid as g -> Data.String(string g)
            | :? JsonElement as e ->
                match Json.parse limits (e.GetRawText()) with
                | Ok d -> d
                | Error _ -> Data.String "<json>"
            | _ when depth >= limits.MaxDataDepth -> Data.String Limits.Markers.NestedTooDeep
            | :? IDictionary as d ->
                let e = d.GetEnumerator()
                let acc = ResizeArray()

                while acc.Count < limits.MaxEntries && e.MoveNext() do
                    acc.Add(string e.Key, go limits (depth + 1) e.Value)

                Data.Object(List.ofSeq acc)
            | :? IEnumerable as items ->
                items
                |> Seq.cast<obj>
                |> Seq.truncate limits.MaxEntries
                |> Seq.map (go limits (depth + 1))
                |> List.ofSeq
                |> Data.Array
            | other -> Data.String(Text.truncate limits.MaxFieldValue (string other))
        with _ ->
            Data.String "<value could not be read>"

    /// An app value as data, bounded by the limits.
    let value (limits: Limits) (v: obj) : Data = go limits 0 v
