#include "checks/null_mx.h"

#include <fmt/format.h>

namespace mxguard::checks {

std::optional<Verdict> NullMxCheck::evaluate(Stage, const Session& session,
                                             CheckContext& ctx) const {
  const dns::MailRoute* route = lookup_route(ctx, session.tx.rcpt);
  if (!route) return std::nullopt;
  switch (route->kind) {
    case dns::RouteKind::NullMx: {
      auto reply = SmtpReply::make(
          556, "5.1.10", fmt::format("<{}>: Recipient address has null MX", session.tx.rcpt.raw));
      if (!reply) reply = SmtpReply::fixed(556, "5.1.10", "Recipient address has null MX");
      return Verdict::reject(std::move(reply).value(), "null-mx", "null-mx");
    }
    case dns::RouteKind::TempFail:
    case dns::RouteKind::Invalid:
      return dns_trouble(*route, session, ctx, session.tx.rcpt.raw);
    default:
      return std::nullopt;
  }
}

}  // namespace mxguard::checks
