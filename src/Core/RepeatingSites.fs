namespace ErrorMonitor.Core

/// Which throw sites come back. A site whose group was written with its details is remembered (its repeats then
/// counted in place, without a capture) only once it has shown that it repeats: it came again while its first
/// occurrence still waited, or its details were built before. A storm of sites that each fail once (a new group a
/// request) then fills no table of one-time sites, whose entries would each outlive the GC's youngest generation
/// and hold the group's header; a site that repeats costs one more capture before it is remembered.
///
/// `RepeatingSites` notes the sites whose details were built, by a 64-bit fingerprint, in a fixed table of `slots`
/// entries (a power of two): a site is found if no other site took its slot since. Bounded, allocated once; a
/// site evicted by another is found on its next build instead (one more capture). Not thread-safe: one writer.
type internal RepeatingSites(slots: int) =
    do
        if slots <= 0 || slots &&& (slots - 1) <> 0 then
            invalidArg (nameof slots) "the slots of a table of repeating sites are a power of two"

    let table: uint32 array = Array.zeroCreate slots
    let mask = uint64 (slots - 1)

    /// The table's slots.
    member _.Slots = slots

    /// True when a site of this fingerprint was noted before (and kept its slot); notes it otherwise. The slot
    /// is the fingerprint's low bits, the stored mark its high 32 bits (never 0: 0 is an empty slot).
    member _.Seen(fingerprint: uint64) : bool =
        let slot = int (fingerprint &&& mask)
        let mark = uint32 (fingerprint >>> 32) ||| 1u

        if table.[slot] = mark then
            true
        else
            table.[slot] <- mark
            false

[<RequireQualifiedAccess>]
module internal RepeatingSites =

    /// Slots of the engine's table: 16,384 of 4 bytes (64 KB: below the GC's large objects).
    let slots = 16384

    /// Whether a site whose group was just built with its details is remembered as known: when it repeated
    /// while its first occurrence waited, or its details were built before (`seenBefore`: `RepeatingSites.Seen`).
    let remember (repeated: bool) (seenBefore: bool) : bool = repeated || seenBefore
