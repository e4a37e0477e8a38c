/// An F# app composing its own Giraffe-shaped handlers with ErrorMonitor's pages (`Browse.router`) and
/// recording its failures through `Browse.errorHandler`.
module FSharpConsumer.Program

open System
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Http
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Logging
open ErrorMonitor.Web

let webApp (pages: HttpHandler) : HttpHandler =
    choose
        [
            pages
            route "/" >=> methods [ "GET" ] >=> text "Hello from an F# consumer app"
            route "/consumer-failure"
            >=> methods [ "GET" ]
            >=> (fun _ _ -> raise (TimeoutException "An F# consumer app failed"))
            setStatusCode 404 >=> text "Not Found"
        ]

[<EntryPoint>]
let main args =
    let builder = WebApplication.CreateBuilder args
    builder.Services.AddErrorMonitor() |> ignore
    let app = builder.Build()
    let engine = app.Services.GetRequiredService<Engine>()

    let handle =
        webApp (Browse.router { Engine = engine; Permission = None }) earlyReturn

    let onError = Browse.errorHandler engine

    let logger =
        app.Services.GetRequiredService<ILoggerFactory>().CreateLogger "FSharpConsumer"

    app.Run(
        RequestDelegate(fun ctx ->
            task {
                try
                    let! _ = handle ctx
                    ()
                with ex ->
                    let! _ = onError ex logger earlyReturn ctx
                    ()
            })
    )

    app.Run()
    0
