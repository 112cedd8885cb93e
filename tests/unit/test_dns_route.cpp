// MailRoute analysis against a fake resolver: every route class of the issue, table-driven.
#include <catch2/catch.hpp>

#include "fake_resolver.h"
#include "mxguard/dns/caching_resolver.h"
#include "mxguard/dns/mail_route.h"

using namespace mxguard;
using namespace mxguard::dns;
using mxguard::test::FakeResolver;

namespace {

std::shared_ptr<const BogusNetworks> shipped_table() {
  static auto t = BogusNetworks::load(MXGUARD_SOURCE_DIR "/rules/bogus-networks.cidr").value();
  return t;
}

std::shared_ptr<FakeResolver> world() {
  auto r = std::make_shared<FakeResolver>();
  r->mx("good.test", {{10, "mx.good.test"}}).addr("mx.good.test", "93.184.216.34");
  r->mx("nullmx.test", {{0, "."}});
  r->mx("mixednull.test", {{0, "."}, {10, "mx.good.test"}});
  r->mx("mixednull-bad.test", {{0, "."}, {10, "mx.loop.test"}});
  r->mx("loop.test", {{10, "mx.loop.test"}}).addr("mx.loop.test", "127.0.0.1");
  r->mx("zero.test", {{10, "mx.zero.test"}}).addr("mx.zero.test", "0.0.0.0");
  r->mx("rfc1918.test", {{10, "a.rfc1918.test"}, {20, "b.rfc1918.test"}})
      .addr("a.rfc1918.test", "10.1.2.3")
      .addr("b.rfc1918.test", "192.168.1.1")
      .addr("b.rfc1918.test", "172.16.0.1");
  r->mx("cgnat.test", {{10, "mx.cgnat.test"}}).addr("mx.cgnat.test", "100.64.0.1");
  r->mx("bench.test", {{10, "mx.bench.test"}}).addr("mx.bench.test", "198.19.0.1");
  r->mx("v6loop.test", {{10, "mx.v6loop.test"}}).addr("mx.v6loop.test", "::1");
  r->mx("ula.test", {{10, "mx.ula.test"}}).addr("mx.ula.test", "fd00::25");
  r->mx("mapped.test", {{10, "mx.mapped.test"}}).addr("mx.mapped.test", "::ffff:127.0.0.1");
  r->mx("nat64.test", {{10, "mx.nat64.test"}}).addr("mx.nat64.test", "64:ff9b::10.0.0.1");
  r->mx("nat64good.test", {{10, "mx.nat64good.test"}})
      .addr("mx.nat64good.test", "64:ff9b::93.184.216.34");
  r->mx("sixto4.test", {{10, "mx.sixto4.test"}}).addr("mx.sixto4.test", "2002:c0a8:101::1");
  r->mx("mixed.test", {{10, "mx.loop.test"}, {20, "mx.good.test"}});
  r->mx("dualstack.test", {{10, "mx.dualstack.test"}})
      .addr("mx.dualstack.test", "127.0.0.1")
      .addr("mx.dualstack.test", "2606:2800:220:1::1");
  r->exists("implicit.test").addr("implicit.test", "127.0.0.1");
  r->exists("implicitgood.test").addr("implicitgood.test", "93.184.216.34");
  r->exists("noaddr.test");
  r->mx("dangling.test", {{10, "nothere.test"}});
  r->mx("cnamemx.test", {{10, "alias.cnamemx.test"}}).cname("alias.cnamemx.test", "mx.good.test");
  r->cname("cnamedomain.test", "good.test");
  r->mx("cnameloop.test", {{10, "a.cnameloop.test"}})
      .cname("a.cnameloop.test", "b.cnameloop.test")
      .cname("b.cnameloop.test", "a.cnameloop.test");
  r->fail("servfail.test", RrType::Mx);
  r->mx("partialfail.test", {{10, "mx.loop.test"}, {20, "mx.fail.test"}})
      .fail("mx.fail.test", RrType::A);
  r->mx("partialgood.test", {{10, "mx.fail.test"}, {20, "mx.good.test"}});
  r->mx("xn--bcher-kva.test", {{10, "mx.good.test"}});
  r->mx("many.test", {{10, "mx.loop.test"}, {20, "mx.zero.test"}, {30, "mx.cgnat.test"}});
  return r;
}

}  // namespace

TEST_CASE("mail route classes", "[dns][route]") {
  struct Row {
    const char* domain;
    RouteKind kind;
    const char* range;  // for Bogus: text the reply names
  };
  const Row rows[] = {
      {"good.test", RouteKind::Deliverable, ""},
      {"GOOD.test.", RouteKind::Deliverable, ""},
      {"nullmx.test", RouteKind::NullMx, ""},
      {"mixednull.test", RouteKind::Deliverable, ""},
      {"mixednull-bad.test", RouteKind::Bogus, "loopback network 127.0.0.0/8"},
      {"loop.test", RouteKind::Bogus, "loopback network 127.0.0.0/8"},
      {"zero.test", RouteKind::Bogus, "this-network 0.0.0.0/8"},
      {"rfc1918.test", RouteKind::Bogus, "private network 10.0.0.0/8"},
      {"cgnat.test", RouteKind::Bogus, "carrier-grade NAT shared network 100.64.0.0/10"},
      {"bench.test", RouteKind::Bogus, "benchmarking network 198.18.0.0/15"},
      {"v6loop.test", RouteKind::Bogus, "loopback address ::1/128"},
      {"ula.test", RouteKind::Bogus, "unique local network fc00::/7"},
      {"mapped.test", RouteKind::Bogus,
       "loopback network 127.0.0.0/8 (embedded in ::ffff:127.0.0.1)"},
      {"nat64.test", RouteKind::Bogus, "private network 10.0.0.0/8 (embedded in 64:ff9b::a00:1)"},
      {"nat64good.test", RouteKind::Deliverable, ""},
      {"sixto4.test", RouteKind::Bogus,
       "private network 192.168.0.0/16 (embedded in 2002:c0a8:101::1)"},
      {"mixed.test", RouteKind::Deliverable, ""},
      {"dualstack.test", RouteKind::Deliverable, ""},
      {"implicit.test", RouteKind::Bogus, "loopback network 127.0.0.0/8"},
      {"implicitgood.test", RouteKind::Deliverable, ""},
      {"noaddr.test", RouteKind::NoExchanger, ""},
      {"nx.test", RouteKind::NoSuchDomain, ""},
      {"dangling.test", RouteKind::NoExchanger, ""},
      {"cnamemx.test", RouteKind::Deliverable, ""},
      {"cnamedomain.test", RouteKind::Deliverable, ""},
      {"cnameloop.test", RouteKind::TempFail, ""},
      {"servfail.test", RouteKind::TempFail, ""},
      {"partialfail.test", RouteKind::TempFail, ""},
      {"partialgood.test", RouteKind::Deliverable, ""},
      {"bücher.test", RouteKind::Deliverable, ""},
      {"many.test", RouteKind::Bogus, "loopback network 127.0.0.0/8"},
      {"[127.0.0.1]", RouteKind::Bogus, "loopback network 127.0.0.0/8"},
      {"[93.184.216.34]", RouteKind::Deliverable, ""},
      {"bad..test", RouteKind::Invalid, ""},
      {"under score ok.test", RouteKind::Invalid, ""},
  };
  RouteAnalyzer analyzer(world(), shipped_table());
  for (const auto& row : rows) {
    CAPTURE(row.domain);
    MailRoute r = analyzer.analyse(row.domain);
    CAPTURE(r.describe());
    CHECK(r.kind == row.kind);
    if (row.kind == RouteKind::Bogus) {
      REQUIRE(r.bogus);
      REQUIRE(r.bogus->bogus);
      CHECK(r.bogus->bogus->describe(r.bogus->address) == row.range);
    }
  }
}

TEST_CASE("null MX among other MX records is ignored and noted", "[dns][route]") {
  RouteAnalyzer analyzer(world(), shipped_table());
  MailRoute r = analyzer.analyse("mixednull.test");
  CHECK(r.kind == RouteKind::Deliverable);
  CHECK(r.null_mx_mixed);
  REQUIRE(r.exchangers.size() == 1);
  CHECK(r.exchangers[0].name == "mx.good.test");
}

TEST_CASE("existing MX records are never bypassed for the domain's A record", "[dns][route]") {
  auto r = world();
  r->addr("loop.test", "93.184.216.34");  // a routable A on the domain itself
  RouteAnalyzer analyzer(r, shipped_table());
  CHECK(analyzer.analyse("loop.test").kind == RouteKind::Bogus);
}

TEST_CASE("UTF-8 domains are looked up as A-labels", "[dns][route][idn]") {
  CHECK(to_a_label("Bücher.TEST.").value() == "xn--bcher-kva.test");
  CHECK(to_a_label("example.test..").value() == "example.test");
  CHECK_FALSE(to_a_label(std::string(64, 'a') + ".test"));
  CHECK(to_a_label(std::string(63, 'a') + ".test"));
  std::string longname;
  for (int i = 0; i < 50; ++i)
    longname += "abcd.";
  longname += "test";
  CHECK_FALSE(to_a_label(longname));  // 254 octets
  CHECK_FALSE(to_a_label(""));
  CHECK_FALSE(to_a_label("a b.test"));
  CHECK_FALSE(to_a_label("\xff\xfe.test"));
}

TEST_CASE("MX-only analysis stops before the exchangers' addresses", "[dns][route]") {
  auto r = world();
  RouteAnalyzer analyzer(r, shipped_table());
  CHECK(analyzer.analyse("nullmx.test", RouteDepth::MxOnly).kind == RouteKind::NullMx);
  CHECK(analyzer.analyse("good.test", RouteDepth::MxOnly).kind == RouteKind::MxOnly);
  CHECK(r->queries == 2);
}

TEST_CASE("a slow DNS answer turns into tempfail at the deadline", "[dns][route]") {
  auto r = world();
  r->hold(1000);  // no answer until release()
  RouteOptions o;
  o.deadline = std::chrono::milliseconds(100);
  RouteAnalyzer analyzer(r, shipped_table(), o);
  MailRoute m = analyzer.analyse("good.test");
  // Given up at the deadline with the MX question still unanswered, and nothing else asked.
  const int answered = r->answered;
  r->release();
  CHECK(m.kind == RouteKind::TempFail);
  CHECK(m.detail == "MX: route deadline passed");
  CHECK(answered == 0);
  CHECK(r->queries == 1);
}

TEST_CASE("exchangers are resolved in parallel", "[dns][route]") {
  auto r = world();
  // Each address lookup waits until all six (3 hosts x A, AAAA) are under way at once: one
  // after the other, the first would wait alone (until the resolver's safety release).
  r->hold(6, {RrType::A, RrType::Aaaa});
  RouteAnalyzer analyzer(r, shipped_table());
  MailRoute m = analyzer.analyse("many.test");  // 1 MX query, then 3 hosts x (A, AAAA)
  CHECK(m.kind == RouteKind::Bogus);
  CHECK(r->queries == 7);
  CHECK(r->most_held() == 6);
}

TEST_CASE("a warm cache answers a route without asking again", "[dns][route][cache]") {
  auto fake = world();
  auto cache = std::make_shared<CachingResolver>(fake, CacheOptions{});
  RouteAnalyzer analyzer(cache, shipped_table());
  CHECK(analyzer.analyse("mixed.test").kind == RouteKind::Deliverable);
  const int first = fake->queries;
  CHECK(analyzer.analyse("mixed.test").kind == RouteKind::Deliverable);
  CHECK(fake->queries == first);
  CHECK(cache->stats().hits >= 5);
}

TEST_CASE("a route built from the cache is kept until its first answer expires, no longer",
          "[dns][route][cache]") {
  auto fake = world();
  auto cache = std::make_shared<CachingResolver>(fake, CacheOptions{});
  auto t = CachingResolver::Clock::now();
  cache->set_clock([&t] { return t; });
  RouteAnalyzer analyzer(cache, shipped_table());
  auto first = analyzer.route("good.test");  // asked of DNS: not kept
  CHECK(first->kind == RouteKind::Deliverable);
  CHECK(analyzer.remembered() == 0);
  const int asked = fake->queries;
  auto second = analyzer.route("good.test");  // from the cache alone: kept
  CHECK(second != first);
  CHECK(analyzer.remembered() == 1);
  const auto hits = cache->stats().hits;
  CHECK(analyzer.route("good.test") == second);  // neither DNS nor the cache asked
  CHECK(cache->stats().hits == hits);
  CHECK(fake->queries == asked);
  // An MX-only question is another route.
  CHECK(analyzer.route("good.test", RouteDepth::MxOnly)->kind == RouteKind::MxOnly);
  // Kept while every answer holds: the shortest is the AAAA NODATA (60 s).
  t += std::chrono::seconds(59);
  CHECK(analyzer.route("good.test") == second);
  t += std::chrono::seconds(1);
  CHECK(analyzer.route("good.test") != second);  // worked out again: AAAA asked again
  CHECK(fake->queries == asked + 1);
  // The domain now publishes a null MX: the MX answer cached holds for its TTL (300 s)...
  fake->mx("good.test", {{0, "."}});
  t += std::chrono::seconds(239);
  CHECK(analyzer.route("good.test")->kind == RouteKind::Deliverable);
  // ...and the route built on it not a moment longer.
  t += std::chrono::seconds(1);
  CHECK(analyzer.route("good.test")->kind == RouteKind::NullMx);
}

TEST_CASE("the routes kept are bounded", "[dns][route][cache]") {
  auto fake = std::make_shared<FakeResolver>();
  for (int i = 0; i < 200; ++i) {
    const std::string d = "d" + std::to_string(i) + ".test";
    fake->mx(d, {{10, "mx." + d}}).addr("mx." + d, "93.184.216.34");
  }
  auto cache = std::make_shared<CachingResolver>(fake, CacheOptions{});
  RouteOptions o;
  o.max_remembered = 32;  // two a shard
  RouteAnalyzer analyzer(cache, shipped_table(), o);
  for (int round = 0; round < 2; ++round)  // the second from the cache: kept, up to the bound
    for (int i = 0; i < 200; ++i)
      CHECK(analyzer.route("d" + std::to_string(i) + ".test")->kind == RouteKind::Deliverable);
  CHECK(analyzer.remembered() > 0);
  CHECK(analyzer.remembered() <= 32);
}
