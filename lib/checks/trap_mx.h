// trap-mx: nolisting with logs. Connections to a listener address published only as a fake MX
// (trap-address) get 421 4.7.0 at connect (real MTAs go on to the next MX; bots that try one
// MX give up), unless the client is allow-listed (allow-networks, trusted-networks). With
// trap-allow-senders tables the decision waits for MAIL and RCPT, so that listed senders or
// recipients pass. Every hit is logged and counts as a strike against the client.
// Thread-safety: immutable; strikes go through the thread-safe Bans engine.
#pragma once

#include "mxguard/check.h"
#include "mxguard/checks/options.h"

namespace mxguard::checks {

class TrapMxCheck final : public Check {
 public:
  explicit TrapMxCheck(TrapOptions o) : options_(std::move(o)) {}
  std::string_view name() const override { return "trap-mx"; }
  StageSet stages() const override { return {Stage::Connect, Stage::Rcpt}; }
  unsigned exemptions() const override { return kExemptTrustedClient | kExemptAllowed; }
  std::optional<Verdict> evaluate(Stage stage, const Session& session,
                                  CheckContext& ctx) const override;

 private:
  TrapOptions options_;
};

}  // namespace mxguard::checks
