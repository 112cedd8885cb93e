// Redis ban-lookup latency benchmark: the time one ban lookup (Bans::is_banned, one GET through
// RedisStore) takes against each Redis URL given, single-threaded, as median, 90th and 99th
// percentile in microseconds; the targets take turns, 100 lookups each. tests/bench/redis_tls.py
// runs it against a plain redis-server and against a TLS-only one reached through a local stunnel
// (Debian 12's route to TLS). Prints figures; asserts nothing. Usage: bench_redis_lookup [--lookups
// N] LABEL=redis://host:port/db ...
#include <fmt/format.h>

#include <memory>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "mxguard/log.h"
#include "mxguard/state/bans.h"
#include "mxguard/state/redis_store.h"

using namespace mxguard;
using namespace mxguard::state;
using Steady = std::chrono::steady_clock;

namespace {

class Quiet final : public LogSink {
 public:
  void write(LogLevel, std::string_view) override {}
};

double percentile(std::vector<double>& v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  int lookups = 5000;
  std::string tls_ca;
  std::vector<std::pair<std::string, std::string>> targets;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--lookups" && i + 1 < argc) {
      lookups = std::atoi(argv[++i]);
    } else if (a == "--tls-ca" && i + 1 < argc) {
      tls_ca = argv[++i];
    } else if (auto eq = a.find('='); eq != std::string_view::npos) {
      targets.emplace_back(std::string(a.substr(0, eq)), std::string(a.substr(eq + 1)));
    } else {
      fmt::print(
          stderr,
          "usage: bench_redis_lookup [--lookups N] [--tls-ca FILE] LABEL=redis://h:p/db ...\n");
      return 64;
    }
  }
  Quiet quiet;
  set_log_sink(&quiet);
  struct Target {
    std::string label;
    std::shared_ptr<RedisStore> store;
    std::unique_ptr<Bans> bans;
    std::vector<double> us;
  };
  std::vector<Target> runs;
  const auto banned = *net::IpAddress::parse("192.0.2.1");
  for (const auto& [label, url] : targets) {
    RedisStoreOptions ro;
    auto parsed = RedisUrl::parse(url);
    if (!parsed) {
      fmt::print(stderr, "{}: {}\n", url, parsed.error());
      return 64;
    }
    ro.url = *parsed;
    ro.timeout = std::chrono::milliseconds(1000);
    ro.tls.ca_file = tls_ca;
    Target t{label, std::make_shared<RedisStore>(ro), nullptr, {}};
    t.bans = std::make_unique<Bans>(t.store, BanSettings{});
    for (int s = 0; s < 3; ++s)  // the default ban-strikes: banned
      (void)t.bans->record_strike(banned, "bench", SystemClock::instance().now());
    t.us.reserve(static_cast<std::size_t>(lookups));
    runs.push_back(std::move(t));
  }
  // Batches of 100 lookups, target after target, so that the machine's swings fall on all.
  constexpr int kBatch = 100;
  for (int done = -2 * kBatch; done < lookups; done += kBatch) {
    for (auto& t : runs) {
      for (int i = 0; i < kBatch; ++i) {
        const auto who =
            i % 2 ? banned : net::IpAddress::v4(0xC6336400u + static_cast<unsigned>(i));
        const auto t0 = Steady::now();
        (void)t.bans->is_banned(who, SystemClock::instance().now());
        const auto t1 = Steady::now();
        if (done >= 0)  // the first two batches warm the pool and the tunnel
          t.us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
      }
    }
  }
  for (auto& t : runs)
    fmt::print("{}: {} ban lookups via {}: median {:.0f} us, p90 {:.0f} us, p99 {:.0f} us{}\n",
               t.label, t.us.size(), t.store->describe(), percentile(t.us, 0.5),
               percentile(t.us, 0.9), percentile(t.us, 0.99),
               t.store->fallback_calls() ? fmt::format(" ({} from the fallback: Redis unreachable)",
                                                       t.store->fallback_calls())
                                         : std::string());
  set_log_sink(nullptr);
  return 0;
}
