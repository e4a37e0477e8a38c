# A throwaway PostgreSQL cluster on 127.0.0.1 for this run: Debian's postgresql (installed when missing, as
# root), initdb into a temp folder as the postgres user, fsync off. Stopped and removed when the run ends.
start_postgres() {
    [ -n "${ERRORMONITOR_TEST_POSTGRES:-}" ] && return 0
    ensure_packages postgresql || { echo "PostgreSQL is missing and could not be installed"; return 1; }
    local bin; bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -x "$bin/initdb" ] || { echo "no initdb under /usr/lib/postgresql"; return 1; }
    local dir; dir=$(mktemp -d /tmp/errormonitor-pg.XXXXXX)
    chown postgres "$dir"
    local port; port=$(free_port)
    local opts="-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
    runuser -u postgres -- "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1 \
        || { echo "initdb failed:"; cat "$dir/initdb.log"; return 1; }
    local start="runuser -u postgres -- $bin/pg_ctl -D $dir/data -o '$opts' -l $dir/server.log -w -t 60 start"
    local stop="runuser -u postgres -- $bin/pg_ctl -D $dir/data -m fast -w -t 60 stop"
    eval "$start" >/dev/null || { echo "PostgreSQL did not start:"; cat "$dir/server.log"; return 1; }
    CLEANUP+=("runuser -u postgres -- $bin/pg_ctl -D $dir/data -m immediate -w stop; rm -rf $dir")
    export ERRORMONITOR_TEST_POSTGRES="Host=127.0.0.1;Port=$port;Username=postgres;Database=postgres;Pooling=true;Maximum Pool Size=50;Timeout=5"
    export ERRORMONITOR_TEST_PG_START="$start"
    export ERRORMONITOR_TEST_PG_STOP="$stop"
    echo "PostgreSQL on 127.0.0.1:$port"
}
