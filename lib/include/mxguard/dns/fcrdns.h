// Forward-confirmed reverse DNS: the PTR names of an address whose own A/AAAA records lead back
// to that address. A PTR alone proves nothing (whoever owns the address block writes it); the
// round trip shows the name's owner agrees. Used to spare real providers (".google.com") from
// bans (provider-suffixes).
// Who calls it: the bans exemption hook in milter/main.cpp; tests.
// Thread-safety: as the Resolver given.
#pragma once

#include <string>
#include <vector>

#include "mxguard/dns/resolver.h"
#include "mxguard/net/ip.h"

namespace mxguard::dns {

// At most `max_names` PTR names are checked. DNS errors leave a name unconfirmed.
std::vector<std::string> confirmed_names(Resolver& resolver, const net::IpAddress& addr,
                                         std::size_t max_names = 4);

}  // namespace mxguard::dns
