// DnsOptions: the DNS settings of a Config (dns-server, dns-timeout, dns-retries,
// dns-cache-*, dns-deadline, bogus-networks, on-dns-error), their loader, and the route
// analyzer built from them.
// Who uses it: config.cpp calls load_dns_options(); build_policy() and `mxguard audit` build an
// analyzer.
// Thread-safety: plain values; the analyzer is shared read-only (its cache locks itself).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "mxguard/check_mode.h"
#include "mxguard/dns/bogus_networks.h"
#include "mxguard/expected.h"
#include "mxguard/options/reader.h"

namespace mxguard::dns {

class RouteAnalyzer;

struct DnsOptions {
  std::vector<std::string> servers;  // "host[:port]"; empty: /etc/resolv.conf
  std::chrono::milliseconds timeout{2000};
  int retries = 1;
  std::size_t cache_size = 100000;  // 0: no cache
  std::chrono::seconds cache_min_ttl{10};
  std::chrono::seconds cache_max_ttl{86400};
  std::chrono::milliseconds deadline{10000};
  std::string bogus_networks_path;  // as loaded; empty when no DNS check needed it
  std::shared_ptr<const BogusNetworks> bogus_networks;
  FailureAction on_error = FailureAction::Tempfail;  // on-dns-error
};

// The options above, for the one list of options (help, man page test).
std::vector<options::Spec> dns_option_specs();

// Reads them. The bogus-networks table is loaded when `bogus_needed` (a check judges addresses)
// or when it is named; a missing default table does not stop a configuration without those
// checks.
options::Problem load_dns_options(const options::Reader& r, bool bogus_needed, DnsOptions& o);

// Where the shipped table is looked for when bogus-networks is not set: the installed rules
// directory. (Never the source tree: tests and development name the table with bogus-networks.)
std::vector<std::string> default_bogus_networks_paths();

// An LdnsResolver (behind a CachingResolver unless cache_size is 0) and a RouteAnalyzer.
Expected<std::shared_ptr<const RouteAnalyzer>, std::string> make_route_analyzer(
    const DnsOptions& o);

}  // namespace mxguard::dns
