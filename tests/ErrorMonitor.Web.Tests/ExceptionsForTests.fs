/// Pathological exceptions that app code might throw.
module internal ErrorMonitor.Web.Tests.ExceptionsForTests

open System
open System.Collections.Generic

/// An exception whose getters all throw.
type HostileException() =
    inherit Exception("unused")
    override _.Message = raise (InvalidOperationException "Message getter")
    override _.Data = raise (InvalidOperationException "Data getter")
    override _.StackTrace = raise (InvalidOperationException "StackTrace getter")

/// A chain of `n` inner exceptions.
let deepChain (n: int) : exn =
    let mutable e = Exception "bottom"

    for i in 1..n do
        e <- Exception(sprintf "level %d" i, e)

    e

/// An exception whose Data holds a cyclic list and values that are not strings.
let cyclicData () : exn =
    let e = InvalidOperationException "cyclic data"
    let cycle = List<obj>()
    cycle.Add cycle
    e.Data.["cycle"] <- cycle
    e.Data.["when"] <- DateTime.UnixEpoch
    e.Data.[42] <- obj ()
    e :> exn
