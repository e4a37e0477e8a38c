/// Bad input over real HTTP (raw sockets, so bytes can be invalid and lengths can lie) and pathological
/// exceptions: the app answers exactly as it would without ErrorMonitor, a record is stored with truncation
/// markers, no masked value appears, and memory stays bounded.
module internal ErrorMonitor.Web.Tests.BadInputTests

open System
open System.IO
open System.Net
open System.Net.Sockets
open System.Text
open System.Threading
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Http
open Microsoft.Extensions.DependencyInjection
open Expecto
open FsCheck
open FsCheck.FSharp
open ErrorMonitor
open ErrorMonitor.Core
open ErrorMonitor.Web.Tests.TestApp
open ErrorMonitor.Web.Tests.ExceptionsForTests

/// One generated request, as bytes on the wire.
type BadRequest =
    {
        Description: string
        Bytes: byte array
    }

let private secret = "SENTINEL-PW-9f3c"

let private ascii (s: string) = Encoding.ASCII.GetBytes s

/// Text with random bytes, some of them invalid UTF-8, none of them CR or LF.
let private junk (n: int) : Gen<byte array> =
    Gen.arrayOfLength n (Gen.choose (0x20, 0xFF) |> Gen.map byte)

let private nested (depth: int) =
    String.replicate depth "{\"a\":"
    + sprintf "{\"password\":\"%s\"}" secret
    + String.replicate depth "}"

let private request: Gen<BadRequest> =
    gen {
        let! headerCount = Gen.frequency [ 5, Gen.choose (0, 60); 1, Gen.choose (60, 3000) ]

        let! headerSize =
            Gen.frequency [ 5, Gen.choose (0, 200); 1, Gen.choose (200, 100_000) ]

        let! invalid = Gen.frequency [ 4, Gen.constant false; 1, Gen.constant true ]

        let! headerBytes =
            if invalid then
                junk headerSize
            else
                Gen.arrayOfLength headerSize (Gen.choose (0x20, 0x7E) |> Gen.map byte)

        let! queryKeys = Gen.frequency [ 5, Gen.choose (0, 50); 1, Gen.choose (50, 5000) ]
        let! bodyKind = Gen.choose (0, 4)
        let! depth = Gen.frequency [ 3, Gen.choose (1, 50); 1, Gen.choose (50, 20_000) ]
        let! bodyJunk = Gen.choose (0, 300_000) >>= junk
        // A Content-Length shorter than the body (the rest is garbage after the request). A longer one would
        // leave the server waiting for bytes that never come, with or without ErrorMonitor.
        let! lie = Gen.frequency [ 4, Gen.constant 0; 1, Gen.choose (-500, -1) ]

        let contentType, body =
            match bodyKind with
            | 0 -> "application/json", Encoding.UTF8.GetBytes(nested depth)
            | 1 ->
                "multipart/form-data; boundary=XYZ",
                Array.concat
                    [
                        ascii "--XYZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n"
                        ascii secret
                        bodyJunk
                    ]
            | 2 ->
                "application/x-www-form-urlencoded",
                Array.concat
                    [
                        ascii ("password=" + secret + "&big=")
                        bodyJunk |> Array.map (fun b -> if b = byte '&' then 0x41uy else b)
                    ]
            | 3 -> "text/plain", bodyJunk
            | _ -> "application/json", Array.append (ascii "{\"password\": \"") bodyJunk

        let query =
            [ for i in 1..queryKeys -> sprintf "k%d=v%d" i i ] @ [ "password=" + secret ]
            |> String.concat "&"

        let headers =
            [
                yield ascii ("X-Password: " + secret)
                yield ascii ("Authorization: Bearer " + secret)
                for i in 1..headerCount -> Array.append (ascii (sprintf "X-H%d: " i)) headerBytes
            ]

        let length = max 0 (body.Length + lie)

        let bytes =
            Array.concat
                [
                    yield
                        ascii (sprintf "POST /bad/input?%s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" query)
                    for h in headers -> Array.append h (ascii "\r\n")
                    yield ascii (sprintf "Content-Type: %s\r\nContent-Length: %d\r\n\r\n" contentType length)
                    yield body
                ]

        return
            {
                Description =
                    sprintf
                        "%d headers of %d bytes, %d query keys, body kind %d (%d bytes, depth %d), length off by %d"
                        headerCount
                        headerSize
                        queryKeys
                        bodyKind
                        body.Length
                        depth
                        lie
                Bytes = bytes
            }
    }

/// Sends raw bytes (a request with `Connection: close`) and reads the answer until the server closes;
/// returns the status line and the body.
let send (baseUrl: string) (bytes: byte array) : Task<string * string> =
    task {
        let uri = Uri baseUrl
        use client = new TcpClient()
        do! client.ConnectAsync(uri.Host, uri.Port)
        use stream = client.GetStream()
        use ms = new MemoryStream()
        use cts = new CancellationTokenSource(TimeSpan.FromSeconds 20.0)

        // Read while writing: a server that answers early and closes must not lose its answer.
        let reading =
            task {
                try
                    do! stream.CopyToAsync(ms, cts.Token)
                with
                | :? IOException -> ()
                | :? OperationCanceledException -> ()
            }

        try
            do! stream.WriteAsync(bytes)
        with
        | :? IOException -> ()
        | :? SocketException -> ()

        do! reading
        let text = Encoding.Latin1.GetString(ms.ToArray())
        let status = text.Split("\r\n").[0]
        let bodyAt = text.IndexOf "\r\n\r\n"
        let body = if bodyAt < 0 then "" else text.Substring(bodyAt + 4)
        return status, body
    }

let private routes (app: WebApplication) =
    app.MapPost(
        "/bad/input",
        Func<HttpContext, Task>(fun ctx ->
            task {
                ctx.Request.EnableBuffering()
                use reader = new StreamReader(ctx.Request.Body, Encoding.UTF8, false, 4096, true)
                let! _ = reader.ReadToEndAsync()
                ctx.Request.Body.Position <- 0L

                if ctx.Request.HasFormContentType then
                    let! _ = ctx.Request.ReadFormAsync()
                    ()

                raise (InvalidOperationException "bad input reached the app")
            })
    )
    |> ignore

    app.MapGet(
        "/pathological/{kind}",
        Func<string, string>(fun kind ->
            match kind with
            | "getters" -> raise (HostileException())
            | "chain" -> raise (deepChain 10_000)
            | "aggregate" -> raise (AggregateException([ for i in 1..10_000 -> Exception(sprintf "inner %d" i) ]))
            | "message" -> raise (InvalidOperationException(String('m', 5_000_000)))
            | _ -> raise (cyclicData ()))
    )
    |> ignore

let private apps () =
    task {
        let! plain = start [] ignore routes

        let! monitored =
            start [] (fun s -> s.AddErrorMonitor() |> ignore) (fun app ->
                app.UseErrorMonitor() |> ignore
                routes app)

        return plain, monitored
    }

let private total (app: RunningApp) =
    task {
        let! all = records app.Store
        return all |> List.sumBy (fun r -> r.Count)
    }

[<Tests>]
let tests =
    testSequenced
    <| testList
        "bad input"
        [
            testTask' "generated bad requests get the answer they would get without ErrorMonitor, and leak nothing"
            <| fun () ->
                task {
                    let! plain, monitored = apps ()
                    use _ = plain
                    use _ = monitored
                    GC.Collect()
                    let before = GC.GetTotalMemory true
                    let mutable reached = 0

                    let check (r: BadRequest) =
                        (task {
                            let! a = send plain.BaseUrl r.Bytes
                            let! b = send monitored.BaseUrl r.Bytes
                            let before = reached

                            if fst b = "HTTP/1.1 500 Internal Server Error" then
                                reached <- reached + 1

                            do! monitored.Monitor.FlushAsync()
                            let! all = records monitored.Store
                            let! stored = total monitored

                            let leaks =
                                all
                                |> List.exists (fun x -> (x.RequestData + x.Traceback + x.Message).Contains secret)

                            let ok =
                                a = b
                                && stored = int64 reached
                                && not leaks
                                && all
                                   |> List.forall (fun x -> Result.isOk (Json.parse Limits.defaults x.RequestData))

                            if not ok then
                                printfn
                                    "case: %s\nplain: %A\nmonitored: %A\nstored %d of %d reached (was %d), leak %b"
                                    r.Description
                                    a
                                    b
                                    stored
                                    reached
                                    before
                                    leaks

                            return ok
                        })
                            .GetAwaiter()
                            .GetResult()

                    Check.One(
                        Config.QuickThrowOnFailure.WithMaxTest(100).WithQuietOnSuccess(true),
                        Prop.forAll (Arb.fromGen request) check
                    )

                    Expect.isGreaterThan
                        reached
                        20
                        "many cases reached the app (the rest Kestrel refused, with and without)"

                    let! all = records monitored.Store

                    for r in all do
                        Expect.isLessThan
                            r.RequestData.Length
                            (Limits.defaults.MaxRequestData + 1)
                            "bounded request data"

                        Expect.isLessThan r.Traceback.Length (Limits.defaults.MaxTraceback + 100) "bounded traceback"

                    GC.Collect()
                    let growth = float (GC.GetTotalMemory true - before) / 1048576.0
                    Expect.isLessThan growth 50.0 "memory stays bounded"
                }

            testTask' "pathological exceptions: the same answer, a bounded record with markers"
            <| fun () ->
                task {
                    let! plain, monitored = apps ()
                    use _ = plain
                    use _ = monitored

                    for kind, marker in
                        [
                            "getters", "could not be read"
                            "chain", "more inner exceptions not shown"
                            "aggregate", "more inner exceptions not shown"
                            "message", "[truncated"
                            "cyclic", "Data:"
                        ] do
                        let get =
                            sprintf "GET /pathological/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" kind

                        let! a = send plain.BaseUrl (ascii get)
                        let! b = send monitored.BaseUrl (ascii get)
                        Expect.equal b a (sprintf "the same answer for %s" kind)
                        do! monitored.Monitor.FlushAsync()
                        let! all = records monitored.Store
                        let r = all |> List.maxBy (fun r -> r.LastSeen)
                        Expect.stringContains r.Traceback marker (sprintf "%s: a visible marker" kind)

                        Expect.isLessThan
                            r.Traceback.Length
                            (Limits.defaults.MaxTraceback + 100)
                            (sprintf "%s: bounded" kind)

                    let! all = records monitored.Store
                    // The huge message and the cyclic data are the same exception type from the same lambda: one group.
                    Expect.equal all.Length 4 "four groups"
                }
        ]
