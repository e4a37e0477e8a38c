namespace ErrorMonitor.Web.Stores

open System
open System.Data.Common
open System.Threading.Tasks
open ErrorMonitor.Core

/// What the SQL stores share: the record's columns and how a row becomes a record, and the schema step
/// that runs once before first use.
[<RequireQualifiedAccess>]
module internal Rows =

    /// The record's columns, in the order `record` reads them.
    [<Literal>]
    let Columns =
        "hash, host, path, method, request_data, exception_name, message, traceback, count, created_on, last_seen"

    /// A row of `Columns` as a record; `time` reads a timestamp column the store's way.
    let record (time: DbDataReader -> int -> DateTimeOffset) (r: DbDataReader) : ErrorRecord =
        {
            Hash = r.GetString 0
            Host = r.GetString 1
            Path = r.GetString 2
            Method = r.GetString 3
            RequestData = r.GetString 4
            ExceptionName = r.GetString 5
            Message = r.GetString 6
            Traceback = r.GetString 7
            Count = r.GetInt64 8
            CreatedOn = time r 9
            LastSeen = time r 10
        }

    /// Every row of a reader, read with `read`.
    let readAll (read: DbDataReader -> 'T) (r: DbDataReader) (ct: Threading.CancellationToken) : Task<ResizeArray<'T>> =
        task {
            let acc = ResizeArray<'T>()
            let mutable more = true

            while more do
                let! next = r.ReadAsync ct

                if next then acc.Add(read r) else more <- false

            return acc
        }

    /// The order every store lists in (newest last-seen first, ties by hash), or its reverse; `q` qualifies the
    /// columns ("" or "t.").
    let order (direction: CursorDirection) (q: string) =
        if direction = CursorDirection.Older then
            $"{q}last_seen DESC, {q}hash"
        else
            $"{q}last_seen, {q}hash DESC"

    /// The list order, unqualified.
    let listOrder = order CursorDirection.Older ""

    /// The keyset rule: the rows past a cursor (parameters `ls` and `hash`, with the store's prefix `p`), read
    /// in `order direction ""`.
    let pastCursor (direction: CursorDirection) (p: string) =
        if direction = CursorDirection.Older then
            $"last_seen <= {p}ls AND (last_seen < {p}ls OR hash > {p}hash)"
        else
            $"last_seen >= {p}ls AND (last_seen > {p}ls OR hash < {p}hash)"

    /// A hash as a parameter value (null is no hash).
    let key (hash: string) = if isNull hash then "" else hash

/// Runs a step once (creating the schema) before first use; a failed attempt (the database away) is run
/// again by the next caller.
type internal Once(step: unit -> Task) =
    let gate = obj ()
    let mutable running: Task = null

    /// The step's task: the one that succeeded or is running, or a new attempt.
    member _.Run() : Task =
        lock gate (fun () ->
            if isNull running || running.IsFaulted || running.IsCanceled then
                running <- step ()

            running)
