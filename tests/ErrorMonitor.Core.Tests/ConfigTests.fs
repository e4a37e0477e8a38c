module internal ErrorMonitor.Core.Tests.ConfigTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open ErrorMonitor.Core
open ErrorMonitor.Core.Tests.Generators

let private email = plainWord |> Gen.map (fun w -> w + "@example.com")

let private settings: Gen<Settings> =
    gen {
        let! enabled = Gen.elements [ true; false ]
        let! send = Gen.elements [ true; false ]
        let! recipients = Gen.listOf email |> Gen.map (List.truncate 3)
        let! prefix = Gen.oneof [ Gen.constant ""; plainWord ]
        let! maskWith = plainWord
        let! words = Gen.listOf plainWord |> Gen.map (List.truncate 4)
        let! path = Gen.listOf plainWord |> Gen.map (List.truncate 3)
        let! sender = Gen.oneof [ Gen.constant None; email |> Gen.map Some ]
        let! size = Gen.choose (1, 1000)
        let! store = Gen.elements [ StoreKind.Sqlite; StoreKind.Memory; StoreKind.Postgres ]
        let! table = Gen.elements [ "app_error"; "errors"; "Errors_2" ]

        let! smtpHost =
            Gen.oneof [ Gen.constant None; plainWord |> Gen.map (fun w -> Some(w + ".example.com")) ]

        let! port = Gen.choose (1, 65535)
        let! user = Gen.oneof [ Gen.constant None; plainWord |> Gen.map Some ]
        let! password = Gen.oneof [ Gen.constant None; plainWord |> Gen.map Some ]

        let! security =
            Gen.elements [ SmtpSecurity.None; SmtpSecurity.StartTls; SmtpSecurity.Tls ]

        let! webhook =
            Gen.oneof [ Gen.constant None; plainWord |> Gen.map (fun w -> Some("https://hooks.example.com/" + w)) ]

        let! baseUrl =
            Gen.oneof [ Gen.constant None; Gen.constant (Some "https://shop.example.com") ]

        let! every = Gen.elements [ true; false ]

        let! seconds =
            Gen.zip3 (Gen.choose (1, 100000)) (Gen.choose (1, 100000)) (Gen.choose (1, 600))

        let! cap = Gen.choose (1, 1000)
        let! perRegression = Gen.elements [ true; false ]
        let quiet, interval, timeout = seconds

        let recipients =
            if send && smtpHost.IsSome && recipients.IsEmpty then
                [ "ops@example.com" ]
            else
                recipients

        let sender =
            if send && not recipients.IsEmpty && sender.IsNone then
                Some "ops@example.com"
            else
                sender

        return
            {
                Enabled = enabled
                SendNotification = send
                RecipientEmails = recipients
                SubjectPrefix = prefix
                MaskWith = maskWith
                MaskedKeyHas = words
                MaskedKeys = if every then [] else [ "token"; "api_key" ]
                UrlPrefix = "/" + String.concat "/" path
                EmailSender = sender
                DefaultListSize = size
                Store = store
                TableName = table
                Notify =
                    {
                        SmtpHost = smtpHost
                        SmtpPort = port
                        SmtpUser = user
                        SmtpPassword = password
                        SmtpSecurity = security
                        WebhookUrl = webhook
                        BaseUrl = baseUrl
                        EveryOccurrence = every
                        QuietPeriod = TimeSpan.FromSeconds(float quiet)
                        Interval = TimeSpan.FromSeconds(float interval)
                        MaxPerInterval = cap
                        TicketPerRegression = perRegression
                        TicketEveryOccurrence = perRegression <> every
                        Timeout = TimeSpan.FromSeconds(float timeout)
                    }
                MaxPendingGroups = cap * 10
                ShutdownTimeout = TimeSpan.FromSeconds(float timeout)
                FlushInterval = TimeSpan.FromMilliseconds(float (interval % 5000 + 1))
                DetailsInterval = TimeSpan.FromSeconds(float (quiet % 600 + 1))
                Retention = TimeSpan.FromSeconds(float (interval + 1))
                MaxGroups = cap * 100 + 1
                SamplesPerGroup = quiet % 1000 + 1
                SpillFile = if every then None else Some("spill/" + maskWith + ".jsonl")
                LogLevel = (maskWith.Length + (if every then 3 else 0)) % 7
                Breadcrumbs = quiet % 1001
                Release = if every then Some("1.2." + string (quiet % 50)) else None
                RequestBody = snd Config.RequestBodies.[(quiet + cap) % Config.RequestBodies.Length]
                Ingest =
                    {
                        Keys =
                            if perRegression then
                                [ "k-" + String('x', 20) + maskWith ]
                            else
                                []
                        MaxBytes = 1024 + cap
                        RatePerMinute = cap
                        CorsOrigins = if every then [ "https://shop.example.com" ] else []
                        GroupsPerHour = cap + 1
                    }
            }
    }

let private parse (pairs: (string * string) list) = Config.parse (Map.ofList pairs)

let private errorKeys (pairs: (string * string) list) =
    match parse pairs with
    | Ok _ -> []
    | Error errors -> errors |> List.map (fun e -> e.Key)

[<Tests>]
let tests =
    testList
        "configuration"
        [
            property "settings written as key/value pairs read back to the same settings"
            <| Prop.forAll (arb settings) (fun s -> Config.parse (Config.toMap s) = Ok s)

            test "no keys give the seed's defaults" {
                Expect.equal (parse []) (Ok Config.defaults) "defaults"
                Expect.equal Config.defaults.MaskWith "**************" "mask text"
                Expect.equal Config.defaults.MaskedKeyHas [ "password"; "secret" ] "masked words"
                Expect.equal Config.defaults.UrlPrefix "/dev/error" "prefix"
                Expect.equal Config.defaults.DefaultListSize 20 "list size"
            }

            test "recipients as one string, a comma-separated string or an indexed list" {
                let recipients pairs =
                    match parse pairs with
                    | Ok s -> s.RecipientEmails
                    | Error e -> failwithf "%A" e

                Expect.equal (recipients [ "APP_ERROR_RECIPIENT_EMAIL", "a@x.io" ]) [ "a@x.io" ] "single"

                Expect.equal
                    (recipients [ "APP_ERROR_RECIPIENT_EMAIL", "('a@x.io', 'b@x.io')" ])
                    [ "a@x.io"; "b@x.io" ]
                    "tuple-like"

                Expect.equal
                    (recipients [ "APP_ERROR_RECIPIENT_EMAIL:0", "a@x.io"; "APP_ERROR_RECIPIENT_EMAIL:1", "b@x.io" ])
                    [ "a@x.io"; "b@x.io" ]
                    "indexed"
            }

            test "APP_ERROR_MASKED_KEY_HAS = None disables the key rule" {
                match parse [ "APP_ERROR_MASKED_KEY_HAS", "None" ] with
                | Ok s -> Expect.equal s.MaskedKeyHas [] "no words"
                | Error e -> failwithf "%A" e
            }

            test "notifications on with recipients but no sender name APP_ERROR_EMAIL_SENDER" {
                let keys =
                    errorKeys [ "APP_ERROR_SEND_NOTIFICATION", "true"; "APP_ERROR_RECIPIENT_EMAIL", "a@x.io" ]

                Expect.equal keys [ "APP_ERROR_EMAIL_SENDER" ] "the sender key"
            }

            test "every problem is reported, each with its key" {
                let keys =
                    errorKeys
                        [
                            "APP_DEFAULT_LIST_SIZE", "0"
                            "APP_ERROR_URL_PREFIX", "dev/error"
                            "APP_ERROR_STORE", "mongo"
                            "APP_ERROR_SEND_NOTIFICATION", "maybe"
                        ]

                Expect.equal
                    (List.sort keys)
                    (List.sort
                        [
                            "APP_DEFAULT_LIST_SIZE"
                            "APP_ERROR_URL_PREFIX"
                            "APP_ERROR_STORE"
                            "APP_ERROR_SEND_NOTIFICATION"
                        ])
                    "all four"
            }

            test "APP_ERROR_RELEASE (at most 200 characters) and APP_ERROR_REQUEST_BODY (none, small, medium, always)" {
                match parse [ "APP_ERROR_RELEASE", " 2.4.1+abc "; "APP_ERROR_REQUEST_BODY", "Small" ] with
                | Ok s ->
                    Expect.equal s.Release (Some "2.4.1+abc") "trimmed"
                    Expect.equal s.RequestBody 1000 "small: 1,000 bytes"
                | Error e -> failtestf "%A" e

                match parse [] with
                | Ok s ->
                    Expect.isNone s.Release "no release set: the shell reads the assembly's"
                    Expect.equal s.RequestBody 0 "bodies are not recorded by default"
                | Error e -> failtestf "%A" e

                for value, bytes in [ "none", 0; "medium", 10000; "always", 131072 ] do
                    match parse [ "APP_ERROR_REQUEST_BODY", value ] with
                    | Ok s -> Expect.equal s.RequestBody bytes value
                    | Error e -> failtestf "%A" e

                Expect.equal
                    (errorKeys [ "APP_ERROR_RELEASE", String('r', 201); "APP_ERROR_REQUEST_BODY", "large" ]
                     |> List.sort)
                    [ "APP_ERROR_RELEASE"; "APP_ERROR_REQUEST_BODY" ]
                    "a release too long and an unknown body size are refused, each named"
            }

            test
                "APP_ERROR_DETAILS_INTERVAL takes 0s (every occurrence a sample candidate), the other durations do not; samples per group 1 to 1,000" {
                match parse [ "APP_ERROR_DETAILS_INTERVAL", "0s"; "APP_ERROR_SAMPLES_PER_GROUP", "1000" ] with
                | Ok s ->
                    Expect.equal s.DetailsInterval TimeSpan.Zero "zero"
                    Expect.equal s.SamplesPerGroup 1000 "the most"
                | Error e -> failtestf "refused: %s" (Config.describe e)

                Expect.equal
                    (List.sort (errorKeys [ "APP_ERROR_RETENTION", "0s"; "APP_ERROR_DETAILS_INTERVAL", "-1s" ]))
                    [ "APP_ERROR_DETAILS_INTERVAL"; "APP_ERROR_RETENTION" ]
                    "no zero retention, no negative interval"

                for bad in [ "0"; "1001"; "ten" ] do
                    Expect.equal
                        (errorKeys [ "APP_ERROR_SAMPLES_PER_GROUP", bad ])
                        [ "APP_ERROR_SAMPLES_PER_GROUP" ]
                        (sprintf "%s samples refused" bad)

                match parse [] with
                | Ok s -> Expect.equal s.SamplesPerGroup 10 "ten by default"
                | Error _ -> failtest "defaults refused"
            }

            test "the message names the key" {
                match parse [ "APP_DEFAULT_LIST_SIZE", "-3" ] with
                | Error e -> Expect.stringContains (Config.describe e) "APP_DEFAULT_LIST_SIZE" "named"
                | Ok _ -> failtest "accepted"
            }

            test "keys are read whatever their case, and a trailing slash on the prefix is dropped" {
                match parse [ "app_error_url_prefix", "/ops/errors/" ] with
                | Ok s -> Expect.equal s.UrlPrefix "/ops/errors" "trimmed"
                | Error e -> failwithf "%A" e
            }

            test "APP_ERROR_TABLE refuses SQL keywords in any case, naming the key; other identifiers pass" {
                for word in [ "order"; "ORDER"; "Group"; "user"; "select"; "table"; "index"; "values" ] do
                    match parse [ Config.TableKey, word ] with
                    | Error [ e ] ->
                        Expect.equal e.Key Config.TableKey word
                        Expect.stringContains e.Problem "keyword" word
                    | other -> failtestf "%s: %A" word other

                for name in [ "orders"; "app_error"; "user_errors"; "Errors_2" ] do
                    match parse [ Config.TableKey, name ] with
                    | Ok s -> Expect.equal s.TableName name name
                    | Error e -> failtestf "%s: %A" name e
            }

            test "the key list is what parse reads: every key constant is read, and each is listed once" {
                let constants =
                    typeof<Settings>.Assembly.GetTypes()
                    |> Array.filter (fun t ->
                        t.FullName = "ErrorMonitor.Core.Config"
                        || t.FullName = "ErrorMonitor.Core.ConfigModule")
                    |> Array.collect (fun t ->
                        t.GetFields(
                            Reflection.BindingFlags.Static
                            ||| Reflection.BindingFlags.Public
                            ||| Reflection.BindingFlags.NonPublic
                        ))
                    |> Array.filter (fun f -> f.IsLiteral && f.Name.EndsWith "Key")
                    |> Array.map (fun f -> string (f.GetRawConstantValue()))
                    |> Set.ofArray

                Expect.isGreaterThan constants.Count 30 "the key constants are found"
                Expect.equal (Set.ofList Config.keys) constants "keys read by parse = key constants"
                Expect.equal Config.keys.Length (List.distinct Config.keys).Length "no key twice"
            }

            test "a value under every listed key changes what parse reads (no key is listed but ignored)" {
                // A value that is wrong for every key: each key must then be reported, so each is really read.
                let errors =
                    match Config.parse (Config.keys |> List.map (fun k -> k, "\u0001 not valid") |> Map.ofList) with
                    | Ok _ -> []
                    | Error e -> e |> List.map (fun e -> e.Key)

                let silent =
                    Config.keys
                    |> List.filter (fun k -> not (List.contains k errors))
                    // Free-text keys accept any text: their value must show in the settings instead.
                    |> List.filter (fun k ->
                        match Config.parse (Map.ofList [ k, "marker-value@example.com" ]) with
                        | Ok s -> not ((sprintf "%A" s).Contains "marker-value")
                        | Error _ -> false)

                Expect.isEmpty silent "keys whose value is neither rejected nor kept"
            }
        ]
