#include "mxguard/checks/options.h"

#include <fmt/format.h>

#include "mxguard/checks/backscatter.h"
#include "mxguard/tables/access_action.h"

namespace mxguard::checks {

std::vector<options::Spec> access_option_specs() {
  using options::Kind;
  return {
      {"client-access", Kind::List, "Postfix access tables for the client address and name"},
      {"helo-access", Kind::List, "Postfix access tables for the HELO/EHLO name"},
      {"sender-access", Kind::List, "Postfix access tables for the envelope sender"},
      {"recipient-access", Kind::List, "Postfix access tables for each recipient"},
  };
}

std::vector<options::Spec> backscatter_option_specs() {
  using options::Kind;
  return {
      {"our-relays", Kind::List, "our outbound relays: host names, addresses or networks"},
      {"our-message-id-domains", Kind::List,
       "Message-ID domains of our mail besides local-domains"},
      {"backscatter-allow", Kind::List, "tables of senders/recipients whose bounces always pass"},
      {"backscatter-check-mdn", Kind::Value, "judge read receipts (MDNs) as bounces (default no)"},
      {"backscatter-reject-multi-recipient", Kind::Value,
       "refuse null-sender mail to several recipients"},
  };
}

std::vector<options::Spec> website_option_specs() {
  using options::Kind;
  return {
      {"unhandled-domains", Kind::List,
       "website-only domains: their mail is refused, their senders may earn strikes"},
      {"trap-address", Kind::List, "listener addresses published only as fake (nolisting) MX"},
      {"trap-allow-senders", Kind::List,
       "access tables of senders or recipients let through a trap address"},
  };
}

options::Problem load_access_options(const options::Reader& r, AccessOptions& o) {
  const auto validate = &tables::validate_access_action;
  for (auto e : {tables::read_tables(r, "client-access", validate, o.client),
                 tables::read_tables(r, "helo-access", validate, o.helo),
                 tables::read_tables(r, "sender-access", validate, o.sender),
                 tables::read_tables(r, "recipient-access", validate, o.recipient)})
    if (e) return e;
  return std::nullopt;
}

options::Problem load_backscatter_options(const options::Reader& r, BackscatterOptions& o) {
  auto relays = r.list("our-relays");
  if (!relays) return relays.error();
  for (const auto& v : *relays) {
    if (auto c = net::Cidr::parse(v.value)) {
      o.our_relay_networks.add(*c);
      continue;
    }
    std::string n = options::normalise_domain(v.value);
    if (n.empty() || n.find_first_of("@/[] ") != std::string::npos)
      return ConfigError{v.where,
                         fmt::format("our-relays: '{}' is not a host name or address", v.value)};
    o.our_relay_names.push_back(n);
  }
  // A table result is OK or DUNNO; the lookup order is access(5)'s for addresses.
  for (auto e : {r.domains("our-message-id-domains", "@/[]", o.our_message_id_domains),
                 r.flag("backscatter-check-mdn", o.check_mdn),
                 r.flag("backscatter-reject-multi-recipient", o.reject_multi_rcpt),
                 tables::read_tables(r, "backscatter-allow", &validate_allow_result, o.allow)})
    if (e) return e;
  return std::nullopt;
}

options::Problem load_trap_options(const options::Reader& r, TrapOptions& o) {
  if (auto e = r.ip_addresses("trap-address", o.addresses)) return e;
  return tables::read_tables(r, "trap-allow-senders", &tables::validate_access_action,
                             o.allow_senders);
}

options::Problem load_website_options(const options::Reader& r, WebsiteOptions& o) {
  return r.domains("unhandled-domains", "@/[] ", o.unhandled_domains);
}

}  // namespace mxguard::checks
