// `mxguard audit [OPTIONS] DOMAIN...`: the command line of the audit report (dns/audit.h). Its
// options are the daemon's own, read by the same parser (-c FILE, --dns-server, --self ADDR,
// --help), so the two cannot drift apart; every other word is a domain.
// Who calls it: main() when argv[1] is "audit".
// Thread-safety: runs on the main thread before anything else.
#pragma once

#include <string>
#include <vector>

namespace mxguard::milter {

// Prints the reports to stdout and problems to stderr; returns the exit status
// (dns::kAudit*, EX_USAGE, EX_CONFIG).
int run_audit(const std::vector<std::string>& args);

}  // namespace mxguard::milter
