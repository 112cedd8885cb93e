// IP addresses and CIDR blocks, IPv4 and IPv6, with the embedded-IPv4 forms decoded.
// Used by the tables (cidr:), the exemptions (trusted networks) and the DNS route analysis.
// Thread-safety: immutable value types; CidrMap is read-only after it is built.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mxguard/expected.h"

namespace mxguard::net {

class IpAddress {
 public:
  enum class Family : std::uint8_t { V4, V6 };

  // Accepts dotted quad IPv4 and any RFC 4291 text form of IPv6 (including "::ffff:1.2.3.4"),
  // optionally in brackets ("[::1]") or with Postfix's "IPv6:" prefix. No zone ids, no
  // leading-zero octets ("010.1.1.1" is refused: inet_aton would read it as octal).
  static std::optional<IpAddress> parse(std::string_view text);
  static IpAddress v4(std::uint32_t host_order);
  static IpAddress v6(const std::array<std::uint8_t, 16>& bytes);

  Family family() const { return family_; }
  bool is_v4() const { return family_ == Family::V4; }
  // IPv4: the 4 bytes in bytes()[0..3], the rest zero. IPv6: all 16 bytes.
  const std::array<std::uint8_t, 16>& bytes() const { return bytes_; }
  std::uint32_t v4_host_order() const;  // only for is_v4()
  int bit_width() const { return is_v4() ? 32 : 128; }
  // 127.0.0.0/8, ::1, and 127.0.0.0/8 mapped into IPv6 (::ffff:127.0.0.1).
  bool is_loopback() const;

  // Canonical text: dotted quad, or RFC 5952 IPv6 (lower case, longest zero run compressed);
  // IPv4-mapped and IPv4-compatible addresses end in a dotted quad ("::ffff:1.2.3.4"), as
  // inet_ntop writes them, because that is the text Postfix looks up in access tables.
  std::string to_string() const;

  // The IPv4 address inside an IPv6 one, for the forms that carry one: IPv4-mapped
  // (::ffff:0:0/96), IPv4-compatible (::/96, except :: and ::1), NAT64 (64:ff9b::/96) and
  // 6to4 (2002::/16, bits 16..47). Empty for IPv4 addresses and other IPv6 addresses.
  std::optional<IpAddress> embedded_v4() const;

  // Reverse DNS name: "4.3.2.1.in-addr.arpa" / nibble form under "ip6.arpa" (no trailing dot).
  std::string reverse_name() const;

  friend auto operator<=>(const IpAddress&, const IpAddress&) = default;

 private:
  Family family_ = Family::V4;
  std::array<std::uint8_t, 16> bytes_{};
};

class Cidr {
 public:
  // "10.0.0.0/8", "fc00::/7", or a bare address (a /32 or /128). Host bits must be zero
  // ("10.1.0.0/8" is refused, as Postfix's cidr tables refuse it).
  static std::optional<Cidr> parse(std::string_view text);
  // The same, saying what is wrong (for load errors): "bad prefix length", "host bits set"...
  static Expected<Cidr, std::string> parse_or_explain(std::string_view text);
  // addr with the bits after the first `prefix` cleared.
  static IpAddress masked(const IpAddress& addr, int prefix);
  Cidr(IpAddress network, int prefix) : network_(network), prefix_(prefix) {}

  const IpAddress& network() const { return network_; }
  int prefix() const { return prefix_; }
  // True when addr is of the same family and inside the block.
  bool contains(const IpAddress& addr) const;
  std::string to_string() const;

 private:
  IpAddress network_;
  int prefix_ = 0;
};

// An ordered list of blocks with a value each; lookups return the first block (in insertion
// order, as Postfix cidr tables do) that contains the address.
template <class T>
class CidrMap {
 public:
  void add(Cidr block, T value) { entries_.emplace_back(std::move(block), std::move(value)); }
  const T* find(const IpAddress& addr) const {
    for (const auto& [block, value] : entries_)
      if (block.contains(addr)) return &value;
    return nullptr;
  }
  bool empty() const { return entries_.empty(); }
  std::size_t size() const { return entries_.size(); }
  const std::vector<std::pair<Cidr, T>>& entries() const { return entries_; }

 private:
  std::vector<std::pair<Cidr, T>> entries_;
};

// A set of blocks (trusted networks, allow lists). Same first-match semantics.
class CidrSet {
 public:
  void add(Cidr block) { blocks_.push_back(std::move(block)); }
  bool contains(const IpAddress& addr) const {
    for (const auto& b : blocks_)
      if (b.contains(addr)) return true;
    return false;
  }
  bool empty() const { return blocks_.empty(); }
  const std::vector<Cidr>& blocks() const { return blocks_; }

 private:
  std::vector<Cidr> blocks_;
};

}  // namespace mxguard::net
