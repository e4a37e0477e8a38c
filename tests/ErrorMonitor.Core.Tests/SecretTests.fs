/// The default masking against what people put in requests and exceptions: for every channel, generated secrets
/// under generated sensitive keys (or in generated free-text shapes) never reach the built occurrence (its
/// request data, message and traceback: everything the store, the API, the pages and notifications show).
module internal ErrorMonitor.Core.Tests.SecretTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open ErrorMonitor.Core
open ErrorMonitor.Core.Tests.Generators

let private settings = Config.defaults
let private rule = Config.maskingRule settings
let private at = DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero)

/// Key names people use for secrets (the default names, in the shapes apps and headers write them).
let private names =
    [
        "token"
        "access_token"
        "refresh_token"
        "api_key"
        "apikey"
        "Api-Key"
        "auth"
        "authorization"
        "pwd"
        "passwd"
        "password"
        "session"
        "sessionid"
        "sig"
        "signature"
        "credentials"
        "private_key"
        "secret"
        "client_secret"
        "X-Auth-Token"
        "X-Access-Token"
        "Private-Token"
        "X-CSRF-Token"
        "X-Amz-Security-Token"
        "X-Forwarded-Authorization"
        "jwt"
        "PHPSESSID"
        "user_session"
        "AWS_SECRET_ACCESS_KEY"
    ]

let private sensitiveName: Gen<string> =
    gen {
        let! name = Gen.elements names
        let! flips = Gen.listOfLength name.Length (Gen.elements [ true; false ])

        return
            String(
                Seq.map2
                    (fun c up ->
                        if up then
                            Char.ToUpperInvariant c
                        else
                            Char.ToLowerInvariant c)
                    name
                    flips
                |> Array.ofSeq
            )
    }

let private secret: Gen<string> =
    gen {
        let! n = Gen.choose (6, 24)

        let! cs =
            Gen.arrayOfLength n (Gen.elements ([ 'a' .. 'z' ] @ [ 'A' .. 'Z' ] @ [ '0' .. '9' ]))

        return "S3CR3T" + String cs
    }

/// A Luhn-valid card number, with or without separators.
let private card: Gen<string> =
    gen {
        let! length = Gen.elements [ 13; 15; 16; 19 ]
        let! body = Gen.listOfLength (length - 1) (Gen.choose (0, 9))
        let digits = body |> List.map string |> String.concat ""

        let check = [ 0..9 ] |> List.find (fun d -> Masking.luhn (digits + string d))

        let all = digits + string check
        let! sep = Gen.elements [ ""; " "; "-" ]

        return all |> Seq.chunkBySize 4 |> Seq.map String |> String.concat sep
    }

let private request (f: RequestContext -> RequestContext) =
    f
        {
            Method = "POST"
            Scheme = "https"
            Host = "shop.example"
            Path = "/checkout"
            Query = [ "page", "2" ]
            Headers = [ "Accept", "*/*" ]
            Form = []
            Cookies = []
            RouteValues = []
            UserName = None
            TraceId = None
            Body = None
            Custom = []
        }

let private build (r: RequestContext option) (subject: Subject) (extra: (string * Data) list) =
    Events.build
        settings
        rule
        Limits.defaults
        None
        {
            Request = r
            Subject = subject
            Extra = extra
            OccurredAt = at
            Release = "1.0.0"
            Environment = "Test"
        }

let private exn (message: string) (data: (string * Data) list) =
    Subject.Exception
        {
            TypeName = "System.InvalidOperationException"
            Message = message
            Frames =
                [
                    {
                        Type = "Shop.Checkout"
                        Method = "Pay"
                        File = None
                        Line = None
                        Column = None
                    }
                ]
            FramesOmitted = 0
            Data = data
            Inner = []
            InnerOmitted = 0
        }

let private plain = exn "checkout failed" []

let private leaks (s: string) (e: ErrorEvent) =
    e.RequestData.Contains s || e.Message.Contains s || e.Traceback.Contains s

/// Free-text shapes of a key and a value, as bodies and messages hold them.
let private shapes (k: string) (v: string) =
    [
        sprintf "%s=%s&next=1" k v // form-like
        sprintf "{\"%s\": \"%s\", \"x\": 1" k v // JSON, cut
        sprintf "{'%s': '%s'}" k v // single-quoted JSON
        sprintf "db:\n  %s: %s\n  host: x" k v // YAML
        sprintf "Server=db;User Id=sa;%s=%s;Database=shop" k v // connection string
        sprintf "<%s>%s</%s>" k v k // XML
        sprintf "failed with %s=%s and more" k v // a message
        sprintf "charge failed: %s=%s" k v // a message whose first words look like a key
        sprintf "error: upstream: %s: %s" k v // keys after kept keys
    ]

let private escapedKey (k: string) =
    // The key's first letter as a JSON escape: "\u0070assword".
    sprintf "\\u%04x%s" (int k.[0]) (k.Substring 1)

let tests =
    testList
        "secrets"
        [
            property "query, form, route values, cookies and the path: a value under a sensitive key is never kept"
            <| Prop.forAll (Arb.fromGen (Gen.zip sensitiveName secret)) (fun (k, v) ->
                [
                    request (fun r -> { r with Query = [ k, v ] })
                    request (fun r -> { r with Form = [ k, v ] })
                    request (fun r -> { r with RouteValues = [ k, v ] })
                    request (fun r -> { r with Cookies = [ k, v ] })
                    request (fun r ->
                        { r with
                            Path = sprintf "/orders/%s=%s" k v
                        })
                ]
                |> List.forall (fun r -> not (leaks v (build (Some r) plain []))))

            property "headers: under a sensitive name, and a Referer's query"
            <| Prop.forAll (Arb.fromGen (Gen.zip sensitiveName secret)) (fun (k, v) ->
                let header = build (Some(request (fun r -> { r with Headers = [ k, v ] }))) plain []

                let referer =
                    build
                        (Some(
                            request (fun r ->
                                { r with
                                    Headers = [ "Referer", sprintf "https://shop.example/a?x=1&%s=%s#top" k v ]
                                })
                        ))
                        plain
                        []

                not (leaks v header) && not (leaks v referer))

            property "JSON bodies, custom context and Exception.Data: at any depth, keys escaped or not"
            <| Prop.forAll (Arb.fromGen (Gen.zip sensitiveName secret)) (fun (k, v) ->
                let nested = Data.Object [ "outer", Data.Object [ k, Data.String v ] ]

                let escapedText = sprintf "{\"a\": {\"%s\": \"%s\"}" (escapedKey k) v

                [
                    build (Some(request (fun r -> { r with Body = Some(Body.Json nested) }))) plain []
                    build (Some(request (fun r -> { r with Custom = [ "ctx", nested ] }))) plain []
                    build
                        (Some(
                            request (fun r ->
                                { r with
                                    Body = Some(Body.Text escapedText)
                                })
                        ))
                        plain
                        []
                    build None (exn "failed" [ "payload", nested ]) []
                    build None plain [ "extra", nested ]
                ]
                |> List.forall (fun e -> not (leaks v e)))

            property
                "free-text bodies and exception messages: form, JSON, single-quoted JSON, YAML, connection strings, XML"
            <| Prop.forAll (Arb.fromGen (Gen.zip sensitiveName secret)) (fun (k, v) ->
                shapes k v
                |> List.forall (fun text ->
                    let body =
                        build (Some(request (fun r -> { r with Body = Some(Body.Text text) }))) plain []

                    let message = build None (exn text []) []
                    let captured = build None (Subject.Message text) []
                    not (leaks v body) && not (leaks v message) && not (leaks v captured)))

            property "Bearer and Basic credentials and card numbers are masked wherever they stand"
            <| Prop.forAll (Arb.fromGen (Gen.zip secret card)) (fun (v, number) ->
                let texts =
                    [
                        sprintf "upstream said 401 for Authorization: Bearer %s" v
                        sprintf "retry with basic %s=" v
                        sprintf "card %s declined" number
                    ]

                let hidden (e: ErrorEvent) = not (leaks v e) && not (leaks number e)

                texts
                |> List.forall (fun t ->
                    hidden (build None (exn t []) [])
                    && hidden (build (Some(request (fun r -> { r with Query = [ "q", t ] }))) plain [])
                    && hidden (build (Some(request (fun r -> { r with Headers = [ "X-Note", t ] }))) plain [])
                    && hidden (build (Some(request (fun r -> { r with Body = Some(Body.Text t) }))) plain [])
                    && hidden (build None plain [ "note", Data.String t ])))

            test "what is not a secret stays: plain keys, short numbers, non-Luhn digit runs, words like Bearer alone" {
                let e =
                    build
                        (Some(
                            request (fun r ->
                                { r with
                                    Query = [ "order", "4111111111111112"; "sort", "name" ]
                                    Headers = [ "X-Request-Id", "1234567890123" ]
                                })
                        ))
                        (exn "order 12345 failed for the Bearer of bad news" [])
                        []

                Expect.stringContains e.RequestData "4111111111111112" "a digit run that fails Luhn"
                Expect.stringContains e.RequestData "\"sort\":\"name\"" "a plain key"
                Expect.stringContains e.Message "order 12345 failed for the Bearer of bad news" "the message as it was"
            }
        ]
