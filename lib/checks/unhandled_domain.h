// unhandled-domain: recipients in the website-only domains the admin lists (unhandled-domains):
// the domain's A record points at the mail server, so SMTP's implicit MX brings mail here that
// nobody will ever read. Answers 550 5.1.2, or 556 5.1.10 when the domain publishes null MX.
// It also counts strikes against the client, but only when DNS could not have sent the client
// here: the domain publishes null MX, or its mail exchangers do not include the address the
// client connected to. An implicit-MX domain whose A record is ours earns no strike: a real
// provider whose user mistyped may well come that way, and banning it would cut off our own
// domains too. Recipients the MTA refused itself (Postfix SMFIP_RCPT_REJ) count the same way.
// Thread-safety: immutable; strikes go through the thread-safe Bans engine.
#pragma once

#include "mxguard/check.h"
#include "mxguard/checks/options.h"
#include "mxguard/site.h"

namespace mxguard::checks {

class UnhandledDomainCheck final : public Check {
 public:
  UnhandledDomainCheck(WebsiteOptions o, SiteOptions site)
      : options_(std::move(o)), site_(std::move(site)) {}
  std::string_view name() const override { return "unhandled-domain"; }
  StageSet stages() const override { return {Stage::Rcpt}; }
  // Trusted and authenticated clients are judged too (their mail for the domain would only
  // bounce), but never earn strikes (see evaluate).
  unsigned exemptions() const override { return kExemptAllowed | kExemptPostmaster; }
  bool sees_mta_rejections() const override { return true; }
  std::optional<Verdict> evaluate(Stage stage, const Session& session,
                                  CheckContext& ctx) const override;

 private:
  WebsiteOptions options_;
  SiteOptions site_;
};

// True when `domain` (as Address::domain has it: lower case, no trailing dot) is on the list or
// below a listed domain.
bool is_unhandled_domain(const std::vector<std::string>& list, std::string_view domain);

}  // namespace mxguard::checks
