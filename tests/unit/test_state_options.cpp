#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "mxguard/config.h"
#include "mxguard/state/memory_store.h"
#include "mxguard/state/runtime.h"
#include "redis_fixture.h"
#include "source_tree.h"

using namespace mxguard;
using namespace std::chrono_literals;

namespace {

std::string write_file(const std::string& name, const std::string& text) {
  std::string path = "/tmp/mxguard-unit-state-opt-" + name;
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST_CASE("state and ban options: values, units and defaults", "[state][config]") {
  auto nets = write_file("allow", "# ours\n192.0.2.0/24\n\n2001:db8::/32\n");
  auto cfg = test::load_hermetic({"--state",
                                  "redis://127.0.0.1:6390/3",
                                  "--state-file",
                                  "/var/lib/mxguard/state",
                                  "--redis-timeout",
                                  "150",
                                  "--ban-strikes",
                                  "5",
                                  "--ban-window",
                                  "15m",
                                  "--ban-time",
                                  "3600",
                                  "--ban-escalated-time",
                                  "2d",
                                  "--ban-escalation-window",
                                  "12h",
                                  "--ban-aggregate-v4-prefix",
                                  "24",
                                  "--allow-networks",
                                  "file:" + nets,
                                  "--allow-networks",
                                  "198.51.100.7",
                                  "--provider-suffixes",
                                  ".google.com,.yahoo.com"});
  REQUIRE(cfg);
  const state::StateOptions& s = (*cfg)->state;
  REQUIRE(s.redis);
  CHECK(s.redis->port == 6390);
  CHECK(s.redis->db == 3);
  CHECK(s.state_file == "/var/lib/mxguard/state");
  CHECK(s.redis_timeout == 150ms);  // a bare redis-timeout is in milliseconds
  CHECK(s.bans.strikes == 5);
  CHECK(s.bans.window == 15min);
  CHECK(s.bans.ban_time == 1h);  // a bare ban time is in seconds, as fail2ban's bantime
  CHECK(s.bans.escalated_time == 48h);
  CHECK(s.bans.escalation_window == 12h);
  CHECK(s.bans.v4_prefix == 24);
  CHECK(s.bans.v6_prefix == 64);
  CHECK(s.bans.allow.contains(*net::IpAddress::parse("192.0.2.9")));
  CHECK(s.bans.allow.contains(*net::IpAddress::parse("198.51.100.7")));
  CHECK_FALSE(s.bans.allow.contains(*net::IpAddress::parse("198.51.100.8")));
  CHECK(s.bans.provider_suffixes == std::vector<std::string>{".google.com", ".yahoo.com"});

  auto def = test::load_hermetic({});
  REQUIRE(def);
  CHECK((*def)->state.state == "memory");
  CHECK_FALSE((*def)->state.redis);
  CHECK((*def)->state.bans.ban_time == 30min);
  CHECK((*def)->state.bans.escalated_time == 24h);
}

TEST_CASE("ledger options: values, units and defaults", "[state][config][ledger]") {
  auto def = test::load_hermetic({});
  REQUIRE(def);
  const state::LedgerOptions& d = (*def)->state.ledger;
  CHECK(d.enabled);
  CHECK(d.lifetime == 14 * 24h);
  CHECK(d.max_entries == 2'000'000u);
  CHECK(d.file == "/var/lib/mxguard/ledger");
  CHECK(d.key_file == "/var/lib/mxguard/ledger.key");

  auto path = write_file("ledger.conf",
                         "ledger = no\nledger-lifetime = 7d\nledger-max-entries = 500000\n"
                         "ledger-file = /srv/mx/ledger\nledger-key-file = /srv/mx/ledger.key\n");
  auto cfg = test::load_hermetic({"-c", path});
  REQUIRE(cfg);
  const state::LedgerOptions& l = (*cfg)->state.ledger;
  CHECK_FALSE(l.enabled);
  CHECK(l.lifetime == 7 * 24h);
  CHECK(l.max_entries == 500'000u);
  CHECK(l.file == "/srv/mx/ledger");
  CHECK(l.key_file == "/srv/mx/ledger.key");
  auto bare = test::load_hermetic({"--ledger-lifetime", "7200", "--ledger-file", ""});
  REQUIRE(bare);
  CHECK((*bare)->state.ledger.lifetime == 2h);  // a bare lifetime is in seconds
  CHECK((*bare)->state.ledger.file.empty());    // not saved
}

TEST_CASE("state and ban option errors name the file and line", "[state][config]") {
  auto nets = write_file("bad-allow", "192.0.2.0/24\n\n10.1.0.0/8\n");
  struct Case {
    std::string text;
    std::string where;
    std::string what;
  };
  const Case cases[] = {
      {"state = mongodb://x\n", ":1", "state: expected memory or redis://host:port/db"},
      {"\nstate = redis://h:99999/0\n", ":2", "bad port"},
      {"ban-strikes = 0\n", ":1", "ban-strikes: expected a number from 1"},
      {"ban-time = soon\n", ":1", "ban-time: expected a duration"},
      {"redis-timeout = 5m\n", ":1", "redis-timeout: expected a duration"},
      {"ban-aggregate-v6-prefix = 129\n", ":1", "ban-aggregate-v6-prefix"},
      {"allow-networks = 192.0.2.0/24, 300.1.1.1\n", ":1", "allow-networks: '300.1.1.1'"},
      {"allow-networks = file:" + nets + "\n", nets + ":3", "allow-networks: '10.1.0.0/8'"},
      {"provider-suffixes = a@b\n", ":1", "provider-suffixes"},
      {"ledger = maybe\n", ":1", "ledger: expected yes or no"},
      {"\nledger-lifetime = 91d\n", ":2", "ledger-lifetime: expected a duration"},
      {"ledger-lifetime = 91d\n", ":1", "ledger-lifetime: expected a duration"},
      {"ledger-max-entries = 10\n", ":1", "ledger-max-entries: expected a number from 1000"},
      {"ledger-key-file =\n", ":1", "ledger-key-file: the ledger needs a key file"},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    auto path = write_file("bad.conf", c.text);
    auto cfg = test::load_hermetic({"-c", path});
    REQUIRE_FALSE(cfg);
    const std::string where = c.where[0] == ':' ? path + c.where : c.where;
    CHECK(cfg.error().where == where);
    CHECK_THAT(cfg.error().message, Catch::Contains(c.what));
  }
}

TEST_CASE("state runtime: a reload keeps the store unless the state options change",
          "[state][config]") {
  state::ManualClock clock;
  state::StateOptions o;
  o.state_file = "/tmp/mxguard-unit-state-runtime";
  o.ledger.enabled = false;  // see the ledger test below
  std::remove(o.state_file.c_str());
  state::StateRuntime rt(o, clock);
  auto first = rt.bans();
  auto addr = *net::IpAddress::parse("203.0.113.7");
  for (int i = 0; i < 3; ++i)
    REQUIRE(first->record_strike(addr, "x", clock.now()));

  o.bans.strikes = 10;
  rt.reload(o);
  CHECK(rt.bans() == first);
  CHECK(rt.bans()->settings()->strikes == 10);

  o.max_entries = 5000;  // a new store, restored from the old one's last snapshot
  rt.reload(o);
  REQUIRE(rt.bans() != first);
  auto b = rt.bans()->is_banned(addr, clock.now());
  REQUIRE(b);
  CHECK(b->has_value());

  // The maintenance thread runs alongside callers (meaningful under TSan).
  rt.start_maintenance(1ms);
  std::vector<std::thread> callers;
  for (int t = 0; t < 3; ++t)
    callers.emplace_back([&rt, &clock, t] {
      for (int i = 0; i < 300; ++i) {
        auto bans = rt.bans();
        auto a = net::IpAddress::v4(0xC6336400u + static_cast<std::uint32_t>(t * 1000 + i % 7));
        (void)bans->record_strike(a, "trap 192.0.2.25", clock.now());
        (void)bans->is_banned(a, clock.now());
        clock.advance(1s);
      }
    });
  for (auto& c : callers)
    c.join();
  rt.stop();
  rt.stop();  // idempotent
  std::remove(o.state_file.c_str());
}

TEST_CASE("state runtime: the ledger is built, kept across reloads, saved, or left out",
          "[state][config][ledger]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "mxguard-unit-state-runtime-ledger";
  fs::remove_all(dir);
  fs::create_directories(dir);
  state::ManualClock clock;
  state::StateOptions o;
  o.ledger.file = (dir / "ledger").string();
  o.ledger.key_file = (dir / "ledger.key").string();
  state::StateRuntime rt(o, clock);
  auto ledger = rt.ledger();
  REQUIRE(ledger);
  CHECK(ledger->describe() == "memory");
  CHECK(fs::exists(o.ledger.key_file));
  const auto k = ledger->keys().recipient_key("alice@example.org", "dave@remote.example");
  REQUIRE(ledger->record(std::span(&k, 1), clock.now()));

  o.bans.strikes = 10;  // nothing of the ledger's: the same ledger
  rt.reload(o);
  CHECK(rt.ledger() == ledger);
  o.max_entries = 5000;  // a new store; the memory ledger does not live in it
  rt.reload(o);
  CHECK(rt.ledger() == ledger);

  o.ledger.lifetime = std::chrono::hours(24);  // a new ledger, restored from the old one's file
  rt.reload(o);
  auto second = rt.ledger();
  REQUIRE(second);
  CHECK(second != ledger);
  CHECK(*second->contains(std::span(&k, 1), clock.now()));

  // Maintenance saves it when due; stop() saves it in any case.
  const auto k2 = second->keys().recipient_key("alice@example.org", "erin@remote.example");
  REQUIRE(second->record(std::span(&k2, 1), clock.now()));
  clock.advance(std::chrono::minutes(6));
  rt.maintain();
  REQUIRE(fs::exists(o.ledger.file));
  auto image = state::parse_ledger_image([&] {
    // Through a stringstream: GCC's -Wnull-dereference takes istreambuf_iterator for a null
    // dereference under ThreadSanitizer's -O1.
    std::ifstream in(o.ledger.file, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }());
  REQUIRE(image);
  std::size_t saved = 0;
  for (const auto& g : image->generations)
    saved += g.keys.size();
  CHECK(saved == 2u);

  o.ledger.enabled = false;
  rt.reload(o);
  CHECK_FALSE(rt.ledger());
  rt.maintain();  // without a ledger
  rt.stop();

  // A key file others may read: logged, and no ledger, but the rest runs.
  fs::permissions(o.ledger.key_file, fs::perms::group_read, fs::perm_options::add);
  o.ledger.enabled = true;
  state::StateRuntime refused(o, clock);
  CHECK_FALSE(refused.ledger());
  CHECK(refused.bans());
  refused.stop();
  fs::remove_all(dir);
}

TEST_CASE("state runtime: with redis the ledger lives in the store, and follows it",
          "[state][config][ledger][redis]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "mxguard-unit-state-runtime-ledger-redis";
  fs::remove_all(dir);
  fs::create_directories(dir);
  testing::RedisServer server;
  state::ManualClock clock;
  state::StateOptions o;
  o.state = server.url();
  o.redis = *state::RedisUrl::parse(server.url());
  o.ledger.key_file = (dir / "ledger.key").string();
  o.ledger.file = (dir / "ledger").string();
  state::StateRuntime rt(o, clock);
  auto ledger = rt.ledger();
  REQUIRE(ledger);
  CHECK(ledger->describe() == server.url());
  const auto k = ledger->keys().recipient_key("alice@example.org", "dave@remote.example");
  REQUIRE(ledger->record(std::span(&k, 1), clock.now()));
  o.redis_timeout = std::chrono::milliseconds(300);  // a new store: a new ledger in it
  rt.reload(o);
  REQUIRE(rt.ledger());
  CHECK(rt.ledger() != ledger);
  CHECK(*rt.ledger()->contains(std::span(&k, 1), clock.now()));
  o.state = "memory";  // back to memory: the ledger leaves Redis too
  o.redis.reset();
  rt.reload(o);
  REQUIRE(rt.ledger());
  CHECK(rt.ledger()->describe() == "memory");
  CHECK_FALSE(*rt.ledger()->contains(std::span(&k, 1), clock.now()));
  rt.stop();
  fs::remove_all(dir);
}

TEST_CASE("redis auth options: password file, user, permissions; no secret in -n or errors",
          "[state][config][redis]") {
  namespace fs = std::filesystem;
  auto secret = write_file("redis-pass", "s3cret-pw\n");
  fs::permissions(secret, fs::perms::owner_read | fs::perms::owner_write,
                  fs::perm_options::replace);
  auto cfg = test::load_hermetic({"--state", "redis://127.0.0.1:6390/3", "--redis-user", "mx",
                                  "--redis-password-file", secret});
  REQUIRE(cfg);
  const state::StateOptions& s = (*cfg)->state;
  REQUIRE(s.redis);
  CHECK(s.redis->user == "mx");
  CHECK(s.redis->password == "s3cret-pw");
  const std::string line = state::describe_state(s);
  CHECK_THAT(line, Catch::Contains("auth: yes, user mx, password from " + secret));
  CHECK_THAT(line, Catch::Contains("plain"));
  CHECK(line.find("s3cret") == std::string::npos);

  auto bare = test::load_hermetic({"--state", "redis://127.0.0.1:6390/0"});
  REQUIRE(bare);
  CHECK_THAT(state::describe_state((*bare)->state), Catch::Contains("auth: no"));
  auto url = test::load_hermetic({"--state", "redis://:urlpw@127.0.0.1:6390/0"});
  REQUIRE(url);
  CHECK(state::describe_state((*url)->state).find("urlpw") == std::string::npos);

  // CRLF line ends and a second line are tolerated; only the first line counts.
  auto crlf = write_file("redis-pass-crlf", "pw2\r\nignored\n");
  fs::permissions(crlf, fs::perms::owner_read, fs::perm_options::replace);
  auto c2 = test::load_hermetic({"--state", "redis://h:1/0", "--redis-password-file", crlf});
  REQUIRE(c2);
  CHECK((*c2)->state.redis->password == "pw2");

  // An empty value means none, as for the other file options.
  auto none = test::load_hermetic({"--redis-password-file", "", "--redis-user", ""});
  REQUIRE(none);
  CHECK_FALSE((*none)->state.redis);
}

TEST_CASE("redis option errors: the file is named, the secret never shown",
          "[state][config][redis]") {
  namespace fs = std::filesystem;
  auto open_file = write_file("redis-pass-644", "s3cret-pw\n");
  fs::permissions(open_file,
                  fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                      fs::perms::others_read,
                  fs::perm_options::replace);
  auto empty = write_file("redis-pass-empty", "\n");
  fs::permissions(empty, fs::perms::owner_read, fs::perm_options::replace);
  auto ok = write_file("redis-pass-ok", "pw\n");
  fs::permissions(ok, fs::perms::owner_read, fs::perm_options::replace);
  struct Case {
    std::string text;
    std::string where;
    std::string what;
  };
  const Case cases[] = {
      {"state = redis://h:1/0\nredis-password-file = " + open_file + "\n", ":2",
       open_file + ": group or others may access it (mode 0644)"},
      {"state = redis://h:1/0\nredis-password-file = /nonexistent/pw\n", ":2",
       "/nonexistent/pw: cannot read it"},
      {"state = redis://h:1/0\nredis-password-file = /tmp\n", ":2", "/tmp: not a regular file"},
      {"state = redis://h:1/0\nredis-password-file = " + empty + "\n", ":2", "is empty"},
      {"state = redis://:x@h:1/0\nredis-password-file = " + ok + "\n", ":2",
       "holds a password already"},
      {"state = redis://h:1/0\nredis-user = mx\n", ":2", "a user needs a password"},
      {"redis-password-file = " + ok + "\n", ":1", "redis-password-file: only with Redis state"},
      {"state = redis://u:s3cret@h:99999/0\n", ":1", "redis://u:***@h:99999/0"},
      {"state = sentinel\nredis-master-name = m\n", ":1", "needs redis-sentinels"},
      {"state = sentinel\nredis-sentinels = 127.0.0.1:26379\n", ":1", "needs redis-master-name"},
      {"state = sentinel\nredis-master-name = m\nredis-sentinels = a:1, b:0\n", ":3",
       "redis-sentinels: 'b:0'"},
      {"state = redis://h:1/0\nredis-sentinels = a:1\n", ":2", "only with state = sentinel"},
      {"state = redis://h:1/0\nredis-database = 2\n", ":2", "only with state = sentinel"},
      {"state = redis://h:1/0\nredis-tls-ca-file = /etc/ssl/certs/ca.pem\n", ":2",
       "redis-tls-ca-file: only with state = rediss://"},
      {"redis-tls-verify = no\n", ":1", "redis-tls-verify: only with state = rediss://"},
      {"state = sentinel\nredis-master-name = m\nredis-sentinels = a\n"
       "redis-sentinel-password-file = " +
           open_file + "\n",
       ":4", "redis-sentinel-password-file: " + open_file},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    auto path = write_file("bad-redis.conf", c.text);
    auto cfg = test::load_hermetic({"-c", path});
    REQUIRE_FALSE(cfg);
    CHECK(cfg.error().where == path + c.where);
    CHECK_THAT(cfg.error().message, Catch::Contains(c.what));
    CHECK(cfg.error().message.find("s3cret") == std::string::npos);
  }
}

TEST_CASE("sentinel options: sentinels, master name, database, sentinel password",
          "[state][config][redis][sentinel]") {
  namespace fs = std::filesystem;
  auto pw = write_file("sentinel-pass", "spw\n");
  fs::permissions(pw, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace);
  auto cfg = test::load_hermetic({"--state", "sentinel", "--redis-sentinels",
                                  "10.0.0.1:26380, 10.0.0.2, [2001:db8::3]:26379",
                                  "--redis-master-name", "mx-state", "--redis-database", "4",
                                  "--redis-sentinel-password-file", pw});
  REQUIRE(cfg);
  const state::StateOptions& s = (*cfg)->state;
  REQUIRE(s.redis);
  CHECK(s.redis->db == 4);
  REQUIRE(s.redis_sentinels.size() == 3);
  CHECK(s.redis_sentinels[0].to_string() == "10.0.0.1:26380");
  CHECK(s.redis_sentinels[1].to_string() == "10.0.0.2:26379");
  CHECK(s.redis_sentinels[2].to_string() == "[2001:db8::3]:26379");
  CHECK(s.redis_master_name == "mx-state");
  CHECK(s.sentinel_password == "spw");
  const std::string line = state::describe_state(s);
  CHECK_THAT(line, Catch::Contains("sentinel: master name mx-state, sentinels 10.0.0.1:26380, "
                                   "10.0.0.2:26379, [2001:db8::3]:26379, db 4, auth: no"));
  CHECK(line.find("spw") == std::string::npos);
  // A reload that changes the sentinels builds a new store.
  state::StateOptions other = s;
  other.redis_sentinels.pop_back();
  CHECK_FALSE(s.same_store(other));
  CHECK(s.same_store(s));
}

TEST_CASE("rediss:// in a build with TLS: verification on, files checked",
          "[state][config][redis]") {
  namespace fs = std::filesystem;
  if (!state::redis_tls_supported()) {
    auto cfg = test::load_hermetic({"--state", "rediss://h:6380/0"});
    REQUIRE_FALSE(cfg);
    CHECK_THAT(cfg.error().message, Catch::Contains("stunnel"));
    return;  // Debian 12: hiredis 0.14 has no TLS
  }
  auto ca = write_file("tls-ca.pem", "not checked here\n");
  auto key = write_file("tls-key.pem", "k\n");
  fs::permissions(key, fs::perms::owner_read | fs::perms::others_read, fs::perm_options::replace);
  auto cfg =
      test::load_hermetic({"--state", "rediss://redis.example:6380/0", "--redis-tls-ca-file", ca});
  REQUIRE(cfg);
  const state::StateOptions& s = (*cfg)->state;
  REQUIRE(s.redis);
  CHECK(s.redis->tls);
  CHECK(s.redis_tls.verify);
  CHECK(s.redis->to_string() == "rediss://redis.example:6380/0");
  CHECK_THAT(state::describe_state(s),
             Catch::Contains("TLS, certificate verified against " + ca + " for redis.example"));
  auto loose = test::load_hermetic(
      {"--state", "rediss://h:6380/0", "--redis-tls-cert-file", ca, "--redis-tls-key-file", key});
  REQUIRE_FALSE(loose);
  CHECK_THAT(loose.error().message, Catch::Contains("group or others may access it"));
  auto half = test::load_hermetic({"--state", "rediss://h:6380/0", "--redis-tls-cert-file", ca});
  REQUIRE_FALSE(half);
  CHECK_THAT(half.error().message, Catch::Contains("go together"));
}
