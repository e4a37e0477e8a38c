namespace ErrorMonitor.Core

open System
open System.Net

/// What the shell knows of a request when it decides whether "local machine only" lets it browse.
type internal LocalRequest =
    {
        /// The connection's remote address is a loopback address.
        RemoteIsLoopback: bool
        /// The connection has no addresses at all (an in-process test server).
        NoAddresses: bool
        /// The Host header as sent (name and optional port), "" when missing.
        Host: string
        /// Names of the request's headers.
        HeaderNames: string list
    }

/// "Local machine only", the pages' default: who counts as local. Three ways a remote visitor can look local
/// are closed: a DNS name pointed at 127.0.0.1 (DNS rebinding: the browser sends the attacker's host name), a
/// reverse proxy on the same machine (every connection comes from 127.0.0.1, the real client is in a forwarding
/// header), and a request that carries forwarding headers of its own.
[<RequireQualifiedAccess>]
module internal LocalOnly =

    /// Headers by which a proxy names the real client or host: a loopback connection that carries one of them
    /// came through a proxy, so it is treated as remote.
    let forwardingHeaders =
        [ "X-Forwarded-For"; "Forwarded"; "X-Real-IP"; "X-Forwarded-Host" ]

    /// The header ASP.NET Core's forwarded-headers middleware leaves when it has resolved the client's
    /// address from X-Forwarded-For: the connection's remote address is then the client's own.
    [<Literal>]
    let ResolvedHeader = "X-Original-For"

    /// The host name of a Host header: without the port, brackets removed, lower case, no trailing dot.
    let hostName (host: string) : string =
        let h = if isNull host then "" else host.Trim()

        let name =
            if h.StartsWith "[" then
                match h.IndexOf ']' with
                | -1 -> h
                | close -> h.Substring(1, close - 1)
            else
                match h.LastIndexOf ':' with
                | -1 -> h
                | colon when h.IndexOf ':' = colon -> h.Substring(0, colon)
                | _ -> h // an IPv6 address without brackets: no port to strip

        name.TrimEnd('.').ToLowerInvariant()

    /// A host name that can only mean this machine: `localhost`, a name under `.localhost` (RFC 6761), or a
    /// loopback address (127.0.0.0/8, ::1).
    let isLoopbackName (name: string) : bool =
        name = "localhost"
        || name.EndsWith(".localhost", StringComparison.Ordinal)
        || (match IPAddress.TryParse name with
            | true, ip -> IPAddress.IsLoopback ip
            | _ -> false)

    /// The hosts of an AllowedHosts setting (host filtering's format: `;`-separated); none for a missing one.
    let allowedHostsOf (setting: string) : string list =
        if isNull setting then
            []
        else
            setting.Split(';', StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries)
            |> List.ofArray

    /// True when `name` is one of the app's AllowedHosts (exact, or `*.domain` for its subdomains); `*` (every
    /// host, the template's default) allows nothing extra here.
    let isAllowedHost (allowedHosts: string list) (name: string) : bool =
        allowedHosts
        |> List.map (fun h -> h.Trim().TrimEnd('.').ToLowerInvariant())
        |> List.exists (fun h ->
            if h = "" || h = "*" then
                false
            elif h.StartsWith "*." then
                name.EndsWith(h.Substring 1, StringComparison.Ordinal)
            else
                name = h)

    /// True when the request may browse in local-only mode: it came over a loopback connection (or an in-process
    /// server), names this machine (or one of the app's AllowedHosts) in its Host header, and carries no
    /// forwarding header, unless the forwarded-headers middleware has already resolved the client (then the
    /// connection's address is the client's and decides).
    let allows (allowedHosts: string list) (r: LocalRequest) : bool =
        let has (header: string) =
            r.HeaderNames
            |> List.exists (fun n -> String.Equals(n, header, StringComparison.OrdinalIgnoreCase))

        let resolved = has ResolvedHeader && not (has "X-Forwarded-For")
        let forwarded = not resolved && (forwardingHeaders |> List.exists has)
        let name = hostName r.Host

        (r.RemoteIsLoopback || r.NoAddresses)
        && not forwarded
        && (isLoopbackName name || isAllowedHost allowedHosts name)
