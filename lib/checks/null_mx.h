// null-mx: a recipient domain that publishes a null MX (RFC 7505) takes no mail: 556 5.1.10 at
// RCPT, instead of a bounce later. Thread-safety: immutable; the route comes from the caller's
// CheckContext.
#pragma once

#include "mxguard/checks/route_lookup.h"

namespace mxguard::checks {

class NullMxCheck final : public DnsCheck {
 public:
  using DnsCheck::DnsCheck;
  std::string_view name() const override { return "null-mx"; }
  StageSet stages() const override { return {Stage::Rcpt}; }
  std::optional<Verdict> evaluate(Stage stage, const Session& session,
                                  CheckContext& ctx) const override;
};

}  // namespace mxguard::checks
