// LdnsResolver: asks DNS servers over UDP (TCP when an answer comes back truncated) with
// libldns. Servers come from an explicit "host[:port]" list (IPv4, IPv6 as "[::1]:5353") or,
// when the list is empty, from the nameserver lines of /etc/resolv.conf. Each server is tried
// in order, `retries` more rounds after the first, each try waiting at most `timeout`.
// Who uses it: the daemon (behind a CachingResolver), `mxguard audit`, integration tests.
// Thread-safety: lookup() from any thread. An ldns_resolver is not thread-safe, so every
// thread gets its own (thread_local, made on first use); nothing is locked across a query.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "mxguard/dns/resolver.h"

namespace mxguard::dns {

struct LdnsOptions {
  std::vector<std::string> servers;  // "host[:port]"; empty: /etc/resolv.conf
  std::chrono::milliseconds timeout{2000};
  int retries = 1;
  std::string resolv_conf = "/etc/resolv.conf";
};

struct ServerAddress {
  net::IpAddress address;
  std::uint16_t port = 53;
  std::string to_string() const;  // "127.0.0.1:53", "[::1]:5353"
};

// "1.2.3.4", "1.2.3.4:5353", "::1", "[::1]", "[::1]:5353". Names are refused: a resolver
// cannot look up its own server.
Expected<ServerAddress, std::string> parse_server(std::string_view text);

class LdnsResolver final : public Resolver {
 public:
  // Fails when a server is malformed, or no server is given and resolv.conf names none.
  static Expected<std::shared_ptr<LdnsResolver>, std::string> create(const LdnsOptions& o);

  DnsResult lookup(std::string_view name, RrType type) override;
  const std::vector<ServerAddress>& servers() const { return servers_; }

 private:
  LdnsResolver(std::vector<ServerAddress> servers, const LdnsOptions& o);
  std::vector<ServerAddress> servers_;
  std::chrono::milliseconds timeout_;
  int retries_;
  std::uint64_t id_;  // keys this resolver's per-thread ldns state
};

}  // namespace mxguard::dns
