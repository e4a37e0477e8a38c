namespace ErrorMonitor.Web

open System
open System.IO
open System.Threading
open System.Threading.Tasks
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.Http.Features
open ErrorMonitor.Core

/// A request body that keeps a copy of its first `limit` bytes as the app reads it (APP_ERROR_REQUEST_BODY), so
/// the body of a failing request can be recorded though the app read it once without buffering it
/// (`[FromBody]`, `ReadFromJsonAsync`). Nothing is copied before the app reads; a body the app never reads is
/// read up to the limit only when its request fails (`FillAsync`). Reads pass through unchanged.
[<Sealed; AllowNullLiteral>]
type internal RecordingBodyStream(inner: Stream, limit: int, declared: Nullable<int64>) =
    inherit Stream()
    let mutable kept: byte[] = null
    let mutable count = 0
    let mutable total = 0L
    let mutable ended = false

    let keep (read: ReadOnlySpan<byte>) =
        if read.Length = 0 then
            ended <- true
        else
            total <- total + int64 read.Length
            let room = limit - count

            if room > 0 then
                let n = min room read.Length

                if isNull kept || kept.Length < count + n then
                    let grown =
                        Array.zeroCreate<byte>(min limit (max 512 (max (count + n) (2 * count))))

                    if not (isNull kept) then
                        Buffer.BlockCopy(kept, 0, grown, 0, count)

                    kept <- grown

                read.Slice(0, n).CopyTo(Span<byte>(kept, count, n))
                count <- count + n

    /// The most bytes recorded.
    member _.Limit = limit

    /// True when the body is larger than the limit (by its declared length, or by what was read).
    member _.Over =
        (declared.HasValue && declared.Value > int64 limit) || total > int64 limit

    /// True when the whole body was read (or is over the limit): nothing more to keep.
    member this.Done = ended || this.Over

    /// The bytes kept: the body's start, at most `Limit` of them.
    member _.Kept =
        ArraySegment<byte>((if isNull kept then Array.Empty<byte>() else kept), 0, count)

    /// Reads what the app left unread, up to just past the limit, keeping it (only for a failing request).
    member this.FillAsync(ct: CancellationToken) : Task =
        task {
            let scratch = Array.zeroCreate<byte> 4096
            let mutable go = not this.Done

            while go do
                let! n = this.ReadAsync(Memory<byte>(scratch), ct)
                go <- n > 0 && not this.Done
        }

    override _.CanRead = inner.CanRead
    override _.CanSeek = false
    override _.CanWrite = false
    override _.Length = raise (NotSupportedException())

    override _.Position
        with get () = raise (NotSupportedException())
        and set _ = raise (NotSupportedException())

    override _.Flush() = ()
    override _.Seek(_, _) = raise (NotSupportedException())
    override _.SetLength _ = raise (NotSupportedException())
    override _.Write(_: byte[], _: int, _: int) = raise (NotSupportedException())

    override _.Read(buffer: byte[], offset: int, size: int) =
        let n = inner.Read(buffer, offset, size)
        keep (ReadOnlySpan<byte>(buffer, offset, n))
        n

    override _.Read(buffer: Span<byte>) =
        let n = inner.Read buffer
        keep (Span<byte>.op_Implicit(buffer.Slice(0, n)))
        n

    override this.ReadAsync(buffer: byte[], offset: int, size: int, ct: CancellationToken) =
        this.ReadAsync(Memory<byte>(buffer, offset, size), ct).AsTask()

    override _.ReadAsync(buffer: Memory<byte>, ct: CancellationToken) : ValueTask<int> =
        let pending = inner.ReadAsync(buffer, ct)

        if pending.IsCompletedSuccessfully then
            let n = pending.Result
            keep (Memory<byte>.op_Implicit(buffer.Slice(0, n)).Span)
            ValueTask<int> n
        else
            ValueTask<int>(
                task {
                    let! n = pending
                    keep (Memory<byte>.op_Implicit(buffer.Slice(0, n)).Span)
                    return n
                }
            )

/// Putting a recording body in place for the requests whose bodies may be recorded.
[<RequireQualifiedAccess>]
module internal BodyRecorder =

    /// Wraps the body of a request that may have one of a kind that is read (`RequestBodies.kind`) in a recording
    /// body of `limit` bytes; other requests (no body, GET, multipart, binary) are left as they are.
    let wrap (limit: int) (ctx: HttpContext) : unit =
        let r = ctx.Request

        // Cheapest first: a request without a content type (every GET) is left at once.
        match r.ContentType with
        | null
        | "" -> ()
        | contentType ->
            let length = r.ContentLength

            if
                not (length.HasValue && length.Value = 0L)
                && (RequestBodies.kind contentType).IsSome
            then
                let detection = ctx.Features.Get<IHttpRequestBodyDetectionFeature>()

                if (isNull detection || detection.CanHaveBody) && not (isNull r.Body) then
                    r.Body <- new RecordingBodyStream(r.Body, limit, length)

    /// Reads the unread rest of a failing request's recording body (up to its limit, for at most two seconds),
    /// so a body the app never read is recorded too; done at once for other requests.
    let fillAsync (ctx: HttpContext) : Task =
        match ctx.Request.Body with
        | :? RecordingBodyStream as b when not b.Done ->
            task {
                use cts = CancellationTokenSource.CreateLinkedTokenSource ctx.RequestAborted
                cts.CancelAfter(TimeSpan.FromSeconds 2.0)

                try
                    do! b.FillAsync cts.Token
                with _ ->
                    ()
            }
        | _ -> Task.CompletedTask
