namespace ErrorMonitor.Web.Stores

open System.Collections.Generic
open System.Threading.Tasks
open ErrorMonitor
open ErrorMonitor.Core

/// A store in memory, for tests and demos: lost when the process ends.
type MemoryStore() =
    let gate = obj ()
    let mutable records = Map.empty<string, ErrorRecord>

    /// Newest last-seen first, ties by hash: the order every store lists in.
    static member Order(all: seq<ErrorRecord>) =
        all |> Seq.sortBy (fun r -> -r.LastSeen.UtcTicks, r.Hash)

    interface IErrorStore with
        member _.InitializeAsync _ = Task.CompletedTask

        member _.UpsertAsync(batch, _) =
            lock gate (fun () ->
                for d in batch do
                    records <- records.Add(d.Latest.Hash, Events.apply (records.TryFind d.Latest.Hash) d))

            Task.CompletedTask

        member _.GetAsync(hash, _) =
            let found = lock gate (fun () -> records.TryFind(if isNull hash then "" else hash))
            Task.FromResult(found |> Option.defaultValue Unchecked.defaultof<ErrorRecord>)

        member _.ListAsync(offset, count, _) =
            let all = lock gate (fun () -> records)

            let page =
                MemoryStore.Order all.Values
                |> Seq.skip (int (min offset (int64 all.Count)))
                |> Seq.truncate (max 0 count)
                |> Array.ofSeq

            Task.FromResult(page :> IReadOnlyList<ErrorRecord>)

        member _.DeleteAsync(hash, _) =
            let existed =
                lock gate (fun () ->
                    let k = if isNull hash then "" else hash
                    let had = records.ContainsKey k
                    records <- records.Remove k
                    had)

            Task.FromResult existed
