namespace ErrorMonitor.Web

open System
open System.Diagnostics
open System.IO
open System.Text
open Microsoft.AspNetCore.Http
open Microsoft.AspNetCore.Http.Features
open ErrorMonitor.Core

/// Reads an HttpContext into plain data for the core. Reads only what the app already has: a form the app
/// read, a body the app buffered. Leaves the app's streams as it found them. Never throws.
[<RequireQualifiedAccess>]
module internal RequestReader =

    let private attempt fallback f =
        try
            f ()
        with _ ->
            fallback

    /// Gathers pairs in order into a pooled array (`add` each, then `close`): Core's bound (`Limits.closeKept`)
    /// without the reversed list the bound's other form needs.
    type private Gather(limits: Limits) =
        let kept = Buffers.ArrayPool<string * string>.Shared.Rent(max 1 limits.MaxEntries)

        let mutable seen = 0

        member _.Add(pair: string * string) =
            if seen < limits.MaxEntries then
                kept.[seen] <- pair

            seen <- seen + 1

        member _.Close() =
            let list = Limits.closeKept limits.MaxEntries kept seen
            Buffers.ArrayPool<string * string>.Shared.Return(kept, true)
            list

    /// A collection bounded by Core's rule (the limit, then a marker counting what was left out): the collections
    /// counted here are already in memory and bounded by the server's own limits.
    let private take (limits: Limits) (pairs: seq<string * string>) =
        let g = Gather limits

        for pair in pairs do
            g.Add pair

        g.Close()

    /// A collection `fill` adds to, bounded by Core's rule as `take` bounds one (empty when reading it fails).
    let private gather (limits: Limits) (fill: Gather -> unit) =
        attempt [] (fun () ->
            let g = Gather limits
            fill g
            g.Close())

    /// A body excerpt and form fields: from a recording body (APP_ERROR_REQUEST_BODY; a body over its limit is
    /// noted, not recorded), else only when the app buffered the body (a seekable stream; its position is
    /// restored).
    let private body (limits: Limits) (request: HttpRequest) : Body option * (string * string) list =
        attempt (None, []) (fun () ->
            let stream = request.Body

            match stream, RequestBodies.kind request.ContentType with
            | _, None -> None, []
            | :? RecordingBodyStream as b, Some kind ->
                if b.Over then
                    Some(Body.Text(RequestBodies.over b.Limit)), []
                else
                    let kept = b.Kept

                    if kept.Count = 0 then
                        None, []
                    else
                        RequestBodies.parse
                            limits
                            kind
                            (Encoding.UTF8.GetString(kept.Array, kept.Offset, kept.Count))
                            0
            | null, _ -> None, []
            | _ when not stream.CanSeek -> None, []
            // A form the app buffered is read as the app's form (below), not again here.
            | _, Some BodyKind.Form -> None, []
            | _, Some kind ->
                let before = stream.Position
                let buffer = Buffers.ArrayPool<byte>.Shared.Rent(limits.MaxBody + 4)

                try
                    stream.Position <- 0L
                    let mutable read = 0
                    let mutable last = -1

                    while last <> 0 && read < limits.MaxBody + 4 do
                        last <- stream.Read(buffer, read, limits.MaxBody + 4 - read)
                        read <- read + last

                    let text = Encoding.UTF8.GetString(buffer, 0, Math.Min(read, limits.MaxBody))
                    RequestBodies.parse limits kind text (max 0 (read - limits.MaxBody))
                finally
                    Buffers.ArrayPool<byte>.Shared.Return buffer
                    stream.Position <- before)

    /// The form, only when the app already read it.
    let private form (limits: Limits) (ctx: HttpContext) =
        attempt [] (fun () ->
            let feature = ctx.Features.Get<IFormFeature>()

            if isNull feature || isNull feature.Form then
                []
            else
                seq {
                    for kv in feature.Form do
                        for v in kv.Value do
                            yield kv.Key, (if isNull v then "" else v)

                    for f in feature.Form.Files do
                        yield f.Name, sprintf "<file %s, %d bytes>" f.FileName f.Length
                }
                |> take limits)

    /// The request as plain data.
    /// The authenticated user's name, or null (no user, not authenticated, no name, or reading it failed). Read
    /// through the authentication feature: `HttpContext.User` makes an empty user when there is none.
    let userName (ctx: HttpContext) : string =
        try
            let feature =
                if isNull ctx then
                    null
                else
                    ctx.Features.Get<Microsoft.AspNetCore.Http.Features.Authentication.IHttpAuthenticationFeature>()

            let u = if isNull feature then null else feature.User

            if not (isNull u) && not (isNull u.Identity) && u.Identity.IsAuthenticated then
                u.Identity.Name
            else
                null
        with _ ->
            null

    let read (limits: Limits) (ctx: HttpContext) : RequestContext =
        let r = ctx.Request
        let bodyData, bodyForm = body limits r

        {
            Method = attempt "" (fun () -> r.Method)
            Scheme = attempt "http" (fun () -> r.Scheme)
            Host = attempt "" (fun () -> r.Host.Value)
            Path = attempt "" (fun () -> r.PathBase.Add(r.Path).Value)
            Query =
                gather limits (fun g ->
                    for kv in r.Query do
                        for v in kv.Value do
                            g.Add(kv.Key, (if isNull v then "" else v)))
            Headers =
                gather limits (fun g ->
                    for kv in r.Headers do
                        g.Add(kv.Key, kv.Value.ToString()))
            Form =
                match form limits ctx with
                | [] -> bodyForm
                | read -> read
            Cookies =
                gather limits (fun g ->
                    // Read only when the request has a Cookie header (the collection is made on first use).
                    if r.Headers.Cookie.Count > 0 then
                        for kv in r.Cookies do
                            g.Add(kv.Key, kv.Value))
            RouteValues =
                gather limits (fun g ->
                    for kv in r.RouteValues do
                        g.Add(kv.Key, (if isNull kv.Value then "" else string kv.Value)))
            UserName = Option.ofObj (userName ctx)
            TraceId =
                attempt None (fun () ->
                    match Activity.Current with
                    | null -> Option.ofObj ctx.TraceIdentifier
                    | a -> Some a.Id)
            Body = bodyData
            Custom = []
        }
