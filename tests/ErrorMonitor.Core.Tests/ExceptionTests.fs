module internal ErrorMonitor.Core.Tests.ExceptionTests

open System
open System.Diagnostics
open System.Threading.Tasks
open Expecto
open ErrorMonitor.Core

/// An exception whose getters all throw.
type HostileException() =
    inherit Exception("unused")
    override _.Message = raise (InvalidOperationException "Message getter")
    override _.Data = raise (InvalidOperationException "Data getter")
    override _.StackTrace = raise (InvalidOperationException "StackTrace getter")

/// An exception with a null message.
type NullMessageException() =
    inherit Exception()
    override _.Message = null

let capture (e: exn) =
    ExceptionInfo.capture Limits.defaults (fun e -> StackTrace(e, true)) e

let thrown (f: unit -> unit) : exn =
    try
        f ()
        failwith "did not throw"
    with e ->
        e

type private Sample() =
    member _.LoadAsync() : Task =
        task {
            do! Task.Yield()
            raise (InvalidOperationException "async failure")
        }

let rec private deepChain (n: int) : exn =
    let mutable e = Exception "bottom"

    for i in 1..n do
        e <- Exception(sprintf "level %d" i, e)

    e

let rec private depth (e: ExceptionInfo) =
    match e.Inner with
    | [] -> 1
    | i :: _ -> 1 + depth i

[<Tests>]
let tests =
    testList
        "exception capture"
        [
            test "getters that throw give a value, not an exception" {
                let info = capture (HostileException() :> exn)
                Expect.equal info.TypeName "ErrorMonitor.Core.Tests.ExceptionTests+HostileException" "type name"
                Expect.stringContains info.Message "could not be read" "message placeholder"
            }

            test "a null message is an empty message" {
                let info = capture (NullMessageException() :> exn)
                Expect.equal info.Message "" "empty"
            }

            test "a 10,000-deep inner chain is cut at the depth limit with a marker" {
                let info = capture (deepChain 10000)
                Expect.equal (depth info) (Limits.defaults.MaxInnerDepth + 1) "bounded depth"

                let last = ExceptionInfo.flatten info |> List.last
                Expect.equal last.InnerOmitted 1 "the cut is counted"

                let text = Traceback.format Limits.defaults info
                Expect.stringContains text "more inner exceptions not shown" "marker in the text"
            }

            test "an AggregateException with 10,000 inners keeps a bounded number" {
                let inners = [ for i in 1..10000 -> Exception(sprintf "inner %d" i) ]
                let info = capture (AggregateException(inners))
                Expect.equal info.Inner.Length Limits.defaults.MaxInnerPerException "bounded inners"
                Expect.equal info.InnerOmitted (10000 - Limits.defaults.MaxInnerPerException) "omitted counted"
            }

            test "a huge message is truncated with a marker" {
                let info = capture (Exception(String('x', 5_000_000)))
                Expect.isLessThan info.Message.Length (Limits.defaults.MaxMessage + 100) "bounded"
                Expect.stringContains info.Message "[truncated" "marker"
            }

            test "cyclic and non-string Exception.Data entries are read by ToString" {
                let e = Exception "with data"
                let cyclic = Collections.Generic.List<obj>()
                cyclic.Add cyclic
                e.Data.["list"] <- cyclic
                e.Data.["n"] <- 42
                e.Data.["text"] <- "hello"
                let info = capture e
                Expect.equal (info.Data |> List.map fst |> List.sort) [ "list"; "n"; "text" ] "every key"
                Expect.contains info.Data ("n", Data.Number 42.0) "number kept"
            }

            test "frames of an async method count as the method itself" {
                let e =
                    try
                        Sample().LoadAsync().GetAwaiter().GetResult()
                        failwith "no"
                    with e ->
                        e

                let info = capture e
                let methods = info.Frames |> List.map (fun f -> f.Method)
                Expect.contains methods "LoadAsync" "async frame named after its method"
                Expect.isFalse (methods |> List.exists (fun m -> m.Contains "MoveNext")) "no MoveNext"
            }

            test "compiler-generated names map to their source method" {
                let cases =
                    [
                        ("App.Orders+<Load>d__5", "MoveNext"), ("App.Orders", "Load")
                        ("App.Orders+<>c", "<Main>b__0_0"), ("App.Orders", "Main")
                        ("App.Orders+<>c__DisplayClass3_0", "<Load>b__0"), ("App.Orders", "Load")
                        ("App.Orders", "<Main>g__Local|0_0"), ("App.Orders", "Main.Local")
                        ("App.Orders+<>c+<<Main>b__0_0>d", "MoveNext"), ("App.Orders", "Main")
                        ("App.Module+load@12-3", "Invoke"), ("App.Module", "load")
                        ("App.Sample+LoadAsync@6", "MoveNext"), ("App.Sample", "LoadAsync")
                        ("App.Orders", "Save"), ("App.Orders", "Save")
                    ]

                for (t, m), expected in cases do
                    Expect.equal (ExceptionInfo.sourceFrame t m) expected (sprintf "%s.%s" t m)
            }

            test "a real thrown exception has frames with file and line" {
                let e = thrown (fun () -> invalidOp "boom")
                let info = capture e
                Expect.isNonEmpty info.Frames "frames"
                Expect.isTrue (info.Frames |> List.exists (fun f -> f.Line.IsSome)) "a line number (PDB present)"
            }

            test "app values: one scalar conversion; NaN and infinities become text JSON can hold" {
                let limits = Limits.defaults

                Expect.equal (AppValue.scalar limits (box Double.NaN)) (Some(Data.String "NaN")) "NaN"

                Expect.equal
                    (AppValue.scalar limits (box Single.PositiveInfinity))
                    (Some(Data.String "Infinity"))
                    "infinity"

                Expect.equal (AppValue.scalar limits (box 42uy)) (Some(Data.Number 42.0)) "byte"
                Expect.equal (AppValue.scalar limits (box (Guid.Empty))) (Some(Data.String(string Guid.Empty))) "guid"
                Expect.isNone (AppValue.scalar limits (box [| 1; 2 |])) "not a scalar"

                let e = InvalidOperationException "with data"
                e.Data.["ratio"] <- Double.NaN
                e.Data.["when"] <- DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero)
                let info = capture e

                Expect.equal
                    info.Data
                    [ "ratio", Data.String "NaN"; "when", Data.String "2026-01-02T03:04:05.0000000+00:00" ]
                    "Exception.Data through the same conversion"

                Expect.stringContains (Json.serialize (Data.Object info.Data)) "\"ratio\":\"NaN\"" "serialisable"
            }
        ]
