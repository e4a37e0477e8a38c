# The README's first command, as a new user runs it: `dotnet run --project samples/DemoApp` (restoring and
# building on the way), then `/` must answer and a failure of `/value-error` must be listed by the JSON API.
# The demo runs in its own process group, on a free port of 127.0.0.1 and a database file in a temp folder,
# and is stopped by its process group when the check ends. Sets DEMO_PID for the caller's cleanup.
demo_check() {
    local dir=$1
    local py; py=$(command -v python3 || echo /usr/bin/python3)
    local port; port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
    local base="http://127.0.0.1:$port"
    local log="$dir/demo.log"
    echo "== demo: dotnet run --project samples/DemoApp (on $base)"
    ConnectionStrings__ErrorMonitor="Data Source=$dir/demo.db" \
        setsid dotnet run --project samples/DemoApp -- --urls "$base" >"$log" 2>&1 &
    DEMO_PID=$!
    # Restore and build come first: allow them up to 10 minutes, stop early when the process ends.
    local answered=0
    for _ in $(seq 1 1200); do
        if curl -fsS -m 2 "$base/" >"$dir/root.txt" 2>/dev/null; then answered=1; break; fi
        kill -0 "$DEMO_PID" 2>/dev/null || break
        sleep 0.5
    done
    if [ $answered = 0 ]; then
        echo "demo: / never answered; its output:"; tail -n 60 "$log"; return 1
    fi
    echo "demo: / answered: $(head -c 200 "$dir/root.txt")"
    local status; status=$(curl -s -o /dev/null -w '%{http_code}' -m 10 "$base/value-error")
    [ "$status" = 500 ] || { echo "demo: /value-error answered $status, expected 500"; tail -n 60 "$log"; return 1; }
    # The failure is written in the background: wait (bounded) until the JSON API lists it.
    local listed=0
    for _ in $(seq 1 100); do
        if curl -fsS -m 5 "$base/dev/error/api/errors" >"$dir/api.json" 2>/dev/null \
            && grep -q 'ArgumentException' "$dir/api.json" && grep -q 'value-error' "$dir/api.json"; then
            listed=1; break
        fi
        sleep 0.2
    done
    if [ $listed = 0 ]; then
        echo "demo: /value-error was not listed by /dev/error/api/errors; the API said:"; head -c 2000 "$dir/api.json"; echo
        tail -n 60 "$log"; return 1
    fi
    echo "demo: /value-error recorded and listed by the JSON API"
    kill -- "-$DEMO_PID" 2>/dev/null || true
    wait "$DEMO_PID" 2>/dev/null || true
    DEMO_PID=""
    return 0
}
