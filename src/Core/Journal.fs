namespace ErrorMonitor.Core

open System

/// The journal's format and replay rule. Every flush interval the shell appends what the queue accepted since
/// the last append (coalesced by group) as entry lines, each with the range of occurrence sequence numbers it
/// holds; after each successful store write it appends a "written up to S" line. An entry never straddles a
/// written batch (the queue hands the journal its entries at the same moment it hands the writer a batch), so
/// replaying "every entry past the last written mark" gives back exactly what was answered and not stored.
/// Pure: text in, text out.
[<RequireQualifiedAccess>]
module internal Journal =

    /// An entry line: the group's coalesced occurrences numbered `first` to `last`.
    let entry (first: int64) (last: int64) (d: GroupDelta) : string =
        sprintf "E %d %d %s" first last (Spill.line d)

    /// A mark: every occurrence numbered up to `upTo` is in the store.
    let written (upTo: int64) : string = sprintf "W %d" upTo

    /// What a journal holds that the store does not: the entries past its last written mark, merged by group,
    /// and how many lines could not be read (a torn last line after a hard kill, say).
    let replay (text: string) : GroupDelta list * int =
        let lines =
            (if isNull text then "" else text).Split('\n', StringSplitOptions.RemoveEmptyEntries)

        let mutable mark = 0L
        let mutable bad = 0
        let entries = Collections.Generic.List<int64 * GroupDelta>()

        for line in lines do
            let parts = line.Split(' ', 4)

            match parts with
            | [| "W"; upTo |] ->
                match Int64.TryParse upTo with
                | true, n -> mark <- max mark n
                | _ -> bad <- bad + 1
            | [| "E"; _; last; json |] ->
                match Int64.TryParse last, Spill.parse json with
                | (true, n), ([ d ], 0) -> entries.Add(n, d)
                | _ -> bad <- bad + 1
            | _ -> bad <- bad + 1

        let pending =
            entries
            |> Seq.filter (fun (last, _) -> last > mark)
            |> Seq.sortBy fst
            |> Seq.fold
                (fun (acc: Map<string, GroupDelta>) (_, d) ->
                    match acc.TryFind d.Latest.Hash with
                    | Some older -> acc.Add(d.Latest.Hash, Events.merge older d)
                    | None -> acc.Add(d.Latest.Hash, d))
                Map.empty

        (pending |> Map.toList |> List.map snd), bad
