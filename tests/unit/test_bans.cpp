#include <catch2/catch.hpp>

#include "capture_log.h"
#include "mxguard/log.h"
#include "mxguard/state/bans.h"
#include "mxguard/state/memory_store.h"

using namespace mxguard;
using namespace mxguard::state;
using namespace std::chrono_literals;

namespace {

net::IpAddress ip(const char* s) {
  auto a = net::IpAddress::parse(s);
  REQUIRE(a);
  return *a;
}

using test::CaptureLog;

struct Fixture {
  ManualClock clock;
  std::shared_ptr<MemoryStore> store = std::make_shared<MemoryStore>(MemoryStoreOptions{}, clock);
  Bans bans{store, BanSettings{}};

  std::optional<BanEvent> strike(const char* addr,
                                 std::string_view reason = "unhandled domain product.com") {
    auto r = bans.record_strike(ip(addr), reason, clock.now());
    REQUIRE(r);
    return *r;
  }
  std::optional<Ban> banned(const char* addr) {
    auto r = bans.is_banned(ip(addr), clock.now());
    REQUIRE(r);
    return *r;
  }
};

}  // namespace

TEST_CASE("three strikes in the window ban for 30 minutes, with the documented line",
          "[state][bans]") {
  CaptureLog log;
  Fixture f;
  CHECK_FALSE(f.strike("203.0.113.7"));
  f.clock.advance(1min);
  CHECK_FALSE(f.strike("203.0.113.7"));
  CHECK_FALSE(f.banned("203.0.113.7"));
  auto ev = f.strike("203.0.113.7");
  REQUIRE(ev);
  CHECK(ev->log_line == "ban 203.0.113.7 for 1800s: 3 strikes (unhandled domain product.com)");
  CHECK(log.matching("ban ") == std::vector<std::string>{ev->log_line});
  auto b = f.banned("203.0.113.7");
  REQUIRE(b);
  CHECK(b->duration == 1800s);
  CHECK(b->strikes == 3);
  CHECK_FALSE(b->escalated);
  CHECK(b->reason == "unhandled domain product.com");
  CHECK_FALSE(f.banned("203.0.113.8"));

  // Strikes while banned do not issue a second ban.
  CHECK_FALSE(f.strike("203.0.113.7"));
  CHECK_FALSE(f.strike("203.0.113.7"));
  CHECK_FALSE(f.strike("203.0.113.7"));
  CHECK(log.matching("ban ").size() == 1);

  f.clock.advance(1799s);
  CHECK(f.banned("203.0.113.7"));
  f.clock.advance(1s);
  CHECK_FALSE(f.banned("203.0.113.7"));  // the lookup notices the end and logs it once
  CHECK(log.matching("unban ") == std::vector<std::string>{"unban 203.0.113.7"});
  CHECK_FALSE(f.banned("203.0.113.7"));
  CHECK(log.matching("unban ").size() == 1);
}

TEST_CASE("strikes decay: a window that ends forgets them", "[state][bans]") {
  Fixture f;
  CHECK_FALSE(f.strike("198.51.100.1"));
  CHECK_FALSE(f.strike("198.51.100.1"));
  f.clock.advance(10min);  // the default window
  CHECK_FALSE(f.strike("198.51.100.1"));
  CHECK_FALSE(f.strike("198.51.100.1"));
  CHECK_FALSE(f.banned("198.51.100.1"));
  CHECK(f.strike("198.51.100.1"));
}

TEST_CASE("a ban within the escalation window after the last one lasts a day", "[state][bans]") {
  CaptureLog log;
  Fixture f;
  for (int i = 0; i < 3; ++i)
    (void)f.strike("192.0.2.1", "trap 192.0.2.25");
  REQUIRE(f.banned("192.0.2.1"));
  f.clock.advance(30min);
  REQUIRE_FALSE(f.banned("192.0.2.1"));
  f.clock.advance(23h);  // within 24 h of the end of the first ban
  (void)f.strike("192.0.2.1", "trap 192.0.2.25");
  (void)f.strike("192.0.2.1", "trap 192.0.2.25");
  auto ev = f.strike("192.0.2.1", "trap 192.0.2.25");
  REQUIRE(ev);
  CHECK(ev->ban.escalated);
  CHECK(ev->log_line == "ban 192.0.2.1 for 86400s: 3 strikes (trap 192.0.2.25)");

  // Long after: back to the first level.
  f.clock.advance(24h + 24h + 1s);
  CHECK_FALSE(f.banned("192.0.2.1"));
  for (int i = 0; i < 2; ++i)
    (void)f.strike("192.0.2.1");
  auto again = f.strike("192.0.2.1");
  REQUIRE(again);
  CHECK(again->ban.duration == 1800s);
}

TEST_CASE("the sweep logs unban for bans that ended without a lookup", "[state][bans]") {
  CaptureLog log;
  Fixture f;
  for (int i = 0; i < 3; ++i)
    (void)f.strike("203.0.113.9");
  CHECK(f.bans.sweep(f.clock.now()) == 0);
  f.clock.advance(30min);
  CHECK(f.bans.sweep(f.clock.now()) == 1);
  CHECK(log.matching("unban ") == std::vector<std::string>{"unban 203.0.113.9"});
  CHECK_FALSE(f.banned("203.0.113.9"));
  CHECK(log.matching("unban ").size() == 1);
}

TEST_CASE("allow-listed networks and exempted providers are never banned", "[state][bans]") {
  Fixture f;
  BanSettings s;
  s.allow.add(*net::Cidr::parse("192.0.2.0/24"));
  s.allow.add(*net::Cidr::parse("2001:db8::/32"));
  f.bans.update_settings(s);
  for (int i = 0; i < 10; ++i) {
    CHECK_FALSE(f.strike("192.0.2.77"));
    CHECK_FALSE(f.strike("::ffff:192.0.2.77"));
    CHECK_FALSE(f.strike("2001:db8::25"));
  }
  CHECK_FALSE(f.banned("192.0.2.77"));

  int asked = 0;
  f.bans.set_exempt_hook([&](const net::IpAddress& a) -> std::optional<std::string> {
    ++asked;
    if (a == ip("198.51.100.25")) return "fcrdns mail-yw1.google.com";
    return std::nullopt;
  });
  for (int i = 0; i < 5; ++i)
    CHECK_FALSE(f.strike("198.51.100.25"));
  CHECK(asked == 3);  // only strikes that would ban ask the hook
  CHECK_FALSE(f.banned("198.51.100.25"));
  for (int i = 0; i < 2; ++i)
    CHECK_FALSE(f.strike("198.51.100.26"));
  CHECK(f.strike("198.51.100.26"));
}

TEST_CASE("aggregation: a /24 or /64 shares strikes and the ban", "[state][bans]") {
  CaptureLog log;
  Fixture f;
  BanSettings s;
  s.v4_prefix = 24;
  s.v6_prefix = 64;
  f.bans.update_settings(s);
  (void)f.strike("203.0.113.1");
  (void)f.strike("203.0.113.2");
  auto ev = f.strike("::ffff:203.0.113.3");
  REQUIRE(ev);
  CHECK(ev->log_line == "ban 203.0.113.0/24 for 1800s: 3 strikes (unhandled domain product.com)");
  CHECK(f.banned("203.0.113.200"));
  CHECK_FALSE(f.banned("203.0.114.1"));
  (void)f.strike("2001:db8:1:2::1");
  (void)f.strike("2001:db8:1:2:ffff::1");
  auto v6 = f.strike("2001:db8:1:2:abcd::9");
  REQUIRE(v6);
  CHECK(v6->ban.subject == "2001:db8:1:2::/64");
  CHECK(f.banned("2001:db8:1:2::99"));
  CHECK_FALSE(f.banned("2001:db8:1:3::1"));
  // Per-address default for IPv4: the neighbours stay free.
  f.bans.update_settings(BanSettings{});
  CHECK(f.bans.subject_of(ip("203.0.113.7")) == "203.0.113.7");
  CHECK(f.bans.subject_of(ip("::ffff:203.0.113.7")) == "203.0.113.7");
}

TEST_CASE("a ban survives a restart through the state file", "[state][bans]") {
  ManualClock clock;
  std::string file = "/tmp/mxguard-unit-bans-state";
  std::remove(file.c_str());
  MemoryStoreOptions o;
  o.state_file = file;
  {
    auto store = std::make_shared<MemoryStore>(o, clock);
    (void)store->load_snapshot();
    Bans bans(store, BanSettings{});
    for (int i = 0; i < 3; ++i)
      REQUIRE(bans.record_strike(ip("203.0.113.7"), "x", clock.now()));
    store->shutdown();
  }
  clock.advance(10min);
  auto store = std::make_shared<MemoryStore>(o, clock);
  REQUIRE(store->load_snapshot().status == SnapshotLoad::Status::Loaded);
  Bans bans(store, BanSettings{});
  auto b = bans.is_banned(ip("203.0.113.7"), clock.now());
  REQUIRE(b);
  REQUIRE(*b);
  CHECK((*b)->until - clock.now() == 20min);
}

TEST_CASE("ban lines: the reason is kept on one printable line", "[state][bans]") {
  Fixture f;
  (void)f.strike("192.0.2.5", "a");
  (void)f.strike("192.0.2.5", "b");
  auto ev = f.strike("192.0.2.5", "unhandled domain evil\n.com\r\x01");
  REQUIRE(ev);
  CHECK(ev->log_line ==
        "ban 192.0.2.5 for 1800s: 3 strikes (unhandled domain evil?.com?"
        "?)");
  Ban one;
  one.subject = "192.0.2.6";
  one.duration = 60s;
  one.strikes = 1;
  one.reason = "trap 192.0.2.25";
  CHECK(Bans::ban_line(one) == "ban 192.0.2.6 for 60s: 1 strike (trap 192.0.2.25)");
}

TEST_CASE("provider suffixes match at a label boundary", "[state][bans]") {
  std::vector<std::string> s = {".google.com", "yahoo.com.", "Outlook.COM"};
  CHECK(matches_provider_suffix("mail-yw1-f171.google.com", s));
  CHECK(matches_provider_suffix("google.com", s));
  CHECK(matches_provider_suffix("sonic.gate.mail.ne1.YAHOO.com.", s));
  CHECK(matches_provider_suffix("mail-db8eur05.outbound.protection.outlook.com", s));
  CHECK_FALSE(matches_provider_suffix("evilgoogle.com", s));
  CHECK_FALSE(matches_provider_suffix("google.com.evil.net", s));
  CHECK_FALSE(matches_provider_suffix("", s));
}

TEST_CASE("loopback clients are never struck nor banned, unless ban-loopback", "[state][bans]") {
  CaptureLog log;
  set_log_level(LogLevel::Debug);
  Fixture f;
  for (int i = 0; i < 10; ++i) {
    CHECK_FALSE(f.strike("127.0.0.1"));
    CHECK_FALSE(f.strike("127.3.2.1"));
    CHECK_FALSE(f.strike("::1"));
    CHECK_FALSE(f.strike("::ffff:127.0.0.1"));
  }
  CHECK_FALSE(f.banned("127.0.0.1"));
  CHECK(f.bans.never_banned(ip("127.0.0.1")) == std::optional<std::string_view>("loopback"));
  CHECK(f.bans.never_banned(ip("::1")) == std::optional<std::string_view>("loopback"));
  CHECK_FALSE(f.bans.never_banned(ip("128.0.0.1")));
  CHECK_FALSE(f.bans.never_banned(ip("::2")));
  CHECK(log.matching("no strike for 127.0.0.1: loopback clients are never banned").size() == 10);
  set_log_level(LogLevel::Info);
  // A neighbour outside 127.0.0.0/8 is struck as before.
  (void)f.strike("128.0.0.1");
  (void)f.strike("128.0.0.1");
  CHECK(f.strike("128.0.0.1"));

  // A ban recorded while ban-loopback was on is not enforced once it is off again.
  BanSettings on;
  on.ban_loopback = true;
  f.bans.update_settings(on);
  (void)f.strike("127.0.0.5");
  (void)f.strike("127.0.0.5");
  auto ev = f.strike("127.0.0.5");
  REQUIRE(ev);
  CHECK(ev->log_line == "ban 127.0.0.5 for 1800s: 3 strikes (unhandled domain product.com)");
  CHECK(f.banned("127.0.0.5"));
  f.bans.update_settings(BanSettings{});
  CHECK_FALSE(f.banned("127.0.0.5"));
}

TEST_CASE("a client rotating addresses inside one IPv6 /64 is banned by the default settings",
          "[state][bans]") {
  CaptureLog log;
  Fixture f;  // BanSettings{}: ban-aggregate-v6-prefix 64, per address for IPv4
  CHECK_FALSE(f.strike("2001:db8:5:6::1"));
  CHECK_FALSE(f.strike("2001:db8:5:6:1234:5678:9abc:def0"));
  CHECK_FALSE(f.banned("2001:db8:5:6::77"));
  auto ev = f.strike("2001:db8:5:6:ffff:ffff:ffff:ffff");
  REQUIRE(ev);
  CHECK(ev->log_line ==
        "ban 2001:db8:5:6::/64 for 1800s: 3 strikes (unhandled domain product.com)");
  CHECK(log.matching("ban 2001:db8:5:6::/64 ").size() == 1);
  // Every address of the /64 is banned, fresh ones too; the next /64 is not.
  CHECK(f.banned("2001:db8:5:6::abcd"));
  CHECK(f.banned("2001:db8:5:6:8000::"));
  CHECK_FALSE(f.banned("2001:db8:5:7::1"));
  CHECK_FALSE(f.banned("2001:db8:5:5:ffff:ffff:ffff:ffff"));
  // Per address (128) the same three addresses earn nothing.
  BanSettings per_address;
  per_address.v6_prefix = 128;
  f.bans.update_settings(per_address);
  CHECK_FALSE(f.strike("2001:db8:9:9::1"));
  CHECK_FALSE(f.strike("2001:db8:9:9::2"));
  CHECK_FALSE(f.strike("2001:db8:9:9::3"));
  CHECK_FALSE(f.banned("2001:db8:9:9::1"));
}
