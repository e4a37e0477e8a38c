#!/usr/bin/env bash
# End-to-end load: the demo app (Release) on 127.0.0.1 driven by wrk. Each round measures every scenario with
# ErrorMonitor on and off (the demo honours APP_ERROR_ENABLED=false), one after the other in alternating order;
# a figure is the median of the rounds' on/off ratios with their range (never a best round). With BASELINE set
# to a git revision, that revision's demo is built in a worktree and measured in the same rounds, so a change's
# cost is the median of the per-round differences of the ratios (the builds take turns going first). Each
# measurement also reads the app's CPU time a request from /proc: a second table gives its off/on ratio, which
# the machine's drift moves less than the rates; a third, the app's RSS when the measured seconds end. Prints
# markdown tables and saves them to benchmarks/results/load.md (load-vs-REVISION.md with BASELINE). Only 127.0.0.1 is loaded; every run is bounded.
# ON_ENV adds settings to the measured build's processes ("APP_ERROR_REQUEST_BODY=small"); BASELINE_ENV (without
# BASELINE) makes the baseline this same build with other settings, so a setting's cost is measured side by side
# (load-vs-env.md).
#   DURATION=10s WARMUP=15s CONNECTIONS=32 ROUNDS=5 STORM=1000000 BASELINE= SCENARIOS=happy,one,one-cold,many,many-cold,storm benchmarks/load.sh
#   (STORM=0: no storm; body: a successful POST of a small JSON body, bound with [FromBody]. Each failing scenario
#   warm (its groups known and stored before the measured seconds) and cold (a fresh process: every group new).
#   Every process first runs WARMUP of requests (on and off alike) so the runtime's tiered JIT has finished
#   compiling the hot code: a fresh process keeps recompiling for 10-15 s and is slower meanwhile, ErrorMonitor on
#   more than off (more code to compile). A cold scenario's warm-up fails on other groups than the measured ones.
#   WARMUP=2s measures the first seconds instead.
#   Targets (#20): happy path and body ≥ 0.99, one group ≥ 0.95, 10,000 groups warm ≥ 0.90 and cold ≥ 0.80)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-15s}
CONNECTIONS=${CONNECTIONS:-32}
ROUNDS=${ROUNDS:-5}
STORM=${STORM:-1000000}
BASELINE=${BASELINE:-}
ON_ENV=${ON_ENV:-}
BASELINE_ENV=${BASELINE_ENV:-}
if [ -z "$BASELINE" ] && [ -n "$BASELINE_ENV" ]; then BASELINE=env; fi
SCENARIOS=${SCENARIOS:-happy,one,one-cold,many,many-cold,storm} # which scenarios to measure (comma-separated; also: body)
OUT=${OUT:-$ROOT/benchmarks/results/load${BASELINE:+-vs-$BASELINE}.md}

if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" = 0 ]; then apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    else echo "wrk is missing: apt-get install wrk"; exit 1; fi
fi

WORK=$(mktemp -d /tmp/errormonitor-load.XXXXXX)
PIDS=()
# Every step may fail (a process already gone): none may stop the rest (the script runs with set -e).
cleanup() {
    for p in "${PIDS[@]:-}" $(cat "$WORK/pids" 2>/dev/null); do
        if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; fi
    done
    if [ -n "$BASELINE" ] && [ "$BASELINE" != env ]; then git -C "$ROOT" worktree remove --force "$WORK/baseline" >/dev/null 2>&1 || true; fi
    rm -rf "$WORK"
    git -C "$ROOT" worktree prune || true
}
trap cleanup EXIT

dotnet build samples/DemoApp -c Release -nologo -clp:ErrorsOnly >/dev/null
BUILDS=(current)
declare -A DLLS=([current]="$ROOT/samples/DemoApp/bin/Release/net10.0/DemoApp.dll")
declare -A ENVS=([current]="$ON_ENV")
if [ "$BASELINE" = env ]; then
    BUILDS+=(baseline)
    DLLS[baseline]="${DLLS[current]}"
    ENVS[baseline]="$BASELINE_ENV"
elif [ -n "$BASELINE" ]; then
    git -C "$ROOT" worktree add --detach "$WORK/baseline" "$BASELINE" >/dev/null 2>&1
    dotnet build "$WORK/baseline/samples/DemoApp" -c Release -nologo -clp:ErrorsOnly >/dev/null
    BUILDS+=(baseline)
    DLLS[baseline]="$WORK/baseline/samples/DemoApp/bin/Release/net10.0/DemoApp.dll"
fi

cat >"$WORK/groups.lua" <<'LUA'
-- 10,000 distinct groups: the demo groups /group/{id} failures by id (its custom fingerprint).
math.randomseed(42)
request = function() return wrk.format("GET", "/group/" .. math.random(1, 10000)) end
LUA

cat >"$WORK/cover.lua" <<'LUA'
-- Every one of the 10,000 groups in turn, each wrk thread its half: a warm-up that stores them all.
local threads = 0
setup = function(thread) thread:set("offset", threads * 5000); threads = threads + 1 end
local n = 0
request = function() n = n + 1; return wrk.format("GET", "/group/" .. (offset + (n - 1) % 5000 + 1)) end
LUA

cat >"$WORK/other.lua" <<'LUA'
-- A cold scenario's warm-up: failures of 10,000 other groups (ids 10,001 to 20,000), so the runtime is warm and
-- the capture path compiled while every measured group is still new.
math.randomseed(7)
request = function() return wrk.format("GET", "/group/" .. math.random(10001, 20000)) end
LUA

cat >"$WORK/storm.lua" <<'LUA'
-- A storm of 100,000 distinct new groups: each wrk thread has 50,000 requests answered, each its own group (s1, s2,
-- ...), then writes a marker file (its path the script's argument) and stops; the script times the storm by the
-- markers (wrk itself waits out its whole -d). Ids of the two threads lie 1,000,000 apart, so the few requests a
-- thread has under way when it stops are new groups too.
local threads = 0
setup = function(thread) thread:set("offset", threads * 1000000); thread:set("id", threads); threads = threads + 1 end
init = function(args) marker = args[1] end
local n = 0
local answered = 0
request = function() n = n + 1; return wrk.format("GET", "/group/s" .. (offset + n)) end
response = function()
    answered = answered + 1
    if answered == 50000 then
        local f = io.open(marker .. "." .. id, "w"); f:close()
        wrk.thread:stop()
    end
end
LUA

cat >"$WORK/warm1000.lua" <<'LUA'
-- The storm's warm-up: failures of 1,000 other groups (the storm and they stay within APP_ERROR_MAX_GROUPS).
math.randomseed(7)
request = function() return wrk.format("GET", "/group/" .. math.random(10001, 11000)) end
LUA

cat >"$WORK/body.lua" <<'LUA'
-- A successful POST of a small JSON body, bound by the demo with [FromBody].
wrk.method = "POST"
wrk.body = '{"user": "ada", "password": "hunter2"}'
wrk.headers["Content-Type"] = "application/json"
LUA

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# Starts a build of the demo (ErrorMonitor on or off) in its own folder; sets PORT and PID.
start_demo() {
    local enabled=$1 dll=${DLLS[${2:-current}]} extra=${ENVS[${2:-current}]:-}
    PORT=$(port)
    mkdir -p "$WORK/$enabled-$PORT"
    # shellcheck disable=SC2086 # ON_ENV / BASELINE_ENV: KEY=VALUE words
    env $extra APP_ERROR_ENABLED=$enabled Logging__LogLevel__Default=None ASPNETCORE_ENVIRONMENT=Production \
        dotnet "$dll" --urls "http://127.0.0.1:$PORT" --contentRoot "$WORK/$enabled-$PORT" >"$WORK/demo-$PORT.log" 2>&1 &
    PID=$!
    PIDS+=("$PID")
    echo "$PID" >>"$WORK/pids" # started in a subshell too: the cleanup reads them here
    for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "the demo did not start"; cat "$WORK/demo-$PORT.log"; exit 1
}

rss_kb() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }

# The app's CPU time so far (user and system, all threads) in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# The machine's steal time: CPU time the hypervisor gave to other guests while this one had work (0 on a quiet
# machine or bare metal). `steal_ticks` prints the steal and total CPU ticks so far (all CPUs, from /proc/stat);
# `steal_note before` appends the share of the time since `before` that was stolen (%) to $WORK/steal: every
# measurement notes it, and the report prints their median and range, so a reader sees how quiet the machine was.
steal_ticks() { awk '/^cpu / { print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat; }
steal_note() {
    local s0 t0 s1 t1
    read -r s0 t0 <<<"$1"
    read -r s1 t1 < <(steal_ticks)
    awk -v s=$((s1 - s0)) -v t=$((t1 - t0)) 'BEGIN { if (t > 0) printf "%.1f\n", 100 * s / t }' >>"$WORK/steal"
}

# One build with ErrorMonitor on or off: `one build enabled path warm [wrk args]`. The warm-up before the measured
# seconds (WARMUP long): `same` (the measured requests: a failing path's groups are then known), `other` (failures of
# 10,000 other groups: the runtime is warm but every group of the measured path is new when the measurement starts:
# cold), `cover` (walking the 10,000 groups in order, then 3 s for the writer: warm, all stored). Prints its requests
# a second and the app's CPU time a request (µs): the second does not depend on how much of the machine the app got,
# only on the work a request costs it, so it resolves a small change that the rate's drift on a shared machine hides;
# then the app's RSS at the end of the measured seconds (MB).
one() {
    local build=$1 enabled=$2 path=$3 warm=$4
    shift 4
    start_demo "$enabled" "$build"
    case $warm in
        other)
            wrk -t2 -c"$CONNECTIONS" -d"$WARMUP" -s "$WORK/other.lua" "http://127.0.0.1:$PORT/group/1" >/dev/null 2>&1
            sleep 3 ;;
        cover)
            # Walking the groups in order (each of them many times over at the rates seen), then 3 s for the
            # writer (1 s after a 5-s walk, 9,695 of the 10,000 were stored in a check).
            wrk -t2 -c"$CONNECTIONS" -d"$WARMUP" -s "$WORK/cover.lua" "http://127.0.0.1:$PORT/group/1" >/dev/null 2>&1
            sleep 3 ;;
        *) wrk -t2 -c"$CONNECTIONS" -d"$WARMUP" "$@" "http://127.0.0.1:$PORT$path" >/dev/null 2>&1 ;;
    esac
    local before; before=$(cpu_ticks "$PID")
    local stolen; stolen=$(steal_ticks)
    local out; out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" "$@" "http://127.0.0.1:$PORT$path" 2>&1)
    local after; after=$(cpu_ticks "$PID")
    steal_note "$stolen"
    local rss; rss=$(rss_kb "$PID")
    kill "$PID"; wait "$PID" 2>/dev/null || true
    local r; r=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
    local n; n=$(awk '/requests in/ { print $1 }' <<<"$out")
    echo "$r $(awk -v t=$((after - before)) -v us="$TICK_US" -v n="$n" 'BEGIN { printf "%.2f", t * us / n }') $((rss / 1024))"
}

# Every round: each build on and off (the order of on and off, and of the builds, alternates between rounds). Prints a line a round with seven
# columns for each build in BUILDS order: `on off on/off cpu-on cpu-off rss-on rss-off` (rates in requests a second,
# CPU in µs a request, RSS in MB).
measure() { # path warm [lua]
    local path=$1 warm=$2 script=${3:-}
    local args=()
    [ -n "$script" ] && args=(-s "$script")
    for round in $(seq 1 "$ROUNDS"); do
        # The builds take turns going first too (even rounds measure them in reverse order), so neither gains
        # from a drift within a round; each round's line keeps BUILDS order.
        local order=("${BUILDS[@]}")
        if [ $((round % 2)) = 0 ] && [ "${#BUILDS[@]}" = 2 ]; then order=("${BUILDS[1]}" "${BUILDS[0]}"); fi
        local line=""
        declare -A cells=()
        for build in "${order[@]}"; do
            local on off
            if [ $((round % 2)) = 1 ]; then
                off=$(one "$build" false "$path" "$warm" "${args[@]}"); on=$(one "$build" true "$path" "$warm" "${args[@]}")
            else
                on=$(one "$build" true "$path" "$warm" "${args[@]}"); off=$(one "$build" false "$path" "$warm" "${args[@]}")
            fi
            read -r on_rps on_cpu on_rss <<<"$on"
            read -r off_rps off_cpu off_rss <<<"$off"
            cells[$build]="$on_rps $off_rps $(echo "$on_rps $off_rps" | awk '{ printf "%.3f", $1 / $2 }') $on_cpu $off_cpu $on_rss $off_rss"
        done
        for build in "${BUILDS[@]}"; do line="$line ${cells[$build]}"; done
        echo "$line" >&2 # progress
        echo "$line"
    done
}

# The median and range of a column of numbers (one a line): `median [min–max]`.
summary() {
    sort -g | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
        printf "%.3f [%.3f–%.3f]", m, v[1], v[NR] }'
}
median() { summary | awk '{ print $1 }'; }
col() { awk -v c="$1" '{ print $c }' <<<"$2"; }

# A table row from a scenario's rounds: rates and ratio of the current build, the target, met (by the median
# ratio), and with a baseline its ratio and the median of the per-round differences.
row() { # name rounds target
    local name=$1 rounds=$2 target=$3
    local ratio; ratio=$(col 3 "$rounds" | summary)
    local met; met=$(echo "${ratio%% *} $target" | awk '{ print ($1 >= $2) ? "yes" : "**no**" }')
    local cells
    cells="$(col 1 "$rounds" | median | awk '{ printf "%.0f", $1 }') | $(col 2 "$rounds" | median | awk '{ printf "%.0f", $1 }') | $ratio | ≥ $target | $met"
    if [ -n "$BASELINE" ]; then
        local base; base=$(col 10 "$rounds" | summary)
        local diff; diff=$(awk '{ printf "%.3f\n", $3 - $10 }' <<<"$rounds" | summary)
        local kept; kept=$(echo "${diff%% *}" | awk '{ print ($1 >= -0.02) ? "yes" : "**no**" }')
        cells="$cells | $base | $diff | $kept"
    fi
    printf '| %s | %s |\n' "$name" "$cells"
}

# A row of the CPU table: the app's CPU time a request on and off (medians), their ratio off/on (the rate ratio
# the app would have if the machine were all its own), and with a baseline its ratio and the per-round change.
cpurow() { # name rounds
    local name=$1 rounds=$2
    local ratio; ratio=$(awk '{ printf "%.3f\n", $5 / $4 }' <<<"$rounds" | summary)
    local cells
    cells="$(col 4 "$rounds" | median | awk '{ printf "%.1f", $1 }') | $(col 5 "$rounds" | median | awk '{ printf "%.1f", $1 }') | $ratio"
    if [ -n "$BASELINE" ]; then
        local base; base=$(awk '{ printf "%.3f\n", $12 / $11 }' <<<"$rounds" | summary)
        local diff; diff=$(awk '{ printf "%.3f\n", $5 / $4 - $12 / $11 }' <<<"$rounds" | summary)
        local kept; kept=$(echo "${diff%% *}" | awk '{ print ($1 >= -0.02) ? "yes" : "**no**" }')
        cells="$cells | $base | $diff | $kept"
    fi
    printf '| %s | %s |\n' "$name" "$cells"
}

# A row of the memory table: the app's RSS at the end of the measured seconds on and off, and on minus off (MB,
# medians [range] of the rounds), and with a baseline its on minus off.
rssrow() { # name rounds
    local name=$1 rounds=$2
    local cells
    cells="$(col 6 "$rounds" | summary | sed 's/\.000//g') | $(col 7 "$rounds" | summary | sed 's/\.000//g') | $(awk '{ print $6 - $7 }' <<<"$rounds" | summary | sed 's/\.000//g')"
    if [ -n "$BASELINE" ]; then
        cells="$cells | $(awk '{ print $13 - $14 }' <<<"$rounds" | summary | sed 's/\.000//g')"
    fi
    printf '| %s | %s |\n' "$name" "$cells"
}

# The storm of 100,000 new groups with one build on or off: `storm_round build enabled`. A fresh process warmed
# for WARMUP on 1,000 other groups, then the storm (each request its own group, as fast as it is answered). Prints
# its requests a second (100,000 answered over the time until both wrk threads had theirs), the app's RSS growth
# (its peak during the storm and the 5 s after, sampled every 0.1 s, over the RSS before it; MB), and how many
# seconds after the storm's end the occurrences in the SQLite file reached 100,000 (on only; 0 off).
storm_round() {
    local build=$1 enabled=$2
    start_demo "$enabled" "$build"
    local db="$WORK/$enabled-$PORT/errormonitor.db"
    wrk -t2 -c"$CONNECTIONS" -d"$WARMUP" -s "$WORK/warm1000.lua" "http://127.0.0.1:$PORT/group/1" >/dev/null 2>&1
    sleep 3
    local before; before=$(rss_kb "$PID")
    echo "$before" >"$WORK/peak"
    (
        peak=$before
        while kill -0 "$PID" 2>/dev/null && [ ! -e "$WORK/peak.stop" ]; do
            r=$(rss_kb "$PID" 2>/dev/null || echo 0)
            if [ "${r:-0}" -gt "$peak" ]; then peak=$r; echo "$peak" >"$WORK/peak"; fi
            sleep 0.1
        done
    ) &
    local sampler=$!
    rm -f "$WORK/storm.0" "$WORK/storm.1"
    local started; started=$(date +%s.%N)
    local stolen; stolen=$(steal_ticks)
    wrk -t2 -c"$CONNECTIONS" -d120s -s "$WORK/storm.lua" "http://127.0.0.1:$PORT/group/1" -- "$WORK/storm" >/dev/null 2>&1 &
    local driver=$!
    while [ ! -e "$WORK/storm.0" ] || [ ! -e "$WORK/storm.1" ]; do
        kill -0 "$driver" 2>/dev/null || break
        sleep 0.02
    done
    local ended; ended=$(date +%s.%N)
    steal_note "$stolen"
    kill "$driver" 2>/dev/null || true; wait "$driver" 2>/dev/null || true
    local n=100000
    local r; r=$(awk -v a="$started" -v b="$ended" -v n="$n" 'BEGIN { printf "%.2f", n / (b - a) }')
    local stored=0
    if [ "$enabled" = true ]; then
        # Until the occurrences of the storm's groups in the file add up to the requests answered (60 s at most).
        stored=$(/usr/bin/python3 - "$db" "$n" "$ended" <<'PY'
import sqlite3, sys, time
db, n, ended = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
while time.time() - ended < 60:
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        total = c.execute("SELECT COALESCE(SUM(count), 0) FROM app_error WHERE message LIKE 'Failure of group s%'").fetchone()[0]
        c.close()
        if total >= n:
            print(f"{time.time() - ended:.2f}")
            sys.exit(0)
    except sqlite3.Error:
        pass
    time.sleep(0.1)
print("never")
PY
)
    fi
    local wait_more
    wait_more=$(awk -v s="$stored" 'BEGIN { w = 5 - s; if (s == "never" || w < 0) w = 0; print w }')
    sleep "$wait_more"
    touch "$WORK/peak.stop"; wait "$sampler" 2>/dev/null || true; rm -f "$WORK/peak.stop"
    local peak; peak=$(cat "$WORK/peak")
    kill "$PID"; wait "$PID" 2>/dev/null || true
    echo "$r $(( (peak - before) / 1024 )) $stored"
}

wanted() { [[ ",$SCENARIOS," == *",$1,"* ]]; }
happy=""; one_group=""; one_cold=""; many=""; many_cold=""; body=""
if wanted happy; then happy=$(measure / same); fi
if wanted one; then one_group=$(measure /value-error same); fi
if wanted one-cold; then one_cold=$(measure /value-error other); fi
if wanted many; then many=$(measure /group/1 cover "$WORK/groups.lua"); fi
if wanted many-cold; then many_cold=$(measure /group/1 other "$WORK/groups.lua"); fi
if wanted body; then body=$(measure /json-echo same "$WORK/body.lua"); fi
# The storm, on and off in alternating order, ROUNDS times (the current build only): a line a round,
# `on-rate off-rate on/off growth-MB stored-s requests`.
storm100k=""
if wanted storm; then
    for round in $(seq 1 "$ROUNDS"); do
        if [ $((round % 2)) = 1 ]; then
            off=$(storm_round current false); on=$(storm_round current true)
        else
            on=$(storm_round current true); off=$(storm_round current false)
        fi
        read -r on_rps grow stored <<<"$on"
        read -r off_rps grow_off _ <<<"$off"
        line="$on_rps $off_rps $(echo "$on_rps $off_rps" | awk '{ printf "%.3f", $1 / $2 }') $grow $stored $grow_off"
        echo "$line" >&2
        storm100k="$storm100k$line"$'\n'
    done
    storm100k=${storm100k%$'\n'}
fi

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
grow_on=""
if [ "$STORM" -gt 0 ]; then
    read -r grow_on storm_on <<<"$(storm true)"
    read -r grow_off storm_off <<<"$(storm false)"
    grow_met=$(echo "$grow_on" | awk '{ print ($1 <= 50) ? "yes" : "**no**" }')
fi

# A table's rows, one for each scenario measured: `each row|cpurow|rssrow` (the target is row's third argument;
# the others take two).
each() {
    local fn=$1
    if [ -n "$happy" ]; then $fn "happy path GET /" "$happy" 0.99; fi
    if [ -n "$one_group" ]; then $fn "failing path, one group (warm)" "$one_group" 0.95; fi
    if [ -n "$one_cold" ]; then $fn "failing path, one group (cold)" "$one_cold" 0.95; fi
    if [ -n "$many" ]; then $fn "failing path, 10,000 groups (warm: all stored)" "$many" 0.90; fi
    if [ -n "$many_cold" ]; then $fn "failing path, 10,000 groups (cold: all new)" "$many_cold" 0.80; fi
    if [ -n "$body" ]; then $fn "POST /json-echo (JSON body)" "$body" 0.99; fi
}

baseline_name() {
    if [ "$BASELINE" = env ]; then echo "this build with ${BASELINE_ENV}"; else git -C "$ROOT" rev-parse --short "$BASELINE"; fi
}

# What was measured and where: the commit (with "+ changes" when the tree differs from it) and the processor's model
# (machines of the same size gave ErrorMonitor's per-request cost twice apart on 2026-12-04: compare runs of one).
revision=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no git")
if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then revision="$revision + changes"; fi
processor=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)

# The steal time's median and range over the measurements (in %).
stolen="none noted"
if [ -s "$WORK/steal" ]; then
    stolen="$(summary <"$WORK/steal" | sed 's/ \[/% [/') over $(wc -l <"$WORK/steal") measurements"
fi

{
    echo "End-to-end load, $(date -u '+%Y-%m-%d %H:%M') UTC, $revision, $(nproc) cores (${processor:-processor unknown}), wrk -t2 -c$CONNECTIONS -d$DURATION after $WARMUP of warm-up, $ROUNDS rounds (on and off alternating), demo app in Release with logging off; rates are medians, ratios the median [range] of the rounds' on/off${ON_ENV:+; measured with $ON_ENV}${BASELINE:+; baseline: $(baseline_name) in the same rounds, the builds taking turns going first}"
    echo
    echo "The machine's steal time during the measured seconds (CPU time its hypervisor gave to other guests: 0 on a quiet machine): $stolen."
    echo
    if [ -n "$BASELINE" ]; then
        echo "| figure | ErrorMonitor on (req/s) | off (req/s) | on/off | target | met? | baseline on/off | change of on/off | within 0.02? |"
        echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    else
        echo "| figure | ErrorMonitor on (req/s) | off (req/s) | on/off | target | met? |"
        echo "| --- | --- | --- | --- | --- | --- |"
    fi
    each row
    if [ -n "$storm100k" ]; then
        ratio=$(col 3 "$storm100k" | summary)
        printf '| storm of 100,000 new groups (each request its own group) | %s | %s | %s | ≥ 0.75 | %s |%s\n' \
            "$(col 1 "$storm100k" | median | awk '{ printf "%.0f", $1 }')" "$(col 2 "$storm100k" | median | awk '{ printf "%.0f", $1 }')" \
            "$ratio" "$(echo "${ratio%% *}" | awk '{ print ($1 >= 0.75) ? "yes" : "**no**" }')" "${BASELINE:+ | | | }"
    fi
    echo
    echo "The app's CPU time a request (user and system, µs, medians; off/on: the median [range] of the rounds' ratio):"
    echo
    if [ -n "$BASELINE" ]; then
        echo "| figure | CPU on (µs) | off (µs) | off/on | baseline off/on | change of off/on | within 0.02? |"
        echo "| --- | --- | --- | --- | --- | --- | --- |"
    else
        echo "| figure | CPU on (µs) | off (µs) | off/on |"
        echo "| --- | --- | --- | --- |"
    fi
    each cpurow
    echo
    echo "The app's RSS at the end of the measured seconds (MB; medians [range] of the rounds; on − off: of each round's pair):"
    echo
    if [ -n "$BASELINE" ]; then
        echo "| figure | RSS on (MB) | off (MB) | on − off (MB) | baseline on − off (MB) |"
        echo "| --- | --- | --- | --- | --- |"
    else
        echo "| figure | RSS on (MB) | off (MB) | on − off (MB) |"
        echo "| --- | --- | --- | --- |"
    fi
    each rssrow
    if [ -n "$storm100k" ]; then
        echo
        echo "The storm of 100,000 new groups (ErrorMonitor on; SQLite; medians [range] of the rounds):"
        echo
        echo "| figure | value | target | met? |"
        echo "| --- | --- | --- | --- |"
        grow=$(col 4 "$storm100k" | summary)
        printf '| RSS growth during the storm and 5 s after (MB) | %s (off: %s) | ≤ 50 | %s |\n' "$grow" \
            "$(col 6 "$storm100k" | summary)" "$(echo "${grow%% *}" | awk '{ print ($1 <= 50) ? "yes" : "**no**" }')"
        if grep -q never <<<"$(col 5 "$storm100k")"; then
            stored="not all stored within 60 s in $(col 5 "$storm100k" | grep -c never) of $ROUNDS rounds"; met="**no**"
        else
            stored=$(col 5 "$storm100k" | summary); met=$(echo "${stored%% *}" | awk '{ print ($1 <= 5) ? "yes" : "**no**" }')
        fi
        printf '| every occurrence stored, seconds after the storm'"'"'s end | %s | ≤ 5 | %s |\n' "$stored" "$met"
    fi
    if [ -n "$grow_on" ]; then
        echo
        echo "| figure | ErrorMonitor on | off | target | met? |"
        echo "| --- | --- | --- | --- | --- |"
        echo "| RSS growth under a storm of $storm_on / $storm_off failures (MB) | $grow_on | $grow_off | ≤ 50 | $grow_met |"
    fi
} | tee "$OUT"
