namespace ErrorMonitor.Web

open System
open System.Threading
open Microsoft.AspNetCore.Http
open ErrorMonitor.Core

/// One log entry kept as a breadcrumb: its text is formatted only if an occurrence takes it.
[<Struct>]
type internal Breadcrumb =
    {
        Time: DateTimeOffset
        Level: string
        Category: string
        Text: Func<string>
    }

/// The last `capacity` breadcrumbs of a request or an async flow (a ring; a lock, as a request's work may log
/// from several threads).
[<AllowNullLiteral>]
type internal BreadcrumbRing(capacity: int) =
    let items = Array.zeroCreate<Breadcrumb> capacity
    let mutable next = 0
    let mutable count = 0

    member _.Add(b: Breadcrumb) =
        lock items (fun () ->
            items.[next] <- b
            next <- (next + 1) % capacity
            count <- min capacity (count + 1))

    /// Oldest first.
    member _.Take() : Breadcrumb[] =
        lock items (fun () -> Array.init count (fun i -> items.[(next - count + i + capacity) % capacity]))

/// Where breadcrumbs are kept: in the request's items, else on the async flow.
[<RequireQualifiedAccess>]
module internal Breadcrumbs =
    let private itemKey = obj ()
    let private flow = AsyncLocal<BreadcrumbRing>()

    /// The ring of `http` (or of the current flow outside a request), made on first use.
    let ring (capacity: int) (http: HttpContext) : BreadcrumbRing =
        if not (isNull http) then
            match http.Items.TryGetValue itemKey with
            | true, (:? BreadcrumbRing as r) -> r
            | _ ->
                let r = BreadcrumbRing capacity
                http.Items.[itemKey] <- r
                r
        else
            match flow.Value with
            | null ->
                let r = BreadcrumbRing capacity
                flow.Value <- r
                r
            | r -> r

    /// The breadcrumbs kept so far for `http` (or the current flow), as data (`LogCapture.crumbData`, masked with
    /// the rest of the occurrence's extras). Empty when there are none.
    let taken (http: HttpContext) : Data list =
        let ring =
            if not (isNull http) then
                match http.Items.TryGetValue itemKey with
                | true, (:? BreadcrumbRing as r) -> r
                | _ -> null
            else
                flow.Value

        if isNull ring then
            []
        else
            [
                for b in ring.Take() ->
                    let text =
                        try
                            b.Text.Invoke()
                        with _ ->
                            ""

                    LogCapture.crumbData b.Time b.Level b.Category text
            ]
