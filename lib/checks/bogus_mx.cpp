#include "checks/bogus_mx.h"

#include <fmt/format.h>

#include "mxguard/log.h"

namespace mxguard::checks {

std::optional<Verdict> BogusMxCheck::evaluate(Stage, const Session& session,
                                              CheckContext& ctx) const {
  const dns::MailRoute* route = lookup_route(ctx, session.tx.rcpt);
  if (!route) return std::nullopt;
  switch (route->kind) {
    case dns::RouteKind::Bogus: {
      if (!route->bogus || !route->bogus->bogus) return std::nullopt;
      const bool implicit = !route->exchangers.empty() && route->exchangers.front().implicit;
      // "Domain MX in loopback network 127.0.0.0/8": the admin and the sender both see which
      // range made the domain unreachable.
      std::string text = fmt::format("<{}>: Recipient address rejected: Domain {} in {}",
                                     session.tx.rcpt.raw, implicit ? "address" : "MX",
                                     route->bogus->bogus->describe(route->bogus->address));
      auto reply = SmtpReply::make(550, "5.1.2", text);
      if (!reply)
        reply = SmtpReply::fixed(550, "5.1.2", "Recipient address rejected: Domain MX bogus");
      return Verdict::reject(std::move(reply).value(), "bogus-mx", "bogus-mx");
    }
    case dns::RouteKind::Deliverable: {
      // A bogus backup MX or a nolisting dead primary does not stop delivery; say so once.
      for (const auto& e : route->exchangers)
        for (const auto& a : e.addresses)
          if (a.bogus) {
            log(LogLevel::Info, "{}: bogus-mx: <{}>: exchanger {} in {} (not all: accepted)",
                session.log_id(), session.tx.rcpt.raw, e.name, a.bogus->describe(a.address));
            return std::nullopt;
          }
      return std::nullopt;
    }
    case dns::RouteKind::TempFail:
    case dns::RouteKind::Invalid:
      return dns_trouble(*route, session, ctx, session.tx.rcpt.raw);
    default:
      return std::nullopt;
  }
}

}  // namespace mxguard::checks
