// bogus-mx: a recipient domain whose every mail exchanger resolves only into non-routable space
// (rules/bogus-networks.cidr): 550 5.1.2 naming the range. Accepting such mail only makes a bounce
// to a possibly forged sender. Thread-safety: immutable; the route comes from the caller's
// CheckContext.
#pragma once

#include "mxguard/checks/route_lookup.h"

namespace mxguard::checks {

class BogusMxCheck final : public DnsCheck {
 public:
  using DnsCheck::DnsCheck;
  std::string_view name() const override { return "bogus-mx"; }
  StageSet stages() const override { return {Stage::Rcpt}; }
  std::optional<Verdict> evaluate(Stage stage, const Session& session,
                                  CheckContext& ctx) const override;
};

}  // namespace mxguard::checks
