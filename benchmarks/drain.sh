#!/usr/bin/env bash
# Backlog drain: a storm of distinct new groups (every request a group of its own) against the demo app
# (Release, SQLite) on 127.0.0.1, then how long until every answered occurrence is in the database. Reports, per
# round, the backlog left when the storm ended and the drain rate (backlog / time to drain), then the median and
# range over the rounds; saves the table to benchmarks/results/drain.md. Only 127.0.0.1 is loaded; every run
# stops by itself.
#   ROUNDS=5 STORM=5s CONNECTIONS=64 benchmarks/drain.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ROUNDS=${ROUNDS:-5}
STORM=${STORM:-5s}
CONNECTIONS=${CONNECTIONS:-64}
OUT=${OUT:-"$ROOT/benchmarks/results/drain.md"}
PY=/usr/bin/python3

if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" = 0 ]; then apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    else echo "wrk is missing: apt-get install wrk"; exit 1; fi
fi

dotnet build samples/DemoApp -c Release -nologo -clp:ErrorsOnly >/dev/null
DLL="$ROOT/samples/DemoApp/bin/Release/net10.0/DemoApp.dll"
WORK=$(mktemp -d /tmp/errormonitor-drain.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

cat >"$WORK/new-groups.lua" <<'LUA'
-- Every request a new group: the demo groups /group/{id} failures by id. Each wrk thread numbers its own.
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
local n = 0
request = function() n = n + 1; return wrk.format("GET", "/group/t" .. tid .. "-" .. n) end
LUA

port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# Occurrences stored in a round's database now (0 before it exists).
stored() { $PY "$ROOT/benchmarks/drain-wait.py" "$1" 0 0 0 now; }

now_ms() { date +%s%3N; }

rates=()
rows=()
for round in $(seq 1 "$ROUNDS"); do
    PORT=$(port)
    DIR="$WORK/round-$round"
    mkdir -p "$DIR"
    Logging__LogLevel__Default=None ASPNETCORE_ENVIRONMENT=Production \
        dotnet "$DLL" --urls "http://127.0.0.1:$PORT" --contentRoot "$DIR" >"$DIR/demo.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break; sleep 0.1; done
    answered=$(wrk -t2 -c"$CONNECTIONS" -d"$STORM" -s "$WORK/new-groups.lua" "http://127.0.0.1:$PORT/" 2>&1 | awk '/requests in/ { print $1 }')
    ended=$(now_ms)
    left=$(( answered - $(stored "$DIR/errormonitor.db") ))
    read -r took final <<<"$($PY "$ROOT/benchmarks/drain-wait.py" "$DIR/errormonitor.db" "$answered" "$ended" 120000)"
    kill "$PID"; wait "$PID" 2>/dev/null || true
    PID=
    rate=$(echo "$left $took" | awk '{ printf "%d", ($2 > 0) ? $1 * 1000 / $2 : 0 }')
    rates+=("$rate")
    rows+=("| $round | $answered | $left | $took | $rate | $final |")
done

read -r median low high <<<"$(printf '%s\n' "${rates[@]}" | sort -n | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%d %d %d", m, a[1], a[NR] }')"
{
    echo "Backlog drain, $(date -u '+%Y-%m-%d %H:%M') UTC, $(nproc) cores, wrk -t2 -c$CONNECTIONS -d$STORM of distinct new groups, $ROUNDS rounds, demo app in Release (SQLite), \`ROUNDS=$ROUNDS STORM=$STORM CONNECTIONS=$CONNECTIONS benchmarks/drain.sh\`"
    echo
    echo "| round | answered | not stored when the storm ended | ms until all stored | drain (groups/s) | stored |"
    echo "| --- | --- | --- | --- | --- | --- |"
    printf '%s\n' "${rows[@]}"
    echo
    echo "Drain rate: median $median groups/s (range $low to $high) over $ROUNDS rounds; target ≥ 20,000."
} | tee "$OUT"
