/// Real apps on real Kestrel, bound to 127.0.0.1 on a port the OS picks, with real SQLite files.
module internal ErrorMonitor.Web.Tests.TestApp

open System
open System.Collections.Generic
open System.IO
open System.Net.Http
open System.Threading.Tasks
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Hosting
open Microsoft.AspNetCore.Hosting.Server.Features
open Microsoft.Extensions.Configuration
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Logging
open ErrorMonitor
open ErrorMonitor.Web.Stores

/// A running app and a client for it.
type RunningApp =
    {
        App: WebApplication
        BaseUrl: string
        Client: HttpClient
        Folder: string
    }

    /// The SQLite file of this app.
    member this.DbPath = Path.Combine(this.Folder, "errormonitor.db")

    /// A store reading the same file.
    member this.Store =
        SqliteStore($"Data Source={this.DbPath}", "app_error") :> IErrorStore

    /// The app's monitor.
    member this.Monitor = this.App.Services.GetRequiredService<AppErrorMonitor>()

    interface IAsyncDisposable with
        member this.DisposeAsync() =
            task {
                this.Client.Dispose()
                do! this.App.StopAsync()
                do! this.App.DisposeAsync()
            }
            |> ValueTask

/// A clock the test moves by hand.
type ManualClock(start: DateTimeOffset) =
    inherit TimeProvider()
    let mutable now = start
    member _.Advance(by: TimeSpan) = now <- now + by
    override _.GetUtcNow() = now

/// A fresh temp folder.
let tempFolder () =
    let d =
        Path.Combine(Path.GetTempPath(), "errormonitor-tests", Guid.NewGuid().ToString "N")

    Directory.CreateDirectory d |> ignore
    d

/// Starts an app: `services` adds to its services (ErrorMonitor included or not), `configure` builds its
/// pipeline. Settings go in as configuration keys; the SQLite file lives in a fresh folder.
let start
    (settings: (string * string) list)
    (services: IServiceCollection -> unit)
    (configure: WebApplication -> unit)
    : Task<RunningApp> =
    task {
        let folder = tempFolder ()

        let builder =
            WebApplication.CreateBuilder(
                WebApplicationOptions(ContentRootPath = folder, EnvironmentName = "Production")
            )

        builder.WebHost.UseUrls("http://127.0.0.1:0") |> ignore
        builder.Logging.ClearProviders() |> ignore

        let values = Dictionary<string, string>()

        for k, v in settings do
            values.[k] <- v

        builder.Configuration.AddInMemoryCollection(values) |> ignore
        services builder.Services
        let app = builder.Build()
        configure app
        do! app.StartAsync()

        let address =
            app.Services
                .GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>()
                .Features.Get<IServerAddressesFeature>()
                .Addresses
            |> Seq.head

        let client = new HttpClient(BaseAddress = Uri address)

        return
            {
                App = app
                BaseUrl = address
                Client = client
                Folder = folder
            }
    }

/// All records of a store, newest first.
let records (store: IErrorStore) =
    task {
        let! all =
            store.ListAsync(ErrorMonitor.Core.ListQuery.All, 0L, 100000, Threading.CancellationToken.None)

        return List.ofSeq all
    }

/// A test whose body is an F# task (Expecto's own task builder takes only IAsyncDisposable in `use`).
let testTask' (name: string) (body: unit -> Task) =
    Expecto.Tests.testCase name (fun () -> body().GetAwaiter().GetResult())
