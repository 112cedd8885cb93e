// What the DNS checks share: the mail route of the domain being judged, analysed once per
// recipient (or sender) and kept in the CheckContext for the other checks of the same stage
// run, and the one reply for DNS trouble (on-dns-error: 451 4.4.3 or accept).
// Who uses it: checks/null_mx, bogus_mx, no_mail_domain, null_mx_sender, unroutable_sender.
// Thread-safety: works on the caller's CheckContext only.
#pragma once

#include <optional>
#include <string_view>

#include "mxguard/check.h"
#include "mxguard/dns/mail_route.h"

namespace mxguard::checks {

// The exemptions of the DNS checks: not the trusted/authenticated one, because the web form
// relaying through the local MTA is exactly the client whose recipients must be judged.
constexpr unsigned kDnsCheckExemptions = kExemptAllowed | kExemptPostmaster;

// The route of the domain of `address`, or nothing when there is nothing to look up: no
// resolver configured, no domain, or one of our local domains (never looked up).
const dns::MailRoute* route_for(CheckContext& ctx, const Address& address,
                                dns::RouteDepth depth = dns::RouteDepth::Full);

// For a route that DNS could not decide (tempfail, invalid): 451 4.4.3 under
// on-dns-error = tempfail, else nothing; logged either way.
std::optional<Verdict> dns_trouble(const dns::MailRoute& route, const Session& session,
                                   const CheckContext& ctx, std::string_view check,
                                   std::string_view address);

}  // namespace mxguard::checks
