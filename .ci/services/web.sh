# Servers and programs the web suites need: Debian's Chromium for the browser tests (Playwright drives it
# at /usr/bin/chromium; nothing is downloaded), and a throwaway PostgreSQL server.
start_services_for_web() {
    local ok=0
    if [ ! -x /usr/bin/chromium ]; then
        ensure_packages chromium || { echo "Chromium is missing and could not be installed"; ok=1; }
    fi
    start_postgres || ok=1
    start_smtp || ok=1
    return $ok
}
