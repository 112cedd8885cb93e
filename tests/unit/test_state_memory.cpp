#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "mxguard/state/memory_store.h"

using namespace mxguard::state;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("mxguard-unit-state-" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

MemoryStoreOptions with_file(const std::string& path) {
  MemoryStoreOptions o;
  o.state_file = path;
  return o;
}

}  // namespace

TEST_CASE("memory store: get, put, set_if_absent, erase", "[state][memory]") {
  ManualClock clock;
  MemoryStore s({}, clock);
  CHECK(s.get("a")->has_value() == false);
  REQUIRE(s.put("a", "one", 0ms));
  CHECK(**s.get("a") == "one");
  CHECK(*s.set_if_absent("a", "two", 0ms) == false);
  CHECK(**s.get("a") == "one");
  CHECK(*s.set_if_absent("b", "", 0ms) == true);
  CHECK(**s.get("b") == "");
  CHECK(*s.erase("a") == true);
  CHECK(*s.erase("a") == false);
  CHECK(s.size() == 1);
}

TEST_CASE("memory store: TTLs expire lazily and by the sweep, on the injected clock",
          "[state][memory]") {
  ManualClock clock;
  MemoryStore s({}, clock);
  REQUIRE(s.put("short", "x", 10s));
  REQUIRE(s.put("forever", "y", 0ms));
  CHECK(**s.ttl("short") == 10s);
  CHECK(**s.ttl("forever") == 0ms);
  CHECK_FALSE(s.ttl("missing")->has_value());
  clock.advance(9s);
  CHECK(s.get("short")->has_value());
  clock.advance(1s);
  CHECK_FALSE(s.get("short")->has_value());  // lazy expiry
  REQUIRE(s.put("other", "z", 1s));
  clock.advance(2s);
  CHECK(s.size() == 2);
  CHECK(s.sweep() == 1);
  CHECK(s.size() == 1);
  // An expired key is absent for set_if_absent too.
  REQUIRE(s.put("k", "old", 1s));
  clock.advance(1s);
  CHECK(*s.set_if_absent("k", "new", 0ms) == true);
  CHECK(**s.get("k") == "new");
}

TEST_CASE("memory store: incr_with_window counts in a fixed window from the first event",
          "[state][memory]") {
  ManualClock clock;
  MemoryStore s({}, clock);
  CHECK(*s.incr_with_window("c", 60s) == 1);
  clock.advance(30s);
  CHECK(*s.incr_with_window("c", 60s) == 2);
  CHECK(**s.ttl("c") == 30s);  // later events do not extend the window
  clock.advance(30s);
  CHECK(*s.incr_with_window("c", 60s) == 1);  // a new window
  REQUIRE(s.put("text", "abc", 0ms));
  auto bad = s.incr_with_window("text", 60s);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().kind == StoreErrorKind::BadValue);
  // A counter left without expiry gets one.
  REQUIRE(s.put("n", "5", 0ms));
  CHECK(*s.incr_with_window("n", 10s) == 6);
  CHECK(**s.ttl("n") == 10s);
}

TEST_CASE("memory store: a full store drops expired entries before live ones", "[state][memory]") {
  ManualClock clock;
  MemoryStoreOptions o;
  o.max_entries = 100;
  o.shards = 1;
  MemoryStore s(o, clock);
  for (int i = 0; i < 50; ++i)
    REQUIRE(s.put("short" + std::to_string(i), "v", 1s));
  for (int i = 0; i < 50; ++i)
    REQUIRE(s.put("keep" + std::to_string(i), "v", 0ms));
  clock.advance(2s);
  for (int i = 0; i < 50; ++i)
    REQUIRE(s.put("new" + std::to_string(i), "v", 60s));
  CHECK(s.size() == 100);
  for (int i = 0; i < 50; ++i)
    CHECK(s.get("keep" + std::to_string(i))->has_value());
}

TEST_CASE("memory store: a full store evicts the sooner-expiring of live entries",
          "[state][memory]") {
  ManualClock clock;
  MemoryStoreOptions o;
  o.max_entries = 200;
  o.shards = 1;
  MemoryStore s(o, clock);
  for (int i = 0; i < 200; ++i)
    REQUIRE(s.put("old" + std::to_string(i), "v", std::chrono::seconds(10 + i)));
  for (int i = 0; i < 100; ++i)
    REQUIRE(s.put("new" + std::to_string(i), "v", 3600s));
  CHECK(s.size() == 200);
  CHECK(s.evictions() == 100);
  // Sampling is approximate, but the survivors lean heavily towards the longer TTLs.
  int early = 0, late = 0;
  for (int i = 0; i < 200; ++i) {
    if (!s.get("old" + std::to_string(i))->has_value()) continue;
    (i < 100 ? early : late) += 1;
  }
  CHECK(late > 2 * early);
}

TEST_CASE("memory store: snapshot round trip restores live entries with their expiry",
          "[state][memory]") {
  auto dir = fresh_dir("roundtrip");
  std::string file = (dir / "state").string();
  ManualClock clock;
  {
    MemoryStore s(with_file(file), clock);
    CHECK(s.load_snapshot().status == SnapshotLoad::Status::NoFile);
    REQUIRE(s.put("ban:203.0.113.7", "v1 1800 3 unhandled domain product.com", 1800s));
    REQUIRE(s.put("odd key%\n", "", 0ms));
    REQUIRE(s.put("-", "-", 0ms));
    REQUIRE(s.put("gone", "x", 5s));
    REQUIRE(s.incr_with_window("strikes:198.51.100.1", 600s));
    s.shutdown();
  }
  CHECK_FALSE(fs::exists(file + ".tmp"));
  clock.advance(10s);  // "gone" expires while mxguard is stopped
  MemoryStore t(with_file(file), clock);
  auto r = t.load_snapshot();
  CHECK(r.status == SnapshotLoad::Status::Loaded);
  CHECK(r.entries == 4);
  CHECK(**t.get("ban:203.0.113.7") == "v1 1800 3 unhandled domain product.com");
  CHECK(**t.ttl("ban:203.0.113.7") == 1790s);
  CHECK(**t.get("odd key%\n") == "");
  CHECK(**t.get("-") == "-");
  CHECK_FALSE(t.get("gone")->has_value());
  CHECK(**t.get("strikes:198.51.100.1") == "1");
}

TEST_CASE("memory store: a garbled state file is moved aside and the store starts empty",
          "[state][memory]") {
  ManualClock clock;
  struct Case {
    const char* name;
    std::string text;
  };
  // A valid file to damage in various ways.
  auto dir = fresh_dir("garbled");
  std::string good_path = (dir / "good").string();
  {
    MemoryStore s(with_file(good_path), clock);
    REQUIRE(s.put("ban:192.0.2.1", "x", 3600s));
    REQUIRE(s.put("ban:192.0.2.2", "y", 3600s));
    REQUIRE(s.save_snapshot());
  }
  const std::string good = slurp(good_path);
  std::string flipped = good;
  flipped[flipped.find("192.0.2.2")] = '7';
  const Case cases[] = {
      {"empty", ""},
      {"not ours", "hello world\n"},
      {"cut short", good.substr(0, good.size() / 2)},
      {"no end line", good.substr(0, good.find("end "))},
      {"edited", flipped},
      {"binary", std::string("\0\1\2\3", 4)},
      {"trailing junk", good + "1 a b\n"},
  };
  for (const auto& c : cases) {
    SECTION(c.name) {
      std::string path = (dir / "state").string();
      std::ofstream(path, std::ios::binary) << c.text;
      MemoryStore s(with_file(path), clock);
      auto r = s.load_snapshot();
      CHECK(r.status == SnapshotLoad::Status::Corrupt);
      CHECK_FALSE(r.detail.empty());
      CHECK(s.size() == 0);
      // The garbled file is kept aside, byte for byte, and the path is free for a new one.
      REQUIRE(r.moved_to.find(path + ".corrupt-") == 0);
      CHECK(slurp(r.moved_to) == c.text);
      CHECK_FALSE(fs::exists(path));
      REQUIRE(s.put("k", "v", 0ms));
      REQUIRE(s.save_snapshot());
      fs::remove(r.moved_to);
    }
  }
}

TEST_CASE("memory store: concurrent counters lose no increments", "[state][memory]") {
  MemoryStoreOptions o;
  o.shards = 4;
  MemoryStore s(o);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&s, t] {
      for (int i = 0; i < 2000; ++i) {
        (void)s.incr_with_window("shared", 3600s);
        (void)s.put("t" + std::to_string(t) + ":" + std::to_string(i % 50), "v", 60s);
        (void)s.get("shared");
        if (i % 500 == 0) s.sweep();
      }
    });
  }
  for (auto& th : threads)
    th.join();
  CHECK(**s.get("shared") == "8000");
}
