// CachingResolver: TTLs and their clamps, negative caching, eviction, coalescing, counters.
#include <catch2/catch.hpp>

#include <thread>

#include "fake_resolver.h"
#include "mxguard/dns/caching_resolver.h"

using namespace mxguard;
using namespace mxguard::dns;
using mxguard::test::FakeResolver;
using namespace std::chrono_literals;

namespace {

struct Clocked {
  std::shared_ptr<FakeResolver> fake = std::make_shared<FakeResolver>();
  CachingResolver::Clock::time_point t = CachingResolver::Clock::now();
  std::unique_ptr<CachingResolver> cache;
  explicit Clocked(CacheOptions o = {}) {
    cache = std::make_unique<CachingResolver>(fake, o);
    cache->set_clock([this] { return t; });
  }
};

// A resolver whose answers carry a chosen TTL.
class TtlResolver : public Resolver {
 public:
  explicit TtlResolver(std::uint32_t ttl, DnsStatus st = DnsStatus::Ok) : ttl_(ttl), st_(st) {}
  DnsResult lookup(std::string_view, RrType) override {
    queries++;
    DnsAnswer a;
    a.status = st_;
    if (st_ == DnsStatus::Ok) a.addresses.push_back(net::IpAddress::parse("192.0.2.1").value());
    a.ttl = ttl_;
    return a;
  }
  int queries = 0;

 private:
  std::uint32_t ttl_;
  DnsStatus st_;
};

}  // namespace

TEST_CASE("answers are cached for their TTL, clamped", "[dns][cache]") {
  struct Row {
    std::uint32_t ttl;
    DnsStatus status;
    std::chrono::seconds still_cached;
    std::chrono::seconds expired;
  };
  CacheOptions o;
  o.min_ttl = 10s;
  o.max_ttl = 3600s;
  o.max_negative_ttl = 600s;
  const Row rows[] = {
      {300, DnsStatus::Ok, 299s, 300s},       {1, DnsStatus::Ok, 9s, 10s},  // raised to min_ttl
      {86400, DnsStatus::Ok, 3599s, 3600s},                                 // cut to max_ttl
      {900, DnsStatus::NxDomain, 599s, 600s},  // negative, cut to max_negative_ttl
      {30, DnsStatus::NoData, 29s, 30s},
  };
  for (const auto& row : rows) {
    CAPTURE(row.ttl, to_string(row.status));
    auto inner = std::make_shared<TtlResolver>(row.ttl, row.status);
    CachingResolver cache(inner, o);
    auto t0 = CachingResolver::Clock::now();
    auto t = t0;
    cache.set_clock([&] { return t; });
    REQUIRE(cache.lookup("a.test", RrType::A));
    t = t0 + row.still_cached;
    REQUIRE(cache.lookup("A.test.", RrType::A));
    CHECK(inner->queries == 1);
    t = t0 + row.expired;
    REQUIRE(cache.lookup("a.test", RrType::A));
    CHECK(inner->queries == 2);
  }
}

TEST_CASE("errors are not cached and are counted", "[dns][cache]") {
  Clocked c;
  c.fake->fail("bad.test", RrType::Mx);
  CHECK_FALSE(c.cache->lookup("bad.test", RrType::Mx));
  CHECK_FALSE(c.cache->lookup("bad.test", RrType::Mx));
  CHECK(c.fake->queries == 2);
  auto st = c.cache->stats();
  CHECK(st.errors == 2);
  CHECK(st.misses == 2);
  CHECK(st.hits == 0);
  CHECK(st.entries == 0);
}

TEST_CASE("the cache holds at most max_entries, least recently used go first", "[dns][cache]") {
  CacheOptions o;
  o.max_entries = 160;  // 10 per shard
  Clocked c(o);
  for (int i = 0; i < 1000; ++i)
    REQUIRE(c.cache->lookup("n" + std::to_string(i) + ".test", RrType::A));
  auto st = c.cache->stats();
  CHECK(st.entries <= 160);
  CHECK(st.evictions == 1000 - st.entries);
  // The most recent name is still there.
  CHECK(c.cache->try_cached("n999.test", RrType::A));
  CHECK_FALSE(c.cache->try_cached("n0.test", RrType::A));
}

TEST_CASE("50 threads asking one name cause one query", "[dns][cache][coalesce]") {
  auto fake = std::make_shared<FakeResolver>();
  fake->addr("busy.test", "192.0.2.7");
  fake->hold(1000);  // the one query is answered only once the other 49 wait for it
  CachingResolver cache(fake, CacheOptions{});
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 50; ++i)
    threads.emplace_back([&] {
      auto r = cache.lookup("busy.test", RrType::A);
      if (r && r->addresses.size() == 1) ok++;
    });
  // 49 askers join the query in flight (counted as they join, before they wait); without
  // coalescing they would each ask, and this would never be seen.
  for (int i = 0; i < 10'000 && cache.stats().coalesced < 49; ++i)
    std::this_thread::sleep_for(1ms);
  const auto joined = cache.stats().coalesced;
  fake->release();
  for (auto& t : threads)
    t.join();
  CHECK(joined == 49);
  CHECK(ok == 50);
  CHECK(fake->queries == 1);
  auto st = cache.stats();
  CHECK(st.misses == 1);
  CHECK(st.coalesced == 49);
  CHECK(st.hits == 0);
}

TEST_CASE("names are cached case-insensitively and per type", "[dns][cache]") {
  Clocked c;
  c.fake->addr("x.test", "192.0.2.1").addr("x.test", "2001:db8::1");
  REQUIRE(c.cache->lookup("X.TEST", RrType::A)->addresses.size() == 1);
  REQUIRE(c.cache->lookup("x.test.", RrType::A));
  REQUIRE(c.cache->lookup("x.test", RrType::Aaaa)->addresses.size() == 1);
  CHECK(c.fake->queries == 2);
  // the cache-only form finds the same entries under the same spellings
  CHECK(c.cache->try_cached("X.Test..", RrType::Aaaa));
  CHECK(c.cache->try_cached("x.TEST", RrType::A));
  CHECK_FALSE(c.cache->try_cached("x.test", RrType::Mx));
  // and shares the cached answer rather than copying it
  auto first = c.cache->try_cached("x.test", RrType::A);
  REQUIRE(first);
  CHECK(first->addresses.size() == 1);
  CHECK(c.cache->try_cached("X.TEST.", RrType::A).get() == first.get());
}
