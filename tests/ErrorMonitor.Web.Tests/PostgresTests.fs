/// Many app instances on one PostgreSQL database: exact counts, no split groups, outages survived.
module internal ErrorMonitor.Web.Tests.PostgresTests

open System
open System.Diagnostics
open System.Net
open System.Net.Http
open System.Text.Json
open System.Threading.Tasks
open Microsoft.Extensions.DependencyInjection
open Expecto
open ErrorMonitor
open ErrorMonitor.Web.Tests.TestApp
open ErrorMonitor.Web.Tests.DemoAppTests
open ErrorMonitor.Web.Tests.BrowserTests
open ErrorMonitor.Web.Tests.StoreContractTests

/// Runs a shell command that ./test.sh exported (starting or stopping the test's PostgreSQL server).
let shell (variable: string) =
    match Environment.GetEnvironmentVariable variable with
    | null
    | "" -> failwithf "%s is not set: run the suites with ./test.sh" variable
    | command ->
        use p =
            Process.Start(ProcessStartInfo("bash", [| "-c"; command |], RedirectStandardOutput = true))

        p.WaitForExit()

        if p.ExitCode <> 0 then
            failwithf "%s failed with exit code %d" variable p.ExitCode

/// Demo app settings for a PostgreSQL table of its own.
let private onPostgres (table: string) =
    [
        "APP_ERROR_STORE", "postgres"
        "ConnectionStrings__ErrorMonitor", postgres ()
        "APP_ERROR_TABLE", table
    ]

let private groupCounts (client: HttpClient) =
    task {
        let! body = client.GetStringAsync "/dev/error/api/errors?page=1"
        use doc = JsonDocument.Parse body

        return
            [
                for i in doc.RootElement.GetProperty("items").EnumerateArray() ->
                    i.GetProperty("path").GetString(), i.GetProperty("count").GetInt64()
            ]
    }

[<Tests>]
let tests =
    testSequenced
    <| testList
        "postgres"
        [
            testTask' "two instances, 2 x 500 concurrent identical failures: one group, count exactly 1000"
            <| fun () ->
                task {
                    let table = "two_" + Guid.NewGuid().ToString "N"
                    use a = new DemoProcess(tempFolder (), onPostgres table)
                    use b = new DemoProcess(tempFolder (), onPostgres table)
                    do! a.WaitReadyAsync()
                    do! b.WaitReadyAsync()

                    let! statuses =
                        Task.WhenAll
                            [
                                for i in 1..1000 ->
                                    task {
                                        let client = if i % 2 = 0 then a.Client else b.Client
                                        use! r = client.GetAsync "/value-error"
                                        return r.StatusCode
                                    }
                            ]

                    Expect.allEqual statuses HttpStatusCode.InternalServerError "every request failed as the app would"
                    do! waitForGroups a.Client "/dev/error" 1 1000L
                    let! seenByB = groupCounts b.Client
                    Expect.equal seenByB [ "/value-error", 1000L ] "the other instance sees the same single group"
                }

            testTask' "concurrent first occurrences of new groups on two instances never fail or split"
            <| fun () ->
                task {
                    let table = "first_" + Guid.NewGuid().ToString "N"

                    use a =
                        new DemoProcess(tempFolder (), onPostgres table @ [ "APP_DEFAULT_LIST_SIZE", "100" ])

                    use b = new DemoProcess(tempFolder (), onPostgres table)
                    do! a.WaitReadyAsync()
                    do! b.WaitReadyAsync()

                    let! _ =
                        Task.WhenAll
                            [
                                for i in 1..50 do
                                    for client in [ a.Client; b.Client ] ->
                                        task {
                                            use! r = client.GetAsync(sprintf "/group/g%d" i)
                                            return r.StatusCode
                                        }
                            ]

                    do! waitForGroups a.Client "/dev/error" 50 100L
                    let! counts = groupCounts a.Client
                    Expect.equal counts.Length 50 "fifty groups, not more"
                    Expect.allEqual (counts |> List.map snd) 2L "each seen once by each instance"
                }

            testTask'
                "PostgreSQL stopped for 10 s during 2,000 failures: the app keeps answering; then exactly 2,000 are counted"
            <| fun () ->
                task {
                    let table = "outage_" + Guid.NewGuid().ToString "N"
                    use demo = new DemoProcess(tempFolder (), onPostgres table)
                    do! demo.WaitReadyAsync()
                    shell "ERRORMONITOR_TEST_PG_STOP"
                    let outage = Stopwatch.StartNew()
                    let mutable slowest = TimeSpan.Zero

                    try
                        // 2,000 failures in 100 rounds of 20 at once, spread over the outage; the home page between rounds.
                        for round in 1..100 do
                            let sw = Stopwatch.StartNew()

                            let! statuses =
                                Task.WhenAll
                                    [
                                        for _ in 1..20 ->
                                            task {
                                                use! r = demo.Client.GetAsync "/value-error"
                                                return r.StatusCode
                                            }
                                    ]

                            Expect.allEqual statuses HttpStatusCode.InternalServerError "fails as it would"
                            use! home = demo.Client.GetAsync "/"
                            Expect.equal home.StatusCode HttpStatusCode.OK "the app keeps answering"
                            slowest <- max slowest sw.Elapsed
                            let due = TimeSpan.FromMilliseconds(100.0 * float round)

                            if outage.Elapsed < due then
                                do! Task.Delay(due - outage.Elapsed)
                    finally
                        shell "ERRORMONITOR_TEST_PG_START"

                    Expect.isGreaterThanOrEqual outage.Elapsed (TimeSpan.FromSeconds 10.0) "the outage lasted 10 s"
                    Expect.isLessThan slowest (TimeSpan.FromSeconds 2.0) "no round waited on the database"
                    do! waitForGroups demo.Client "/dev/error" 1 2000L
                }

            testTask' "an unreachable database at start-up does not stop the app; a malformed connection string does"
            <| fun () ->
                task {
                    let port = freePort ()

                    use! app =
                        start
                            [
                                "APP_ERROR_STORE", "postgres"
                                "ConnectionStrings:ErrorMonitor",
                                sprintf "Host=127.0.0.1;Port=%d;Username=postgres;Timeout=1" port
                            ]
                            (fun s -> s.AddErrorMonitor() |> ignore)
                            ignore

                    let hash =
                        app.Monitor.RecordException(InvalidOperationException "kept in the queue")

                    Expect.isNotNull hash "recorded while the database is away"

                    let! (bad: exn option) =
                        task {
                            try
                                use! _ =
                                    start
                                        [
                                            "APP_ERROR_STORE", "postgres"
                                            "ConnectionStrings:ErrorMonitor", "Host=127.0.0.1;Port=notanumber"
                                        ]
                                        (fun s -> s.AddErrorMonitor() |> ignore)
                                        ignore

                                return None
                            with ex ->
                                return Some ex
                        }

                    match bad with
                    | Some(:? ErrorMonitorConfigException as e) ->
                        Expect.stringContains e.Message "ConnectionStrings:ErrorMonitor" "names the key"
                    | other -> failtestf "expected ErrorMonitorConfigException, got %A" other
                }
        ]
