// no-mail-domain: a recipient domain that does not exist, or has no exchanger with an address (no
// MX and no A/AAAA, or MX hosts that do not exist): 550 5.1.2. Thread-safety: immutable; the route
// comes from the caller's CheckContext.
#pragma once

#include "mxguard/checks/route_lookup.h"

namespace mxguard::checks {

class NoMailDomainCheck final : public DnsCheck {
 public:
  using DnsCheck::DnsCheck;
  std::string_view name() const override { return "no-mail-domain"; }
  StageSet stages() const override { return {Stage::Rcpt}; }
  std::optional<Verdict> evaluate(Stage stage, const Session& session,
                                  CheckContext& ctx) const override;
};

}  // namespace mxguard::checks
