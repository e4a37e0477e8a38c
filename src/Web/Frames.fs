namespace ErrorMonitor.Web

open System
open System.Collections.Concurrent
open System.Diagnostics
open System.Reflection
open ErrorMonitor.Core

/// Reads an exception's frames, remembering each frame's source position and source names by method and IL
/// offset: the symbol files are read once for a throw site, not at every occurrence.
type internal FrameReader(limits: Limits) =
    let cache = ConcurrentDictionary<struct (MethodBase * int), Frame>()
    // Whole stacks by their identity (`ThrowSite.framesOf`): a repeat of a throw site reads no StackTrace at all.
    let stacks = ConcurrentDictionary<struct (int64 * int64), Frame list * int>()

    /// Reads the frames through StackTrace (each frame's source position once).
    let read (ex: exn) : Frame list * int =
        let quick = StackTrace(ex, false).GetFrames()
        let take = Math.Min(quick.Length, Math.Max(0, limits.MaxFrames))

        let keys =
            Array.init take (fun i ->
                let f = quick.[i]
                struct (f.GetMethod(), f.GetILOffset()))

        let cached =
            keys
            |> Array.map (fun (struct (m, _) as k) ->
                if isNull m then
                    None
                else
                    match cache.TryGetValue k with
                    | true, f -> Some f
                    | _ -> None)

        if cached |> Array.forall Option.isSome then
            (cached |> Array.choose id |> List.ofArray), quick.Length - take
        else
            // A throw site not seen before: read its source positions once.
            let full = StackTrace(ex, true).GetFrames()

            if cache.Count > 20000 then
                cache.Clear()

            let frames =
                [
                    for i in 0 .. take - 1 do
                        let frame =
                            match cached.[i] with
                            | Some f -> Some f
                            | None when i < full.Length -> ExceptionInfo.frameOf full.[i]
                            | None -> ExceptionInfo.frameOf quick.[i]

                        match frame with
                        | Some f ->
                            let struct (m, _) = keys.[i]

                            if not (isNull m) then
                                cache.[keys.[i]] <- f

                            yield f
                        | None -> ()
                ]

            frames, quick.Length - take

    /// Frames within the frame limit, and how many were left out.
    member _.Read(ex: exn) : Frame list * int =
        match ThrowSite.framesOf ex with
        | ValueSome key ->
            match stacks.TryGetValue key with
            | true, frames -> frames
            | _ ->
                let frames = read ex

                if stacks.Count > 20000 then
                    stacks.Clear()

                stacks.[key] <- frames
                frames
        | ValueNone -> read ex
