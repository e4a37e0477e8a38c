# Servers and programs the web suites need: Debian's Chromium for the browser tests (Playwright drives it
# at /usr/bin/chromium; nothing is downloaded).
start_services_for_web() {
    if [ ! -x /usr/bin/chromium ]; then
        ensure_packages chromium || { echo "Chromium is missing and could not be installed"; return 1; }
    fi
    return 0
}
