#!/usr/bin/env bash
# The Sentry endpoint under load: the demo app (Release, SQLite) on 127.0.0.1 takes recorded real SDK envelopes
# (gzip, benchmarks/sentry/: the Sentry .NET SDK's envelope and the Python SDK's envelope or store event) from wrk for DURATION, then
# stops (writing what is pending); every event it answered 200 must be in the store. The same for the capture
# route (a JSON report) in the same run. Prints a markdown table (events a second, answered, stored, RSS growth)
# and saves it to benchmarks/results/sentry-load.md. Only 127.0.0.1 is loaded; every run is bounded.
#   DURATION=60s CONNECTIONS=32 ROUNDS=1 benchmarks/sentry-load.sh        (DURATION=3s ROUNDS=1: a smoke run)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-60s}
CONNECTIONS=${CONNECTIONS:-32}
ROUNDS=${ROUNDS:-1}
OUT=${OUT:-$ROOT/benchmarks/results/sentry-load.md}
KEY=0123456789abcdef0123456789abcdef

if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" = 0 ]; then apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    else echo "wrk is missing: apt-get install wrk"; exit 1; fi
fi

WORK=$(mktemp -d /tmp/errormonitor-sentry-load.XXXXXX)
PID=""
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

dotnet build samples/DemoApp -c Release -nologo -clp:ErrorsOnly >/dev/null
DLL="$ROOT/samples/DemoApp/bin/Release/net10.0/DemoApp.dll"

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
rss_kb() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }

# A wrk script that posts one file's bytes with the given headers.
script() { # body-file content-encoding path-header...
    local file=$1 encoding=$2
    cat <<LUA
local f = io.open("$file", "rb")
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["X-Sentry-Auth"] = "Sentry sentry_version=7, sentry_client=replay/1.0, sentry_key=$KEY"
wrk.headers["X-ErrorMonitor-Key"] = "$KEY"
wrk.headers["Content-Type"] = "application/json"
$( [ -n "$encoding" ] && echo "wrk.headers[\"Content-Encoding\"] = \"$encoding\"" )
LUA
}

cat >"$WORK/report.json" <<'JSON'
{"type":"TypeError","message":"Cannot read properties of undefined (reading 'id')","stack":"TypeError: Cannot read properties of undefined (reading 'id')\n    at handleClick (https://shop.example.com/static/app.js:10:15)\n    at dispatch (https://shop.example.com/static/vendor.js:1:2345)","url":"https://shop.example.com/cart","release":"web@5.1.0"}
JSON

# One measurement: `run name path body-file encoding`. Prints `events/s answered stored rss-growth-MB`.
run() {
    local path=$2 body=$3 encoding=$4
    local p; p=$(port)
    mkdir -p "$WORK/app-$p"
    APP_ERROR_INGEST_KEY=$KEY APP_ERROR_INGEST_RATE=10000000 APP_ERROR_INGEST_MAX_BYTES=1048576 \
        Logging__LogLevel__Default=None ASPNETCORE_ENVIRONMENT=Production \
        dotnet "$DLL" --urls "http://127.0.0.1:$p" --contentRoot "$WORK/app-$p" >"$WORK/app-$p.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$p/" >/dev/null 2>&1 && break; sleep 0.1; done
    script "$body" "$encoding" >"$WORK/post.lua"
    local first; first=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary @"$body" \
        -H "X-Sentry-Auth: Sentry sentry_key=$KEY" -H "X-ErrorMonitor-Key: $KEY" -H "Content-Type: application/json" \
        ${encoding:+-H "Content-Encoding: $encoding"} "http://127.0.0.1:$p$path")
    [ "$first" = 200 ] || [ "$first" = 202 ] || { echo "the endpoint answered $first"; cat "$WORK/app-$p.log"; exit 1; }
    local before; before=$(rss_kb "$PID")
    local out; out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" -s "$WORK/post.lua" "http://127.0.0.1:$p$path" 2>&1)
    local after; after=$(rss_kb "$PID")
    kill -TERM "$PID"; wait "$PID" 2>/dev/null || true
    PID=""
    local total; total=$(awk '/requests in/ { print $1 }' <<<"$out")
    local bad; bad=$(awk '/Non-2xx/ { print $5 }' <<<"$out")
    local rate; rate=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
    local answered=$(( total - ${bad:-0} + 1 )) # the first request (curl) too
    local stored; stored=$(/usr/bin/python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute("select coalesce(sum(count),0) from app_error").fetchone()[0])' "$WORK/app-$p/errormonitor.db")
    echo "$rate $answered $stored $(( (after - before) / 1024 ))"
}

rows=""
for round in $(seq 1 "$ROUNDS"); do
    for name in dotnet python; do
        # An envelope (current SDKs), or the store endpoint's single event (Debian's sentry-sdk 1.x sends that).
        file="$ROOT/benchmarks/sentry/$name-exception.envelope.gz"; path=/dev/error/api/1/envelope/
        if [ ! -f "$file" ]; then file="$ROOT/benchmarks/sentry/$name-exception.store.gz"; path=/dev/error/api/1/store/; fi
        r=$(run "$name" "$path" "$file" gzip)
        echo "round $round $name: $r" >&2
        rows="$rows$name $r"$'\n'
    done
    r=$(run capture /dev/error/api/errors "$WORK/report.json" "")
    echo "round $round capture route: $r" >&2
    rows="${rows}capture $r"$'\n'
done

{
    echo "Sentry endpoint load, $(date -u '+%Y-%m-%d %H:%M') UTC, $(nproc) cores (wrk on the same machine), wrk -t2 -c$CONNECTIONS -d$DURATION, $ROUNDS round(s), demo app in Release on SQLite with logging off; each body a recorded real SDK envelope (gzip) or, for the capture route, a JSON report; stored: the sum of the groups' counts after the app stopped (requests cut when wrk stopped may be stored without an answer counted)"
    echo
    echo "| body | events/s (median [range]) | answered 200/202 | stored | every answered event stored? | RSS growth (MB) |"
    echo "| --- | --- | --- | --- | --- | --- |"
    for name in dotnet python capture; do
        sel=$(awk -v n="$name" '$1 == n' <<<"$rows")
        [ -z "$sel" ] && continue
        rate=$(awk '{ print $2 }' <<<"$sel" | sort -g | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.0f [%.0f–%.0f]", m, v[1], v[NR] }')
        answered=$(awk '{ s += $3 } END { print s }' <<<"$sel")
        stored=$(awk '{ s += $4 } END { print s }' <<<"$sel")
        ok=$(awk '{ if ($4 < $3) bad = 1 } END { print bad ? "**no**" : "yes" }' <<<"$sel")
        rss=$(awk '{ print $5 }' <<<"$sel" | tr '\n' ' ')
        label=$name
        case $name in
            dotnet) label="Sentry .NET SDK envelope (nested exception), /api/1/envelope/" ;;
            python) label="Sentry Python SDK (chained exception), $(ls "$ROOT"/benchmarks/sentry/python-exception.* | sed 's/.*python-exception\.\([a-z]*\)\.gz/\1/') endpoint" ;;
            capture) label="capture route, JSON report, /api/errors" ;;
        esac
        echo "| $label | $rate | $answered | $stored | $ok | $rss|"
    done
} | tee "$OUT"
