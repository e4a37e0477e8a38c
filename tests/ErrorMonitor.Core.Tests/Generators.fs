/// Shared generators and FsCheck configuration for the core's properties.
module internal ErrorMonitor.Core.Tests.Generators

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open ErrorMonitor.Core

/// Every property runs at least 200 generated cases.
let config =
    { FsCheckConfig.defaultConfig with
        maxTest = 200
    }

/// A property with the shared configuration.
let property name (p: Property) = testPropertyWithConfig config name p

let private letters =
    [ 'a' .. 'z' ] @ [ 'A' .. 'Z' ] @ [ '0' .. '9' ] @ [ '_'; '-'; '.' ]

/// Random case of a word: "password" -> "PaSsWoRd".
let randomCase (word: string) : Gen<string> =
    gen {
        let! flips = Gen.listOfLength word.Length (Gen.elements [ true; false ])

        return
            String(
                Seq.zip word flips
                |> Seq.map (fun (c, up) ->
                    if up then
                        Char.ToUpperInvariant c
                    else
                        Char.ToLowerInvariant c)
                |> Array.ofSeq
            )
    }

/// A plain word of 1 to 10 characters.
let plainWord: Gen<string> =
    gen {
        let! n = Gen.choose (1, 10)
        let! cs = Gen.arrayOfLength n (Gen.elements letters)
        return String cs
    }

/// The configured words of the tests' default rule.
let sensitiveWords = [ "password"; "secret" ]

/// A key that is not sensitive under the default rule.
let plainKey: Gen<string> =
    let names = Masking.nameRule Masking.defaultNames "x"

    plainWord
    |> Gen.filter (fun k ->
        let l = k.ToLowerInvariant()

        sensitiveWords |> List.forall (fun w -> not (l.Contains w))
        && names k = MaskDecision.Keep)

/// A key containing a configured word in any letter case, with text around it.
let sensitiveKey: Gen<string> =
    gen {
        let! before = Gen.oneof [ Gen.constant ""; plainWord ]
        let! word = Gen.elements sensitiveWords >>= randomCase
        let! after = Gen.oneof [ Gen.constant ""; plainWord ]
        return before + word + after
    }

/// Any key: sensitive about one time in four.
let anyKey: Gen<string> = Gen.frequency [ 3, plainKey; 1, sensitiveKey ]

/// A data tree of bounded depth.
let rec dataOf (depth: int) : Gen<Data> =
    let leaf =
        Gen.oneof
            [
                Gen.constant Data.Null
                Gen.elements [ true; false ] |> Gen.map Data.Bool
                Gen.choose (-1000, 1000) |> Gen.map (float >> Data.Number)
                plainWord |> Gen.map Data.String
            ]

    if depth <= 0 then
        leaf
    else
        Gen.frequency
            [
                2, leaf
                1, Gen.listOf (dataOf (depth - 1)) |> Gen.map (List.truncate 4 >> Data.Array)
                2,
                Gen.listOf (Gen.zip anyKey (dataOf (depth - 1)))
                |> Gen.map (List.truncate 5 >> Data.Object)
            ]

/// A keyed data tree (an object at the top).
let objectData: Gen<Data> =
    Gen.listOf (Gen.zip anyKey (dataOf 3))
    |> Gen.map (List.truncate 6 >> Data.Object)

/// Replaces every string leaf: "S3CR3T-i" under a sensitive key (at any depth above it), "plain-i" elsewhere.
let tagLeaves (isSensitive: string -> bool) (d: Data) : Data =
    let mutable i = 0

    let rec go (inSecret: bool) (d: Data) =
        match d with
        | Data.String _
        | Data.Number _
        | Data.Bool _
        | Data.Null ->
            i <- i + 1
            Data.String(sprintf "%s-%d" (if inSecret then "S3CR3T" else "plain") i)
        | Data.Array items -> items |> List.map (go inSecret) |> Data.Array
        | Data.Object fields ->
            fields
            |> List.map (fun (k, v) -> k, go (inSecret || isSensitive k) v)
            |> Data.Object

    go false d

/// Pairs of keys and values.
let pairs: Gen<(string * string) list> =
    Gen.listOf (Gen.zip anyKey plainWord) |> Gen.map (List.truncate 8)

/// A request context with random keyed parts.
let request: Gen<RequestContext> =
    gen {
        let! query = pairs
        let! headers = pairs
        let! form = pairs
        let! cookies = pairs
        let! route = pairs
        let! body = objectData
        let! custom = objectData

        return
            {
                Method = "POST"
                Scheme = "http"
                Host = "127.0.0.1:5000"
                Path = "/orders"
                Query = query
                Headers = headers
                Form = form
                Cookies = cookies
                RouteValues = route
                UserName = Some "alice"
                TraceId = Some "00-abc-def-01"
                Body = Some(Body.Json body)
                Custom =
                    match custom with
                    | Data.Object f -> f
                    | _ -> []
            }
    }

/// A frame with a random line number.
let frame: Gen<Frame> =
    gen {
        let! t = plainWord
        let! m = plainWord
        let! line = Gen.choose (1, 5000)

        return
            {
                Type = "App." + t
                Method = m
                File = Some "/src/App.cs"
                Line = Some line
                Column = None
            }
    }

/// An exception tree of bounded depth.
let rec exceptionOf (depth: int) : Gen<ExceptionInfo> =
    gen {
        let! name = plainWord
        let! message = plainWord
        let! frames = Gen.listOf frame |> Gen.map (List.truncate 6)

        let! inner =
            if depth <= 0 then
                Gen.constant []
            else
                Gen.listOf (exceptionOf (depth - 1)) |> Gen.map (List.truncate 2)

        return
            {
                TypeName = "App." + name + "Exception"
                Message = message
                Frames = frames
                FramesOmitted = 0
                Data = []
                Inner = inner
                InnerOmitted = 0
            }
    }

/// An arbitrary from a generator (no shrinking).
let arb (g: Gen<'T>) = Arb.fromGen g
