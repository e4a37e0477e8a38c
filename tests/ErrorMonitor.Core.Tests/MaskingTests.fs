module internal ErrorMonitor.Core.Tests.MaskingTests

open Expecto
open FsCheck
open FsCheck.FSharp
open ErrorMonitor.Core
open ErrorMonitor.Core.Tests.Generators

let private maskWith = "**************"
let private rule = Masking.keyRule sensitiveWords maskWith

let private isSensitive (k: string) =
    let l = k.ToLowerInvariant()
    sensitiveWords |> List.exists (fun w -> l.Contains w)

let rec private hasSensitiveKey (d: Data) =
    match d with
    | Data.Object fields -> fields |> List.exists (fun (k, v) -> isSensitive k || hasSensitiveKey v)
    | Data.Array items -> items |> List.exists hasSensitiveKey
    | _ -> false

[<Tests>]
let tests =
    testList
        "masking"
        [
            property "no value under a key containing a configured word survives, at any depth, in any case"
            <| Prop.forAll (arb objectData) (fun d ->
                let tagged = tagLeaves isSensitive d
                let json = Json.serialize (Masking.data rule tagged)
                not (json.Contains "S3CR3T"))

            property "masking is idempotent"
            <| Prop.forAll (arb objectData) (fun d -> Masking.data rule (Masking.data rule d) = Masking.data rule d)

            property "a tree without sensitive keys is left untouched"
            <| Prop.forAll (arb (objectData |> Gen.filter (hasSensitiveKey >> not))) (fun d -> Masking.data rule d = d)

            property "keys are never changed, only values"
            <| Prop.forAll (arb pairs) (fun ps -> Masking.pairs rule ps |> List.map fst = (ps |> List.map fst))

            // The rules decide without making a key's lower-case or normal form; these compare them with the
            // plain reading of their documented rule over keys of letters, separators, digits and a few
            // characters whose case rules differ (Kelvin sign, dotless i, long s, capital I with dot).
            property "the key rules decide as the plain reading of their rule does, for any key"
            <| Prop.forAll
                (arb (
                    Gen.elements
                        [
                            'a'
                            'S'
                            'e'
                            'C'
                            'r'
                            'T'
                            'o'
                            'k'
                            'E'
                            'N'
                            '-'
                            '_'
                            '.'
                            ' '
                            '1'
                            '\u212A'
                            '\u0131'
                            '\u017F'
                            '\u0130'
                            'I'
                        ]
                    |> Gen.arrayOf
                    |> Gen.map System.String
                ))
                (fun key ->
                    let words = [ "secret"; "token"; "\u0131d" ]
                    let lower = key.ToLowerInvariant()
                    let byWords = words |> List.exists (fun w -> lower.Contains w)
                    let normal = Masking.normalName key

                    let byNames =
                        [ "secret"; "token"; "sk" ]
                        |> List.exists (fun n -> normal.EndsWith(n, System.StringComparison.Ordinal))

                    let decide (r: MaskingRule) = r key <> MaskDecision.Keep

                    decide (Masking.keyRule words maskWith) = byWords
                    && decide (Masking.keyRule [ "secret"; "token" ] maskWith) =
                        ([ "secret"; "token" ] |> List.exists (fun w -> lower.Contains w))
                    && decide (Masking.nameRule [ "secret"; "token"; "s-k" ] maskWith) = byNames)

            property "a sensitive key in any letter case is masked with the configured text"
            <| Prop.forAll (arb sensitiveKey) (fun k -> rule k = MaskDecision.MaskWith maskWith)

            property "JSON text cut anywhere keeps no value of a masked key"
            <| Prop.forAll (arb (Gen.zip objectData (Gen.choose (0, 1000)))) (fun (d, cut) ->
                let json = Json.serialize (tagLeaves isSensitive d)
                let text = json.Substring(0, min cut json.Length)
                not ((Masking.text rule text).Contains "S3CR3T"))

            property "masking text leaves text without masked keys as it is (the same string: nothing copied)"
            <| Prop.forAll (arb (objectData |> Gen.filter (hasSensitiveKey >> not))) (fun d ->
                let json = Json.serialize d
                let form = "user=bob&lang=en; <user>bob</user> " + json

                obj.ReferenceEquals(Masking.text rule json, json)
                && obj.ReferenceEquals(Masking.text rule form, form))

            test "only the value of a masked key changes: the text around it stays as it was, to the character" {
                let text =
                    "{\"a\": 1, \"password\" : \"x\\\"y\", \"b\": [\"secret\"], \"apiSecret\":{\"z\":2}} tail"

                Expect.equal
                    (Masking.jsonText rule text)
                    ("{\"a\": 1, \"password\":\""
                     + maskWith
                     + "\", \"b\": [\"secret\"], \"apiSecret\":\""
                     + maskWith
                     + "\"} tail")
                    "two values masked, all else as it was"

                let text =
                    "user=bob&password=P1; <a x=\"1\">keep</a><secretCode>S2</secretCode> end"

                Expect.equal
                    (Masking.text rule text)
                    ("user=bob&password="
                     + maskWith
                     + "; <a x=\"1\">keep</a><secretCode>"
                     + maskWith
                     + "</secretCode> end")
                    "a form value and an element masked, all else as it was"
            }

            test "JSON nested past any parser's depth, forms and XML are masked by key" {
                let deep =
                    String.replicate 5000 "{\"a\":"
                    + "{\"Password\":\"DEEP-1\"}"
                    + String.replicate 5000 "}"

                for text in
                    [
                        deep
                        "user=bob&password=FORM-2&x=1"
                        "<login><user>bob</user><secretCode>XML-3</secretCode></login>"
                        "password: LINE-4\nuser: bob"
                        "{\"secret\": {\"nested\": [\"ARR-5\", {\"x\": \"ARR-6\"}]}, \"user\": \"bob\"}"
                    ] do
                    let masked = Masking.text rule text

                    for s in [ "DEEP-1"; "FORM-2"; "XML-3"; "LINE-4"; "ARR-5"; "ARR-6" ] do
                        Expect.isFalse
                            (masked.Contains s)
                            (sprintf "%s is masked in %s" s (masked.Substring(0, min 80 masked.Length)))

                    Expect.isTrue (masked.Contains "bob" || masked = Masking.text rule deep) "other values stay"
            }

            test "masks a form field whose name contains Secret" {
                let masked = Masking.pairs rule [ "ClientSecret", "hunter2"; "name", "bob" ]
                Expect.equal masked [ "ClientSecret", maskWith; "name", "bob" ] "only the secret field is masked"
            }

            test "configured words match whatever their own case is" {
                let r = Masking.keyRule [ "Card" ] "#"
                Expect.equal (r "CREDITCARD") (MaskDecision.MaskWith "#") "upper-case key masked"
                Expect.equal (r "name") MaskDecision.Keep "other key kept"
            }

            test "an empty word list disables the key rule" {
                let r = Masking.keyRule [] maskWith
                Expect.equal (r "password") MaskDecision.Keep "nothing masked"
            }

            test "credential headers are masked even when the key rule is off" {
                let headers =
                    [
                        "Authorization", "Bearer abc"
                        "cookie", "a=b"
                        "X-Api-Key", "k"
                        "Proxy-Authorization", "p"
                        "Set-Cookie", "s"
                        "Accept", "text/html"
                    ]

                let masked = Masking.headers Masking.keepAll "###" headers
                let values = masked |> List.map snd
                Expect.equal values [ "###"; "###"; "###"; "###"; "###"; "text/html" ] "credentials masked"
            }

            test "Exception.Data is masked at every level of the exception tree" {
                let leaf =
                    {
                        TypeName = "E"
                        Message = ""
                        Frames = []
                        FramesOmitted = 0
                        Data = [ "dbPassword", Data.String "pw1" ]
                        Inner = []
                        InnerOmitted = 0
                    }

                let outer =
                    { leaf with
                        Data = [ "apiSecret", Data.String "pw2" ]
                        Inner = [ leaf ]
                    }

                let text = Traceback.format Limits.defaults (Masking.exceptionInfo rule "###" outer)
                Expect.isFalse (text.Contains "pw1" || text.Contains "pw2") "no secret in the traceback"
                Expect.stringContains text maskWith "the mask text is shown"
            }
        ]
