#include "mxguard/dns/resolver.h"

#include <algorithm>

#include "mxguard/text.h"

namespace mxguard::dns {

std::string_view to_string(RrType t) {
  switch (t) {
    case RrType::A:
      return "A";
    case RrType::Cname:
      return "CNAME";
    case RrType::Soa:
      return "SOA";
    case RrType::Ptr:
      return "PTR";
    case RrType::Mx:
      return "MX";
    case RrType::Txt:
      return "TXT";
    case RrType::Aaaa:
      return "AAAA";
  }
  return "?";
}

std::string_view to_string(DnsStatus s) {
  switch (s) {
    case DnsStatus::Ok:
      return "ok";
    case DnsStatus::NoData:
      return "nodata";
    case DnsStatus::NxDomain:
      return "nxdomain";
  }
  return "?";
}

std::string_view to_string(DnsError::Kind k) {
  switch (k) {
    case DnsError::Kind::ServFail:
      return "servfail";
    case DnsError::Kind::Refused:
      return "refused";
    case DnsError::Kind::Timeout:
      return "timeout";
    case DnsError::Kind::Malformed:
      return "malformed";
    case DnsError::Kind::BadName:
      return "bad-name";
    case DnsError::Kind::Network:
      return "network";
  }
  return "?";
}

void append_canonical_name(std::string& out, std::string_view name) {
  while (name.size() > 1 && name.back() == '.')
    name.remove_suffix(1);
  const std::size_t start = out.size();
  out.resize(start + name.size());
  std::transform(name.begin(), name.end(), out.begin() + static_cast<std::ptrdiff_t>(start),
                 ascii_lower);
}

std::string canonical_name(std::string_view name) {
  std::string s;
  append_canonical_name(s, name);
  return s;
}

}  // namespace mxguard::dns
