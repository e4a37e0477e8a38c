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

    /// `ns` is `root` or a namespace under it.
    let private under (ns: ReadOnlySpan<char>) (root: string) =
        ns.StartsWith(root.AsSpan(), StringComparison.Ordinal)
        && (ns.Length = root.Length || ns.[root.Length] = '.')

    /// `ns` is exactly `name`.
    let private own (ns: ReadOnlySpan<char>) (name: string) =
        ns.Equals(name.AsSpan(), StringComparison.Ordinal)

    /// True for a frame of the app's own code: not of the runtime (System.*), the framework (Microsoft.*) or
    /// ErrorMonitor itself. Only these frames group, when there are any: a framework upgrade or a change in
    /// the middleware around the app must not split its groups. (Read in place: it runs for every frame.)
    let isAppFrame (f: Frame) : bool =
        let t = if isNull f.Type then "" else f.Type
        let plus = t.IndexOf '+'
        let outer = if plus < 0 then t.AsSpan() else t.AsSpan(0, plus)
        let dot = outer.LastIndexOf '.'

        let ns =
            if dot < 0 then
                ReadOnlySpan<char>.Empty
            else
                outer.Slice(0, dot)

        not (
            under ns "System"
            || under ns "Microsoft"
            || own ns "ErrorMonitor"
            || own ns "ErrorMonitor.Core"
            || own ns "ErrorMonitor.Web"
            || own ns "ErrorMonitor.Web.Stores"
        )

    /// Appends the material of `e` (see `material`).
    let private materialInto (sb: StringBuilder) (e: ExceptionInfo) =
        for ex in ExceptionInfo.flatten e do
            sb.Append("type ").Append(ex.TypeName).Append('\n') |> ignore
            let app = ex.Frames |> List.exists isAppFrame

            if List.isEmpty ex.Frames then
                sb.Append("message ").Append(Text.normalise ex.Message).Append('\n') |> ignore
            else
                for f in ex.Frames do
                    if not app || isAppFrame f then
                        sb.Append("at ").Append(f.Type).Append('.').Append(f.Method).Append('\n')
                        |> ignore

    /// The text a fingerprint hashes: the type chain and each frame's type and method (the app's own frames
    /// when there are any); the normalised message only for an exception with no frames. Never the message
    /// otherwise, never line numbers.
    let material (e: ExceptionInfo) : string =
        let sb = StringBuilder(1024)
        materialInto sb e
        sb.ToString()

    /// The fingerprint of an exception: `sha256Hex (material e)`, hashed from the thread's buffers without
    /// making the text (it runs for every occurrence).
    let ofException (e: ExceptionInfo) : string =
        let sb = Buffers.Builder()
        materialInto sb e
        let chars = Buffers.ArrayPool<char>.Shared.Rent(max 1 sb.Length)

        let bytes =
            Buffers.ArrayPool<byte>.Shared.Rent(Encoding.UTF8.GetMaxByteCount sb.Length)

        try
            sb.CopyTo(0, chars, 0, sb.Length)
            let n = Encoding.UTF8.GetBytes(chars, 0, sb.Length, bytes, 0)
            Convert.ToHexStringLower(SHA256.HashData(ReadOnlySpan<byte>(bytes, 0, n)))
        finally
            Buffers.ArrayPool<char>.Shared.Return chars
            Buffers.ArrayPool<byte>.Shared.Return bytes

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
