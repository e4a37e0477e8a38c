namespace ErrorMonitor

open System
open System.Collections.Generic
open System.Threading

/// Extra context for whatever is recorded while the scope is open (on this async flow). Dispose to close.
[<AllowNullLiteral>]
type ErrorScope internal (parent: ErrorScope) =
    static let current = AsyncLocal<ErrorScope>()
    let gate = obj ()
    let extras = List<KeyValuePair<string, obj>>()
    let mutable disposed = false

    /// Adds (or replaces) an entry; returns the scope, so calls chain.
    member this.SetExtra(key: string, [<System.Runtime.CompilerServices.Nullable(2uy)>] value: obj) : ErrorScope =
        ArgumentNullException.ThrowIfNull key

        lock gate (fun () ->
            extras.RemoveAll(fun kv -> kv.Key = key) |> ignore
            extras.Add(KeyValuePair(key, value)))

        this

    member internal _.Parent = parent

    member internal _.Entries = lock gate (fun () -> List.ofSeq extras)

    /// Opens a scope inside the current one.
    static member Begin() : ErrorScope =
        let s = new ErrorScope(current.Value)
        current.Value <- s
        s

    /// Every extra of the open scopes, outermost first (inner scopes win on the same key).
    static member internal CurrentExtras() : (string * obj) list =
        let rec chain (s: ErrorScope) acc =
            if isNull s then acc else chain s.Parent (s :: acc)

        chain current.Value []
        |> List.collect (fun s -> s.Entries |> List.map (fun kv -> kv.Key, kv.Value))
        |> List.rev
        |> List.distinctBy fst
        |> List.rev

    interface IDisposable with
        member this.Dispose() =
            if not disposed then
                disposed <- true

                if Object.ReferenceEquals(current.Value, this) then
                    current.Value <- parent
