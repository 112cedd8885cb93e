#include "mxguard/checks/unroutable_sender.h"

#include <fmt/format.h>

namespace mxguard::checks {

std::optional<Verdict> UnroutableSenderCheck::evaluate(Stage, const Session& session,
                                                       CheckContext& ctx) const {
  if (session.tx.sender.null()) return std::nullopt;
  const dns::MailRoute* route = route_for(ctx, session.tx.sender);
  if (!route) return std::nullopt;
  std::string why;
  std::string_view reason;
  switch (route->kind) {
    case dns::RouteKind::NoSuchDomain:
      why = "Domain not found";  // Postfix's reject_unknown_sender_domain words
      reason = "nxdomain";
      break;
    case dns::RouteKind::NoExchanger:
      why = "Domain has no mail exchanger with an address";
      reason = "no-exchanger";
      break;
    case dns::RouteKind::Bogus:
      if (!route->bogus || !route->bogus->bogus) return std::nullopt;
      why = fmt::format("Domain MX in {}", route->bogus->bogus->describe(route->bogus->address));
      reason = "bogus-mx";
      break;
    case dns::RouteKind::TempFail:
    case dns::RouteKind::Invalid:
      return dns_trouble(*route, session, ctx, name(), session.tx.sender.raw);
    default:
      return std::nullopt;
  }
  auto reply = SmtpReply::make(
      550, "5.1.8", fmt::format("<{}>: Sender address rejected: {}", session.tx.sender.raw, why));
  if (!reply) reply = SmtpReply::fixed(550, "5.1.8", "Sender address rejected: unroutable");
  return Verdict::reject(std::move(reply).value(), "unroutable-sender", std::string(reason));
}

}  // namespace mxguard::checks
