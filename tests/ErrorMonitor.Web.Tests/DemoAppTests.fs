module internal ErrorMonitor.Web.Tests.DemoAppTests

open System
open System.Diagnostics
open System.IO
open System.Net
open System.Net.Http
open System.Net.Sockets
open System.Threading.Tasks
open Expecto
open ErrorMonitor.Web.Tests.TestApp

/// A sample's built DLL, next to this suite's build output.
let sampleDll (name: string) =
    let config =
        if AppContext.BaseDirectory.Contains "/Release/" then
            "Release"
        else
            "Debug"

    Path.GetFullPath(
        Path.Combine(AppContext.BaseDirectory, "../../../../../samples", name, "bin", config, "net10.0", name + ".dll")
    )

/// The C# demo app's built DLL.
let demoDll () = sampleDll "DemoApp"

/// A free port on 127.0.0.1.
let freePort () =
    let l = new TcpListener(IPAddress.Loopback, 0)
    l.Start()
    let port = (l.LocalEndpoint :?> IPEndPoint).Port
    l.Stop()
    port

/// A demo app process on 127.0.0.1, its content root (and so its database) in `folder`.
type DemoProcess(folder: string, env: (string * string) list, dll: string) =
    let port = freePort ()
    let url = sprintf "http://127.0.0.1:%d" port

    let proc =
        let psi =
            ProcessStartInfo("dotnet", sprintf "\"%s\" --urls %s --contentRoot \"%s\"" dll url folder)

        psi.RedirectStandardOutput <- true
        psi.RedirectStandardError <- true
        psi.UseShellExecute <- false
        psi.Environment.["ASPNETCORE_ENVIRONMENT"] <- "Production"

        for k, v in env do
            psi.Environment.[k] <- v

        let p = Process.Start psi
        p.OutputDataReceived.Add ignore
        p.ErrorDataReceived.Add ignore
        p.BeginOutputReadLine()
        p.BeginErrorReadLine()
        p

    let client = new HttpClient(BaseAddress = Uri url)

    /// The C# demo app.
    new(folder: string, env: (string * string) list) = new DemoProcess(folder, env, demoDll ())

    member _.Url = url
    member _.Client = client
    member _.Process = proc

    /// Waits until the app answers.
    member _.WaitReadyAsync() =
        task {
            let sw = Stopwatch.StartNew()
            let mutable ready = false

            while not ready do
                if proc.HasExited then
                    failwithf "the demo app exited with code %d" proc.ExitCode

                if sw.Elapsed > TimeSpan.FromSeconds 60.0 then
                    failwith "the demo app did not answer within 60 s"

                try
                    use! r = client.GetAsync "/"
                    ready <- r.StatusCode = HttpStatusCode.OK
                with _ ->
                    do! Task.Delay 100
        }

    /// Stops it gracefully (SIGTERM) and waits for it to exit.
    member _.StopAsync() =
        task {
            if not proc.HasExited then
                Process.Start("kill", sprintf "-TERM %d" proc.Id).WaitForExit()
                let! _ = proc.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds 30.0)
                ()
        }

    interface IDisposable with
        member _.Dispose() =
            client.Dispose()

            if not proc.HasExited then
                proc.Kill true

            proc.Dispose()

/// The hash of the group of `path`, once the demo's API lists it (written in the background: at most 30 s).
let private listedHash (demo: DemoProcess) (path: string) =
    task {
        let hashOf () =
            task {
                let! list = demo.Client.GetStringAsync "/dev/error/api/errors?status=all"
                use doc = Text.Json.JsonDocument.Parse list

                return
                    [
                        for item in doc.RootElement.GetProperty("items").EnumerateArray() do
                            if item.GetProperty("path").GetString() = path then
                                item.GetProperty("hash").GetString()
                    ]
            }

        let waited = Stopwatch.StartNew()
        let! first = hashOf ()
        let mutable found = first

        while found.IsEmpty && waited.Elapsed < TimeSpan.FromSeconds 30.0 do
            do! Task.Delay 50
            let! again = hashOf ()
            found <- again

        return Expect.wantSome (List.tryHead found) (path + " is listed")
    }

[<Tests>]
let tests =
    testSequenced
    <| testList
        "demo app"
        [
            testTask' "/value-error twice gives one group with count 2 in errormonitor.db"
            <| fun () ->
                task {
                    let folder = tempFolder ()
                    use demo = new DemoProcess(folder, [])
                    do! demo.WaitReadyAsync()
                    let! home = demo.Client.GetStringAsync "/"
                    Expect.equal home "No Exception!" "the home page"

                    for _ in 1..2 do
                        use! r = demo.Client.GetAsync "/value-error"
                        Expect.equal r.StatusCode HttpStatusCode.InternalServerError "fails"

                    do! demo.StopAsync()

                    let store =
                        ErrorMonitor.Web.Stores.SqliteStore($"Data Source={folder}/errormonitor.db", "app_error")

                    let! all = records store
                    let valueErrors = all |> List.filter (fun r -> r.Path = "/value-error")
                    Expect.equal (valueErrors |> List.map (fun r -> r.Count)) [ 2L ] "one group, count 2"
                }
            testTask' "/logged-error answers 200 and its logged exception is a group with its category and level"
            <| fun () ->
                task {
                    let folder = tempFolder ()
                    use demo = new DemoProcess(folder, [])
                    do! demo.WaitReadyAsync()

                    for _ in 1..2 do
                        let! body = demo.Client.GetStringAsync "/logged-error"
                        Expect.equal body "Logged an error" "answers 200"

                    do! demo.StopAsync()

                    let store =
                        ErrorMonitor.Web.Stores.SqliteStore($"Data Source={folder}/errormonitor.db", "app_error")

                    let! all = records store

                    match all |> List.filter (fun r -> r.Path = "/logged-error") with
                    | [ r ] ->
                        Expect.equal r.ExceptionName "System.TimeoutException" "the logged exception"
                        Expect.equal r.Count 2L "twice, one group"
                        Expect.stringContains r.RequestData "\"logCategory\":\"Program\"" "its category"
                        Expect.stringContains r.RequestData "\"logLevel\":\"Error\"" "its level"
                    | other ->
                        failtestf "one group for /logged-error, got %A" (other |> List.map (fun r -> r.ExceptionName))
                }
            testTask' "/breadcrumbs fails with its two log steps as breadcrumbs, on the detail page and in the JSON API"
            <| fun () ->
                task {
                    let folder = tempFolder ()
                    use demo = new DemoProcess(folder, [])
                    do! demo.WaitReadyAsync()
                    use! r = demo.Client.GetAsync "/breadcrumbs"
                    Expect.equal r.StatusCode HttpStatusCode.InternalServerError "fails"

                    let! hash = listedHash demo "/breadcrumbs"
                    let! detail = demo.Client.GetStringAsync(sprintf "/dev/error/api/errors/%s" hash)
                    use doc = Text.Json.JsonDocument.Parse detail

                    let crumbs =
                        [ for b in doc.RootElement.GetProperty("breadcrumbs").EnumerateArray() -> b ]

                    let text (b: Text.Json.JsonElement) (name: string) = b.GetProperty(name).GetString()

                    // The host's own Information entries of the request may come before them.
                    let steps = crumbs |> List.filter (fun b -> text b "category" = "Program")

                    Expect.equal [ for b in steps -> text b "message" ] [ "loading cart"; "charging card" ] "in order"
                    Expect.equal [ for b in steps -> text b "level" ] [ "Information"; "Information" ] "their level"
                    Expect.isTrue (steps |> List.forall (fun b -> text b "time" <> "")) "their time"
                    let! page = demo.Client.GetStringAsync(sprintf "/dev/error/%s" hash)
                    Expect.stringContains page "<h2>Breadcrumbs</h2>" "a section on the detail page"
                    Expect.stringContains page "charging card" "with the steps"
                    // Without APP_ERROR_RELEASE: the demo assembly's informational version; the host's environment.
                    Expect.isFalse
                        (String.IsNullOrEmpty(doc.RootElement.GetProperty("lastRelease").GetString()))
                        "a release"

                    Expect.equal (doc.RootElement.GetProperty("environment").GetString()) "Production" "its environment"
                    do! demo.StopAsync()
                }

            testTask'
                "POST /json-body with APP_ERROR_REQUEST_BODY=small keeps the [FromBody] JSON, its password masked (not in the database's bytes), with the release and environment"
            <| fun () ->
                task {
                    let folder = tempFolder ()

                    use demo =
                        new DemoProcess(
                            folder,
                            [ "APP_ERROR_REQUEST_BODY", "small"; "APP_ERROR_RELEASE", "demo-2.1.0" ]
                        )

                    do! demo.WaitReadyAsync()

                    use content =
                        new StringContent(
                            """{"user": "ada", "password": "hunter2-correct-horse"}""",
                            Text.Encoding.UTF8,
                            "application/json"
                        )

                    use! r = demo.Client.PostAsync("/json-body", content)
                    Expect.equal r.StatusCode HttpStatusCode.InternalServerError "fails after binding"
                    let! hash = listedHash demo "/json-body"
                    let! detail = demo.Client.GetStringAsync(sprintf "/dev/error/api/errors/%s" hash)
                    use doc = Text.Json.JsonDocument.Parse detail
                    let root = doc.RootElement

                    Expect.equal
                        (root.GetProperty("message").GetString())
                        "Signing in ada failed"
                        "the handler got the body"

                    let body = root.GetProperty("requestData").GetProperty("body")
                    Expect.equal (body.GetProperty("user").GetString()) "ada" "the body is recorded"
                    Expect.equal (body.GetProperty("password").GetString()) "**************" "its password masked"
                    Expect.equal (root.GetProperty("lastRelease").GetString()) "demo-2.1.0" "the release"
                    Expect.equal (root.GetProperty("environment").GetString()) "Production" "the environment"
                    let! page = demo.Client.GetStringAsync(sprintf "/dev/error/%s" hash)
                    Expect.stringContains page "demo-2.1.0" "the release on the detail page"
                    Expect.stringContains page "Production" "and the environment"
                    do! demo.StopAsync()

                    let bytes =
                        Directory.GetFiles(folder, "errormonitor*")
                        |> Array.map (fun f -> Text.Encoding.Latin1.GetString(File.ReadAllBytes f))
                        |> String.concat ""

                    Expect.stringContains bytes "ada" "the body is in the database"
                    Expect.isFalse (bytes.Contains "hunter2-correct-horse") "the password is not, in any file"
                }
        ]
