#include "mxguard/dns/audit.h"

#include <fmt/format.h>

#include <algorithm>

#include "mxguard/dns/options.h"
#include "mxguard/text.h"

namespace mxguard::dns {

namespace {

std::string address_line(const RouteAddress& a) {
  if (!a.bogus) return fmt::format("{} (routable)", a.address.to_string());
  return fmt::format("{} (NOT routable: {})", a.address.to_string(), a.bogus->describe(a.address));
}

bool is_self(const RouteAddress& a, const std::vector<net::IpAddress>& self) {
  auto v4 = a.address.embedded_v4();
  return std::any_of(self.begin(), self.end(),
                     [&](const net::IpAddress& s) { return s == a.address || (v4 && s == *v4); });
}

// SPF: one TXT record starting "v=spf1" (RFC 7208 §4.5).
void look_up_spf(const RouteAnalyzer& analyzer, AuditResult& r) {
  auto txt = analyzer.resolver().lookup(r.route.domain, RrType::Txt);
  if (!txt) {
    r.spf_lookup_failed = true;
    return;
  }
  std::vector<std::string> spf;
  for (const auto& s : txt->txt) {
    std::string low = ascii_lowercase(s);
    if (low == "v=spf1" || low.rfind("v=spf1 ", 0) == 0) spf.push_back(s);
  }
  if (spf.size() != 1) return;
  r.spf = spf.front();
  r.spf_rejects_all = ascii_lowercase(spf.front()) == "v=spf1 -all";
}

// The MX set (or implicit MX) and each address, as the route analysis saw them.
void describe_exchangers(const MailRoute& m, const std::vector<net::IpAddress>& self,
                         std::string& t) {
  if (m.kind == RouteKind::NullMx) {
    t += "  MX 0 . (null MX, RFC 7505): the domain says it takes no mail\n";
    return;
  }
  if (!m.has_mx && m.exchangers.empty()) return;
  for (const auto& e : m.exchangers) {
    t += e.implicit ? fmt::format("  no MX records; implicit MX (RFC 5321 5.1): {}\n", e.name)
                    : fmt::format("  MX {} {}\n", e.preference, e.name);
    for (const auto& a : e.addresses)
      t += fmt::format("    {}{}\n", address_line(a), is_self(a, self) ? " [this host]" : "");
    for (const auto& n : e.notes)
      t += fmt::format("    {}\n", n);
  }
  if (m.null_mx_mixed)
    t += "  MX 0 . among other MX records: not a valid null MX (RFC 7505 3); ignored\n";
}

void advise_deliverable(const MailRoute& m, const std::vector<net::IpAddress>& self,
                        std::vector<std::string>& adv) {
  bool bogus_backup = false;
  bool implicit_self = false;
  for (const auto& e : m.exchangers)
    for (const auto& a : e.addresses) {
      if (a.bogus && !e.implicit) bogus_backup = true;
      if (e.implicit && is_self(a, self)) implicit_self = true;
    }
  if (bogus_backup)
    adv.push_back(
        "an MX host has non-routable addresses: fix or remove it (unless it is "
        "a deliberate nolisting trap)");
  if (implicit_self)
    adv.push_back(
        "no MX records, and the domain's A/AAAA record is this host: providers will deliver "
        "mail for it here. If it takes no mail, publish \"MX 0 .\" and \"v=spf1 -all\"");
  else if (!m.has_mx)
    adv.push_back(
        "no MX records: mail goes to the A/AAAA record. A website-only domain should "
        "publish \"MX 0 .\" and \"v=spf1 -all\"");
}

// Advice, in plain words.
void advise(const AuditResult& r, const std::vector<net::IpAddress>& self,
            std::vector<std::string>& adv) {
  switch (r.route.kind) {
    case RouteKind::NullMx:
      if (!r.spf_rejects_all)
        adv.push_back("publish \"v=spf1 -all\" too, so nobody can send mail as this domain");
      break;
    case RouteKind::Deliverable:
      advise_deliverable(r.route, self, adv);
      break;
    case RouteKind::Bogus:
      adv.push_back(
          "every mail exchanger is in non-routable space: mail cannot be delivered. "
          "Fix the MX/A records, or publish \"MX 0 .\" and \"v=spf1 -all\" if the "
          "domain takes no mail");
      break;
    case RouteKind::NoExchanger:
      adv.push_back(
          "no mail exchanger has an address: publish a working MX, or \"MX 0 .\" and "
          "\"v=spf1 -all\" if the domain takes no mail");
      break;
    case RouteKind::NoSuchDomain:
      adv.push_back("the domain does not exist in DNS");
      break;
    case RouteKind::TempFail:
      adv.push_back("DNS did not answer fully; mxguard would answer 4xx (try again later)");
      break;
    default:
      break;
  }
}

}  // namespace

AuditResult audit_domain(const RouteAnalyzer& analyzer, std::string_view domain,
                         const std::vector<net::IpAddress>& self) {
  AuditResult r;
  r.route = analyzer.analyse(domain);
  const MailRoute& m = r.route;
  std::string& t = r.text;
  t += fmt::format("{}: {}\n", m.domain, to_string(m.kind));
  if (m.kind == RouteKind::Invalid) {
    t += fmt::format("  not a usable domain name: {}\n", m.detail);
    return r;
  }
  // Not after a failure: the route already says DNS is in trouble, and the decision's deadline
  // must bound the whole audit too.
  if (m.kind != RouteKind::NoSuchDomain && m.kind != RouteKind::TempFail && !m.domain.empty() &&
      m.domain.front() != '[')
    look_up_spf(analyzer, r);
  describe_exchangers(m, self, t);
  if (!m.detail.empty()) t += fmt::format("  {}\n", m.detail);
  if (r.spf_lookup_failed) {
    t += "  SPF: lookup failed\n";
  } else if (m.kind != RouteKind::NoSuchDomain && m.kind != RouteKind::TempFail) {
    t += fmt::format("  SPF: {}\n", r.spf ? *r.spf : std::string("none"));
  }
  advise(r, self, r.advice);
  for (const auto& a : r.advice)
    t += fmt::format("  advice: {}\n", a);
  return r;
}

}  // namespace mxguard::dns
