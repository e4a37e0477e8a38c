/// The demo app written as Giraffe-shaped handlers (HttpHandler = HttpFunc -> HttpFunc), composed with >=>.
module GiraffeDemo.Program

open System
open System.Collections.Generic
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Hosting
open Microsoft.AspNetCore.Http
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Logging
open ErrorMonitor
open ErrorMonitor.Web

let home: HttpHandler = text "No Exception!"

let valueError: HttpHandler =
    fun _ _ -> raise (ArgumentException "Value error: the value is not valid")

let postView: HttpHandler =
    fun next ctx ->
        task {
            let! form = ctx.Request.ReadFormAsync()
            let values = form |> Seq.map (fun kv -> kv.Key, string kv.Value) |> dict
            return! text values.["missing-key"] next ctx
        }

let handled: HttpHandler =
    fun next ctx ->
        let monitor = ctx.RequestServices.GetRequiredService<AppErrorMonitor>()

        try
            invalidOp "Handled and recorded"
        with ex ->
            monitor.RecordException(ex, ctx) |> ignore

        text "Recorded a handled exception" next ctx

let message: HttpHandler =
    fun next ctx ->
        ctx.RequestServices.GetRequiredService<AppErrorMonitor>().CaptureMessage("A message from the F# demo")
        |> ignore

        (setStatusCode 200 >=> text "Recorded a message") next ctx

/// The whole app as one handler: ErrorMonitor's pages first (they pass on every other path), then the demo.
let webApp (monitorPages: HttpHandler) : HttpHandler =
    choose
        [
            monitorPages
            route "/" >=> methods [ "GET" ] >=> home
            route "/value-error" >=> methods [ "GET"; "POST" ] >=> valueError
            route "/post-view" >=> methods [ "POST" ] >=> postView
            route "/handled" >=> methods [ "GET" ] >=> handled
            route "/message" >=> methods [ "GET" ] >=> message
            setStatusCode 404 >=> text "Not Found"
        ]

[<EntryPoint>]
let main args =
    let builder = WebApplication.CreateBuilder args

    if String.IsNullOrEmpty builder.Configuration.["urls"] then
        builder.WebHost.UseUrls "http://127.0.0.1:5001" |> ignore

    builder.Services.AddErrorMonitor() |> ignore
    let app = builder.Build()
    let engine = app.Services.GetRequiredService<Engine>()
    let pages = Browse.router { Engine = engine; Permission = None }
    let handle = webApp pages earlyReturn
    let onError = Browse.errorHandler engine

    let logger =
        app.Services.GetRequiredService<ILoggerFactory>().CreateLogger "GiraffeDemo"

    // Giraffe's shape: the app's handler, and an error handler that records what it throws.
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
