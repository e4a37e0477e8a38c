# access_check DIR: local-only mode against real clients. The demo runs in a network namespace of this run's own
# (10.213.0.1, and its loopback), a second namespace holds a real non-loopback client (10.213.0.2, over a veth
# pair), and a real nginx on the demo's machine proxies to it the usual way (X-Forwarded-For, X-Real-IP). Sets
# ACCESS_PASSED / ACCESS_FAILED (one count a check). Needs root (namespaces; nginx is installed when missing).
# Every server is stopped by its process group, and both namespaces are deleted, when the check ends.
access_check() {
    local dir=$1
    ACCESS_PASSED=0; ACCESS_FAILED=0
    if [ "$(id -u)" != 0 ]; then
        echo "access: needs root for network namespaces: counted as one failure"; ACCESS_FAILED=1; return
    fi
    ensure_packages nginx || { echo "access: nginx is missing and could not be installed"; ACCESS_FAILED=1; return; }
    local app_ns="emapp$$" cli_ns="emcli$$" port=5080 proxy=5081
    local demo_dll; demo_dll=$(ls "$ROOT"/samples/DemoApp/bin/Debug/net10.0/DemoApp.dll 2>/dev/null)
    [ -n "$demo_dll" ] || { echo "access: the demo is not built"; ACCESS_FAILED=1; return; }
    ip netns add "$app_ns" && ip netns add "$cli_ns" || { echo "access: cannot create namespaces"; ACCESS_FAILED=1; return; }
    local pids=()
    _access_cleanup() {
        for pid in "${pids[@]:-}"; do if [ -n "$pid" ]; then kill -- "-$pid" 2>/dev/null || true; fi; done
        ip netns del "$app_ns" 2>/dev/null || true
        ip netns del "$cli_ns" 2>/dev/null || true
    }
    ip link add "ema$$" type veth peer name "emc$$" \
        && ip link set "ema$$" netns "$app_ns" && ip link set "emc$$" netns "$cli_ns" \
        && ip -n "$app_ns" addr add 10.213.0.1/30 dev "ema$$" && ip -n "$cli_ns" addr add 10.213.0.2/30 dev "emc$$" \
        && ip -n "$app_ns" link set "ema$$" up && ip -n "$cli_ns" link set "emc$$" up \
        && ip -n "$app_ns" link set lo up && ip -n "$cli_ns" link set lo up \
        || { echo "access: cannot wire the namespaces"; _access_cleanup; ACCESS_FAILED=1; return; }

    ConnectionStrings__ErrorMonitor="Data Source=$dir/access.db" ip netns exec "$app_ns" \
        setsid dotnet "$demo_dll" --urls "http://127.0.0.1:$port;http://10.213.0.1:$port" >"$dir/access-demo.log" 2>&1 &
    pids+=($!)
    cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log;
events { worker_connections 64; }
http {
    access_log $dir/nginx-access.log;
    client_body_temp_path $dir/nginx-body;
    proxy_temp_path $dir/nginx-proxy;
    fastcgi_temp_path $dir/nginx-fastcgi;
    uwsgi_temp_path $dir/nginx-uwsgi;
    scgi_temp_path $dir/nginx-scgi;
    server {
        listen 10.213.0.1:$proxy;
        listen 127.0.0.1:$proxy;
        location / {
            proxy_pass http://127.0.0.1:$port;
            proxy_set_header Host \$host;
            proxy_set_header X-Real-IP \$remote_addr;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
CONF
    ip netns exec "$app_ns" setsid nginx -c "$dir/nginx.conf" -p "$dir" -g 'daemon off;' >"$dir/nginx.log" 2>&1 &
    pids+=($!)

    local up=0
    for _ in $(seq 1 200); do
        if ip netns exec "$app_ns" curl -fsS -m 2 "http://127.0.0.1:$port/" >/dev/null 2>&1 \
            && ip netns exec "$app_ns" curl -fsS -m 2 "http://127.0.0.1:$proxy/" >/dev/null 2>&1; then up=1; break; fi
        sleep 0.2
    done
    if [ $up = 0 ]; then
        echo "access: the demo or nginx did not start:"; tail -n 20 "$dir/access-demo.log" "$dir/nginx.log" "$dir/nginx-error.log" 2>/dev/null
        _access_cleanup; ACCESS_FAILED=1; return
    fi
    ip netns exec "$app_ns" curl -s -o /dev/null -m 10 "http://127.0.0.1:$port/value-error"

    # expect LABEL STATUS NAMESPACE CURL-ARGS...: the answer's status, and no record in a refused answer.
    expect() {
        local label=$1 want=$2 ns=$3; shift 3
        local body="$dir/access-body" status listed=0
        for _ in $(seq 1 50); do
            status=$(ip netns exec "$ns" curl -s -o "$body" -w '%{http_code}' -m 10 "$@")
            [ "$want" != 200 ] && break
            grep -q ArgumentException "$body" && { listed=1; break; }
            sleep 0.2
        done
        if [ "$status" = "$want" ] && { [ "$want" != 200 ] || [ $listed = 1 ]; } \
            && { [ "$want" = 200 ] || ! grep -q ArgumentException "$body"; }; then
            echo "access: $label: $status, as it must"; ACCESS_PASSED=$((ACCESS_PASSED + 1))
        else
            echo "access: $label: $status (expected $want); body: $(head -c 300 "$body")"; ACCESS_FAILED=$((ACCESS_FAILED + 1))
        fi
    }
    expect "a loopback client on the app's machine may browse" 200 "$app_ns" "http://127.0.0.1:$port/dev/error/api/errors"
    expect "a real non-loopback client is refused" 403 "$cli_ns" "http://10.213.0.1:$port/dev/error/api/errors"
    expect "the non-loopback client's page request is refused" 403 "$cli_ns" "http://10.213.0.1:$port/dev/error/"
    expect "a rebound DNS name on loopback is refused" 403 "$app_ns" -H "Host: attacker.example:$port" "http://127.0.0.1:$port/dev/error/api/errors"
    expect "the remote client through a same-machine nginx is refused" 403 "$cli_ns" "http://10.213.0.1:$proxy/dev/error/api/errors"
    expect "even a local client through that nginx is treated as forwarded" 403 "$app_ns" "http://127.0.0.1:$proxy/dev/error/api/errors"
    _access_cleanup
}
