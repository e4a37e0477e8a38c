namespace ErrorMonitor.Core

open System

/// One page of a newest-first list.
type internal Page<'T> =
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

/// Which way a cursor reads from its row.
type CursorDirection =
    /// Rows after the cursor's row: older ones (the next page).
    | Older = 0
    /// Rows before the cursor's row: newer ones (the previous page).
    | Newer = 1

/// A position in a list: a row's key in the list's order (`ListSort`: UTC ticks of its last-seen or first-seen
/// time, or its count) and its hash. Reading from a cursor uses the index on (key, hash), so a deep page costs
/// what page 1 costs (keyset pagination).
type PageCursor =
    {
        /// The row's key in the list's order.
        Key: int64
        /// The row's hash (ties on the key order by hash).
        Hash: string
        /// Which way to read from it.
        Direction: CursorDirection
    }

/// Page arithmetic.
[<RequireQualifiedAccess>]
module internal Paging =

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

    /// A cursor as URL text: "<key>.<hash>".
    let formatCursor (key: int64) (hash: string) : string = sprintf "%d.%s" key hash

    /// A cursor from URL text; None when it is not one (then the page number alone decides). A key is a count or
    /// the ticks of a time, so never negative nor past the last representable time.
    let parseCursor (direction: CursorDirection) (text: string) : PageCursor option =
        match (if isNull text then "" else text).Split('.') with
        | [| key; hash |] when Fingerprint.isValid hash ->
            match Int64.TryParse key with
            | true, k when k >= 0L && k <= DateTimeOffset.MaxValue.UtcTicks ->
                Some
                    {
                        Key = k
                        Hash = hash
                        Direction = direction
                    }
            | _ -> None
        | _ -> None

    /// The ticks of a time key as a time (UTC).
    let timeOf (key: int64) : DateTimeOffset = DateTimeOffset(key, TimeSpan.Zero)

    /// Whether a row comes after the cursor's row in the list's order (for Older), or before it (Newer).
    let beyond (c: PageCursor) (key: int64) (hash: string) : bool =
        match c.Direction with
        | CursorDirection.Older -> key < c.Key || (key = c.Key && String.CompareOrdinal(hash, c.Hash) > 0)
        | _ -> key > c.Key || (key = c.Key && String.CompareOrdinal(hash, c.Hash) < 0)

    /// A page read from a cursor, asking for at most size + 1 rows (newest first). Reading older, the extra
    /// row says an older page exists; reading newer, the page is the last `size` rows before the cursor.
    let ofCursor (number: int) (size: int) (direction: CursorDirection) (fetched: 'T list) : Page<'T> =
        let size = Math.Max(1, size)
        let number = Math.Max(1, number)

        match direction with
        | CursorDirection.Older ->
            {
                Items = fetched |> List.truncate size
                Number = number
                Size = size
                HasNewer = true
                HasOlder = fetched.Length > size
            }
        | _ ->
            let extra = fetched.Length > size

            {
                Items =
                    if extra then
                        List.skip (fetched.Length - size) fetched
                    else
                        fetched
                Number = number
                Size = size
                HasNewer = extra || number > 1
                HasOlder = true
            }

    /// The Newer and Older links of a page under `prefix`: `{prefix}/?page=N`, with the cursor of the page's
    /// edge row (`before` the first, `after` the last) so the linked page is read through the index (the link
    /// to page 1 needs none), then `view` (the list's filters, "&name=value..." or "").
    let links
        (prefix: string)
        (view: string)
        (position: 'T -> int64 * string)
        (page: Page<'T>)
        : string option * string option =
        let newer =
            match page.Items with
            | first :: _ when page.HasNewer && page.Number > 2 ->
                let k, h = position first
                Some(sprintf "%s/?page=%d&before=%s%s" prefix (page.Number - 1) (formatCursor k h) view)
            | _ when page.HasNewer -> Some(sprintf "%s/?page=%d%s" prefix (max 1 (page.Number - 1)) view)
            | _ -> None

        let older =
            match List.tryLast page.Items with
            | Some last when page.HasOlder ->
                let k, h = position last
                Some(sprintf "%s/?page=%d&after=%s%s" prefix (page.Number + 1) (formatCursor k h) view)
            | _ -> None

        newer, older
