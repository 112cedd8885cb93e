#include "checks/unroutable_sender.h"

#include <fmt/format.h>

namespace mxguard::checks {

std::optional<Verdict> UnroutableSenderCheck::evaluate(Stage, const Session& session,
                                                       CheckContext& ctx) const {
  if (session.tx.sender.null()) return std::nullopt;
  const dns::MailRoute* route = lookup_route(ctx, session.tx.sender);
  if (!route) return std::nullopt;
  if (route->kind == dns::RouteKind::TempFail || route->kind == dns::RouteKind::Invalid)
    return dns_trouble(*route, session, ctx, session.tx.sender.raw);
  std::string why;
  std::string_view reason;
  if (const auto none = no_mail_domain(*route)) {
    why = none->why;  // Postfix's reject_unknown_sender_domain words
    reason = none->reason;
  } else if (route->kind == dns::RouteKind::Bogus && route->bogus && route->bogus->bogus) {
    why = fmt::format("Domain MX in {}", route->bogus->bogus->describe(route->bogus->address));
    reason = "bogus-mx";
  } else {
    return std::nullopt;
  }
  auto reply = SmtpReply::make(
      550, "5.1.8", fmt::format("<{}>: Sender address rejected: {}", session.tx.sender.raw, why));
  if (!reply) reply = SmtpReply::fixed(550, "5.1.8", "Sender address rejected: unroutable");
  return Verdict::reject(std::move(reply).value(), "unroutable-sender", std::string(reason));
}

}  // namespace mxguard::checks
