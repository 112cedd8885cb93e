#include "mxguard/checks/no_mail_domain.h"

#include <fmt/format.h>

namespace mxguard::checks {

std::optional<Verdict> NoMailDomainCheck::evaluate(Stage, const Session& session,
                                                   CheckContext& ctx) const {
  const dns::MailRoute* route = route_for(ctx, session.tx.rcpt);
  if (!route) return std::nullopt;
  std::string_view why;
  std::string_view reason;
  switch (route->kind) {
    case dns::RouteKind::NoSuchDomain:
      // Postfix's own words for reject_unknown_recipient_domain.
      why = "Domain not found";
      reason = "nxdomain";
      break;
    case dns::RouteKind::NoExchanger:
      why = "Domain has no mail exchanger with an address";
      reason = "no-exchanger";
      break;
    case dns::RouteKind::TempFail:
    case dns::RouteKind::Invalid:
      return dns_trouble(*route, session, ctx, name(), session.tx.rcpt.raw);
    default:
      return std::nullopt;
  }
  auto reply = SmtpReply::make(
      550, "5.1.2", fmt::format("<{}>: Recipient address rejected: {}", session.tx.rcpt.raw, why));
  if (!reply) reply = SmtpReply::fixed(550, "5.1.2", "Recipient address rejected: no mail domain");
  return Verdict::reject(std::move(reply).value(), "no-mail-domain", std::string(reason));
}

}  // namespace mxguard::checks
