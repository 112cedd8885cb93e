// Service-manager integration: tells systemd (Type=notify) when mxguard is ready, reloading
// and stopping, and whether standard error is the journal (so that -f under systemd does not
// log every line twice, once through syslog and once through stderr).
// Who calls it: milter/main.cpp, at start-up, around a reload (signal thread) and at stop.
// Threading: sd_notify() is safe from any thread; these functions keep no state.
// Without libsystemd at build time, or outside systemd (no $NOTIFY_SOCKET), they do nothing.
#pragma once

namespace mxguard::milter {

void notify_ready();
void notify_reloading();
void notify_stopping();

// True when stderr is the journal stream systemd gave this service ($JOURNAL_STREAM).
bool stderr_is_journal();

}  // namespace mxguard::milter
