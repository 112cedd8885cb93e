#include "mxguard/site.h"

#include <algorithm>

#include "mxguard/options/reader.h"

namespace mxguard {

bool SiteOptions::is_local_domain(std::string_view domain) const {
  const std::string d = options::normalise_domain(domain);
  return std::find(local_domains.begin(), local_domains.end(), d) != local_domains.end();
}

}  // namespace mxguard
