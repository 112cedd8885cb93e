// `mxguard [OPTIONS] audit [OPTIONS] DOMAIN...`: the command line of the audit report
// (dns/audit.h). Its options are the daemon's own, read by the same parser (-c FILE,
// --dns-server, --self ADDR, --help), before or after the word audit, so the two cannot drift
// apart; without -c it reads the daemon's default config file. Every other word is a domain.
// Who calls it: main() when the first word that is not an option is "audit".
// Thread-safety: runs on the main thread before anything else.
#pragma once

#include "mxguard/config.h"

namespace mxguard::milter {

// Prints the reports to stdout and problems to stderr; returns the exit status
// (dns::kAudit*, EX_USAGE, EX_CONFIG).
// `cl`: the whole command line, the word audit included.
int run_audit(const CommandLine& cl);

}  // namespace mxguard::milter
