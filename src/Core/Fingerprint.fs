namespace ErrorMonitor.Core

open System
open System.Security.Cryptography
open System.Text

/// The group key: SHA-256 over what identifies a failure, stable across processes, machines and builds.
[<RequireQualifiedAccess>]
module internal Fingerprint =

    /// SHA-256 of the UTF-8 text, as 64 lowercase hex characters.
    let sha256Hex (text: string) : string =
        let bytes = Encoding.UTF8.GetBytes(if isNull text then "" else text)
        Convert.ToHexStringLower(SHA256.HashData bytes)

    /// A group key of an occurrence from a source other than the app itself (the capture route): derived from the
    /// source and the occurrence's own key, so it can never equal a key the app's own exceptions give.
    let withSource (source: string) (hash: string) : string =
        sha256Hex ("source:" + source + "\n" + hash)

    let private ownNamespaces =
        set [ "ErrorMonitor"; "ErrorMonitor.Core"; "ErrorMonitor.Web"; "ErrorMonitor.Web.Stores" ]

    let private namespaceOf (typeName: string) =
        let outer = typeName.Split('+').[0]
        let dot = outer.LastIndexOf '.'
        if dot < 0 then "" else outer.Substring(0, dot)

    /// True for a frame of the app's own code: not of the runtime (System.*), the framework (Microsoft.*) or
    /// ErrorMonitor itself. Only these frames group, when there are any: a framework upgrade or a change in
    /// the middleware around the app must not split its groups.
    let isAppFrame (f: Frame) : bool =
        let ns = namespaceOf f.Type

        let under (root: string) =
            ns = root || ns.StartsWith(root + ".", System.StringComparison.Ordinal)

        not (under "System" || under "Microsoft" || ownNamespaces.Contains ns)

    /// The text a fingerprint hashes: the type chain and each frame's type and method (the app's own frames
    /// when there are any); the normalised message only for an exception with no frames. Never the message
    /// otherwise, never line numbers.
    let material (e: ExceptionInfo) : string =
        let sb = StringBuilder(1024)

        for ex in ExceptionInfo.flatten e do
            sb.Append("type ").Append(ex.TypeName).Append('\n') |> ignore

            let appFrames = ex.Frames |> List.filter isAppFrame
            let frames = if List.isEmpty appFrames then ex.Frames else appFrames

            if List.isEmpty frames then
                sb.Append("message ").Append(Text.normalise ex.Message).Append('\n') |> ignore
            else
                for f in frames do
                    sb.Append("at ").Append(f.Type).Append('.').Append(f.Method).Append('\n')
                    |> ignore

        sb.ToString()

    /// The fingerprint of an exception: `sha256Hex (material e)`, hashed piece by piece without building the
    /// text (it runs for every occurrence).
    let ofException (e: ExceptionInfo) : string =
        use hash = IncrementalHash.CreateHash HashAlgorithmName.SHA256
        let buffer = Buffers.ArrayPool<byte>.Shared.Rent 4096

        try
            let mutable used = 0

            let flush () =
                hash.AppendData(buffer, 0, used)
                used <- 0

            let add (s: string) =
                let s = if isNull s then "" else s

                if Encoding.UTF8.GetMaxByteCount s.Length > buffer.Length - used then
                    flush ()

                if Encoding.UTF8.GetMaxByteCount s.Length > buffer.Length then
                    hash.AppendData(Encoding.UTF8.GetBytes s)
                else
                    used <- used + Encoding.UTF8.GetBytes(s, 0, s.Length, buffer, used)

            for ex in ExceptionInfo.flatten e do
                add "type "
                add ex.TypeName
                add "\n"
                let appFrames = ex.Frames |> List.filter isAppFrame
                let frames = if List.isEmpty appFrames then ex.Frames else appFrames

                if List.isEmpty frames then
                    add "message "
                    add (Text.normalise ex.Message)
                    add "\n"
                else
                    for f in frames do
                        add "at "
                        add f.Type
                        add "."
                        add f.Method
                        add "\n"

            flush ()
            Convert.ToHexStringLower(hash.GetHashAndReset())
        finally
            Buffers.ArrayPool<byte>.Shared.Return buffer

    /// The fingerprint of a captured message (digits, GUIDs and hex runs normalised).
    let ofMessage (text: string) : string =
        sha256Hex ("message\n" + Text.normalise text)

    /// The fingerprint of an app-supplied group key.
    let ofKey (key: string) : string = sha256Hex ("key\n" + key)

    /// True when `s` has the shape of a fingerprint: 64 lowercase hex characters.
    let isValid (s: string) : bool =
        not (isNull s)
        && s.Length = 64
        && s |> Seq.forall (fun c -> (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))
