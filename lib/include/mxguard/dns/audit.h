// `mxguard audit DOMAIN…`: explains a domain's mail routing as mxguard sees it — MX set,
// addresses and their classification, null MX, SPF "-all" — and what the admin should publish
// or fix. Kept in lib/ so it is tested without the daemon; its command line is milter/audit.h.
// Who calls it: milter/audit.cpp; tests.
// Thread-safety: runs on the caller's thread; the analyzer is shared read-only.
#pragma once

#include <string>
#include <vector>

#include "mxguard/dns/mail_route.h"

namespace mxguard::dns {

struct AuditResult {
  MailRoute route;
  std::optional<std::string> spf;  // the v=spf1 record, if exactly one
  bool spf_lookup_failed = false;
  bool spf_rejects_all = false;  // "v=spf1 -all" (nothing allowed, hard fail)
  std::vector<std::string> advice;
  std::string text;  // the whole report for this domain, lines ending in '\n'
};

AuditResult audit_domain(const RouteAnalyzer& analyzer, std::string_view domain,
                         const std::vector<net::IpAddress>& self);

// Exit statuses for scripts: every domain deliverable; some domain takes no mail (null MX,
// bogus, no exchanger, no such domain, invalid); some lookup failed (that wins: the answer is
// not known).
constexpr int kAuditDeliverable = 0;
constexpr int kAuditNotDeliverable = 1;
constexpr int kAuditError = 2;

}  // namespace mxguard::dns
