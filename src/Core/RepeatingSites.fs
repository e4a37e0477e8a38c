namespace ErrorMonitor.Core

/// Which throw sites come back. A site whose group was written with its details is remembered (its repeats then
/// counted in place, without a capture) only once it has shown that it repeats: it came again while its first
/// occurrence still waited, or its details were built before. A storm of sites that each fail once (a new group a
/// request) then fills no table of one-time sites, whose entries would each outlive the GC's youngest generation
/// and hold the group's header; a site that repeats costs one more capture before it is remembered.
///
/// `RepeatingSites` notes the sites whose details were built, by a 64-bit fingerprint, in a fixed table of `slots`
/// marks (a power of two, at least 4) in sets of four: a site's set is its fingerprint's low bits, its mark the high
/// 32. A site is found while its mark stays in its set; a new site takes an empty place of its set, or the next in
/// turn (round robin over the table), so sites that share a set do not evict each other back and forth for ever.
/// Bounded, allocated once; a site evicted by another is found on a later build instead (one more capture). Not
/// thread-safe: one caller (the engine's shape loop).
type internal RepeatingSites(slots: int) =
    do
        if slots < 4 || slots &&& (slots - 1) <> 0 then
            invalidArg (nameof slots) "the slots of a table of repeating sites are a power of two, at least 4"

    let table: uint32 array = Array.zeroCreate slots
    let sets = uint64 (slots / 4 - 1)
    let mutable turn = 0

    /// True when a site of this fingerprint was noted before (and its mark is still in its set); notes it
    /// otherwise. A mark is never 0 (0 is an empty place).
    member _.Seen(fingerprint: uint64) : bool =
        let first = int (fingerprint &&& sets) * 4
        let mark = uint32 (fingerprint >>> 32) ||| 1u
        let mutable found = false
        let mutable empty = -1

        for i in first .. first + 3 do
            if table.[i] = mark then
                found <- true
            elif empty < 0 && table.[i] = 0u then
                empty <- i

        if not found then
            let place =
                if empty >= 0 then
                    empty
                else
                    turn <- (turn + 1) &&& 3
                    first + turn

            table.[place] <- mark

        found

[<RequireQualifiedAccess>]
module internal RepeatingSites =

    /// Slots of the engine's table: 65,536 marks of 4 bytes (256 KB, allocated once), 16,384 sets: ten thousand
    /// repeating sites fit with a few left over (a site in a set of more than four is found a build later).
    let slots = 65536

    /// Whether a site whose group was just built with its details is remembered as known: when it repeated
    /// while its first occurrence waited, or its details were built before (`seenBefore`: `RepeatingSites.Seen`).
    let remember (repeated: bool) (seenBefore: bool) : bool = repeated || seenBefore
