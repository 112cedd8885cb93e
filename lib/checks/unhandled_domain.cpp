#include "checks/unhandled_domain.h"

#include <fmt/format.h>

#include <algorithm>

#include "mxguard/checks/route_lookup.h"
#include "mxguard/log.h"
#include "mxguard/metrics.h"
#include "mxguard/state/bans.h"

namespace mxguard::checks {

namespace {

// Could DNS have sent the client to the address it connected to? Unknown (nothing to compare
// with, or DNS could not tell) counts as "yes": a strike needs certainty.
bool dns_could_have_sent_it_here(const dns::MailRoute& route, const Session& s,
                                 const SiteOptions& site) {
  if (route.kind == dns::RouteKind::NullMx) return false;
  if (route.kind == dns::RouteKind::TempFail || route.kind == dns::RouteKind::Invalid ||
      route.kind == dns::RouteKind::MxOnly)
    return true;
  std::vector<net::IpAddress> ours;
  if (s.daemon_addr) {
    ours.push_back(*s.daemon_addr);
  } else {
    ours = site.self_addresses;
  }
  if (ours.empty()) return true;
  for (const dns::Exchanger& x : route.exchangers)
    for (const dns::RouteAddress& a : x.addresses)
      if (std::find(ours.begin(), ours.end(), a.address) != ours.end()) return true;
  return false;
}

}  // namespace

bool is_unhandled_domain(const std::vector<std::string>& list, std::string_view d) {
  if (d.empty()) return false;
  for (const std::string& entry : list) {
    if (d == entry) return true;
    if (d.size() > entry.size() && d.ends_with(entry) && d[d.size() - entry.size() - 1] == '.')
      return true;
  }
  return false;
}

std::optional<Verdict> UnhandledDomainCheck::evaluate(Stage, const Session& session,
                                                      CheckContext& ctx) const {
  const Address& rcpt = session.tx.rcpt;
  const std::string& domain = rcpt.domain;
  if (!is_unhandled_domain(options_.unhandled_domains, domain)) return std::nullopt;

  const dns::MailRoute* route = route_for(ctx, site_, rcpt);
  const bool null_mx = route && route->kind == dns::RouteKind::NullMx;

  // Strikes: never for our own clients, and only when DNS could not have sent the client here.
  // (Loopback clients are never struck either: Bans::record_strike says so itself.)
  const bool ours = session.authenticated() || session.trusted_network;
  if (session.client_addr && ctx.bans && route &&
      !dns_could_have_sent_it_here(*route, session, site_)) {
    if (ours) {
      log(LogLevel::Debug, "{}: no strike for {}: {} clients are never banned", session.log_id(),
          session.client_label(), session.authenticated() ? "authenticated" : "trusted-networks");
    } else if (auto r = ctx.bans->record_strike(*session.client_addr, "unhandled domain " + domain,
                                                ctx.clock->now());
               !r) {
      metrics().count_store_error();
      log(LogLevel::Warning, "{}: strike for {} not counted: {}", session.log_id(),
          session.client_label(), r.error().message);
    }
  }

  // The MTA refused this recipient itself; we were shown it only to count it.
  if (session.tx.rcpt_rejected_by_mta) return std::nullopt;

  std::string text = fmt::format("<{}>: Recipient address rejected: {} does not accept mail{}",
                                 rcpt.raw, domain, null_mx ? " (it publishes a null MX)" : "");
  auto reply = null_mx ? SmtpReply::make(556, "5.1.10", text) : SmtpReply::make(550, "5.1.2", text);
  if (!reply)
    reply = null_mx ? SmtpReply::fixed(556, "5.1.10", "This domain does not accept mail")
                    : SmtpReply::fixed(550, "5.1.2", "This domain does not accept mail");
  return Verdict::reject(std::move(reply).value(), "unhandled-domain",
                         null_mx ? "null-mx" : "listed");
}

}  // namespace mxguard::checks
