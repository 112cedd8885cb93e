#include "mxguard/checks/route_lookup.h"

#include <fmt/format.h>

#include "mxguard/log.h"

namespace mxguard::checks {

const dns::MailRoute* route_for(CheckContext& ctx, const SiteOptions& site, const Address& address,
                                dns::RouteDepth depth) {
  if (!ctx.routes) return nullptr;
  if (address.given_domain().empty() || site.is_local_domain(address.domain)) return nullptr;
  // The A-label; what cannot be one goes as given, for the analysis to report it so.
  const bool as_given = address.domain_invalid || address.literal();
  std::string_view domain = as_given ? address.given_domain() : std::string_view(address.domain);
  std::string key = as_given ? ascii_lowercase(domain) : address.domain;
  // A full analysis also answers an MX-only question; not the other way round.
  if (ctx.route && ctx.route_domain == key &&
      (depth == dns::RouteDepth::MxOnly || ctx.route->kind != dns::RouteKind::MxOnly))
    return ctx.route.get();
  auto route = ctx.routes->route(domain, depth);
  if (log_enabled(LogLevel::Debug)) log(LogLevel::Debug, "route: {}", route->describe());
  ctx.route = std::move(route);
  ctx.route_domain = std::move(key);
  return ctx.route.get();
}

std::optional<NoMailDomain> no_mail_domain(const dns::MailRoute& route) {
  switch (route.kind) {
    case dns::RouteKind::NoSuchDomain:
      // Postfix's own words for reject_unknown_recipient_domain / _sender_domain.
      return NoMailDomain{"Domain not found", "nxdomain"};
    case dns::RouteKind::NoExchanger:
      return NoMailDomain{"Domain has no mail exchanger with an address", "no-exchanger"};
    default:
      return std::nullopt;
  }
}

std::optional<Verdict> DnsCheck::dns_trouble(const dns::MailRoute& route, const Session& session,
                                             const CheckContext& ctx,
                                             std::string_view address) const {
  const bool tempfail = options_.on_dns_error == FailureAction::Tempfail;
  ctx.failure(
      name(), options_.on_dns_error,
      fmt::format("{}: {}: cannot judge <{}>: {} {} ({})", session.log_id(), name(), address,
                  to_string(route.kind), route.detail, tempfail ? "tempfail" : "accepted"));
  if (!tempfail) return std::nullopt;
  std::string text =
      route.kind == dns::RouteKind::Invalid
          ? fmt::format("<{}>: Cannot look up this mail domain; try again later", address)
          : fmt::format("<{}>: Temporary DNS failure looking up {}; try again later", address,
                        route.domain);
  auto reply = SmtpReply::make(451, "4.4.3", text);
  if (!reply) reply = SmtpReply::fixed(451, "4.4.3", "Temporary DNS failure; try again later");
  return Verdict::tempfail(std::move(reply).value(), std::string(name()),
                           route.kind == dns::RouteKind::Invalid ? "bad-domain" : "dns-error");
}

}  // namespace mxguard::checks
