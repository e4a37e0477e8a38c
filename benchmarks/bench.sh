#!/usr/bin/env bash
# Capture cost, side by side with Sentry and a bare throw + catch, in one BenchmarkDotNet run (Release,
# MemoryDiagnoser); then store figures for SQLite (and PostgreSQL when ERRORMONITOR_TEST_POSTGRES is set).
# Prints markdown tables and saves them to benchmarks/results/. JOB=short (default) or JOB=default.
#   STORE_GROUPS=1000000 benchmarks/bench.sh   (groups for the store figures; 1,000,000 by default)
set -euo pipefail
cd "$(dirname "$0")"
JOB=${JOB:-short}
STORE_GROUPS=${STORE_GROUPS:-1000000}
mkdir -p results
dotnet build ErrorMonitor.Benchmarks -c Release -nologo -clp:ErrorsOnly >/dev/null
DLL=ErrorMonitor.Benchmarks/bin/Release/net10.0/ErrorMonitor.Benchmarks.dll
rm -rf BenchmarkDotNet.Artifacts
dotnet "$DLL" --filter '*CaptureBenchmarks*' --job "$JOB" --exporters json >results/capture-run.log 2>&1
/usr/bin/python3 - <<'PY' | tee results/capture.md
import glob, json, datetime
report = json.load(open(glob.glob("BenchmarkDotNet.Artifacts/results/*CaptureBenchmarks-report-full-compressed.json")[0]))
rows = {b["Method"]: (b["Statistics"]["Mean"] / 1000.0, b["Memory"]["BytesAllocatedPerOperation"] / 1024.0) for b in report["Benchmarks"]}
floor_t, floor_a = rows["ThrowCatch"]
sentry_t, sentry_a = rows["SentryCaptureException"]
def line(name, key, target):
    t, a = rows[key]
    rt = (t - floor_t) / (sentry_t - floor_t)
    ra = (a - floor_a) / (sentry_a - floor_a)
    met = "yes" if rt <= target and ra <= target else "**no**"
    return f"| {name} | {t:.1f} µs, {a:.1f} KB | {sentry_t:.1f} µs, {sentry_a:.1f} KB | {rt:.3f} (time), {ra:.3f} (alloc) | ≤ {target:.2f} | {met} |"
print(f"Capture cost, {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, one BenchmarkDotNet run; ratios are of the work added to a bare throw + catch ({floor_t:.1f} µs, {floor_a:.1f} KB)")
print()
print("| figure | ErrorMonitor | Sentry CaptureException | ratio | target | met? |")
print("| --- | --- | --- | --- | --- | --- |")
print(line("work on the request thread (middleware)", "ErrorMonitorRequestThread", 0.05))
print(line("whole work per occurrence, stored", "ErrorMonitorWhole", 0.20))
PY
dotnet "$DLL" store --groups "$STORE_GROUPS" --out results/store.md
