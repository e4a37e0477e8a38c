module internal ErrorMonitor.Core.Tests.LogCaptureTests

open System
open Expecto
open ErrorMonitor.Core

let private s = Config.defaults

let private level (name: string) =
    List.findIndex ((=) name) Config.LogLevels

[<Tests>]
let tests =
    testList
        "log capture"
        [
            test
                "an exception is recorded at Error and up, a message at or above the threshold, nothing when off or disabled" {
                Expect.isTrue (LogCapture.records s "App" (level "error") true) "an exception at Error"
                Expect.isFalse (LogCapture.records s "App" (level "warning") true) "not below Error"
                Expect.isTrue (LogCapture.records s "App" (level "critical") false) "a message above the threshold"
                Expect.isFalse (LogCapture.records s "App" (level "warning") false) "not below it (Error by default)"
                let warnings = { s with LogLevel = level "warning" }
                Expect.isTrue (LogCapture.records warnings "App" (level "warning") false) "a lower threshold"
                Expect.isTrue (LogCapture.records warnings "App" (level "error") true) "exceptions still from Error"
                let off = { s with LogLevel = LogCapture.Off }
                Expect.isFalse (LogCapture.records off "App" (level "critical") true) "None turns it off"
                Expect.isFalse (LogCapture.wants off "App" (level "critical")) "and wants nothing"
                Expect.isFalse (LogCapture.records s "App" LogCapture.Off true) "an entry of level None"
                // APP_ERROR_ENABLED=false: the integration costs a logger nothing (no lookup, no breadcrumb).
                let disabled = { s with Enabled = false }
                Expect.isFalse (LogCapture.records disabled "App" (level "critical") true) "capture off records nothing"
                Expect.isFalse (LogCapture.wants disabled "Shop" (level "information")) "and keeps no breadcrumbs"
            }

            test "ErrorMonitor's own category is never recorded nor kept" {
                for hasException in [ true; false ] do
                    Expect.isFalse
                        (LogCapture.records s LogCapture.OwnCategory (level "critical") hasException)
                        "its own entries"

                Expect.isFalse (LogCapture.keepsCrumb s LogCapture.OwnCategory (level "error")) "nor as breadcrumbs"
                Expect.isTrue (LogCapture.records s "ErrorMonitor.Shop" (level "error") true) "an app's namespace is"
            }

            test "breadcrumbs: Information and up of the app's categories, not the framework's, none at 0" {
                Expect.isTrue (LogCapture.keepsCrumb s "Shop.Checkout" (level "information")) "the app's entry"
                Expect.isFalse (LogCapture.keepsCrumb s "Shop.Checkout" (level "debug")) "not below Information"

                Expect.isFalse
                    (LogCapture.keepsCrumb s "Microsoft.AspNetCore.Hosting.Diagnostics" (level "information"))
                    "not the host's"

                Expect.isFalse (LogCapture.keepsCrumb s "System.Net.Http.HttpClient" (level "warning")) "nor System's"
                Expect.isFalse (LogCapture.keepsCrumb { s with Breadcrumbs = 0 } "Shop" (level "error")) "0: none"
                Expect.isTrue (LogCapture.wants s "Shop" (level "information")) "a logger wants them"
                Expect.isFalse (LogCapture.wants s "Microsoft.AspNetCore" (level "information")) "not the framework's"
            }

            test
                "the integration does not ask for the host's request diagnostics, so a request starts no activity for it" {
                // The host starts an activity and a logging scope for every request when its diagnostics logger is
                // enabled at Critical: ErrorMonitor's logger must not be the one that enables it.
                for name in [ "critical"; "error"; "information"; "trace" ] do
                    Expect.isFalse (LogCapture.wants s LogCapture.HostingDiagnostics (level name)) name

                Expect.equal LogCapture.HostingDiagnostics "Microsoft.AspNetCore.Hosting.Diagnostics" "its category"
                // An entry it logs anyway (another logger enabled it) is recorded by the usual rule.
                Expect.isTrue (LogCapture.records s LogCapture.HostingDiagnostics (level "critical") true) "recorded"

                Expect.isTrue
                    (LogCapture.wants s "Microsoft.AspNetCore.Server.Kestrel" (level "critical"))
                    "the server's"

                Expect.isTrue (LogCapture.wants s "Microsoft.AspNetCore.Hosting" (level "error")) "a sibling category"
            }

            test "a message groups by category and template, whatever the values" {
                Expect.equal
                    (LogCapture.groupKey "Shop" "Order {Id} failed")
                    (LogCapture.groupKey "Shop" "Order {Id} failed")
                    "the same template"

                Expect.notEqual
                    (LogCapture.groupKey "Shop" "Order {Id} failed")
                    (LogCapture.groupKey "Billing" "Order {Id} failed")
                    "another category"
            }

            test "a breadcrumb is read back from request data as it was kept" {
                let t = DateTimeOffset(2026, 5, 1, 12, 0, 0, TimeSpan.Zero)

                let data =
                    Json.serialize (
                        Data.Object
                            [
                                LogCapture.BreadcrumbsKey,
                                Data.Array
                                    [
                                        LogCapture.crumbData t "Information" "Shop" "loading cart"
                                        LogCapture.crumbData (t.AddSeconds 1.0) "Warning" "Shop" "slow card"
                                    ]
                            ]
                    )

                Expect.equal
                    (LogCapture.crumbsOf data)
                    [
                        "2026-05-01T12:00:00.0000000Z", "Information", "Shop", "loading cart"
                        "2026-05-01T12:00:01.0000000Z", "Warning", "Shop", "slow card"
                    ]
                    "oldest first, every field"

                Expect.isEmpty (LogCapture.crumbsOf "{}") "none kept"
                Expect.isEmpty (LogCapture.crumbsOf "not json") "not JSON"
            }
        ]
