#include "audit.h"

#include <fmt/format.h>
#include <sysexits.h>

#include <algorithm>

#include "mxguard/config.h"
#include "mxguard/dns/audit.h"

namespace mxguard::milter {

namespace {

constexpr std::string_view kUsage =
    "usage: mxguard audit [-c FILE] [--dns-server ADDR[:PORT]] [--self ADDR] DOMAIN...\n"
    "Explains each domain's mail route as mxguard sees it, and what to publish for a domain\n"
    "that takes no mail. Without -c, the options of /etc/mxguard/mxguard.conf apply when it\n"
    "exists (-c /dev/null: none); -c FILE may come before or after the word audit.\n";

}  // namespace

int run_audit(const CommandLine& command_line) {
  CommandLine cl = command_line;
  // The route classes need the bogus-networks table even when the config turns bogus-mx off.
  const bool has_bogus = std::any_of(cl.args.begin(), cl.args.end(), [](const std::string& a) {
    return a.rfind("--bogus-networks", 0) == 0;
  });
  if (!has_bogus) cl.args.push_back("--check.bogus-mx=on");
  Invocation inv;
  inv.operands_allowed = true;
  auto cfg = load_config(cl, &inv);
  if (inv.help) {
    fmt::print("{}\n{}", kUsage, inv.help_text);
    return 0;
  }
  if (!cfg) {
    fmt::print(stderr, "mxguard: {}\n", cfg.error().to_string());
    return EX_CONFIG;
  }
  if (!inv.operands.empty()) inv.operands.erase(inv.operands.begin());  // "audit"
  if (inv.operands.empty()) {
    fmt::print(stderr, "{}", kUsage);
    return EX_USAGE;
  }
  auto analyzer = dns::make_route_analyzer((*cfg)->dns);
  if (!analyzer) {
    fmt::print(stderr, "mxguard audit: {}\n", analyzer.error());
    return EX_CONFIG;
  }
  int status = dns::kAuditDeliverable;
  for (const auto& d : inv.operands) {
    dns::AuditResult r = dns::audit_domain(**analyzer, d, (*cfg)->site.self_addresses);
    fmt::print("{}", r.text);
    if (r.route.kind == dns::RouteKind::TempFail) {
      status = dns::kAuditError;
    } else if (r.route.kind != dns::RouteKind::Deliverable && status != dns::kAuditError) {
      status = dns::kAuditNotDeliverable;
    }
  }
  return status;
}

}  // namespace mxguard::milter
