/// The entry point every Expecto suite shares: runs the tests and prints the plain closing line
/// `N passed, N failed, N skipped` that ./test.sh adds up.
module ErrorMonitor.Tests.TestMain

open Expecto
open Expecto.Impl

let private summaryLine (summary: TestRunSummary) =
    let failed = summary.failed.Length + summary.errored.Length
    printfn "%d passed, %d failed, %d skipped" summary.passed.Length failed summary.ignored.Length

/// Runs `tests` with the command line's Expecto arguments and prints the closing line.
let run (argv: string array) (tests: Test) : int =
    let printer =
        { TestPrinters.defaultPrinter with
            summary =
                fun config summary ->
                    async {
                        do! TestPrinters.defaultPrinter.summary config summary
                        summaryLine summary
                    }
        }

    Tests.runTestsWithCLIArgs [ CLIArguments.Printer printer ] argv tests
