module internal ErrorMonitor.Web.Tests.Main

open Expecto

[<EntryPoint>]
let main argv =
    testList
        "web"
        [
            CaptureTests.tests
            DemoAppTests.tests
            BrowseTests.tests
            BrowserTests.tests
            StoreContractTests.tests
            PostgresTests.tests
            NotificationTests.tests
            ReliabilityTests.tests
            BadInputTests.tests
            IngestTests.tests
            TriageTests.tests
            HistoryTests.tests
            HistoryTests.retentionTests
            SampleTests.tests
            SentryTests.tests
            PublicApiTests.tests
        ]
    |> ErrorMonitor.Tests.TestMain.run argv
