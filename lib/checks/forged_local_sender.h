// forged-local-sender: one of our own domains as envelope sender from a client that is neither
// authenticated nor on a trusted network. Off by default: forwarders and mailing lists outside
// legitimately send with our users' addresses.
// Thread-safety: immutable.
#pragma once

#include "mxguard/check.h"
#include "mxguard/site.h"

namespace mxguard::checks {

class ForgedLocalSenderCheck final : public Check {
 public:
  explicit ForgedLocalSenderCheck(SiteOptions site) : site_(std::move(site)) {}
  std::string_view name() const override { return "forged-local-sender"; }
  StageSet stages() const override { return {Stage::Mail}; }
  std::optional<Verdict> evaluate(Stage stage, const Session& session,
                                  CheckContext& ctx) const override;

 private:
  SiteOptions site_;
};

}  // namespace mxguard::checks
