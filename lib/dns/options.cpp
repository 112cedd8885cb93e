#include "mxguard/dns/options.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fstream>

#include "dns/ldns_resolver.h"
#include "mxguard/dns/caching_resolver.h"
#include "mxguard/dns/mail_route.h"
#include "mxguard/tables/options.h"

namespace mxguard::dns {

std::vector<std::string> default_bogus_networks_paths() {
  return {"/etc/mxguard/rules/bogus-networks.cidr"};
}

std::vector<options::Spec> dns_option_specs() {
  using options::Kind;
  return {
      {"dns-server", Kind::List,
       "DNS servers as address[:port] ([v6]:port); default /etc/resolv.conf"},
      {"dns-timeout", Kind::Value, "wait this long for one DNS answer (e.g. 2s, 500ms)"},
      {"dns-retries", Kind::Value, "ask every DNS server this many more times after a timeout"},
      {"dns-deadline", Kind::Value,
       "a whole DNS route decision ends within this time (default 10s)"},
      {"on-dns-error", Kind::Value, "tempfail or accept when DNS cannot answer"},
      {"dns-cache-size", Kind::Value, "DNS answers kept in memory (0: no cache)"},
      {"dns-cache-min-ttl", Kind::Value, "keep DNS answers at least this long (e.g. 10s)"},
      {"dns-cache-max-ttl", Kind::Value, "keep DNS answers at most this long (e.g. 1d)"},
      {"bogus-networks", Kind::Value, "cidr table of non-routable networks for bogus-mx"},
  };
}

namespace {

options::Problem load_bogus_networks(const options::Reader& r, bool needed, DnsOptions& o) {
  std::string path;
  std::string where = "bogus-networks";
  if (const options::RawValue* v = r.last("bogus-networks")) {
    path = v->value;
    where = v->where;
  } else if (needed) {
    for (const auto& candidate : default_bogus_networks_paths())
      if (std::ifstream(candidate)) {
        path = candidate;
        break;
      }
    if (path.empty())
      return ConfigError{where, fmt::format("no table found at {}; set bogus-networks",
                                            fmt::join(default_bogus_networks_paths(), " or "))};
  }
  if (path.empty()) return std::nullopt;
  auto t = BogusNetworks::load(path);
  if (!t) return tables::to_config_error(t.error(), where, "bogus-networks");
  o.bogus_networks_path = path;
  o.bogus_networks = *t;
  return std::nullopt;
}

}  // namespace

options::Problem load_dns_options(const options::Reader& r, bool bogus_needed, DnsOptions& o) {
  auto servers = r.list("dns-server");
  if (!servers) return servers.error();
  for (const auto& s : *servers) {
    auto a = parse_server(s.value);
    if (!a) return ConfigError{s.where, fmt::format("dns-server: {}", a.error())};
    o.servers.push_back(s.value);
  }
  using std::chrono::milliseconds;
  constexpr milliseconds sec(1000), week(86'400'000LL * 7);
  constexpr std::string_view eg = "2s, 500ms";
  for (auto e : {r.duration("dns-timeout", sec, milliseconds(10), 30 * sec, eg, o.timeout),
                 r.duration("dns-deadline", sec, milliseconds(10), 60 * sec, eg, o.deadline),
                 r.duration("dns-cache-min-ttl", sec, milliseconds(0), week, eg, o.cache_min_ttl),
                 r.duration("dns-cache-max-ttl", sec, sec, week, eg, o.cache_max_ttl),
                 r.number("dns-retries", 0, 10, o.retries),
                 r.number("dns-cache-size", 0, 100'000'000, o.cache_size),
                 r.on_error("on-dns-error", o.on_error)})
    if (e) return e;
  if (o.cache_min_ttl > o.cache_max_ttl) {
    // The place of whichever of the two was set (the other is its default).
    const options::RawValue* v = r.last("dns-cache-min-ttl");
    if (!v) v = r.last("dns-cache-max-ttl");
    return ConfigError{v ? v->where : "built-in default",
                       "dns-cache-min-ttl must not be above dns-cache-max-ttl"};
  }
  return load_bogus_networks(r, bogus_needed, o);
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
