module internal ErrorMonitor.Core.Tests.LocalOnlyTests

open Expecto
open FsCheck
open FsCheck.FSharp
open ErrorMonitor.Core
open ErrorMonitor.Core.Tests.Generators

let private request host headers =
    {
        RemoteIsLoopback = true
        NoAddresses = false
        Host = host
        HeaderNames = headers
    }

let private loopbackHosts =
    Gen.elements [ "localhost"; "LOCALHOST"; "127.0.0.1"; "127.3.4.5"; "[::1]"; "app.localhost"; "localhost." ]

let private port =
    Gen.oneof [ Gen.constant ""; Gen.choose (1, 65535) |> Gen.map (sprintf ":%d") ]

let private randomCase (s: string) =
    Gen.listOfLength s.Length (Gen.elements [ true; false ])
    |> Gen.map (fun flips ->
        System.String(
            Seq.map2
                (fun c up ->
                    if up then
                        System.Char.ToUpperInvariant c
                    else
                        System.Char.ToLowerInvariant c)
                s
                flips
            |> Array.ofSeq
        ))

let tests =
    testList
        "local only"
        [
            property "a loopback connection naming this machine, with any port, may browse"
            <| Prop.forAll (Arb.fromGen (Gen.zip loopbackHosts port)) (fun (h, p) ->
                LocalOnly.allows [] (request (h + p) [ "Accept"; "User-Agent" ]))

            property "any other host name is refused on loopback (DNS rebinding), unless it is an AllowedHost"
            <| Prop.forAll (Arb.fromGen (Gen.zip plainWord port)) (fun (w, p) ->
                let host = w + ".example"

                not (LocalOnly.allows [] (request (host + p) []))
                && not (LocalOnly.allows [ "*" ] (request (host + p) []))
                && LocalOnly.allows [ "other.test"; host ] (request (host.ToUpperInvariant() + p) [])
                && LocalOnly.allows [ "*.example" ] (request ("errors." + host + p) []))

            property "a forwarding header, in any case, makes a loopback request remote"
            <| Prop.forAll
                (Arb.fromGen (Gen.elements LocalOnly.forwardingHeaders |> Gen.bind randomCase))
                (fun header -> not (LocalOnly.allows [] (request "localhost:5000" [ "Accept"; header ])))

            test "the forwarded-headers middleware's resolution is trusted: the connection's address decides" {
                Expect.isTrue
                    (LocalOnly.allows [] (request "localhost" [ "X-Original-For"; "X-Real-IP" ]))
                    "resolved to a loopback client"

                Expect.isFalse
                    (LocalOnly.allows
                        []
                        { request "localhost" [ "X-Original-For" ] with
                            RemoteIsLoopback = false
                        })
                    "resolved to a remote client"

                Expect.isFalse
                    (LocalOnly.allows [] (request "localhost" [ "X-Original-For"; "X-Forwarded-For" ]))
                    "more hops than the middleware took: still forwarded"
            }

            test "a remote connection is refused whatever its Host says; a missing Host is refused" {
                Expect.isFalse
                    (LocalOnly.allows
                        []
                        { request "localhost" [] with
                            RemoteIsLoopback = false
                        })
                    "remote"

                Expect.isFalse (LocalOnly.allows [] (request "" [])) "no Host"

                Expect.isFalse
                    (LocalOnly.allows [] (request "127.0.0.1.attacker.example" []))
                    "a name that starts like an address"

                Expect.isFalse
                    (LocalOnly.allows [] (request "localhost.attacker.example" []))
                    "a name that starts like localhost"
            }
        ]

let keyLimitTests =
    testList
        "capture route limits"
        [
            property "a window admits exactly its limit; a refusal waits until the window's end"
            <| Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose (1, 50)) (Gen.choose (0, 59)))) (fun (limit, late) ->
                let t0 = System.DateTimeOffset(2026, 1, 1, 0, 0, 0, System.TimeSpan.Zero)
                let minute = System.TimeSpan.FromMinutes 1.0

                let rec run n w =
                    if n = 0 then
                        w
                    else
                        match KeyLimits.admitRequest limit minute t0 w with
                        | Ok w -> run (n - 1) (Some w)
                        | Error _ -> failwith "refused within the limit"

                let full = run limit None
                let now = t0.AddSeconds(float late)

                (KeyLimits.admitRequest limit minute now full = Error(minute - System.TimeSpan.FromSeconds(float late)))
                && (KeyLimits.admitRequest limit minute (t0 + minute) full |> Result.isOk))

            test "groups: one already admitted always passes, a new one only within the limit; Retry-After rounds up" {
                let t0 = System.DateTimeOffset(2026, 1, 1, 0, 0, 0, System.TimeSpan.Zero)
                let hour = System.TimeSpan.FromHours 1.0

                let admit h w =
                    match KeyLimits.admitGroup 2 hour t0 h w with
                    | Ok w -> Some w
                    | Error _ -> failwith "refused"

                let w = None |> admit "a" |> admit "b" |> admit "a"
                Expect.isOk (KeyLimits.admitGroup 2 hour t0 "b" w) "seen"

                Expect.equal
                    (KeyLimits.admitGroup 2 hour (t0.AddMinutes 10.0) "c" w)
                    (Error(System.TimeSpan.FromMinutes 50.0))
                    "new"

                Expect.isOk (KeyLimits.admitGroup 2 hour (t0 + hour) "c" w) "next hour"
                Expect.equal (KeyLimits.retryAfterSeconds (System.TimeSpan.FromMilliseconds 1.0)) 1 "at least 1"
                Expect.equal (KeyLimits.retryAfterSeconds (System.TimeSpan.FromSeconds 14.2)) 15 "rounded up"
            }
        ]
