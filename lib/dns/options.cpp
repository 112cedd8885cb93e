#include "mxguard/dns/options.h"

#include "mxguard/dns/caching_resolver.h"
#include "mxguard/dns/ldns_resolver.h"
#include "mxguard/dns/mail_route.h"

namespace mxguard::dns {

std::vector<std::string> default_bogus_networks_paths() {
  return {"/etc/mxguard/rules/bogus-networks.cidr"};
}

Expected<std::shared_ptr<const RouteAnalyzer>, std::string> make_route_analyzer(
    const DnsOptions& o) {
  LdnsOptions lo;
  lo.servers = o.servers;
  lo.timeout = o.timeout;
  lo.retries = o.retries;
  auto ldns = LdnsResolver::create(lo);
  if (!ldns) return unexpected(ldns.error());
  std::shared_ptr<Resolver> resolver = *ldns;
  if (o.cache_size > 0) {
    CacheOptions co;
    co.max_entries = o.cache_size;
    co.min_ttl = o.cache_min_ttl;
    co.max_ttl = o.cache_max_ttl;
    co.max_negative_ttl = std::min(co.max_negative_ttl, o.cache_max_ttl);
    resolver = std::make_shared<CachingResolver>(std::move(resolver), co);
  }
  RouteOptions ro;
  ro.deadline = o.deadline;
  return std::shared_ptr<const RouteAnalyzer>(
      std::make_shared<RouteAnalyzer>(std::move(resolver), o.bogus_networks, ro));
}

}  // namespace mxguard::dns
