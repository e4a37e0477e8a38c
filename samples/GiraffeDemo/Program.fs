/// The demo app written as Giraffe-shaped handlers (HttpHandler = HttpFunc -> HttpFunc), composed with >=>.
module GiraffeDemo.Program

open System
open System.Collections.Generic
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Hosting
open Microsoft.AspNetCore.Http
open Microsoft.Extensions.DependencyInjection
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

[<EntryPoint>]
let main args =
    let builder = WebApplication.CreateBuilder args

    if String.IsNullOrEmpty builder.Configuration.["urls"] then
        builder.WebHost.UseUrls "http://127.0.0.1:5001" |> ignore

    builder.Services.AddErrorMonitor() |> ignore
    let app = builder.Build()
    app.UseErrorMonitor() |> ignore
    app.MapGet("/", toRequestDelegate home) |> ignore

    app.MapMethods("/value-error", [ "GET"; "POST" ], toRequestDelegate valueError)
    |> ignore

    app.MapPost("/post-view", toRequestDelegate postView) |> ignore
    app.MapGet("/handled", toRequestDelegate handled) |> ignore
    app.MapGet("/message", toRequestDelegate message) |> ignore
    app.MapErrorMonitor() |> ignore
    app.Run()
    0
