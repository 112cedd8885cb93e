// State benchmark: strike/ban operations per second on the memory and Redis backends, the
// memory the memory backend needs for 1,000,000 tracked clients, and the slowest store call
// while Redis is killed or hung (the unit tests count those calls; the time is printed here).
// Prints figures; asserts nothing (timings depend on the machine). Starts its own
// redis-server on a loopback port.
// Usage: bench_state [clients=1000000]
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "../unit/redis_fixture.h"
#include "mxguard/log.h"
#include "mxguard/state/bans.h"
#include "mxguard/state/memory_store.h"
#include "mxguard/state/redis_store.h"

using namespace mxguard;
using namespace mxguard::state;
using Steady = std::chrono::steady_clock;

namespace {

double rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      double v = 0;
      in >> v;
      return v;
    }
    in.ignore(1 << 12, '\n');
  }
  return -1;
}

// Distinct client addresses: 10.0.0.0/8 and 2001:db8::/32, spread over the space.
net::IpAddress client(std::uint32_t i) {
  if (i % 4 != 3) return net::IpAddress::v4(0x0A000000u + i);
  std::array<std::uint8_t, 16> b{0x20, 0x01, 0x0d, 0xb8};
  for (int k = 0; k < 4; ++k)
    b[12 + k] = static_cast<std::uint8_t>(i >> (24 - 8 * k));
  b[4] = 0x11;
  return net::IpAddress::v6(b);
}

class Quiet final : public LogSink {
 public:
  void write(LogLevel, std::string_view) override {}
};

// Runs `threads` workers doing `per_thread` operations each; returns operations per second.
template <class F>
double rate(int threads, int per_thread, F op) {
  std::vector<std::thread> ts;
  auto t0 = Steady::now();
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i)
        op(t, i);
    });
  for (auto& t : ts)
    t.join();
  double secs = std::chrono::duration<double>(Steady::now() - t0).count();
  return threads * per_thread / secs;
}

void ops(const char* backend, std::shared_ptr<StateStore> store, int per_thread) {
  BanSettings s;
  s.v6_prefix = 128;
  Bans bans(store, s);
  for (int threads : {1, 4}) {
    // Strikes over 50,000 clients: most add a strike, every third one per client bans.
    double strikes = rate(threads, per_thread, [&](int t, int i) {
      auto a = client(static_cast<std::uint32_t>((t * 7919 + i) % 50'000));
      (void)bans.record_strike(a, "unhandled domain product.com", SystemClock::instance().now());
    });
    double lookups = rate(threads, per_thread, [&](int t, int i) {
      auto a = client(static_cast<std::uint32_t>((t * 7919 + i) % 100'000));
      (void)bans.is_banned(a, SystemClock::instance().now());
    });
    fmt::print("{:6} {} thread(s): record_strike {:>10.0f}/s   is_banned {:>10.0f}/s\n", backend,
               threads, strikes, lookups);
  }
}

// The slowest of `n` counter calls, in milliseconds.
double slowest_ms(StateStore& s, int n) {
  Steady::duration worst{};
  for (int i = 0; i < n; ++i) {
    auto t0 = Steady::now();
    (void)s.incr_with_window("outage:" + std::to_string(i % 3), std::chrono::seconds(60));
    worst = std::max(worst, Steady::now() - t0);
  }
  return std::chrono::duration<double, std::milli>(worst).count();
}

// A store call while Redis is away: killed (refused at once), or hung (stopped: the one call
// that finds it so waits for the timeout, the others go to the fallback until the backoff).
void outage() {
  using namespace std::chrono_literals;
  for (const bool hung : {false, true}) {
    mxguard::testing::RedisServer server;
    RedisStoreOptions ro;
    ro.url = *RedisUrl::parse(server.url());
    ro.timeout = 100ms;
    ro.min_backoff = 50ms;
    ro.max_backoff = 200ms;
    RedisStore store(ro);
    (void)store.put("before", "1", 0ms);
    if (hung)
      server.pause();
    else
      server.stop();
    const int n = 200;
    const double worst = slowest_ms(store, n);
    fmt::print("redis {}: slowest of {} calls {:.1f} ms (timeout {} ms), {} from the fallback\n",
               hung ? "hung  " : "killed", n, worst, ro.timeout.count(), store.fallback_calls());
    if (hung) server.resume();
  }
}

}  // namespace

int main(int argc, char** argv) {
  Quiet quiet;
  set_log_sink(&quiet);
  const std::uint32_t clients =
      argc > 1 ? static_cast<std::uint32_t>(std::stoul(argv[1])) : 1'000'000;

  // Memory first, in a fresh heap, so RSS growth is the store's own.
  {
    double before = rss_kib();
    MemoryStoreOptions o;
    o.max_entries = 4'000'000;
    auto store = std::make_shared<MemoryStore>(o);
    Bans bans(store, BanSettings{.v6_prefix = 128});
    auto t0 = Steady::now();
    for (std::uint32_t i = 0; i < clients; ++i)
      (void)bans.record_strike(client(i), "unhandled domain product.com",
                               SystemClock::instance().now());
    double secs = std::chrono::duration<double>(Steady::now() - t0).count();
    double after = rss_kib();
    fmt::print(
        "memory: {} clients with one strike each: {} entries, RSS +{:.1f} MB ({:.0f} bytes per "
        "client), {:.0f} strikes/s\n",
        clients, store->size(), (after - before) / 1024.0, (after - before) * 1024.0 / clients,
        clients / secs);
    for (std::uint32_t i = 0; i < clients; ++i)
      for (int k = 0; k < 2; ++k)
        (void)bans.record_strike(client(i), "unhandled domain product.com",
                                 SystemClock::instance().now());
    double banned = rss_kib();
    fmt::print(
        "memory: the same {} clients all banned: {} entries, RSS +{:.1f} MB ({:.0f} bytes per "
        "client)\n",
        clients, store->size(), (banned - before) / 1024.0, (banned - before) * 1024.0 / clients);
    store->sweep();
  }

  MemoryStoreOptions mo;
  ops("memory", std::make_shared<MemoryStore>(mo), 200'000);
  try {
    mxguard::testing::RedisServer server;
    RedisStoreOptions ro;
    ro.url = *RedisUrl::parse(server.url());
    ops("redis", std::make_shared<RedisStore>(ro), 5'000);
    outage();
  } catch (const std::exception& e) {
    fmt::print("redis: skipped ({})\n", e.what());
  }
  set_log_sink(nullptr);
  return 0;
}
