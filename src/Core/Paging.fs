namespace ErrorMonitor.Core

open System

/// One page of a newest-first list.
type Page<'T> =
    {
        /// The items of this page.
        Items: 'T list
        /// The page number, from 1.
        Number: int
        /// Items a page.
        Size: int
        /// There is a newer page (a lower number).
        HasNewer: bool
        /// There is an older page (a higher number).
        HasOlder: bool
    }

/// Page arithmetic.
[<RequireQualifiedAccess>]
module Paging =

    /// A page number from a query value: a positive whole number, else page 1.
    let parsePage (raw: string option) : int =
        match raw with
        | Some v ->
            match Int32.TryParse(v.Trim()) with
            | true, n when n >= 1 -> n
            | _ -> 1
        | None -> 1

    /// How many rows come before page `number` (64-bit: deep pages do not overflow).
    let offset (number: int) (size: int) : int64 =
        int64 (Math.Max(1, number) - 1) * int64 (Math.Max(1, size))

    /// A page from the rows a store fetched at `offset number size`, asking for at most size + 1 rows: the
    /// extra row only says that an older page exists.
    let ofFetched (number: int) (size: int) (fetched: 'T list) : Page<'T> =
        let size = Math.Max(1, size)

        {
            Items = fetched |> List.truncate size
            Number = Math.Max(1, number)
            Size = size
            HasNewer = number > 1
            HasOlder = fetched.Length > size
        }

    /// A page of an in-memory list (newest first), the plain model stores are checked against.
    let ofList (number: int) (size: int) (all: 'T list) : Page<'T> =
        let off = offset number size

        let rest =
            if off >= int64 all.Length then
                []
            else
                all |> List.skip (int off)

        ofFetched number size (rest |> List.truncate (Math.Max(1, size) + 1))
