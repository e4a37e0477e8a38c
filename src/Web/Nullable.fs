namespace System.Runtime.CompilerServices

open System

/// C#'s nullable-reference annotation for one type (1: never null, 2: may be null), declared here because F#
/// emits it only under its own nullness checking, which the shell does not use. The C# compiler and
/// NullabilityInfoContext read it by name, so C# users see which plug-in members take or return null (for
/// example `string? Sender`, `HttpContext? httpContext`). F# cannot write the byte-array form in an attribute,
/// so a generic return such as `Task<ErrorRecord>` stays oblivious (a C# implementation may declare it
/// `Task<ErrorRecord?>` without a warning).
[<Sealed>]
[<AttributeUsage(AttributeTargets.Field
                 ||| AttributeTargets.Parameter
                 ||| AttributeTargets.Property
                 ||| AttributeTargets.ReturnValue,
                 AllowMultiple = false,
                 Inherited = false)>]
type internal NullableAttribute(flag: byte) =
    inherit Attribute()

    /// The flags, as the C# compiler reads them.
    member val NullableFlags: byte array = [| flag |]
