module internal ErrorMonitor.Core.Tests.FingerprintTests

open System
open System.Runtime.CompilerServices
open Expecto
open FsCheck
open FsCheck.FSharp
open ErrorMonitor.Core
open ErrorMonitor.Core.Tests.Generators
open ErrorMonitor.Core.Tests.ExceptionTests

type private Sites =
    [<MethodImpl(MethodImplOptions.NoInlining)>]
    static member Save(message: string) : unit =
        raise (InvalidOperationException message)

    [<MethodImpl(MethodImplOptions.NoInlining)>]
    static member Load(message: string) : unit =
        raise (InvalidOperationException message)

let private hashOf (f: unit -> unit) =
    Fingerprint.ofException (capture (thrown f))

[<Tests>]
let tests =
    testList
        "fingerprint"
        [
            property "is 64 lowercase hex characters and deterministic"
            <| Prop.forAll (arb (exceptionOf 2)) (fun e ->
                let h = Fingerprint.ofException e
                Fingerprint.isValid h && h = Fingerprint.ofException e)

            property "hashing piece by piece gives the SHA-256 of the whole material"
            <| Prop.forAll (arb (exceptionOf 3)) (fun e ->
                Fingerprint.ofException e = Fingerprint.sha256Hex (Fingerprint.material e))

            property "is the same for exceptions that differ only in their message"
            <| Prop.forAll (arb (Gen.zip plainWord plainWord)) (fun (a, b) ->
                hashOf (fun () -> Sites.Save a) = hashOf (fun () -> Sites.Save b))

            property "is the same for frames that differ only in line numbers"
            <| Prop.forAll (arb (Gen.zip (exceptionOf 2) (Gen.choose (1, 100000)))) (fun (e, shift) ->
                let rec moved (e: ExceptionInfo) =
                    { e with
                        Frames =
                            e.Frames
                            |> List.map (fun f ->
                                { f with
                                    Line = f.Line |> Option.map ((+) shift)
                                })
                        Inner = e.Inner |> List.map moved
                    }

                Fingerprint.ofException (moved e) = Fingerprint.ofException e)

            property "differs when the throwing method differs"
            <| Prop.forAll (arb plainWord) (fun m -> hashOf (fun () -> Sites.Save m) <> hashOf (fun () -> Sites.Load m))

            property "differs when the exception type differs"
            <| Prop.forAll (arb (exceptionOf 1)) (fun e ->
                Fingerprint.ofException e
                <> Fingerprint.ofException { e with TypeName = e.TypeName + "X" })

            test "frames of the runtime, the framework and ErrorMonitor do not split a group" {
                let frame t m =
                    {
                        Type = t
                        Method = m
                        File = None
                        Line = None
                        Column = None
                    }

                let e frames =
                    {
                        TypeName = "System.InvalidOperationException"
                        Message = "m"
                        Frames = frames
                        FramesOmitted = 0
                        Data = []
                        Inner = []
                        InnerOmitted = 0
                    }

                let app = frame "Shop.Orders" "Save"

                let viaSync =
                    e
                        [
                            app
                            frame "Microsoft.AspNetCore.Routing.EndpointMiddleware" "Invoke"
                            frame "ErrorMonitor.Web.ErrorMonitorMiddleware" "InvokeAsync"
                        ]

                let viaAsync =
                    e
                        [
                            app
                            frame "System.Runtime.ExceptionServices.ExceptionDispatchInfo" "Throw"
                            frame "ErrorMonitor.Web.ErrorMonitorMiddleware" "awaitAndRecord"
                        ]

                Expect.equal
                    (Fingerprint.ofException viaSync)
                    (Fingerprint.ofException viaAsync)
                    "same app frames, same group"

                Expect.notEqual
                    (Fingerprint.ofException (e [ frame "System.Text.Json.JsonSerializer" "Deserialize" ]))
                    (Fingerprint.ofException (e [ frame "System.Text.Json.JsonSerializer" "Serialize" ]))
                    "with no app frame, the framework's frames decide"

                Expect.isTrue
                    (Fingerprint.isAppFrame (frame "ErrorMonitor.Core.Tests.Sites" "Save"))
                    "a namespace below ours is an app's"
            }

            test "without frames, ids, GUIDs and hex runs in the message do not split a group" {
                let h (m: string) =
                    Fingerprint.ofException (capture (Exception m))

                Expect.equal
                    (h "Order 123 failed for 0x1F2E and 5f0c6a8e-2d3b-4c1a-9e7f-0a1b2c3d4e5f")
                    (h "Order 98765 failed for 0xABCD and 00000000-1111-2222-3333-444455556666")
                    "normalised"

                Expect.notEqual (h "Order 1 failed") (h "Payment 1 failed") "different words, different groups"
            }

            test "is stable across processes: a known input has a known hash" {
                Expect.equal
                    (Fingerprint.sha256Hex "abc")
                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
                    "SHA-256 test vector"
            }
        ]
