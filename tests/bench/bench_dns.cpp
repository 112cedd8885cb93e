// DNS benchmark: prints figures, asserts nothing (see DESIGN.md, testing).
//  1. Warm-cache cost of one recipient route decision in-process (MX + A + AAAA from the
//     CachingResolver, classification against the shipped bogus-networks table): median ns.
//  2. Memory of the CachingResolver holding 1,000,000 answers (RSS growth).
// The through-Postfix concurrency ratios of issue 3 are not measured here.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <vector>

#include "mxguard/dns/caching_resolver.h"
#include "mxguard/dns/mail_route.h"

using namespace mxguard;
using namespace mxguard::dns;

namespace {

// Answers every name at once: MX for "d*", one address for anything else.
class StaticResolver final : public Resolver {
 public:
  DnsResult lookup(std::string_view name, RrType type) override {
    DnsAnswer a;
    a.ttl = 3600;
    a.status = DnsStatus::Ok;
    if (type == RrType::Mx) {
      a.mx.push_back({10, "mx." + std::string(name)});
    } else if (type == RrType::A) {
      a.addresses.push_back(net::IpAddress::v4(0x5DB8D822));  // 93.184.216.34
    } else {
      a.status = DnsStatus::NoData;
    }
    return a;
  }
};

long rss_kib() {
  std::ifstream in("/proc/self/statm");
  long size = 0, resident = 0;
  in >> size >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

}  // namespace

int main() {
  auto bogus = BogusNetworks::load(MXGUARD_SOURCE_DIR "/rules/bogus-networks.cidr");
  if (!bogus) {
    fmt::print(stderr, "{}\n", bogus.error().to_string());
    return 1;
  }
  {
    auto cache =
        std::make_shared<CachingResolver>(std::make_shared<StaticResolver>(), CacheOptions{});
    RouteAnalyzer analyzer(cache, *bogus);
    constexpr int kDomains = 1000;
    std::vector<std::string> domains;
    for (int i = 0; i < kDomains; ++i)
      domains.push_back(fmt::format("d{}.bench.test", i));
    for (const auto& d : domains)
      (void)analyzer.analyse(d);  // warm
    // Each way of asking, interleaved round by round: worked out from the cache every time
    // (analyse), or kept once worked out (route, what the checks ask).
    std::vector<double> worked_out, kept;
    for (int round = 0; round < 200; ++round) {
      for (auto* out : {&worked_out, &kept}) {
        auto t0 = std::chrono::steady_clock::now();
        for (const auto& d : domains) {
          const RouteKind k = out == &kept ? analyzer.route(d)->kind : analyzer.analyse(d).kind;
          if (k != RouteKind::Deliverable) return 2;
        }
        auto t1 = std::chrono::steady_clock::now();
        out->push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / kDomains);
      }
    }
    auto st = cache->stats();
    for (auto* out : {&worked_out, &kept}) {
      std::sort(out->begin(), out->end());
      fmt::print("warm-cache route decision, {}: median {:.0f} ns, p10 {:.0f} ns, p90 {:.0f} ns\n",
                 out == &kept ? "kept (route)" : "worked out (analyse: MX + A + AAAA hits)",
                 (*out)[out->size() / 2], (*out)[out->size() / 10], (*out)[out->size() * 9 / 10]);
    }
    fmt::print("  cache: {} hits / {} misses; routes kept: {}\n", st.hits, st.misses,
               analyzer.remembered());
  }
  {
    constexpr std::size_t kEntries = 1'000'000;
    CacheOptions o;
    o.max_entries = kEntries;
    const long before = rss_kib();
    auto cache = std::make_shared<CachingResolver>(std::make_shared<StaticResolver>(), o);
    for (std::size_t i = 0; i < kEntries; ++i)
      (void)cache->lookup(fmt::format("host{}.example-domain.test", i), RrType::A);
    const double grown_kib = static_cast<double>(rss_kib() - before);
    fmt::print(
        "cache with {} A answers (one address each): {} entries, RSS +{:.1f} MiB "
        "({:.0f} bytes/entry)\n",
        kEntries, cache->stats().entries, grown_kib / 1024.0,
        grown_kib * 1024.0 / static_cast<double>(kEntries));
  }
  return 0;
}
