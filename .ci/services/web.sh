# Servers the web suites need. Later stores and notifiers add theirs here.
start_services_for_web() {
    return 0
}
