// BogusNetworks: the address blocks no mail exchanger can usefully be in (loopback, private,
// shared, documentation, multicast...), each with the reason text a reply names. Read from a
// Postfix cidr-syntax file ("network/prefix  reason text"; first match in file order) — by
// default rules/bogus-networks.cidr. A result of DUNNO marks a globally reachable exception
// inside a larger bogus block (as in a Postfix access table), e.g. 192.0.0.9/32.
// Addresses that carry an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64 64:ff9b::/96,
// 6to4 2002::/16) are judged by that IPv4 address first.
// Who uses it: MailRoute analysis; loaded by the config at start and reload.
// Thread-safety: immutable after load.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "mxguard/expected.h"
#include "mxguard/net/ip.h"
#include "mxguard/tables/table.h"

namespace mxguard::dns {

struct BogusMatch {
  std::string reason;  // "loopback network"
  net::Cidr range;     // the block that matched (of the embedded IPv4 when embedded is set)
  std::optional<net::IpAddress> embedded;  // the IPv4 address judged, when decoded
  // "loopback network 127.0.0.0/8", or "... (embedded in ::ffff:127.0.0.1)"
  std::string describe(const net::IpAddress& addr) const;
};

class BogusNetworks {
 public:
  // Errors name file and line (LoadError::line > 0) for a bad line.
  static Expected<std::shared_ptr<const BogusNetworks>, tables::LoadError> load(
      const std::string& path);
  static Expected<std::shared_ptr<const BogusNetworks>, tables::LoadError> parse(
      std::string_view text, const std::string& name);

  std::optional<BogusMatch> classify(const net::IpAddress& addr) const;
  std::size_t size() const { return map_.size(); }
  const std::string& source() const { return source_; }

 private:
  std::optional<BogusMatch> match(const net::IpAddress& addr) const;
  net::CidrMap<std::optional<std::string>> map_;  // nullopt: DUNNO (not bogus)
  std::string source_;
};

}  // namespace mxguard::dns
