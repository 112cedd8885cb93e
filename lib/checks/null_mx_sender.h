// null-mx-sender: a sender domain that publishes a null MX cannot receive replies or bounces:
// 550 5.7.27 (RFC 7505 §4.2). The null sender is never judged here. Thread-safety: immutable; the
// route comes from the caller's CheckContext.
#pragma once

#include "mxguard/checks/route_lookup.h"

namespace mxguard::checks {

class NullMxSenderCheck final : public DnsCheck {
 public:
  using DnsCheck::DnsCheck;
  std::string_view name() const override { return "null-mx-sender"; }
  StageSet stages() const override { return {Stage::Mail}; }
  std::optional<Verdict> evaluate(Stage stage, const Session& session,
                                  CheckContext& ctx) const override;
};

}  // namespace mxguard::checks
