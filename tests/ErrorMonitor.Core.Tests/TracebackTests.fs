module internal ErrorMonitor.Core.Tests.TracebackTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open ErrorMonitor.Core
open ErrorMonitor.Core.Tests.Generators
open ErrorMonitor.Core.Tests.ExceptionTests

[<Tests>]
let tests =
    testList
        "traceback"
        [
            test "has .NET's layout: type: message, at-frames with file:line, inner exceptions" {
                let e =
                    thrown (fun () -> raise (InvalidOperationException("outer", ArgumentException "inner")))

                let text = Traceback.format Limits.defaults (capture e)
                Expect.stringStarts text "System.InvalidOperationException: outer" "first line"
                Expect.stringContains text "   at " "frames"
                Expect.stringContains text ":line " "file and line"
                Expect.stringContains text " ---> System.ArgumentException: inner" "inner exception"
            }

            property "is bounded by the traceback limit plus its marker"
            <| Prop.forAll (arb (Gen.zip (exceptionOf 3) (Gen.choose (10, 400)))) (fun (e, max) ->
                let limits =
                    { Limits.defaults with
                        MaxTraceback = max
                    }

                let text = Traceback.format limits e
                text.Length <= max + (Text.marker Int32.MaxValue).Length)

            property "truncation keeps the start and says how much was cut"
            <| Prop.forAll (arb (Gen.zip plainWord (Gen.choose (0, 12)))) (fun (s, max) ->
                let t = Text.truncate max s

                if s.Length <= max then
                    t = s
                else
                    t.StartsWith(s.Substring(0, max))
                    && t.EndsWith(sprintf "[truncated %d chars]" (s.Length - max)))

            test "an exception's Data is listed" {
                let e = Exception "with data"
                e.Data.["orderId"] <- 42
                let text = Traceback.format Limits.defaults (capture e)
                Expect.stringContains text "orderId = 42" "data entry"
            }
        ]
