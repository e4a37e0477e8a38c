namespace ErrorMonitor

open System
open System.Collections.Generic
open System.Threading
open System.Threading.Tasks
open Microsoft.AspNetCore.Http
open ErrorMonitor.Core

/// Where groups of failures are kept (the seed's model). Implement it to bring your own store.
/// Every method may be called from several threads at once.
type IErrorStore =
    /// Creates or migrates the schema. Called before the first write, and again after a failure.
    abstract InitializeAsync: cancellationToken: CancellationToken -> Task

    /// Adds a batch of coalesced occurrences: one upsert a group; counts add up exactly.
    abstract UpsertAsync: batch: IReadOnlyList<GroupDelta> * cancellationToken: CancellationToken -> Task

    /// One group by its hash, or null.
    abstract GetAsync: hash: string * cancellationToken: CancellationToken -> Task<ErrorRecord>

    /// Groups newest `LastSeen` first (ties by hash), skipping `offset`, at most `count` of them.
    abstract ListAsync:
        offset: int64 * count: int * cancellationToken: CancellationToken -> Task<IReadOnlyList<ErrorRecord>>

    /// Deletes a group; true when it existed.
    abstract DeleteAsync: hash: string * cancellationToken: CancellationToken -> Task<bool>

/// Adds app-specific context to what is recorded in a request (the seed's context builder). Whatever it
/// adds passes through masking like the rest.
type IContextBuilder =
    /// Adds entries to `context` for an occurrence in `httpContext` (null outside a request).
    abstract BuildContext: httpContext: HttpContext * context: IDictionary<string, obj> -> unit

/// The default context builder: adds the machine name. Subclass it and call the base to extend it.
type DefaultContextBuilder() =
    /// Adds the default entries; override and call the base method to add more.
    abstract BuildContext: httpContext: HttpContext * context: IDictionary<string, obj> -> unit

    default _.BuildContext(_httpContext: HttpContext, context: IDictionary<string, obj>) =
        context.["machine"] <- Environment.MachineName

    interface IContextBuilder with
        member this.BuildContext(httpContext, context) = this.BuildContext(httpContext, context)

/// A configuration that cannot work: thrown at start-up, naming the key at fault.
type ErrorMonitorConfigException(message: string) =
    inherit InvalidOperationException(message)
