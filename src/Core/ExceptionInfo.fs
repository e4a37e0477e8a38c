namespace ErrorMonitor.Core

open System
open System.Collections
open System.Diagnostics

/// Plain .NET values as data: the one conversion of an app's scalar values (Exception.Data, scope extras,
/// context-builder entries).
[<RequireQualifiedAccess>]
module internal AppValue =

    /// A scalar as data (text bounded to `limits.MaxFieldValue`; a NaN or infinity as its text, since JSON has no
    /// number for it; dates ISO 8601), or None for anything else (collections, objects: the caller decides).
    let scalar (limits: Limits) (value: obj) : Data option =
        match value with
        | null -> Some Data.Null
        | :? string as s -> Some(Data.String(Text.truncate limits.MaxFieldValue s))
        | :? bool as b -> Some(Data.Bool b)
        | :? int as i -> Some(Data.Number(float i))
        | :? int64 as i -> Some(Data.Number(float i))
        | :? int16 as i -> Some(Data.Number(float i))
        | :? byte as i -> Some(Data.Number(float i))
        | :? uint32 as i -> Some(Data.Number(float i))
        | :? float as f when Double.IsFinite f -> Some(Data.Number f)
        | :? float32 as f when Single.IsFinite f -> Some(Data.Number(float f))
        | :? float as f -> Some(Data.String(f.ToString Globalization.CultureInfo.InvariantCulture))
        | :? float32 as f -> Some(Data.String(f.ToString Globalization.CultureInfo.InvariantCulture))
        | :? decimal as d -> Some(Data.Number(float d))
        | :? DateTime as d -> Some(Data.String(d.ToString "O"))
        | :? DateTimeOffset as d -> Some(Data.String(d.ToString "O"))
        | :? Guid as g -> Some(Data.String(g.ToString()))
        | _ -> None

/// Turning a System.Exception into bounded plain data. Total: never throws.
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module internal ExceptionInfo =

    /// Index of the '>' that closes the '<' at index 0, or -1.
    let private closing (s: string) =
        let mutable depth = 0
        let mutable found = -1
        let mutable i = 0

        while found < 0 && i < s.Length do
            match s.[i] with
            | '<' -> depth <- depth + 1
            | '>' ->
                depth <- depth - 1

                if depth = 0 then
                    found <- i
            | _ -> ()

            i <- i + 1

        found

    /// The source name behind a compiler-generated name: `<Load>d__5` -> Load, `<Main>b__0_0` -> Main,
    /// `<Main>g__Local|0_0` -> Main.Local, `<>c__DisplayClass3_0` -> "" (no name of its own).
    let rec sourceName (name: string) : string =
        if isNull name then
            ""
        elif name.StartsWith "<" then
            let close = closing name

            if close < 0 then
                name
            else
                let inner = sourceName (name.Substring(1, close - 1))
                let rest = name.Substring(close + 1)

                if rest.StartsWith "g__" then
                    let local =
                        let r = rest.Substring 3
                        let bar = r.IndexOf '|'
                        if bar >= 0 then r.Substring(0, bar) else r

                    if inner = "" then local else inner + "." + local
                else
                    inner
        else
            name

    /// F# closures and state machines are named after their source function plus a line number (`load@12`,
    /// `clo@23-1`): the source name, or None for a segment that is not such a name.
    let private fsharpGenerated (segment: string) : string option =
        let at = segment.IndexOf '@'

        if
            at > 0
            && at + 1 < segment.Length
            && segment.Substring(at + 1) |> Seq.forall (fun c -> Char.IsDigit c || c = '-')
        then
            Some(segment.Substring(0, at))
        else
            None

    /// Maps a frame's declaring type and method to the source type and method, so that async methods,
    /// iterators, lambdas and local functions count as the method they were written in.
    let sourceFrame (typeName: string) (methodName: string) : string * string =
        let typeName = if String.IsNullOrEmpty typeName then "?" else typeName
        let methodName = if String.IsNullOrEmpty methodName then "?" else methodName
        let segments = typeName.Split '+'

        let isGenerated (s: string) =
            s.StartsWith "<" || (fsharpGenerated s).IsSome

        let kept = segments |> Array.filter (isGenerated >> not)

        let generated =
            segments
            |> Array.filter isGenerated
            |> Array.map (fun s ->
                match fsharpGenerated s with
                | Some name -> name
                | None -> sourceName s)
            |> Array.filter (fun s -> s <> "")

        let typeOut = if kept.Length = 0 then typeName else String.Join("+", kept)

        let methodOut =
            if methodName.StartsWith "<" then
                match sourceName methodName with
                | "" -> methodName
                | n -> n
            elif generated.Length > 0 && (methodName = "MoveNext" || methodName = "Invoke") then
                generated.[generated.Length - 1]
            else
                methodName

        typeOut, methodOut

    /// A type's stable name: namespace and nested names, without assembly versions or generic arguments.
    let rec typeName (t: Type) : string =
        if isNull t then
            "?"
        elif not (isNull t.DeclaringType) && not t.IsGenericParameter then
            typeName t.DeclaringType + "+" + t.Name
        elif String.IsNullOrEmpty t.Namespace then
            t.Name
        else
            t.Namespace + "." + t.Name

    let private attempt (fallback: 'a) (f: unit -> 'a) : 'a =
        try
            f ()
        with _ ->
            fallback

    /// Reads one stack frame. File and line come only when the stack trace was taken with file info.
    let frameOf (frame: StackFrame) : Frame option =
        attempt None (fun () ->
            if isNull frame then
                None
            else
                let m = frame.GetMethod()
                let declaring = if isNull m then "?" else typeName m.DeclaringType
                let name = if isNull m then "?" else m.Name
                let t, meth = sourceFrame declaring name
                let file = attempt null (fun () -> frame.GetFileName())
                let line = attempt 0 (fun () -> frame.GetFileLineNumber())
                let col = attempt 0 (fun () -> frame.GetFileColumnNumber())

                Some
                    {
                        Type = t
                        Method = meth
                        File = if String.IsNullOrEmpty file then None else Some file
                        Line = if line > 0 then Some line else None
                        Column = if col > 0 then Some col else None
                    })

    /// One Exception.Data value as data: strings and numbers as they are, anything else by ToString.
    let private dataValue (limits: Limits) (value: obj) : Data =
        match AppValue.scalar limits value with
        | Some d -> d
        | None ->
            attempt (Data.String "<ToString failed>") (fun () ->
                Data.String(Text.truncate limits.MaxFieldValue (string value)))

    let private dataEntries (limits: Limits) (ex: exn) : (string * Data) list =
        attempt [ "<Data>", Data.String "<Exception.Data could not be read>" ] (fun () ->
            let d = ex.Data

            if isNull d || d.Count = 0 then
                []
            else
                let e = d.GetEnumerator()
                let acc = ResizeArray()
                let mutable more = e.MoveNext()

                while more do
                    if acc.Count < limits.MaxEntries then
                        let entry = e.Entry

                        let key =
                            attempt "<key>" (fun () -> Text.truncate limits.MaxFieldValue (string entry.Key))

                        acc.Add(key, dataValue limits entry.Value)

                    more <- e.MoveNext()

                let omitted = d.Count - acc.Count

                if omitted > 0 then
                    acc.Add(Limits.Markers.MoreEntriesKey, Data.String(Limits.Markers.moreEntries (Some omitted)))

                List.ofSeq acc)

    let private innersOf (ex: exn) : exn list =
        attempt [] (fun () ->
            match ex with
            | :? AggregateException as ae -> ae.InnerExceptions |> Seq.filter (isNull >> not) |> List.ofSeq
            | _ ->
                match ex.InnerException with
                | null -> []
                | inner -> [ inner ])

    /// The frames of a stack trace within the frame limit, and how many were left out.
    let framesOf (limits: Limits) (st: StackTrace) : Frame list * int =
        if isNull st then
            [], 0
        else
            let all = st.GetFrames()
            let take = Math.Min(all.Length, Math.Max(0, limits.MaxFrames))
            all.[.. take - 1] |> Array.choose frameOf |> List.ofArray, all.Length - take

    /// Converts an exception into bounded plain data; `frames` reads an exception's frames within the limit
    /// (the shell's reader caches source positions). Never throws.
    let captureWith (limits: Limits) (frames: exn -> Frame list * int) (ex: exn) : ExceptionInfo =
        let mutable budget = Math.Max(1, limits.MaxExceptions)

        let rec go (depth: int) (ex: exn) : ExceptionInfo =
            budget <- budget - 1

            let kept, framesOmitted = attempt ([], 0) (fun () -> frames ex)

            let message =
                attempt "<Message could not be read>" (fun () ->
                    match ex.Message with
                    | null -> ""
                    | m -> Text.truncate limits.MaxMessage m)

            let inners = innersOf ex

            let innerKept, innerOmitted =
                if depth >= limits.MaxInnerDepth then
                    [], inners.Length
                else
                    let converted = ResizeArray()

                    for inner in inners |> List.truncate limits.MaxInnerPerException do
                        if budget > 0 then
                            converted.Add(go (depth + 1) inner)

                    List.ofSeq converted, inners.Length - converted.Count

            {
                TypeName = attempt "?" (fun () -> typeName (ex.GetType()))
                Message = message
                Frames = kept
                FramesOmitted = framesOmitted
                Data = dataEntries limits ex
                Inner = innerKept
                InnerOmitted = innerOmitted
            }

        if isNull ex then
            {
                TypeName = "System.NullReferenceException"
                Message = "<null exception>"
                Frames = []
                FramesOmitted = 0
                Data = []
                Inner = []
                InnerOmitted = 0
            }
        else
            go 0 ex

    /// Converts an exception into bounded plain data, reading frames from `stackTraceOf` (with file info, it
    /// reads symbol files). Never throws.
    let capture (limits: Limits) (stackTraceOf: exn -> StackTrace) (ex: exn) : ExceptionInfo =
        captureWith limits (fun e -> framesOf limits (stackTraceOf e)) ex

    /// Every exception of the tree, outermost first (depth-first).
    let rec flatten (e: ExceptionInfo) : ExceptionInfo list = e :: (e.Inner |> List.collect flatten)
