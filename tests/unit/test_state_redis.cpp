// RedisStore against a real redis-server that the test starts on a free loopback port.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <thread>

#include "mxguard/state/redis_store.h"
#include "redis_fixture.h"

using namespace mxguard::state;
using namespace std::chrono_literals;
using mxguard::testing::RedisServer;

namespace {

RedisStoreOptions options_for(const RedisServer& server,
                              std::chrono::milliseconds timeout = 200ms) {
  RedisStoreOptions o;
  o.url = *RedisUrl::parse(server.url());
  o.timeout = timeout;
  o.min_backoff = 50ms;
  o.max_backoff = 200ms;
  return o;
}

// Waits (polling through the store, as traffic would) until the store uses Redis again.
bool wait_until_up(RedisStore& s) {
  for (int i = 0; i < 500 && !s.redis_up(); ++i) {
    (void)s.get("probe");
    s.housekeeping();
    std::this_thread::sleep_for(10ms);
  }
  return s.redis_up();
}

}  // namespace

TEST_CASE("redis url: host, port, db, password, IPv6", "[state][redis]") {
  auto u = RedisUrl::parse("redis://127.0.0.1:6380/2");
  REQUIRE(u);
  CHECK(u->host == "127.0.0.1");
  CHECK(u->port == 6380);
  CHECK(u->db == 2);
  CHECK(u->to_string() == "redis://127.0.0.1:6380/2");
  auto v = RedisUrl::parse("redis://:secret@[::1]");
  REQUIRE(v);
  CHECK(v->host == "::1");
  CHECK(v->port == 6379);
  CHECK(v->password == "secret");
  CHECK(v->to_string() == "redis://[::1]:6379/0");  // no password in logs
  for (const char* bad : {"memory", "redis://", "redis://h:0", "redis://h:99999", "redis://h/x",
                          "redis://[::1", "http://h:1/0"}) {
    INFO(bad);
    CHECK_FALSE(RedisUrl::parse(bad));
  }
}

TEST_CASE("redis store: the operations against a real redis-server", "[state][redis]") {
  RedisServer server;
  RedisStore s(options_for(server));
  REQUIRE(s.redis_up());
  CHECK_FALSE(s.get("a")->has_value());
  REQUIRE(s.put("a", "one", 0ms));
  CHECK(**s.get("a") == "one");
  CHECK(**s.ttl("a") == 0ms);
  CHECK(*s.set_if_absent("a", "two", 10s) == false);
  CHECK(*s.set_if_absent("b", "two", 10s) == true);
  auto t = s.ttl("b");
  REQUIRE(t);
  CHECK(**t > 9s);
  CHECK(**t <= 10s);
  CHECK(*s.incr_with_window("c", 60s) == 1);
  CHECK(*s.incr_with_window("c", 60s) == 2);
  CHECK(**s.ttl("c") > 59s);
  auto bad = s.incr_with_window("a", 60s);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().kind == StoreErrorKind::BadValue);
  CHECK(*s.erase("a") == true);
  CHECK(*s.erase("a") == false);
  CHECK_FALSE(s.ttl("a")->has_value());
  CHECK(s.fallback_calls() == 0);
}

TEST_CASE("redis store: two stores (two MX hosts) share counters atomically", "[state][redis]") {
  RedisServer server;
  RedisStore a(options_for(server));
  RedisStore b(options_for(server));
  REQUIRE(a.put("ban:203.0.113.7", "x", 60s));
  CHECK(**b.get("ban:203.0.113.7") == "x");
  CHECK(*b.set_if_absent("ban:203.0.113.7", "y", 60s) == false);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      RedisStore& s = i % 2 ? a : b;
      for (int n = 0; n < 250; ++n)
        (void)s.incr_with_window("strikes:shared", 60s);
    });
  }
  for (auto& t : threads)
    t.join();
  CHECK(**a.get("strikes:shared") == "1000");
  CHECK(a.fallback_calls() == 0);
  CHECK(b.fallback_calls() == 0);
}

TEST_CASE(
    "redis store: redis killed mid-run, calls fail over fast, and it reconnects after a restart",
    "[state][redis]") {
  RedisServer server;
  RedisStore s(options_for(server));
  REQUIRE(s.put("before", "1", 0ms));
  server.stop();

  // Every call is answered by the local fallback, the one that found Redis gone included.
  // (How long such a call takes: bench_state prints it.)
  for (int i = 0; i < 200; ++i) {
    REQUIRE(s.put("k" + std::to_string(i), "v", 60s));
    REQUIRE(s.incr_with_window("strikes:x", 60s));
  }
  CHECK_FALSE(s.redis_up());
  CHECK(s.fallback_calls() == 400);
  CHECK(**s.get("strikes:x") == "200");

  server.start();  // same port
  REQUIRE(wait_until_up(s));
  REQUIRE(s.put("after", "2", 0ms));
  // A fresh redis has none of the old data; what was written during the outage is still
  // answered from the fallback.
  CHECK_FALSE(s.get("before")->has_value());
  CHECK(**s.get("k5") == "v");
  CHECK(**s.get("after") == "2");
}

TEST_CASE("redis store: a hung redis costs one timeout, then the fallback answers",
          "[state][redis]") {
  mxguard::testing::SilentListener hung;
  RedisStoreOptions o;
  o.url = *RedisUrl::parse(hung.url());
  o.timeout = 100ms;
  o.min_backoff = o.max_backoff = 1h;  // no probe of Redis during the test
  RedisStore s(o);                     // connects (the kernel accepts); nothing is asked yet
  REQUIRE(s.redis_up());
  for (int i = 0; i < 50; ++i)
    REQUIRE(s.incr_with_window("c" + std::to_string(i % 3), 60s));
  CHECK_FALSE(s.redis_up());
  CHECK(s.fallback_calls() == 50);
  // Redis was asked once, on the connection made at start, and waited for until the timeout;
  // the other 49 calls went to the fallback without asking. (How long that one call takes:
  // bench_state prints it.)
  const auto seen = hung.take();
  CHECK(seen.connections == 1);
  CHECK(seen.requests == 1);
  CHECK(**s.get("c0") == "17");
  CHECK(**s.get("c2") == "16");
}

TEST_CASE("redis store: a paused redis, the fallback answers, and redis is used again after",
          "[state][redis]") {
  RedisServer server;
  RedisStore s(options_for(server, 100ms));
  REQUIRE(s.put("x", "1", 0ms));
  server.pause();  // accepts connections, answers nothing
  for (int i = 0; i < 50; ++i)
    REQUIRE(s.incr_with_window("c" + std::to_string(i % 3), 60s));
  CHECK_FALSE(s.redis_up());
  CHECK(s.fallback_calls() == 50);
  server.resume();
  REQUIRE(wait_until_up(s));
  CHECK(**s.get("x") == "1");
}

TEST_CASE("redis store: unreachable at start, it starts on memory and says so", "[state][redis]") {
  RedisStoreOptions o;
  o.url = *RedisUrl::parse(
      "redis://127.0.0.1:" + std::to_string(mxguard::testing::free_loopback_port()) + "/0");
  o.timeout = 100ms;
  RedisStore s(o);
  CHECK_FALSE(s.redis_up());
  REQUIRE(s.put("a", "b", 0ms));
  CHECK(**s.get("a") == "b");

  o.fallback = false;
  RedisStore strict(o);
  auto r = strict.get("a");
  REQUIRE_FALSE(r);
  CHECK(r.error().kind == StoreErrorKind::Unavailable);
}

TEST_CASE("redis store: unreachable at start, it uses redis once redis comes up",
          "[state][redis]") {
  const int port = mxguard::testing::free_loopback_port();
  RedisStoreOptions o;
  o.url = *RedisUrl::parse("redis://127.0.0.1:" + std::to_string(port) + "/0");
  o.timeout = 100ms;
  o.min_backoff = 10ms;
  RedisStore s(o);
  REQUIRE_FALSE(s.redis_up());
  REQUIRE(s.put("ban:during-outage", "1", 60s));

  RedisServer server(port);
  // Noticed by the maintenance round alone (housekeeping), with no mail coming in.
  for (int i = 0; i < 500 && !s.redis_up(); ++i) {
    s.housekeeping();
    std::this_thread::sleep_for(10ms);
  }
  REQUIRE(s.redis_up());
  REQUIRE(s.put("ban:shared", "1", 60s));
  // Another MX host sees what is written from now on; what was decided during the outage
  // stays in force here.
  RedisStore other(options_for(server));
  CHECK(**other.get("ban:shared") == "1");
  CHECK_FALSE(other.get("ban:during-outage")->has_value());
  CHECK(**s.get("ban:during-outage") == "1");
}

TEST_CASE("redis store: get_confirmed takes no miss of the fallback for an answer",
          "[state][redis]") {
  RedisServer server;
  RedisStore s(options_for(server));
  REQUIRE(s.put("in-redis", "1", 60s));
  CHECK(**s.get_confirmed("in-redis") == "1");
  CHECK_FALSE(s.get_confirmed("absent")->has_value());  // redis answered: a real miss
  server.stop();
  REQUIRE(s.put("during-outage", "2", 60s));  // kept by the fallback
  CHECK(**s.get_confirmed("during-outage") == "2");
  // get() answers "absent" from the fallback; get_confirmed() says it cannot tell.
  CHECK_FALSE(s.get("in-redis")->has_value());
  auto r = s.get_confirmed("in-redis");
  REQUIRE_FALSE(r);
  CHECK(r.error().kind == StoreErrorKind::Unavailable);
}

TEST_CASE("redis url: rediss:// is TLS, or points at the stunnel route; passwords are redacted",
          "[state][redis]") {
  auto tls = RedisUrl::parse("rediss://redis.example:6380/0");
  if (redis_tls_supported()) {  // hiredis >= 1.0 with hiredis_ssl
    REQUIRE(tls);
    CHECK(tls->tls);
    CHECK(tls->to_string() == "rediss://redis.example:6380/0");
  } else {  // Debian 12's hiredis 0.14
    REQUIRE_FALSE(tls);
    CHECK_THAT(tls.error(), Catch::Contains("stunnel"));
    CHECK_THAT(tls.error(), Catch::Contains("hiredis"));
  }
  CHECK_FALSE(RedisUrl::parse("redis://redis.example:6380/0")->tls);
  CHECK(redact_redis_url("redis://:s3cret@h:1/0") == "redis://***@h:1/0");
  CHECK(redact_redis_url("redis://u:s3cret@h:1/0") == "redis://u:***@h:1/0");
  CHECK(redact_redis_url("redis://h:1/0") == "redis://h:1/0");
  auto e = RedisEndpoint::parse("[::1]", 26379);
  REQUIRE(e);
  CHECK(e->to_string() == "[::1]:26379");
  CHECK(RedisEndpoint::parse("10.0.0.1:26380", 26379)->port == 26380);
  CHECK_FALSE(RedisEndpoint::parse("h:0", 26379));
  CHECK_FALSE(RedisEndpoint::parse(":1", 26379));
}

TEST_CASE("redis store: AUTH with a password, and with an ACL user and password",
          "[state][redis]") {
  RedisServer server(
      {"--requirepass", "pw-default", "--user", "mx", "on", ">pw-mx", "~mxguard:*", "+@all"});
  SECTION("password alone") {
    RedisStoreOptions o = options_for(server);
    o.url.password = "pw-default";
    RedisStore s(o);
    REQUIRE(s.redis_up());
    REQUIRE(s.put("a", "one", 0ms));
    CHECK(**s.get("a") == "one");
    CHECK(s.fallback_calls() == 0);
  }
  SECTION("user and password") {
    RedisStoreOptions o = options_for(server);
    o.url.user = "mx";
    o.url.password = "pw-mx";
    RedisStore s(o);
    REQUIRE(s.redis_up());
    REQUIRE(s.put("b", "two", 0ms));
    CHECK(**s.get("b") == "two");
    CHECK(s.fallback_calls() == 0);
  }
  SECTION("a wrong password: the store works on the fallback and says Redis is away") {
    RedisStoreOptions o = options_for(server);
    o.url.user = "mx";
    o.url.password = "wrong";
    RedisStore s(o);
    CHECK_FALSE(s.redis_up());
    REQUIRE(s.put("c", "three", 0ms));
    CHECK(**s.get("c") == "three");
    CHECK(s.fallback_calls() > 0);
  }
}

TEST_CASE("redis store: sentinel mode with no sentinel that answers works on the fallback",
          "[state][redis][sentinel]") {
  RedisServer not_a_sentinel;  // answers SENTINEL with an error
  RedisStoreOptions o;
  o.timeout = 200ms;
  o.min_backoff = 50ms;
  o.max_backoff = 200ms;
  o.sentinels = {RedisEndpoint{"127.0.0.1", mxguard::testing::free_loopback_port()},
                 RedisEndpoint{"127.0.0.1", not_a_sentinel.port()}};
  o.master_name = "mymaster";
  RedisStore s(o);
  CHECK_FALSE(s.redis_up());
  CHECK_THAT(s.describe(), Catch::Contains("sentinel master mymaster"));
  REQUIRE(s.put("k", "v", 0ms));
  CHECK(**s.get("k") == "v");
  CHECK(s.fallback_calls() > 0);
}

TEST_CASE("redis store: a master demoted to replica (READONLY) counts as away until it is back",
          "[state][redis][sentinel]") {
  RedisServer server;
  RedisServer other;
  RedisStore s(options_for(server));
  REQUIRE(s.redis_up());
  REQUIRE(s.put("before", "1", 0ms));
  auto cli = [&](const std::string& args) {
    const std::string cmd =
        "redis-cli -p " + std::to_string(server.port()) + " " + args + " >/dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
  };
  cli("REPLICAOF 127.0.0.1 " + std::to_string(other.port()));
  // The write meets READONLY: answered by the fallback, Redis marked away, never an error.
  auto put = s.put("during", "2", 0ms);
  REQUIRE(put);
  CHECK_FALSE(s.redis_up());
  CHECK(s.fallback_calls() > 0);
  CHECK(**s.get("during") == "2");
  cli("REPLICAOF NO ONE");
  REQUIRE(wait_until_up(s));
  REQUIRE(s.put("after", "3", 0ms));
  CHECK(**s.get("after") == "3");
}
