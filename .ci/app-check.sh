# app_check LABEL DIR FAIL_PATH EXPECT COMMAND...
# Starts COMMAND (given `--urls http://127.0.0.1:PORT` on a free port; its own process group; output in
# DIR/LABEL.log), waits until `/` answers (bounded: restore and build may come first), requests FAIL_PATH
# and expects 500, then waits (bounded) until both the page at /dev/error/ and the JSON API at
# /dev/error/api/errors list EXPECT (the exception's type) and FAIL_PATH. Stops the app by its process
# group either way. Returns non-zero, with the app's output, when anything is missing.
app_check() {
    local label=$1 dir=$2 fail_path=$3 expect=$4; shift 4
    local py; py=$(command -v python3 || echo /usr/bin/python3)
    local port; port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
    local base="http://127.0.0.1:$port" log="$dir/$label.log"
    echo "== $label: $* (on $base)"
    setsid "$@" --urls "$base" >"$log" 2>&1 &
    local pid=$! ok=1
    APP_CHECK_PIDS+=("$pid")
    _app_check_steps "$label" "$dir" "$base" "$fail_path" "$expect" "$pid" || ok=0
    kill -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if [ $ok = 0 ]; then echo "$label: its output:"; tail -n 60 "$log"; return 1; fi
    return 0
}

_app_check_steps() {
    local label=$1 dir=$2 base=$3 fail_path=$4 expect=$5 pid=$6
    local answered=0
    for _ in $(seq 1 1200); do
        if curl -fsS -m 2 "$base/" >"$dir/$label.root" 2>/dev/null; then answered=1; break; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    [ $answered = 1 ] || { echo "$label: / never answered"; return 1; }
    echo "$label: / answered: $(head -c 100 "$dir/$label.root")"
    local status; status=$(curl -s -o /dev/null -w '%{http_code}' -m 10 "$base$fail_path")
    [ "$status" = 500 ] || { echo "$label: $fail_path answered $status, expected 500"; return 1; }
    # The failure is written in the background: wait (bounded) until the page and the API list it.
    for _ in $(seq 1 100); do
        if curl -fsS -m 5 "$base/dev/error/api/errors" >"$dir/$label.api" 2>/dev/null \
            && curl -fsS -m 5 "$base/dev/error/" >"$dir/$label.html" 2>/dev/null \
            && grep -q "$expect" "$dir/$label.api" && grep -q "$fail_path" "$dir/$label.api" \
            && grep -q "$expect" "$dir/$label.html"; then
            echo "$label: $fail_path recorded, listed at /dev/error/ and by /dev/error/api/errors"
            return 0
        fi
        sleep 0.2
    done
    echo "$label: $fail_path was not listed; the API said:"; head -c 2000 "$dir/$label.api"; echo
    return 1
}
