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
            match AppValue.scalar limits value, value with
            | Some d, _ -> d
            | None, (:? JsonElement as e) ->
                match Json.parse limits (e.GetRawText()) with
                | Ok d -> d
                | Error _ -> Data.String "<json>"
            | None, _ when depth >= limits.MaxDataDepth -> Data.String Limits.Markers.NestedTooDeep
            | None, (:? IDictionary as d) ->
                let e = d.GetEnumerator()
                let acc = ResizeArray()

                while acc.Count < limits.MaxEntries && e.MoveNext() do
                    acc.Add(string e.Key, go limits (depth + 1) e.Value)

                Data.Object(List.ofSeq acc)
            | None, (:? IEnumerable as items) ->
                items
                |> Seq.cast<obj>
                |> Seq.truncate limits.MaxEntries
                |> Seq.map (go limits (depth + 1))
                |> List.ofSeq
                |> Data.Array
            | None, other -> Data.String(Text.truncate limits.MaxFieldValue (string other))
        with _ ->
            Data.String "<value could not be read>"

    /// An app value as data, bounded by the limits.
    let value (limits: Limits) (v: obj) : Data = go limits 0 v
