#!/usr/bin/env bash
# The BenchmarkDotNet capture figures of this tree beside those of another revision, in alternating rounds on
# the same machine: a bare throw + catch, the request-thread work and the whole work per occurrence (stored in
# the in-memory store). Each round runs the baseline's benchmarks and this tree's (job short); a figure is the
# median of the rounds with their range, and the change is this tree's over the baseline's, round by round
# (odd rounds measure the baseline first, even rounds this tree first).
#   BASELINE=059a9a1 ROUNDS=3 benchmarks/capture-vs.sh    -> benchmarks/results/capture-vs-REVISION.md
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BASELINE=${BASELINE:?set BASELINE to a revision}
ROUNDS=${ROUNDS:-3}
WORK="$(mktemp -d)"
OUT="$ROOT/benchmarks/results/capture-vs-$BASELINE.md"

cleanup() {
    git -C "$ROOT" worktree remove --force "$WORK/baseline" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

git -C "$ROOT" worktree add --detach "$WORK/baseline" "$BASELINE" >/dev/null 2>&1
for tree in "$WORK/baseline" "$ROOT"; do
    dotnet build "$tree/benchmarks/ErrorMonitor.Benchmarks" -c Release -nologo -clp:ErrorsOnly >/dev/null
done

# One run of the three benchmarks in `tree`; its JSON report copied to $WORK/NAME-ROUND.json.
run() {
    local tree=$1 name=$2 round=$3
    (cd "$tree/benchmarks" &&
        rm -rf BenchmarkDotNet.Artifacts &&
        dotnet ErrorMonitor.Benchmarks/bin/Release/net10.0/ErrorMonitor.Benchmarks.dll \
            --filter '*CaptureBenchmarks.ThrowCatch*' '*CaptureBenchmarks.ErrorMonitorRequestThread*' \
            '*CaptureBenchmarks.ErrorMonitorWhole*' --job short --exporters json >"$WORK/$name-$round.log" 2>&1 &&
        cp BenchmarkDotNet.Artifacts/results/*CaptureBenchmarks-report-full-compressed.json "$WORK/$name-$round.json")
}

# Odd rounds run the baseline first, even rounds this tree first.
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then order="base this"; else order="this base"; fi
    for name in $order; do
        echo "round $round of $ROUNDS: $name" >&2
        if [ "$name" = base ]; then run "$WORK/baseline" base "$round"; else run "$ROOT" this "$round"; fi
    done
done
rm -rf "$ROOT/benchmarks/BenchmarkDotNet.Artifacts"

HEAD_REV=$(git -C "$ROOT" rev-parse --short HEAD)
/usr/bin/python3 - "$WORK" "$ROUNDS" "$BASELINE" "$HEAD_REV" <<'PY' | tee "$OUT"
import json, statistics, sys, datetime
work, rounds, base, head = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def figures(name, r):
    report = json.load(open(f"{work}/{name}-{r}.json"))
    return {b["Method"]: (b["Statistics"]["Mean"] / 1000.0, b["Memory"]["BytesAllocatedPerOperation"] / 1024.0)
            for b in report["Benchmarks"]}
runs = {n: [figures(n, r) for r in range(1, rounds + 1)] for n in ("base", "this")}
def med(xs):
    return f"{statistics.median(xs):.2f} [{min(xs):.2f}–{max(xs):.2f}]"
print(f"Capture cost, this tree ({head}) beside {base}, {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC: "
      f"{rounds} alternating rounds of BenchmarkDotNet (job short); median [range] of the rounds")
print()
print(f"| figure | {base}: µs, KB | this tree: µs, KB | change of time, this / {base} − 1 | change of allocation |")
print("| --- | --- | --- | --- | --- |")
for key, label in (("ThrowCatch", "bare throw + catch"),
                   ("ErrorMonitorRequestThread", "request thread (middleware), a repeat"),
                   ("ErrorMonitorWhole", "whole work per occurrence, stored")):
    bt = [f[key][0] for f in runs["base"]]; ba = [f[key][1] for f in runs["base"]]
    tt = [f[key][0] for f in runs["this"]]; ta = [f[key][1] for f in runs["this"]]
    dt = [t / b - 1 for t, b in zip(tt, bt)]; da = [t / b - 1 for t, b in zip(ta, ba)]
    print(f"| {label} | {med(bt)}; {med(ba)} | {med(tt)}; {med(ta)} | {statistics.median(dt):+.3f} "
          f"[{min(dt):+.3f}…{max(dt):+.3f}] | {statistics.median(da):+.3f} [{min(da):+.3f}…{max(da):+.3f}] |")
PY
