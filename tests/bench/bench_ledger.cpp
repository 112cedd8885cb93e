// Ledger benchmark: the memory a MemoryLedger needs per recorded recipient (RSS before and after
// recording 1,000,000 keys, spread over one lifetime as real mail is, and all at once), the cost
// of record() and contains() (a hit, a miss, and a bounce's proof lookup of 3 keys), the
// ledger file's size and save/load times, and the same lookups through Redis (a redis-server of
// its own on a loopback port). Prints figures; asserts nothing.
// Usage: bench_ledger [keys=1000000]
#include <fmt/format.h>
#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../unit/redis_fixture.h"
#include "mxguard/log.h"
#include "mxguard/state/ledger.h"
#include "mxguard/state/redis_store.h"

using namespace mxguard;
using namespace mxguard::state;
using Steady = std::chrono::steady_clock;

namespace {

double rss_bytes() {
  std::ifstream in("/proc/self/statm");
  long size = 0, resident = 0;
  in >> size >> resident;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

class Quiet final : public LogSink {
 public:
  void write(LogLevel, std::string_view) override {}
};

std::vector<LedgerKey> make_keys(const LedgerKeys& keys, std::size_t n, char kind) {
  std::vector<LedgerKey> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    out.push_back(keys.recipient_key(fmt::format("user{}@example.org", i % 5000),
                                     fmt::format("{}{}@remote{}.example", kind, i, i % 997)));
  return out;
}

double seconds_since(Steady::time_point t0) {
  return std::chrono::duration<double>(Steady::now() - t0).count();
}

// ns per call of f(i) over n calls.
template <class F>
double ns_per(std::size_t n, F f) {
  auto t0 = Steady::now();
  for (std::size_t i = 0; i < n; ++i)
    f(i);
  return seconds_since(t0) * 1e9 / static_cast<double>(n);
}

void memory(const char* how, const std::vector<LedgerKey>& keys, const LedgerKeys& secret,
            bool spread) {
  ::malloc_trim(0);
  const double before = rss_bytes();
  MemoryLedgerOptions o;  // the defaults: 14 days, 2,000,000 keys at most
  auto ledger = std::make_unique<MemoryLedger>(o, secret);
  ManualClock clock;
  const auto step = std::chrono::duration_cast<std::chrono::nanoseconds>(o.lifetime) /
                    static_cast<std::int64_t>(keys.size());
  auto t0 = Steady::now();
  for (const LedgerKey& k : keys) {
    (void)ledger->record(std::span<const LedgerKey>(&k, 1), clock.now());
    if (spread) clock.advance(step);
  }
  const double record_ns = seconds_since(t0) * 1e9 / static_cast<double>(keys.size());
  const double after = rss_bytes();
  fmt::print(
      "memory ledger, {} keys {}: RSS +{:.1f} MB = {:.1f} bytes a key (tables {:.1f} MB, {} "
      "generations); record {:.0f} ns a key\n",
      keys.size(), how, (after - before) / 1e6, (after - before) / static_cast<double>(keys.size()),
      static_cast<double>(ledger->memory_bytes()) / 1e6, ledger->generations(), record_ns);
}

}  // namespace

int main(int argc, char** argv) {
  Quiet quiet;
  set_log_sink(&quiet);
  const std::size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1'000'000;
  const LedgerKeys secret("bench-ledger-secret-0123456789abcdef");
  const auto hits = make_keys(secret, n, 'r');
  const auto misses = make_keys(secret, n, 'x');

  memory("spread over the 14-day lifetime", hits, secret, true);
  memory("recorded at once", hits, secret, false);

  // Lookups against a full ledger, as a bounce would make them at the end of the lifetime.
  ManualClock clock;
  MemoryLedgerOptions o;
  o.file = (std::filesystem::temp_directory_path() / "mxguard-bench-ledger").string();
  MemoryLedger ledger(o, secret);
  const auto step = std::chrono::duration_cast<std::chrono::nanoseconds>(o.lifetime) /
                    static_cast<std::int64_t>(n);
  for (const LedgerKey& k : hits) {
    (void)ledger.record(std::span<const LedgerKey>(&k, 1), clock.now());
    clock.advance(step);
  }
  const TimePoint now = clock.now();
  std::size_t found = 0;
  const double hit_ns = ns_per(n, [&](std::size_t i) {
    found += *ledger.contains(std::span<const LedgerKey>(&hits[(i * 7919) % n], 1), now);
  });
  const double miss_ns = ns_per(n, [&](std::size_t i) {
    found += *ledger.contains(std::span<const LedgerKey>(&misses[i], 1), now);
  });
  const double bounce_ns = ns_per(n / 3, [&](std::size_t i) {
    found += *ledger.contains(std::span<const LedgerKey>(&misses[3 * i], 3), now);
  });
  const double mac_ns = ns_per(n / 10, [&](std::size_t i) {
    found += secret.recipient_key("alice@example.org", std::to_string(i)).bytes[0] == 0xFF;
  });
  fmt::print(
      "memory ledger, {} keys over {} generations: contains() hit {:.0f} ns, miss {:.0f} ns, "
      "a bounce's 3 keys not ours {:.0f} ns; making a key (HMAC) {:.0f} ns  [{}]\n",
      n, ledger.generations(), hit_ns, miss_ns, bounce_ns, mac_ns, found);

  auto t0 = Steady::now();
  auto saved = ledger.save();
  const double save_s = seconds_since(t0);
  const auto file_size = std::filesystem::file_size(o.file);
  MemoryLedger restored(o, secret);
  t0 = Steady::now();
  auto loaded = restored.load(now);
  fmt::print("ledger file: {:.1f} MB for {} keys, save {:.0f} ms, load {:.0f} ms ({} restored)\n",
             static_cast<double>(file_size) / 1e6, saved ? *saved : 0, save_s * 1e3,
             seconds_since(t0) * 1e3, loaded.entries);
  std::filesystem::remove(o.file);

  // Redis: one round trip a key.
  testing::RedisServer server;
  RedisStoreOptions r;
  r.url = *RedisUrl::parse(server.url());
  auto store = std::make_shared<RedisStore>(r);
  StoreLedger shared(store, secret, o.lifetime);
  const std::size_t rn = std::min<std::size_t>(n, 20'000);
  const TimePoint t = SystemClock::instance().now();
  const double put_us = ns_per(rn,
                               [&](std::size_t i) {
                                 (void)shared.record(std::span<const LedgerKey>(&hits[i], 1), t);
                               }) /
                        1e3;
  const double rhit_us = ns_per(rn,
                                [&](std::size_t i) {
                                  found +=
                                      *shared.contains(std::span<const LedgerKey>(&hits[i], 1), t);
                                }) /
                         1e3;
  const double rmiss_us =
      ns_per(rn / 3,
             [&](std::size_t i) {
               found += *shared.contains(std::span<const LedgerKey>(&misses[3 * i], 3), t);
             }) /
      1e3;
  fmt::print(
      "redis ledger (loopback): record {:.1f} us a key, contains() hit {:.1f} us, a bounce's 3 "
      "keys not ours {:.1f} us\n",
      put_us, rhit_us, rmiss_us);
  return 0;
}
