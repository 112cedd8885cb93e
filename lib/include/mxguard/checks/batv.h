// batv: at RCPT, a recipient of ours with a prvs tag that is expired, forged or signed with an
// unknown key is refused (550 5.7.1) — probes and bounces of forged mail fail early, and a
// valid tag is recorded for the backscatter check and for tag removal at end of message.
// Enforce mode (batv-enforce-domains): in the DATA stage, after the probes have left and
// before any body byte, a null-sender message to such a domain without a valid tag is refused.
// Signing (batv-sign) is a message change, planned by message::plan_changes().
// Thread-safety: immutable.
#pragma once

#include "mxguard/batv/options.h"
#include "mxguard/check.h"
#include "mxguard/site.h"

namespace mxguard::checks {

class BatvCheck final : public Check {
 public:
  BatvCheck(batv::BatvOptions batv, SiteOptions site)
      : batv_(std::move(batv)), site_(std::move(site)) {}
  std::string_view name() const override { return "batv"; }
  StageSet stages() const override { return {Stage::Rcpt, Stage::Data}; }
  std::optional<Verdict> evaluate(Stage stage, const Session& session,
                                  CheckContext& ctx) const override;

 private:
  batv::BatvOptions batv_;
  SiteOptions site_;
};

}  // namespace mxguard::checks
