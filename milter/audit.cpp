#include "audit.h"

#include <fmt/format.h>
#include <sysexits.h>

#include <algorithm>

#include "mxguard/config.h"
#include "mxguard/dns/audit.h"

namespace mxguard::milter {

namespace {

constexpr std::string_view kUsage =
    "usage: mxguard audit [--dns-server ADDR[:PORT]] [--self ADDR] [-c FILE] DOMAIN...\n";

}  // namespace

int run_audit(const std::vector<std::string>& args) {
  CommandLine cl{args};
  // The route classes need the bogus-networks table even when the config turns bogus-mx off.
  const bool has_bogus = std::any_of(args.begin(), args.end(), [](const std::string& a) {
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
