module internal ErrorMonitor.Core.Tests.Main

open Expecto

[<EntryPoint>]
let main argv =
    testList
        "core"
        [
            MaskingTests.tests
            ExceptionTests.tests
            FingerprintTests.tests
            TracebackTests.tests
            ConfigTests.tests
            PagingTests.tests
            EventTests.tests
            PolicyTests.tests
            EventTests.spillTests
            EventTests.journalTests
            ReportTests.tests
            LocalOnlyTests.tests
            LocalOnlyTests.keyLimitTests
            SecretTests.tests
            TriageTests.tests
            HistoryTests.tests
            HistoryTests.culpritTests
            HistoryTests.sampleTests
            LogCaptureTests.tests
            SentryTests.tests
        ]
    |> ErrorMonitor.Tests.TestMain.run argv
