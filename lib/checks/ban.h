// ban: clients banned by the strikes engine (state/bans.h) get 421 4.7.0 at connect. A wrong
// ban only delays mail: a 4xx makes the sender's MTA try again later, and the ban expires.
// A state store that cannot answer is a store error: on-store-error decides (accept by
// default, since not knowing of a ban is no reason to refuse mail).
// Thread-safety: immutable.
#pragma once

#include "mxguard/check.h"

namespace mxguard::checks {

class BanCheck final : public Check {
 public:
  explicit BanCheck(FailureAction on_store_error) : on_store_error_(on_store_error) {}
  std::string_view name() const override { return "ban"; }
  StageSet stages() const override { return {Stage::Connect}; }
  std::optional<Verdict> evaluate(Stage stage, const Session& session,
                                  CheckContext& ctx) const override;

 private:
  FailureAction on_store_error_;
};

}  // namespace mxguard::checks
