/// The public surface of the F# assemblies, as a reviewed file: PublicApiAnalyzers cannot read F#, so this
/// suite lists every public type and member of ErrorMonitor.Core and ErrorMonitor.Web by reflection (with
/// C# nullability: `?` may be null, `!` never null, nothing: oblivious) and compares the list with the
/// project's PublicAPI.Shipped.txt + PublicAPI.Unshipped.txt. A change to the surface fails here until the
/// files say it too (`ERRORMONITOR_ACCEPT_PUBLIC_API=1` rewrites PublicAPI.Unshipped.txt; review the diff).
/// It also checks what C# users see: no F# type in any member of the C#-facing namespaces, no type name
/// twice across the namespaces a C# app imports together, and null annotated where null is allowed.
module internal ErrorMonitor.Web.Tests.PublicApiTests

open System
open System.IO
open System.Reflection
open Expecto
open ErrorMonitor
open ErrorMonitor.Core

let private context = NullabilityInfoContext()

let rec private typeName (t: Type) : string =
    if t.IsGenericParameter then
        t.Name
    elif t.IsArray then
        typeName (t.GetElementType()) + "[]"
    elif t.IsByRef then
        typeName (t.GetElementType()) + "&"
    else
        let name =
            let raw = (if isNull t.FullName then t.Name else t.FullName).Replace('+', '.')

            let raw =
                if t.IsGenericType then
                    raw.Substring(0, raw.IndexOf '`')
                else
                    raw

            if t.IsGenericType then raw.Split('[').[0] else raw

        if t.IsGenericType then
            let args = t.GetGenericArguments() |> Array.map typeName
            sprintf "%s<%s>" name (String.Join(", ", args))
        else
            name

/// A type with its C# nullability, e.g. `System.Threading.Tasks.Task<ErrorMonitor.Core.ErrorRecord?>!`.
let rec private shown (t: Type) (info: NullabilityInfo) : string =
    let mark =
        if t.IsValueType || t.IsGenericParameter then
            ""
        else
            match info.ReadState with
            | NullabilityState.Nullable -> "?"
            | NullabilityState.NotNull -> "!"
            | _ -> ""

    if t.IsArray then
        shown (t.GetElementType()) info.ElementType + "[]" + mark
    elif
        t.IsGenericType
        && not (isNull info)
        && info.GenericTypeArguments.Length = t.GetGenericArguments().Length
    then
        let name = typeName (t.GetGenericTypeDefinition())
        let name = name.Substring(0, name.IndexOf '<')

        let args = Array.map2 shown (t.GetGenericArguments()) info.GenericTypeArguments

        sprintf "%s<%s>%s" name (String.Join(", ", args)) mark
    else
        typeName t + mark

let private parameters (ps: ParameterInfo array) =
    ps
    |> Array.map (fun p -> sprintf "%s %s" (shown p.ParameterType (context.Create p)) p.Name)
    |> fun xs -> String.Join(", ", xs)

let private kind (t: Type) =
    if t.IsInterface then "interface"
    elif t.IsEnum then "enum"
    elif t.IsValueType then "struct"
    elif t.IsAbstract && t.IsSealed then "static class"
    elif t.IsAbstract then "abstract class"
    elif t.IsSealed then "sealed class"
    else "class"

let private flags =
    BindingFlags.Public
    ||| BindingFlags.Instance
    ||| BindingFlags.Static
    ||| BindingFlags.DeclaredOnly

/// One line a public type and a line a public member, sorted.
let surface (assembly: Assembly) : string list =
    [
        for t in assembly.GetExportedTypes() do
            let name = typeName t

            let bases =
                [
                    if not (isNull t.BaseType) && t.BaseType <> typeof<obj> && not t.IsValueType then
                        typeName t.BaseType
                    for i in t.GetInterfaces() do
                        typeName i
                ]
                |> List.distinct
                |> List.sort

            yield
                sprintf
                    "%s %s%s"
                    (kind t)
                    name
                    (if bases.IsEmpty then
                         ""
                     else
                         " : " + String.Join(", ", bases))

            // Compiler-generated helpers (Debug builds of task code make some public) are no API.
            for m in
                t.GetMembers flags
                |> Array.filter (fun m -> not (m.Name.Contains "@" || m.Name.StartsWith "<")) do
                let isStatic (mi: MethodBase) = if mi.IsStatic then "static " else ""

                match m with
                | :? ConstructorInfo as c when c.IsPublic || c.IsFamily ->
                    yield sprintf "%s.ctor(%s)" name (parameters (c.GetParameters()))
                | :? MethodInfo as mi when not mi.IsSpecialName && (mi.IsPublic || mi.IsFamily) ->
                    let ret = shown mi.ReturnType (context.Create mi.ReturnParameter)

                    let virt =
                        if mi.IsAbstract then "abstract "
                        elif mi.IsVirtual && not mi.IsFinal then "virtual "
                        else ""

                    yield
                        sprintf
                            "%s%s%s.%s(%s) -> %s"
                            (isStatic mi)
                            virt
                            name
                            mi.Name
                            (parameters (mi.GetParameters()))
                            ret
                | :? PropertyInfo as p ->
                    let accessors =
                        [
                            if not (isNull p.GetMethod) && p.GetMethod.IsPublic then
                                "get;"
                            if not (isNull p.SetMethod) && p.SetMethod.IsPublic then
                                "set;"
                        ]

                    if not accessors.IsEmpty then
                        let st =
                            if (if isNull p.GetMethod then p.SetMethod else p.GetMethod).IsStatic then
                                "static "
                            else
                                ""

                        yield
                            sprintf
                                "%s%s.%s: %s { %s }"
                                st
                                name
                                p.Name
                                (shown p.PropertyType (context.Create p))
                                (String.Join(" ", accessors))
                | :? FieldInfo as f when f.IsPublic ->
                    if t.IsEnum then
                        if f.IsStatic then
                            yield sprintf "%s.%s = %O" name f.Name (Convert.ToInt64(f.GetRawConstantValue()))
                    else
                        yield
                            sprintf
                                "%s%s.%s: %s"
                                (if f.IsStatic then "static " else "")
                                name
                                f.Name
                                (shown f.FieldType (context.Create f))
                | :? EventInfo as e -> yield sprintf "event %s.%s: %s" name e.Name (typeName e.EventHandlerType)
                | _ -> ()
    ]
    |> List.distinct
    |> List.sortWith (fun a b -> String.CompareOrdinal(a, b))

let private repoRoot () =
    let rec up (dir: DirectoryInfo) =
        if isNull dir then
            failwith "no ErrorMonitor.sln above the test binaries"
        elif File.Exists(Path.Combine(dir.FullName, "ErrorMonitor.sln")) then
            dir.FullName
        else
            up dir.Parent

    up (DirectoryInfo AppContext.BaseDirectory)

let private declared (folder: string) =
    [ "PublicAPI.Shipped.txt"; "PublicAPI.Unshipped.txt" ]
    |> List.collect (fun f ->
        let path = Path.Combine(folder, f)

        if File.Exists path then
            List.ofArray (File.ReadAllLines path)
        else
            [])
    |> List.filter (fun l -> l.Trim() <> "" && not (l.StartsWith "#"))

let private matches (assembly: Assembly) (project: string) =
    test (sprintf "%s: the public surface is what %s/PublicAPI.*.txt declare" (assembly.GetName().Name) project) {
        let folder = Path.Combine(repoRoot (), project)
        let actual = surface assembly
        let expected = declared folder

        if Environment.GetEnvironmentVariable "ERRORMONITOR_ACCEPT_PUBLIC_API" = "1" then
            let shipped =
                set (
                    declared folder
                    |> List.filter (fun l ->
                        File.Exists(Path.Combine(folder, "PublicAPI.Shipped.txt"))
                        && (File.ReadAllLines(Path.Combine(folder, "PublicAPI.Shipped.txt"))
                            |> Array.contains l))
                )

            let unshipped = actual |> List.filter (fun l -> not (shipped.Contains l))
            File.WriteAllLines(Path.Combine(folder, "PublicAPI.Unshipped.txt"), "#nullable enable" :: unshipped)
        else
            let added = actual |> List.except expected
            let removed = expected |> List.except actual

            if not (added.IsEmpty && removed.IsEmpty) then
                let out = Environment.GetEnvironmentVariable "TEST_OUTPUT"

                if not (String.IsNullOrEmpty out) then
                    File.WriteAllLines(Path.Combine(out, assembly.GetName().Name + ".PublicAPI.actual.txt"), actual)

                failtestf
                    "the public API of %s changed; declare it in %s/PublicAPI.Unshipped.txt (or set ERRORMONITOR_ACCEPT_PUBLIC_API=1 and review the diff).\nNot declared:\n  %s\nDeclared but gone:\n  %s"
                    (assembly.GetName().Name)
                    project
                    (String.Join("\n  ", added))
                    (String.Join("\n  ", removed))
    }

let private core = typeof<ErrorRecord>.Assembly
let private web = typeof<IErrorStore>.Assembly
let private facade = typeof<AppErrorMonitor>.Assembly

/// Namespaces a C# app imports together.
let private csharpNamespaces =
    set
        [
            "ErrorMonitor"
            "ErrorMonitor.Core"
            "Microsoft.AspNetCore.Builder"
            "Microsoft.Extensions.DependencyInjection"
        ]

let rec private fsharpTypesIn (t: Type) : Type list =
    if isNull t then
        []
    elif t.HasElementType then
        fsharpTypesIn (t.GetElementType())
    elif t.Assembly = typeof<list<int>>.Assembly then
        [ t ]
    elif t.IsGenericType then
        t.GetGenericArguments() |> List.ofArray |> List.collect fsharpTypesIn
    else
        []

let private signatureTypes (m: MemberInfo) : Type list =
    match m with
    | :? MethodBase as mb ->
        [
            yield! mb.GetParameters() |> Array.map (fun p -> p.ParameterType)
            match mb with
            | :? MethodInfo as mi -> yield mi.ReturnType
            | _ -> ()
        ]
    | :? PropertyInfo as p -> [ p.PropertyType ]
    | :? FieldInfo as f -> [ f.FieldType ]
    | _ -> []

let private nullableReturn (m: MethodInfo) =
    (context.Create m.ReturnParameter).GenericTypeArguments.[0].ReadState

let private nullableProperty (t: Type) (name: string) =
    (context.Create(t.GetProperty name)).ReadState

let tests =
    testList
        "public API"
        [
            matches core "src/Core"
            matches web "src/Web"

            test "no member a C# user sees has an F# type in its signature" {
                let offending =
                    [
                        for a in [ core; web; facade ] do
                            for t in a.GetExportedTypes() do
                                if csharpNamespaces.Contains t.Namespace then
                                    for m in t.GetMembers flags do
                                        for bad in signatureTypes m |> List.collect fsharpTypesIn do
                                            sprintf "%s.%s uses %s" t.FullName m.Name bad.FullName
                    ]

                Expect.isEmpty offending "F# types in the C#-facing surface"
            }

            test "no public type name is declared twice across the namespaces a C# app imports together" {
                let clashes =
                    [ core; web; facade ]
                    |> List.collect (fun a -> a.GetExportedTypes() |> List.ofArray)
                    |> List.filter (fun t -> not t.IsNested && csharpNamespaces.Contains t.Namespace)
                    |> List.groupBy (fun t -> t.Name)
                    |> List.filter (fun (_, ts) -> ts.Length > 1)
                    |> List.map (fun (n, ts) ->
                        sprintf "%s in %s" n (String.Join(", ", ts |> List.map (fun t -> t.Namespace))))

                Expect.isEmpty clashes "a C# file importing these namespaces would not compile (CS0104)"
            }

            test "members that take or return null say so to C# (nullable annotations)" {
                // F# cannot write the byte-array annotation a generic return needs: the record stays oblivious, so
                // a C# store may return null without a warning (never annotated as never-null).
                Expect.notEqual
                    (nullableReturn (typeof<IErrorStore>.GetMethod "GetAsync"))
                    NullabilityState.NotNull
                    "IErrorStore.GetAsync returns null for an unknown hash"

                for name in [ "Sender"; "Record"; "DetailLink" ] do
                    Expect.equal
                        (nullableProperty typeof<Notification> name)
                        NullabilityState.Nullable
                        (sprintf "Notification.%s may be null" name)

                for name in [ "Subject"; "Body"; "Recipients"; "Url"; "Reason" ] do
                    Expect.equal
                        (nullableProperty typeof<Notification> name)
                        NullabilityState.NotNull
                        (sprintf "Notification.%s is never null" name)

                let httpContext (t: Type) =
                    (context.Create((t.GetMethod "BuildContext").GetParameters().[0])).ReadState

                Expect.equal
                    (httpContext typeof<IContextBuilder>)
                    NullabilityState.Nullable
                    "no HttpContext outside a request"

                Expect.equal
                    (httpContext typeof<DefaultContextBuilder>)
                    NullabilityState.Nullable
                    "no HttpContext outside a request"
            }
        ]
