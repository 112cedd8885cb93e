// The access(5) lookup orders: which keys Postfix tries, in which order, for an address, a host
// name and a client. Exact tables get partial keys; cidr and pattern tables only whole strings
// ("no parent domain or parent network search is done", access(5) REGULAR EXPRESSION TABLES).
#include <vector>

#include "table_source.h"

namespace mxguard::tables {
namespace {

// recipient_delimiter, fixed: Postfix's common setting.
constexpr char kRecipientDelimiter = '+';
// smtpd_null_access_lookup_key, fixed at its Postfix default.
constexpr std::string_view kNullSenderKey = "<>";

// The name, then each parent domain as "parent" and ".parent". Postfix's default
// (parent_domain_matches_subdomains lists smtpd_access_maps) tries only "parent"; we try the
// ".parent" form right after it too, so files written for either setting keep working.
std::optional<std::string> lookup_domain_keys(const Table& t, std::string_view name) {
  if (auto hit = t.find(name)) return hit;
  std::size_t dot = name.find('.');
  while (dot != std::string_view::npos && dot + 1 < name.size()) {
    std::string_view parent = name.substr(dot + 1);
    if (auto hit = t.find(parent)) return hit;
    if (auto hit = t.find(name.substr(dot))) return hit;
    dot = name.find('.', dot + 1);
  }
  return std::nullopt;
}

// An exact table lookup of the address text, then shorter networks: IPv4 loses ".octet" from
// the right, IPv6 ":group" from the compressed text, as Postfix's check_addr_access does.
std::optional<std::string> lookup_address_keys(const Table& t, std::string text) {
  char delim = text.find(':') != std::string::npos ? ':' : '.';
  while (true) {
    if (!text.empty())
      if (auto hit = t.find(text)) return hit;
    std::size_t cut = text.rfind(delim);
    if (cut == std::string::npos) return std::nullopt;
    text.resize(cut);
  }
}

}  // namespace

std::optional<std::string> lookup_address(const Table& t, std::string_view address) {
  if (address.size() >= 2 && address.front() == '<' && address.back() == '>')
    address = address.substr(1, address.size() - 2);
  if (address.empty()) return t.find(kNullSenderKey);
  if (t.kind() != TableKind::Exact) return t.find(address);

  std::string full = ascii_lowercase(address);
  std::size_t at = full.rfind('@');
  std::string local = full.substr(0, at);
  std::string domain = at == std::string::npos ? std::string() : full.substr(at + 1);
  // "user+ext": the extension starts at the first delimiter, but not at the very start.
  std::size_t ext = local.find(kRecipientDelimiter);
  bool has_ext = ext != std::string::npos && ext > 0;
  std::string base = has_ext ? local.substr(0, ext) : local;

  if (auto hit = t.find(full)) return hit;
  if (has_ext)
    if (auto hit = t.find(at == std::string::npos ? base : base + "@" + domain)) return hit;
  if (!domain.empty())
    if (auto hit = lookup_domain_keys(t, domain)) return hit;
  if (auto hit = t.find(local + "@")) return hit;
  if (has_ext)
    if (auto hit = t.find(base + "@")) return hit;
  return std::nullopt;
}

std::optional<std::string> lookup_domain(const Table& t, std::string_view host) {
  if (host.empty()) return std::nullopt;
  if (t.kind() != TableKind::Exact) return t.find(host);
  return lookup_domain_keys(t, ascii_lowercase(host));
}

std::optional<std::string> lookup_client(const Table& t, const net::IpAddress* addr,
                                         std::string_view hostname) {
  bool named = !hostname.empty() && ascii_lowercase(hostname) != "unknown";
  if (named && t.kind() != TableKind::Cidr)
    if (auto hit = lookup_domain(t, hostname)) return hit;
  if (addr == nullptr) return std::nullopt;
  // Postfix's SMTP server turns an IPv4-mapped client address into plain IPv4 before any
  // lookup; do the same so "1.2.3" and 1.2.3.0/24 entries match such clients.
  net::IpAddress client = *addr;
  if (!client.is_v4()) {
    const auto& b = client.bytes();
    bool mapped = b[10] == 0xff && b[11] == 0xff;
    for (std::size_t i = 0; i < 10 && mapped; ++i)
      mapped = b[i] == 0;
    if (mapped) client = *client.embedded_v4();
  }
  if (t.kind() != TableKind::Exact) return t.find_address(client);
  return lookup_address_keys(t, client.to_string());
}

}  // namespace mxguard::tables
