#!/usr/bin/env bash
# End-to-end load: the demo app (Release) on 127.0.0.1 driven by wrk, each figure measured with ErrorMonitor
# on and off in the same run (the demo honours APP_ERROR_ENABLED=false). Prints a markdown table and saves it
# to benchmarks/results/load.md. Only 127.0.0.1 is loaded; every run is bounded in time.
#   DURATION=10s CONNECTIONS=32 ROUNDS=3 STORM=1000000 benchmarks/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
ROUNDS=${ROUNDS:-3}
STORM=${STORM:-1000000}
OUT="$ROOT/benchmarks/results/load.md"

if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" = 0 ]; then apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    else echo "wrk is missing: apt-get install wrk"; exit 1; fi
fi

dotnet build samples/DemoApp -c Release -nologo -clp:ErrorsOnly >/dev/null
DLL="$ROOT/samples/DemoApp/bin/Release/net10.0/DemoApp.dll"
WORK=$(mktemp -d /tmp/errormonitor-load.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done; rm -rf "$WORK"; }
trap cleanup EXIT

cat >"$WORK/groups.lua" <<'LUA'
-- 10,000 distinct groups: the demo groups /group/{id} failures by id (its custom fingerprint).
math.randomseed(42)
request = function() return wrk.format("GET", "/group/" .. math.random(1, 10000)) end
LUA

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# Starts the demo (ErrorMonitor on or off) in its own folder; sets PORT and PID.
start_demo() {
    local enabled=$1
    PORT=$(port)
    mkdir -p "$WORK/$enabled-$PORT"
    APP_ERROR_ENABLED=$enabled Logging__LogLevel__Default=None ASPNETCORE_ENVIRONMENT=Production \
        dotnet "$DLL" --urls "http://127.0.0.1:$PORT" --contentRoot "$WORK/$enabled-$PORT" >"$WORK/demo-$PORT.log" 2>&1 &
    PID=$!
    PIDS+=("$PID")
    for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "the demo did not start"; cat "$WORK/demo-$PORT.log"; exit 1
}

# Requests a second for one scenario: `rps URL [wrk args]`.
rps() {
    wrk -t2 -c"$CONNECTIONS" -d"$DURATION" "$@" 2>&1 | awk '/Requests\/sec/ { print $2 }'
}

rss_kb() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }

measure() { # scenario path [lua]
    local path=$1 script=${2:-}
    local args=()
    [ -n "$script" ] && args=(-s "$script")
    local best_on=0 best_off=0
    for _ in $(seq 1 "$ROUNDS"); do
        for enabled in false true; do
            start_demo "$enabled"
            wrk -t2 -c"$CONNECTIONS" -d2s "${args[@]}" "http://127.0.0.1:$PORT$path" >/dev/null 2>&1 # warm-up
            local r; r=$(rps "${args[@]}" "http://127.0.0.1:$PORT$path")
            kill "$PID"; wait "$PID" 2>/dev/null || true
            if [ "$enabled" = true ]; then best_on=$(echo "$r $best_on" | awk '{ print ($1 > $2) ? $1 : $2 }')
            else best_off=$(echo "$r $best_off" | awk '{ print ($1 > $2) ? $1 : $2 }'); fi
        done
    done
    echo "$best_on $best_off"
}

row() { # name on off target
    local ratio; ratio=$(echo "$2 $3" | awk '{ printf "%.3f", $1 / $2 }')
    local met; met=$(echo "$ratio $4" | awk '{ print ($1 >= $2) ? "yes" : "**no**" }')
    printf '| %s | %s | %s | %s | ≥ %s | %s |\n' "$1" "$2" "$3" "$ratio" "$4" "$met"
}

read -r happy_on happy_off <<<"$(measure /)"
read -r one_on one_off <<<"$(measure /value-error)"
read -r many_on many_off <<<"$(measure /group/1 "$WORK/groups.lua")"

# Memory under a storm: RSS growth of the app while it records STORM failures (ErrorMonitor on and off).
storm() {
    start_demo "$1"
    wrk -t2 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$PORT/value-error" >/dev/null 2>&1
    local before; before=$(rss_kb "$PID")
    local total=0
    while [ "$total" -lt "$STORM" ]; do
        local n; n=$(wrk -t2 -c"$CONNECTIONS" -d10s "http://127.0.0.1:$PORT/value-error" 2>&1 | awk '/requests in/ { print $1 }')
        total=$((total + n))
    done
    local after; after=$(rss_kb "$PID")
    kill "$PID"; wait "$PID" 2>/dev/null || true
    echo "$(( (after - before) / 1024 )) $total"
}
read -r grow_on storm_on <<<"$(storm true)"
read -r grow_off storm_off <<<"$(storm false)"
grow_met=$(echo "$grow_on" | awk '{ print ($1 <= 50) ? "yes" : "**no**" }')

{
    echo "End-to-end load, $(date -u '+%Y-%m-%d %H:%M') UTC, $(nproc) cores, wrk -t2 -c$CONNECTIONS -d$DURATION, best of $ROUNDS rounds, demo app in Release with logging off"
    echo
    echo "| figure | ErrorMonitor on (req/s) | off (req/s) | on/off | target | met? |"
    echo "| --- | --- | --- | --- | --- | --- |"
    row "happy path GET /" "$happy_on" "$happy_off" 0.98
    row "failing path, one group" "$one_on" "$one_off" 0.90
    row "failing path, 10,000 groups" "$many_on" "$many_off" 0.80
    echo
    echo "| figure | ErrorMonitor on | off | target | met? |"
    echo "| --- | --- | --- | --- | --- |"
    echo "| RSS growth under a storm of $storm_on / $storm_off failures (MB) | $grow_on | $grow_off | ≤ 50 | $grow_met |"
} | tee "$OUT"
