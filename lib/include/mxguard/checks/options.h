// The options of the checks that have their own (access tables, backscatter proof, trap MX,
// website-only domains), and their loaders. The DNS, state, BATV and message options live with
// their modules (dns/options.h, state/options.h, batv/options.h, message/options.h).
// Who calls it: config.cpp loads them; each check reads its own struct.
// Thread-safety: plain values; tables are immutable and shared.
#pragma once

#include <string>
#include <vector>

#include "mxguard/net/ip.h"
#include "mxguard/options/reader.h"
#include "mxguard/tables/options.h"

namespace mxguard::checks {

// access: Postfix access tables, each list in the order given.
struct AccessOptions {
  tables::TableList client, helo, sender, recipient;
};

// backscatter: the proofs that a bounce answers our mail (see checks/backscatter.h).
struct BackscatterOptions {
  std::vector<std::string> our_relay_names;  // our-relays: host names, lower case
  net::CidrSet our_relay_networks;           // our-relays: addresses and networks
  std::vector<std::string> our_message_id_domains;
  tables::TableList allow;  // backscatter-allow: OK or DUNNO
  bool check_mdn = false;
  bool reject_multi_rcpt = false;
  // Is there any way to prove a bounce ours, besides BATV (which config.cpp adds)?
  bool has_proof_source() const {
    return !our_relay_names.empty() || !our_relay_networks.empty() || !allow.empty();
  }
};

// trap-mx: nolisting listener addresses and who may pass them.
struct TrapOptions {
  std::vector<net::IpAddress> addresses;
  tables::TableList allow_senders;
};

// unhandled-domain: website-only domains (lower case, no trailing dot).
struct WebsiteOptions {
  std::vector<std::string> unhandled_domains;
};

std::vector<options::Spec> access_option_specs();
std::vector<options::Spec> backscatter_option_specs();
std::vector<options::Spec> website_option_specs();  // unhandled-domains and trap-*

options::Problem load_access_options(const options::Reader& r, AccessOptions& o);
options::Problem load_backscatter_options(const options::Reader& r, BackscatterOptions& o);
options::Problem load_trap_options(const options::Reader& r, TrapOptions& o);
options::Problem load_website_options(const options::Reader& r, WebsiteOptions& o);

}  // namespace mxguard::checks
