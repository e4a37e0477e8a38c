# Servers and programs the web suites need: Debian's Chromium for the browser tests (Playwright drives it
# at /usr/bin/chromium; nothing is downloaded), Debian's Sentry Python SDK, a throwaway PostgreSQL server and
# an SMTP server.
start_services_for_web() {
    local ok=0
    if [ ! -x /usr/bin/chromium ]; then
        ensure_packages chromium || { echo "Chromium is missing and could not be installed"; ok=1; }
    fi
    # The Sentry Python SDK (Debian's python3-sentry-sdk, for /usr/bin/python3) reports to the Sentry endpoint.
    if ! /usr/bin/python3 -c 'import sentry_sdk' 2>/dev/null; then
        ensure_packages python3-sentry-sdk || { echo "python3-sentry-sdk is missing and could not be installed"; ok=1; }
    fi
    bundle_sentry_browser || ok=1
    start_postgres || ok=1
    start_smtp || ok=1
    return $ok
}

# The real Sentry browser SDK (npm @sentry/browser, pinned in tests/sentry-browser/package.json) bundled with
# esbuild into tests/sentry-browser/dist/sentry.js for the Chromium test of the Sentry endpoint.
bundle_sentry_browser() {
    local dir="$ROOT/tests/sentry-browser"
    [ -f "$dir/dist/sentry.js" ] && return 0
    (cd "$dir" && npm install --no-package-lock --no-audit --no-fund --silent >/dev/null 2>&1 &&
        node_modules/.bin/esbuild entry.js --bundle --format=iife --log-level=error --outfile=dist/sentry.js) ||
        { echo "could not bundle @sentry/browser (npm install in tests/sentry-browser)"; return 1; }
}
