# A throwaway SMTP server on 127.0.0.1 for this run: Debian's python3-aiosmtpd (installed when missing, as
# root), delivering into a Maildir the suites read. Stopped by its PID when the run ends.
start_smtp() {
    [ -n "${ERRORMONITOR_TEST_SMTP_PORT:-}" ] && return 0
    /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || ensure_packages python3-aiosmtpd \
        || { echo "python3-aiosmtpd is missing and could not be installed"; return 1; }
    local dir; dir=$(mktemp -d /tmp/errormonitor-smtp.XXXXXX)
    mkdir -p "$dir/maildir/tmp" "$dir/maildir/new" "$dir/maildir/cur"
    local port; port=$(free_port)
    /usr/bin/python3 -m aiosmtpd -n -l "127.0.0.1:$port" -c aiosmtpd.handlers.Mailbox "$dir/maildir" >"$dir/smtp.log" 2>&1 &
    local pid=$!
    SERVICE_PIDS+=("$pid")
    CLEANUP+=("rm -rf $dir")
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || { echo "the SMTP server did not start:"; cat "$dir/smtp.log"; return 1; }
        sleep 0.1
    done
    export ERRORMONITOR_TEST_SMTP_PORT="$port"
    export ERRORMONITOR_TEST_MAILDIR="$dir/maildir"
    echo "SMTP on 127.0.0.1:$port"
}
