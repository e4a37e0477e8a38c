namespace ErrorMonitor.Core

open System.Text

/// The formatted exception, in .NET's familiar layout, bounded in size.
[<RequireQualifiedAccess>]
module internal Traceback =

    let private frameLine (sb: StringBuilder) (f: Frame) =
        sb.Append("   at ").Append(f.Type).Append('.').Append(f.Method).Append("()")
        |> ignore

        match f.File, f.Line with
        | Some file, Some line -> sb.Append(" in ").Append(file).Append(":line ").Append(line) |> ignore
        | Some file, None -> sb.Append(" in ").Append(file) |> ignore
        | _ -> ()

        sb.Append('\n') |> ignore

    let rec private dataText (d: Data) : string =
        match d with
        | Data.Null -> "null"
        | Data.Bool b -> if b then "true" else "false"
        | Data.Number n -> n.ToString("R", System.Globalization.CultureInfo.InvariantCulture)
        | Data.String s -> s
        | Data.Array items -> "[" + (items |> List.map dataText |> String.concat ", ") + "]"
        | Data.Object fields ->
            "{"
            + (fields |> List.map (fun (k, v) -> k + ": " + dataText v) |> String.concat ", ")
            + "}"

    let rec private write (sb: StringBuilder) (indent: string) (e: ExceptionInfo) =
        sb.Append(e.TypeName) |> ignore

        if e.Message <> "" then
            sb.Append(": ").Append(e.Message) |> ignore

        sb.Append('\n') |> ignore

        for f in e.Frames do
            frameLine sb f

        if e.FramesOmitted > 0 then
            sb.Append("   … ").Append(e.FramesOmitted).Append(" more frames not shown\n")
            |> ignore

        if not (List.isEmpty e.Data) then
            sb.Append("   Data:\n") |> ignore

            for k, v in e.Data do
                sb.Append("      ").Append(k).Append(" = ").Append(dataText v).Append('\n')
                |> ignore

        let many = e.Inner.Length > 1

        e.Inner
        |> List.iteri (fun i inner ->
            sb.Append(indent).Append(" ---> ") |> ignore

            if many then
                sb.Append("(Inner Exception #").Append(i).Append(") ") |> ignore

            write sb (indent + "  ") inner

            sb.Append(indent).Append("   --- End of inner exception stack trace ---\n")
            |> ignore)

        if e.InnerOmitted > 0 then
            sb.Append(indent).Append(" ---> … ").Append(e.InnerOmitted).Append(" more inner exceptions not shown\n")
            |> ignore

    /// Formats an exception (already masked) as text of at most `limits.MaxTraceback` characters plus a marker.
    let format (limits: Limits) (e: ExceptionInfo) : string =
        let sb = Buffers.Builder()
        write sb "" e

        while sb.Length > 0 && sb.[sb.Length - 1] = '\n' do
            sb.Length <- sb.Length - 1

        if sb.Length <= limits.MaxTraceback then
            sb.ToString()
        else
            Text.truncate limits.MaxTraceback (sb.ToString())

    /// Types of the runtime, the framework and common libraries: frames of theirs are not the app's own code.
    let private frameworkPrefixes =
        [
            "System."
            "Microsoft."
            "ErrorMonitor."
            "Giraffe."
            "Npgsql."
            "Newtonsoft."
            "Swashbuckle."
            "FSharp."
            "Internal."
            "Interop+"
            "Interop."
        ]

    /// The "Type.Method" a frame line names ("   at Shop.Orders.Checkout() in …" gives "Shop.Orders.Checkout"),
    /// or None for a line that is not a frame.
    let frameName (line: string) : string option =
        let t = line.TrimStart()

        if t.StartsWith("at ", System.StringComparison.Ordinal) then
            let rest = t.Substring 3
            let paren = rest.IndexOf '('
            let name = (if paren > 0 then rest.Substring(0, paren) else rest).Trim()
            if name = "" then None else Some name
        else
            None

    /// True when a frame's name is the app's own code (not under a framework or library namespace).
    let isAppFrame (name: string) =
        not (
            frameworkPrefixes
            |> List.exists (fun p -> name.StartsWith(p, System.StringComparison.Ordinal))
        )

    /// The culprit: the top frame in the app's own code, as its type's short name and method
    /// ("Shop.Orders.OrderService.Checkout" gives "OrderService.Checkout"); None when no frame is the app's.
    let culprit (traceback: string) : string option =
        (if isNull traceback then "" else traceback).Split('\n')
        |> Seq.choose frameName
        |> Seq.tryFind isAppFrame
        |> Option.map (fun name ->
            // A constructor's method is ".ctor": keep its dot.
            let cut =
                if
                    name.EndsWith("..ctor", System.StringComparison.Ordinal)
                    || name.EndsWith("..cctor", System.StringComparison.Ordinal)
                then
                    name.LastIndexOf('.', name.Length - 6)
                else
                    name.LastIndexOf '.'

            if cut <= 0 then
                name
            else
                let typeName = name.Substring(0, cut)
                let shortType = typeName.Substring(typeName.LastIndexOf '.' + 1)
                shortType + name.Substring cut)

    /// The traceback's lines in runs: (true, lines) a run of framework frames (two or more, folded on the page),
    /// (false, lines) everything else, in order.
    let runs (traceback: string) : (bool * string list) list =
        let lines = (if isNull traceback then "" else traceback).Split('\n') |> List.ofArray

        let framework (l: string) =
            match frameName l with
            | Some n -> not (isAppFrame n)
            | None -> false

        let grouped =
            lines
            |> List.fold
                (fun (acc: (bool * string list) list) l ->
                    let f = framework l

                    match acc with
                    | (k, ls) :: rest when k = f -> (k, l :: ls) :: rest
                    | _ -> (f, [ l ]) :: acc)
                []
            |> List.rev
            |> List.map (fun (k, ls) -> k, List.rev ls)

        // A lone framework frame stays in line (folding one line saves nothing).
        grouped
        |> List.map (fun (k, ls) -> (k && ls.Length > 1), ls)
        |> List.fold
            (fun (acc: (bool * string list) list) (k, ls) ->
                match acc with
                | (false, prev) :: rest when not k -> (false, prev @ ls) :: rest
                | _ -> (k, ls) :: acc)
            []
        |> List.rev
