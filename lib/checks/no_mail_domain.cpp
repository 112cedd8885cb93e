#include "checks/no_mail_domain.h"

#include <fmt/format.h>

namespace mxguard::checks {

std::optional<Verdict> NoMailDomainCheck::evaluate(Stage, const Session& session,
                                                   CheckContext& ctx) const {
  const dns::MailRoute* route = lookup_route(ctx, session.tx.rcpt);
  if (!route) return std::nullopt;
  if (route->kind == dns::RouteKind::TempFail || route->kind == dns::RouteKind::Invalid)
    return dns_trouble(*route, session, ctx, session.tx.rcpt.raw);
  const auto none = no_mail_domain(*route);
  if (!none) return std::nullopt;
  const auto [why, reason] = *none;
  auto reply = SmtpReply::make(
      550, "5.1.2", fmt::format("<{}>: Recipient address rejected: {}", session.tx.rcpt.raw, why));
  if (!reply) reply = SmtpReply::fixed(550, "5.1.2", "Recipient address rejected: no mail domain");
  return Verdict::reject(std::move(reply).value(), "no-mail-domain", std::string(reason));
}

}  // namespace mxguard::checks
