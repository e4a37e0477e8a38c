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
