// IP address and CIDR parsing, formatting and matching (see mxguard/net/ip.h).
// The parser is hand-written rather than inet_pton: we want the exact same strictness on every
// libc (no octal, no leading zeros, no zone ids) and the "[...]" / "IPv6:" wrappers Postfix uses.
#include "mxguard/net/ip.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>

#include "mxguard/text.h"

namespace mxguard::net {
namespace {

constexpr std::string_view kIpv6Tag = "IPv6:";

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A decimal number without sign or leading zeros ("0" itself is fine), at most max_digits long.
std::optional<unsigned> parse_decimal(std::string_view text, std::size_t max_digits) {
  if (text.empty() || text.size() > max_digits) return std::nullopt;
  if (text.size() > 1 && text[0] == '0') return std::nullopt;
  unsigned value = 0;
  for (char c : text) {
    if (!is_digit(c)) return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value;
}

std::optional<std::array<std::uint8_t, 4>> parse_dotted_quad(std::string_view text) {
  std::array<std::uint8_t, 4> out{};
  for (std::size_t i = 0; i < 4; ++i) {
    std::size_t dot = text.find('.');
    bool last = i == 3;
    if (last != (dot == std::string_view::npos)) return std::nullopt;
    auto octet = parse_decimal(text.substr(0, dot), 3);
    if (!octet || *octet > 255) return std::nullopt;
    out[i] = static_cast<std::uint8_t>(*octet);
    if (!last) text.remove_prefix(dot + 1);
  }
  return out;
}

// One side of "::" (or the whole address when there is none): colon-separated groups of 1..4
// hex digits, the last of which may be a dotted quad when allow_quad is set. Appends 16-bit
// words; nullopt on any malformed group, including empty ones.
bool parse_groups(std::string_view text, bool allow_quad, std::vector<std::uint16_t>& words) {
  if (text.empty()) return true;
  while (true) {
    std::size_t colon = text.find(':');
    std::string_view group = text.substr(0, colon);
    if (colon == std::string_view::npos && allow_quad &&
        group.find('.') != std::string_view::npos) {
      auto quad = parse_dotted_quad(group);
      if (!quad) return false;
      words.push_back(static_cast<std::uint16_t>(((*quad)[0] << 8) | (*quad)[1]));
      words.push_back(static_cast<std::uint16_t>(((*quad)[2] << 8) | (*quad)[3]));
      return true;
    }
    if (group.empty() || group.size() > 4) return false;
    unsigned value = 0;
    for (char c : group) {
      int h = hex_value(c);
      if (h < 0) return false;
      value = (value << 4) | static_cast<unsigned>(h);
    }
    words.push_back(static_cast<std::uint16_t>(value));
    if (colon == std::string_view::npos) return true;
    text.remove_prefix(colon + 1);
  }
}

std::optional<std::array<std::uint8_t, 16>> parse_v6(std::string_view text) {
  std::vector<std::uint16_t> head;
  std::vector<std::uint16_t> tail;
  std::size_t gap = text.find("::");
  bool compressed = gap != std::string_view::npos;
  if (compressed) {
    std::string_view after = text.substr(gap + 2);
    if (after.find("::") != std::string_view::npos) return std::nullopt;
    if (!parse_groups(text.substr(0, gap), false, head)) return std::nullopt;
    if (!parse_groups(after, true, tail)) return std::nullopt;
    // "::" stands for at least one zero group (RFC 4291 2.2).
    if (head.size() + tail.size() > 7) return std::nullopt;
  } else {
    if (!parse_groups(text, true, head) || head.size() != 8) return std::nullopt;
  }
  std::array<std::uint8_t, 16> bytes{};
  auto put = [&bytes](std::size_t index, std::uint16_t word) {
    bytes[2 * index] = static_cast<std::uint8_t>(word >> 8);
    bytes[2 * index + 1] = static_cast<std::uint8_t>(word & 0xff);
  };
  for (std::size_t i = 0; i < head.size(); ++i)
    put(i, head[i]);
  for (std::size_t i = 0; i < tail.size(); ++i)
    put(8 - tail.size() + i, tail[i]);
  return bytes;
}

std::string dotted_quad(const std::uint8_t* b) {
  return fmt::format("{}.{}.{}.{}", b[0], b[1], b[2], b[3]);
}

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (!text.empty() && text.front() == '[') {
    if (text.size() < 2 || text.back() != ']') return std::nullopt;
    text = text.substr(1, text.size() - 2);
  }
  bool tagged = istarts_with(text, kIpv6Tag);
  if (tagged) text.remove_prefix(kIpv6Tag.size());
  if (text.empty()) return std::nullopt;
  if (text.find(':') == std::string_view::npos) {
    if (tagged) return std::nullopt;  // "IPv6:1.2.3.4" is not an IPv6 address
    auto quad = parse_dotted_quad(text);
    if (!quad) return std::nullopt;
    IpAddress addr;
    addr.family_ = Family::V4;
    for (std::size_t i = 0; i < 4; ++i)
      addr.bytes_[i] = (*quad)[i];
    return addr;
  }
  auto bytes = parse_v6(text);
  if (!bytes) return std::nullopt;
  return v6(*bytes);
}

IpAddress IpAddress::v4(std::uint32_t host_order) {
  IpAddress addr;
  addr.family_ = Family::V4;
  for (std::size_t i = 0; i < 4; ++i)
    addr.bytes_[i] = static_cast<std::uint8_t>(host_order >> (24 - 8 * i));
  return addr;
}

IpAddress IpAddress::v6(const std::array<std::uint8_t, 16>& bytes) {
  IpAddress addr;
  addr.family_ = Family::V6;
  addr.bytes_ = bytes;
  return addr;
}

std::uint32_t IpAddress::v4_host_order() const {
  return (std::uint32_t{bytes_[0]} << 24) | (std::uint32_t{bytes_[1]} << 16) |
         (std::uint32_t{bytes_[2]} << 8) | std::uint32_t{bytes_[3]};
}

std::string IpAddress::to_string() const {
  if (is_v4()) return dotted_quad(bytes_.data());
  std::array<unsigned, 8> words{};
  for (std::size_t i = 0; i < 8; ++i)
    words[i] = (unsigned{bytes_[2 * i]} << 8) | bytes_[2 * i + 1];
  // Longest run of zero words (the first on a tie), only when it is at least two long
  // (RFC 5952 4.2.2: a single zero group is not compressed).
  std::size_t best_start = 8;
  std::size_t best_len = 0;
  for (std::size_t i = 0; i < 8;) {
    if (words[i] != 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < 8 && words[j] == 0)
      ++j;
    if (j - i > best_len) {
      best_start = i;
      best_len = j - i;
    }
    i = j;
  }
  if (best_len < 2) best_start = 8;
  // IPv4-mapped and IPv4-compatible addresses keep the dotted tail, as inet_ntop writes them:
  // Postfix looks up client addresses in that form, so exact-table keys must match it.
  bool mixed = best_start == 0 && (best_len == 6 || (best_len == 5 && words[5] == 0xffff));
  std::string out;
  std::size_t end = mixed ? 6 : 8;
  for (std::size_t i = 0; i < end; ++i) {
    if (i == best_start) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out += ':';
    out += fmt::format("{:x}", words[i]);
  }
  if (mixed) {
    if (out.back() != ':') out += ':';
    out += dotted_quad(bytes_.data() + 12);
  }
  return out;
}

bool IpAddress::is_loopback() const {
  if (is_v4()) return bytes_[0] == 127;
  static const std::array<std::uint8_t, 16> kV6Loopback{0, 0, 0, 0, 0, 0, 0, 0,
                                                        0, 0, 0, 0, 0, 0, 0, 1};
  if (bytes_ == kV6Loopback) return true;
  // IPv4-mapped (::ffff:0:0/96) only: what a dual-stack socket shows for 127.0.0.1.
  static const std::array<std::uint8_t, 12> kMapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::equal(kMapped.begin(), kMapped.end(), bytes_.begin()) && bytes_[12] == 127;
}

std::optional<IpAddress> IpAddress::embedded_v4() const {
  if (is_v4()) return std::nullopt;
  const auto& b = bytes_;
  auto zero = [&b](std::size_t from, std::size_t to) {
    for (std::size_t i = from; i < to; ++i)
      if (b[i] != 0) return false;
    return true;
  };
  auto from_bytes = [&b](std::size_t at) {
    return v4((std::uint32_t{b[at]} << 24) | (std::uint32_t{b[at + 1]} << 16) |
              (std::uint32_t{b[at + 2]} << 8) | std::uint32_t{b[at + 3]});
  };
  if (zero(0, 10) && b[10] == 0xff && b[11] == 0xff) return from_bytes(12);  // ::ffff:0:0/96
  if (zero(0, 12)) {                                                         // ::/96
    // :: and ::1 are the unspecified and loopback addresses, not 0.0.0.0 and 0.0.0.1.
    if (zero(12, 15) && (b[15] == 0 || b[15] == 1)) return std::nullopt;
    return from_bytes(12);
  }
  if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && zero(4, 12))
    return from_bytes(12);                                 // 64:ff9b::/96
  if (b[0] == 0x20 && b[1] == 0x02) return from_bytes(2);  // 2002::/16
  return std::nullopt;
}

std::string IpAddress::reverse_name() const {
  if (is_v4())
    return fmt::format("{}.{}.{}.{}.in-addr.arpa", bytes_[3], bytes_[2], bytes_[1], bytes_[0]);
  std::string out;
  out.reserve(72);
  constexpr std::string_view kHex = "0123456789abcdef";
  for (std::size_t i = 16; i-- > 0;) {
    out += kHex[bytes_[i] & 0x0f];
    out += '.';
    out += kHex[bytes_[i] >> 4];
    out += '.';
  }
  out += "ip6.arpa";
  return out;
}

Expected<Cidr, std::string> Cidr::parse_or_explain(std::string_view text) {
  std::size_t slash = text.find('/');
  std::string_view addr_text = text.substr(0, slash);
  auto addr = IpAddress::parse(addr_text);
  if (!addr) return unexpected(fmt::format("'{}' is not an IP address", addr_text));
  int prefix = addr->bit_width();
  if (slash != std::string_view::npos) {
    std::string_view prefix_text = text.substr(slash + 1);
    auto value = parse_decimal(prefix_text, 3);
    if (!value || *value > static_cast<unsigned>(addr->bit_width()))
      return unexpected(fmt::format("bad prefix length '/{}' for {}", prefix_text,
                                    addr->is_v4() ? "IPv4" : "IPv6"));
    prefix = static_cast<int>(*value);
  }
  IpAddress network = masked(*addr, prefix);
  if (network != *addr)
    return unexpected(fmt::format("'{}' has host bits set (the network is {})", text,
                                  Cidr(network, prefix).to_string()));
  return Cidr(*addr, prefix);
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
  auto block = parse_or_explain(text);
  if (!block) return std::nullopt;
  return *block;
}

IpAddress Cidr::masked(const IpAddress& addr, int prefix) {
  auto bytes = addr.bytes();
  for (int bit = prefix; bit < addr.bit_width(); ++bit)
    bytes[static_cast<std::size_t>(bit / 8)] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  if (addr.is_v4())
    return IpAddress::v4((std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) |
                         (std::uint32_t{bytes[2]} << 8) | std::uint32_t{bytes[3]});
  return IpAddress::v6(bytes);
}

bool Cidr::contains(const IpAddress& addr) const {
  if (addr.family() != network_.family()) return false;
  const auto& a = addr.bytes();
  const auto& n = network_.bytes();
  std::size_t full = static_cast<std::size_t>(prefix_ / 8);
  for (std::size_t i = 0; i < full; ++i)
    if (a[i] != n[i]) return false;
  int rest = prefix_ % 8;
  if (rest == 0) return true;
  auto mask = static_cast<std::uint8_t>(0xffu << (8 - rest));
  return (a[full] & mask) == (n[full] & mask);
}

std::string Cidr::to_string() const {
  return fmt::format("{}/{}", network_.to_string(), prefix_);
}

}  // namespace mxguard::net
