// SiteOptions: who we are, as the checks need to know it: the domains we receive mail for
// (local-domains) and our listening addresses when the MTA does not pass them (self).
// Who uses it: config.cpp loads it; the registry hands it to the checks that need it.
// Thread-safety: a plain value.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "mxguard/net/ip.h"

namespace mxguard {

struct SiteOptions {
  std::vector<std::string> local_domains;      // lower case, no trailing dot
  std::vector<net::IpAddress> self_addresses;  // our listening addresses, when the MTA omits them

  // ASCII case-insensitive, a trailing dot ignored.
  bool is_local_domain(std::string_view domain) const;
};

}  // namespace mxguard
