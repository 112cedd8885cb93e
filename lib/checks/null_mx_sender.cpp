#include "checks/null_mx_sender.h"

#include <fmt/format.h>

namespace mxguard::checks {

std::optional<Verdict> NullMxSenderCheck::evaluate(Stage, const Session& session,
                                                   CheckContext& ctx) const {
  // The null sender has no domain; it is judged at DATA or later, never at MAIL (DESIGN.md).
  if (session.tx.sender.null()) return std::nullopt;
  // Only the MX set is needed, unless unroutable-sender wants the whole route anyway.
  const auto depth = options_.full_sender_route ? dns::RouteDepth::Full : dns::RouteDepth::MxOnly;
  const dns::MailRoute* route = lookup_route(ctx, session.tx.sender, depth);
  if (!route) return std::nullopt;
  switch (route->kind) {
    case dns::RouteKind::NullMx: {
      auto reply = SmtpReply::make(
          550, "5.7.27", fmt::format("<{}>: Sender address has null MX", session.tx.sender.raw));
      if (!reply) reply = SmtpReply::fixed(550, "5.7.27", "Sender address has null MX");
      return Verdict::reject(std::move(reply).value(), "null-mx-sender", "null-mx");
    }
    case dns::RouteKind::TempFail:
    case dns::RouteKind::Invalid:
      return dns_trouble(*route, session, ctx, session.tx.sender.raw);
    default:
      return std::nullopt;
  }
}

}  // namespace mxguard::checks
