// unroutable-sender: (off by default) a sender domain mail cannot be returned to: no such domain,
// no exchanger, or only bogus exchangers: 550 5.1.8. The null sender is never judged here.
// Thread-safety: immutable; the route comes from the caller's CheckContext.
#pragma once

#include "mxguard/checks/route_lookup.h"

namespace mxguard::checks {

class UnroutableSenderCheck final : public DnsCheck {
 public:
  using DnsCheck::DnsCheck;
  std::string_view name() const override { return "unroutable-sender"; }
  StageSet stages() const override { return {Stage::Mail}; }
  std::optional<Verdict> evaluate(Stage stage, const Session& session,
                                  CheckContext& ctx) const override;
};

}  // namespace mxguard::checks
