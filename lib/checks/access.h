// access: Postfix-syntax access tables for the client, HELO name, sender and each recipient.
// Tables are looked up in the order configured, with Postfix's lookup order inside each
// (see tables/table.h); the first result that is not DUNNO decides, as in smtpd_check.c.
// Thread-safety: immutable; the tables are shared read-only.
#pragma once

#include "mxguard/check.h"
#include "mxguard/checks/options.h"

namespace mxguard::checks {

class AccessCheck final : public Check {
 public:
  explicit AccessCheck(AccessOptions o);
  std::string_view name() const override { return "access"; }
  // Only the stages that have a table: a stage no check needs is not asked of the MTA (a
  // HELO event with its reply is a round trip in every session).
  StageSet stages() const override { return stages_; }
  // The admin's explicit tables apply to everyone, as Postfix applies them.
  unsigned exemptions() const override { return kExemptNone; }
  std::optional<Verdict> evaluate(Stage stage, const Session& session,
                                  CheckContext& ctx) const override;

 private:
  AccessOptions options_;
  StageSet stages_;
};

}  // namespace mxguard::checks
