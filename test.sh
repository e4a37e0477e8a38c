#!/usr/bin/env bash
# The one command that runs every test: restore (locked), build, check formatting, run every suite,
# print one closing line "N passed, N failed, N skipped" (the sum over suites), exit non-zero on failure.
# Servers the suites need (PostgreSQL, SMTP, Chromium) are installed when missing (as root, with
# apt-get), started on 127.0.0.1 for this run only, and stopped when it ends, pass or fail.
set -uo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
export TEST_OUTPUT="$ROOT/test-output"
rm -rf "$TEST_OUTPUT"
mkdir -p "$TEST_OUTPUT"

SERVICE_PIDS=()
CLEANUP=()
cleanup() {
    for pid in "${SERVICE_PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null; done
    for cmd in "${CLEANUP[@]:-}"; do [ -n "$cmd" ] && eval "$cmd" >/dev/null 2>&1; done
    return 0
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*"; }

apt_updated=0
# Installs Debian packages that are missing, when running as root.
ensure_packages() {
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "missing Debian packages: ${missing[*]} (run as root to install them)" >&2
        return 1
    fi
    if [ $apt_updated = 0 ]; then apt-get update -qq >/dev/null 2>&1; apt_updated=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1
}

# A free TCP port on 127.0.0.1.
free_port() {
    local py; py=$(command -v python3 || echo /usr/bin/python3)
    "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Each services/*.sh file defines a start function for one server the suites need.
for f in "$ROOT"/.ci/services/*.sh; do [ -f "$f" ] && . "$f"; done

# `./test.sh --fresh-packages` restores into an empty package folder of its own (as a new machine would);
# by default the usual NuGet cache is used (fast). CI sets NUGET_PACKAGES to an empty folder itself.
if [ "${1:-}" = "--fresh-packages" ]; then
    NUGET_PACKAGES=$(mktemp -d /tmp/errormonitor-packages.XXXXXX)
    export NUGET_PACKAGES
    CLEANUP+=("rm -rf $NUGET_PACKAGES")
    echo "restoring into an empty package folder: $NUGET_PACKAGES"
fi

say "restore (locked)"
dotnet tool restore >/dev/null || { echo "dotnet tool restore failed"; exit 1; }
if ! dotnet fantomas --version >/dev/null 2>&1; then
    # The CLI's tool resolver cache can point at a package folder that is gone (a run with another
    # NUGET_PACKAGES, such as CI's empty one): drop the cache and restore again.
    rm -rf "${DOTNET_CLI_HOME:-$HOME}/.dotnet/toolResolverCache"
    dotnet tool restore >/dev/null || { echo "dotnet tool restore failed"; exit 1; }
fi
dotnet restore ErrorMonitor.sln --locked-mode || { echo "0 passed, 1 failed, 0 skipped"; exit 1; }

say "build"
dotnet build ErrorMonitor.sln --no-restore -c Debug -warnaserror -nologo -clp:ErrorsOnly || { echo "0 passed, 1 failed, 0 skipped"; exit 1; }

passed=0; failed=0; skipped=0

say "formatting"
fmt_ok=1
fs_dirs=$(for d in src tests samples benchmarks; do [ -d "$d" ] && echo "$d"; done)
# shellcheck disable=SC2086
dotnet fantomas --check $fs_dirs || { echo "F# formatting differs: run 'dotnet fantomas src tests samples benchmarks'"; fmt_ok=0; }
for proj in $(git ls-files '*.csproj' | grep -v '^tests/consumers/'); do
    dotnet format "$proj" --verify-no-changes --no-restore || { echo "C# formatting differs in $proj: run 'dotnet format $proj'"; fmt_ok=0; }
done
if [ $fmt_ok = 1 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi

say "log events: one id and one name each, the README's range (.ci/event-ids.py)"
if /usr/bin/python3 .ci/event-ids.py "$ROOT"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi

# Runs one Expecto suite (a console project) and adds its closing line to the totals.
run_expecto() {
    local proj=$1; shift
    local name; name=$(basename "$proj")
    say "suite $name"
    local log="$TEST_OUTPUT/$name.log"
    # A hung suite must not hang CI: it is stopped after 40 minutes and counted as failed.
    timeout 40m dotnet run --no-build --project "$proj" -- --colours 0 --no-spinner --summary "$@" 2>&1 | tee "$log"
    local line
    line=$(grep -aoE '[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped' "$log" | tail -n 1)
    if [ -z "$line" ]; then
        echo "suite $name printed no closing line: counted as one failure"
        failed=$((failed + 1)); return
    fi
    read -r p f s <<<"$(echo "$line" | sed -E 's/([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped/\1 \2 \3/')"
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
}

# Runs one xunit project (C#) with dotnet test and adds its counts.
run_xunit() {
    local proj=$1
    local name; name=$(basename "$(dirname "$proj")")
    say "suite $name"
    local log="$TEST_OUTPUT/$name.log"
    timeout 15m dotnet test "$proj" --no-build --nologo 2>&1 | tee "$log"
    local line
    line=$(grep -aoE 'Failed: +[0-9]+, Passed: +[0-9]+, Skipped: +[0-9]+' "$log" | tail -n 1)
    if [ -z "$line" ]; then
        echo "suite $name printed no counts: counted as one failure"
        failed=$((failed + 1)); return
    fi
    read -r f p s <<<"$(echo "$line" | sed -E 's/Failed: +([0-9]+), Passed: +([0-9]+), Skipped: +([0-9]+)/\1 \2 \3/')"
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
}

# Suites, in dependency order. Each suites/*.sh hook may start a service first (see .ci/services).
run_expecto tests/ErrorMonitor.Core.Tests
[ -f tests/ErrorMonitor.Web.Tests/ErrorMonitor.Web.Tests.fsproj ] && { start_services_for_web || true; run_expecto tests/ErrorMonitor.Web.Tests; }
[ -f tests/ErrorMonitor.Facade.Tests/ErrorMonitor.Facade.Tests.csproj ] && run_xunit tests/ErrorMonitor.Facade.Tests/ErrorMonitor.Facade.Tests.csproj

# The packages as a user gets them: ./pack.sh writes them into a local folder feed, then a C# app and an F#
# app outside the solution (tests/consumers, copied to a temp folder) restore them from it (with a
# NuGet.config naming only that folder besides the default source, and a package folder of their own so a
# stale copy of the same version cannot be used), build with warnings as errors, start, fail a route, and
# must list the failure at /dev/error/ and in the JSON API. Each step counts as one test.
. "$ROOT/.ci/app-check.sh"
APP_CHECK_PIDS=()
CLEANUP+=('for pid in "${APP_CHECK_PIDS[@]:-}"; do if [ -n "$pid" ]; then kill -- "-$pid" 2>/dev/null || true; fi; done')
count() { if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi; }
consumers=$(mktemp -d /tmp/errormonitor-consumers.XXXXXX)
CLEANUP+=("rm -rf $consumers")
say "packages: ./pack.sh"
if ./pack.sh "$consumers/feed" >"$TEST_OUTPUT/pack.log" 2>&1; then
    passed=$((passed + 1)); ls -1 "$consumers/feed"
    say "packages: contents (licence, readme, XML docs, repository, symbol packages)"
    count /usr/bin/python3 "$ROOT/.ci/package-check.py" "$consumers/feed"
    # SourceLink needs a clone whose origin is a GitHub repository: a clone of HEAD with one, packed again.
    sourcelink_check() {
        local clone="$consumers/sourcelink" url=https://github.com/errormonitor/errormonitor
        git clone -q "$ROOT" "$clone" && git -C "$clone" remote set-url origin "$url" \
            && (cd "$clone" && ./pack.sh "$consumers/sourcelink-feed" >"$TEST_OUTPUT/pack-sourcelink.log" 2>&1) \
            || { echo "packing a clone with a GitHub origin failed:"; tail -n 30 "$TEST_OUTPUT/pack-sourcelink.log"; return 1; }
        /usr/bin/python3 "$ROOT/.ci/package-check.py" "$consumers/sourcelink-feed" --sourcelink "$url" "$(git -C "$clone" rev-parse HEAD)"
    }
    say "packages: SourceLink (a clone of HEAD whose origin is on GitHub)"
    count sourcelink_check
    version=$(ls "$consumers/feed" | sed -nE 's/^ErrorMonitor\.([0-9][^a-zA-Z]*[0-9](-[A-Za-z0-9.]+)?)\.nupkg$/\1/p' | head -n 1)
    consumer_check() {
        local lang=$1 expect=$2 dir="$consumers/$1"
        cp -r "$ROOT/tests/consumers/$1" "$dir"
        cat >"$dir/NuGet.config" <<CONFIG
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="errormonitor-local" value="$consumers/feed" />
  </packageSources>
  <config>
    <add key="globalPackagesFolder" value="$dir/packages" />
  </config>
  <fallbackPackageFolders>
    <add key="developer-cache" value="${NUGET_PACKAGES:-$HOME/.nuget/packages}" />
  </fallbackPackageFolders>
</configuration>
CONFIG
        say "packages: a $lang app outside the solution: dotnet add package ErrorMonitor --version $version"
        (cd "$dir" && env -u NUGET_PACKAGES dotnet add package ErrorMonitor --version "$version" >"$dir/add-package.log" 2>&1) \
            || { echo "dotnet add package failed:"; tail -n 30 "$dir/add-package.log"; return 1; }
        (cd "$dir" && env -u NUGET_PACKAGES dotnet build -nologo -clp:ErrorsOnly) \
            || { echo "the $lang consumer app did not build"; return 1; }
        consumer_run "$lang" "$expect"
    }
    consumer_run() {
        local dir="$consumers/$1"
        (cd "$dir" && unset NUGET_PACKAGES && app_check "$1-consumer${CONSUMER_STORE:+-$CONSUMER_STORE-store}" "$dir" \
            /consumer-failure "$2" dotnet run --no-build --project "$dir" --)
    }
    count consumer_check csharp InvalidOperationException
    # The same app with an IErrorStore of its own (tests/consumers/csharp/EveryNamespace.cs).
    CONSUMER_STORE=own count consumer_run csharp InvalidOperationException
    count consumer_check fsharp TimeoutException
else
    echo "./pack.sh failed:"; tail -n 40 "$TEST_OUTPUT/pack.log"; failed=$((failed + 1))
fi

# Local-only mode against real clients: a non-loopback client in a network namespace, a rebound DNS name,
# and a real nginx on the same machine (.ci/access-check.sh).
say "access: local-only mode against real clients"
. "$ROOT/.ci/access-check.sh"
access_dir=$(mktemp -d /tmp/errormonitor-access.XXXXXX)
CLEANUP+=("rm -rf $access_dir")
access_check "$access_dir"
passed=$((passed + ACCESS_PASSED)); failed=$((failed + ACCESS_FAILED))

# The benchmark scripts keep working: a smoke run of each (seconds; tables to a temp folder, not results/), and of
# the store figures (bench.sh's second half; its first, BenchmarkDotNet, takes minutes even in a short job).
say "benchmarks: smoke runs of load.sh, sentry-load.sh and the store figures"
smoke=$(mktemp -d /tmp/errormonitor-smoke.XXXXXX)
CLEANUP+=("rm -rf $smoke")
load_smoke() {
    DURATION=1s WARMUP=1s ROUNDS=1 STORM=0 SCENARIOS=happy,one-cold,many,body,storm OUT="$smoke/load.md" benchmarks/load.sh \
        >"$TEST_OUTPUT/load-smoke.log" 2>&1 || { tail -n 20 "$TEST_OUTPUT/load-smoke.log"; return 1; }
    grep -c '^| happy path GET / | [0-9]' "$smoke/load.md" | grep -qx 3 && grep -q '^| POST /json-echo' "$smoke/load.md" \
        && grep -q '^| failing path, 10,000 groups (warm: all stored) | [0-9]* \[[0-9]*–[0-9]*\] | [0-9]* \[' "$smoke/load.md" \
        && grep -q '^| storm of 100,000 new groups .* | [0-9]' "$smoke/load.md" \
        && grep -q "^| every occurrence stored, seconds after the storm's end | [0-9]" "$smoke/load.md" \
        && head -n 1 "$smoke/load.md" | grep -q '^End-to-end load, .* UTC, [0-9a-f]\{7,\}\( + changes\)\?, [0-9]* cores (.*), ' \
        && grep -q "^The machine's steal time during the measured seconds .*: [0-9.]*% \[[0-9.]*–[0-9.]*\] over [0-9]* measurements\.$" "$smoke/load.md" \
        || { echo "load.sh printed no figures:"; cat "$smoke/load.md"; return 1; }
    # The README's charts are drawn from these tables.
    python3 benchmarks/chart.py load "$smoke/load.md" "$smoke/load.svg" \
        && python3 benchmarks/chart.py depth benchmarks/results/depth.md "$smoke/depth.svg" \
        && grep -q '<rect' "$smoke/load.svg" && grep -q '<polyline' "$smoke/depth.svg" \
        || { echo "benchmarks/chart.py drew no chart"; return 1; }
}
sentry_smoke() {
    DURATION=2s OUT="$smoke/sentry.md" benchmarks/sentry-load.sh >"$TEST_OUTPUT/sentry-load-smoke.log" 2>&1 \
        || { tail -n 20 "$TEST_OUTPUT/sentry-load-smoke.log"; return 1; }
    [ "$(grep -c '| yes |' "$smoke/sentry.md")" = 3 ] \
        || { echo "sentry-load.sh: not every answered event stored:"; cat "$smoke/sentry.md"; return 1; }
}
# The store figures (SQLite, and PostgreSQL when the suites' server runs): 3,000 groups, one round; then PostgreSQL
# again on the table that run left (--existing), the way the 10,000,000-group figures were taken.
store_smoke() {
    local dll=benchmarks/ErrorMonitor.Benchmarks/bin/Debug/net10.0/ErrorMonitor.Benchmarks.dll table="bench_smoke_$$"
    dotnet "$dll" store --groups 3000 --rounds 1 --table "$table" --out "$smoke/store.md" >"$TEST_OUTPUT/store-smoke.log" 2>&1 \
        || { tail -n 20 "$TEST_OUTPUT/store-smoke.log"; return 1; }
    grep -q '^| SQLite: search for a word prefix .* | [0-9.]* / [0-9.]* ' "$smoke/store.md" \
        || { echo "the store benchmark printed no SQLite figures:"; cat "$smoke/store.md"; return 1; }
    # --writes-only: the two write figures and no reads.
    dotnet "$dll" store --groups 2000 --rounds 2 --only SQLite --writes-only --out "$smoke/store-writes.md" \
        >>"$TEST_OUTPUT/store-smoke.log" 2>&1 || { tail -n 20 "$TEST_OUTPUT/store-smoke.log"; return 1; }
    grep -q '^| SQLite: new groups a second (each round the next 1,000) | [0-9,]* \[[0-9,]*–[0-9,]*\]' "$smoke/store-writes.md" \
        && ! grep -q 'page 1' "$smoke/store-writes.md" \
        || { echo "store --writes-only printed other figures:"; cat "$smoke/store-writes.md"; return 1; }
    # --count-only: the new groups without details (a storm's past the queue's bound), the figure says so.
    dotnet "$dll" store --groups 2000 --rounds 2 --only SQLite --writes-only --count-only --out "$smoke/store-counted.md" \
        >>"$TEST_OUTPUT/store-smoke.log" 2>&1 || { tail -n 20 "$TEST_OUTPUT/store-smoke.log"; return 1; }
    grep -q '^| SQLite: new groups a second, count-only (each round the next 1,000) | [0-9,]* \[[0-9,]*–[0-9,]*\]' "$smoke/store-counted.md" \
        || { echo "store --count-only printed no count-only figure:"; cat "$smoke/store-counted.md"; return 1; }
    [ -n "${ERRORMONITOR_TEST_POSTGRES:-}" ] || return 0
    dotnet "$dll" store --groups 4000 --existing 3000 --rounds 1 --table "$table" --only PostgreSQL --out "$smoke/store-more.md" \
        >>"$TEST_OUTPUT/store-smoke.log" 2>&1 || { tail -n 20 "$TEST_OUTPUT/store-smoke.log"; return 1; }
    grep -q '^| PostgreSQL: search for a word prefix .* | [0-9.]* / [0-9.]* ' "$smoke/store.md" \
        && grep -q '^| PostgreSQL: new groups a second (each round the next 1,000, after the 3,000 a table held) | [0-9]' "$smoke/store-more.md" \
        || { echo "the store benchmark printed no PostgreSQL figures:"; cat "$smoke/store.md" "$smoke/store-more.md"; return 1; }
}
count load_smoke
count sentry_smoke
count store_smoke

echo
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
