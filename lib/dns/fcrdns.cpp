#include "mxguard/dns/fcrdns.h"

#include <algorithm>

namespace mxguard::dns {

std::vector<std::string> confirmed_names(Resolver& resolver, const net::IpAddress& addr,
                                         std::size_t max_names) {
  std::vector<std::string> out;
  // An IPv4-mapped client is an IPv4 client: its PTR lives under in-addr.arpa.
  const net::IpAddress a =
      addr.embedded_v4() && addr.bytes()[10] == 0xff ? *addr.embedded_v4() : addr;
  auto ptr = resolver.lookup(a.reverse_name(), RrType::Ptr);
  if (!ptr || ptr->status != DnsStatus::Ok) return out;
  const RrType forward = a.is_v4() ? RrType::A : RrType::Aaaa;
  std::size_t checked = 0;
  for (const std::string& name : ptr->names) {
    if (checked++ == max_names) break;
    auto fwd = resolver.lookup(name, forward);
    if (fwd && fwd->status == DnsStatus::Ok &&
        std::find(fwd->addresses.begin(), fwd->addresses.end(), a) != fwd->addresses.end())
      out.push_back(name);
  }
  return out;
}

}  // namespace mxguard::dns
