// What the DNS checks share: their options, the mail route of the domain being judged
// (analysed once per recipient or sender and kept in the CheckContext for the other checks of
// the same stage run), the one reply for DNS trouble (on-dns-error: 451 4.4.3 or accept, a
// failure policy counted by the CheckContext) and the words for a domain that takes no mail.
// Who uses it: checks/null_mx, bogus_mx, no_mail_domain, null_mx_sender, unroutable_sender,
// unhandled_domain.
// Thread-safety: the checks are immutable; routes live in the caller's CheckContext.
#pragma once

#include <optional>
#include <string_view>

#include "mxguard/check.h"
#include "mxguard/dns/mail_route.h"
#include "mxguard/site.h"

namespace mxguard::checks {

// The exemptions of the DNS checks: not the trusted/authenticated one, because the web form
// relaying through the local MTA is exactly the client whose recipients must be judged.
constexpr unsigned kDnsCheckExemptions = kExemptAllowed | kExemptPostmaster;

struct DnsCheckOptions {
  SiteOptions site;  // our own domains are never looked up
  FailureAction on_dns_error = FailureAction::Tempfail;
  bool full_sender_route = false;  // unroutable-sender is on: analyse senders fully
};

// The route of the domain of `address`, or nothing when there is nothing to look up: no
// resolver configured, no domain, or one of our local domains (never looked up).
const dns::MailRoute* route_for(CheckContext& ctx, const SiteOptions& site, const Address& address,
                                dns::RouteDepth depth = dns::RouteDepth::Full);

// Postfix's words for a domain that cannot take mail (NXDOMAIN, no exchanger), and the reason
// tag; nothing for any other route.
struct NoMailDomain {
  std::string_view why;
  std::string_view reason;
};
std::optional<NoMailDomain> no_mail_domain(const dns::MailRoute& route);

class DnsCheck : public Check {
 public:
  explicit DnsCheck(DnsCheckOptions o) : options_(std::move(o)) {}
  unsigned exemptions() const override { return kDnsCheckExemptions; }

 protected:
  const dns::MailRoute* lookup_route(CheckContext& ctx, const Address& address,
                                     dns::RouteDepth depth = dns::RouteDepth::Full) const {
    return route_for(ctx, options_.site, address, depth);
  }
  // For a route that DNS could not decide (tempfail, invalid): 451 4.4.3 under
  // on-dns-error = tempfail, else nothing; counted and logged either way.
  std::optional<Verdict> dns_trouble(const dns::MailRoute& route, const Session& session,
                                     const CheckContext& ctx, std::string_view address) const;

  DnsCheckOptions options_;
};

}  // namespace mxguard::checks
