// The ledger of mail we sent: keys, MemoryLedger (generations, expiry, eviction, its file),
// StoreLedger over a MemoryStore and over a real redis-server. Time moves by ManualClock only.
#include <sys/stat.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "mxguard/state/ledger.h"
#include "mxguard/state/memory_store.h"
#include "mxguard/state/redis_store.h"
#include "redis_fixture.h"

using namespace mxguard::state;
using namespace std::chrono_literals;
using mxguard::testing::RedisServer;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("mxguard-unit-ledger-" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const fs::path& p, std::string_view bytes,
          fs::perms mode = fs::perms::owner_read | fs::perms::owner_write) {
  {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  fs::permissions(p, mode);
}

const LedgerKeys kKeys("0123456789abcdef0123456789abcdef");

LedgerKey rkey(std::string_view recipient, std::string_view sender = "alice@example.org") {
  return kKeys.recipient_key(sender, recipient);
}

bool has(Ledger& l, const LedgerKey& k, TimePoint now) {
  auto r = l.contains(std::span<const LedgerKey>(&k, 1), now);
  REQUIRE(r);
  return *r;
}

void put(Ledger& l, const LedgerKey& k, TimePoint now) {
  REQUIRE(l.record(std::span<const LedgerKey>(&k, 1), now));
}

MemoryLedgerOptions memory_options(std::chrono::milliseconds lifetime = 14 * 24h,
                                   std::size_t max_entries = 2'000'000, std::string file = {}) {
  MemoryLedgerOptions o;
  o.lifetime = lifetime;
  o.max_entries = max_entries;
  o.file = std::move(file);
  return o;
}

}  // namespace

// --- keys ---------------------------------------------------------------------------------------

TEST_CASE("ledger keys: one input, one key; sender, value and kind all matter", "[ledger]") {
  const LedgerKey k = rkey("dave@remote.example");
  CHECK(k == rkey("dave@remote.example"));
  CHECK(k != rkey("erin@remote.example"));
  CHECK(k != rkey("dave@remote.example", "bob@example.org"));
  CHECK(k != kKeys.message_id_key("alice@example.org", "dave@remote.example"));
  // The sender and the value are kept apart: "ab" + "c" is not "a" + "bc".
  CHECK(kKeys.recipient_key("ab", "c") != kKeys.recipient_key("a", "bc"));
  // Another secret, other keys.
  CHECK(LedgerKeys("another secret, sixteen bytes at least")
            .recipient_key("alice@example.org", "dave@remote.example") != k);
  CHECK(k.hex().size() == 32);
  CHECK(LedgerKey::from_hex(k.hex()) == k);
  CHECK_FALSE(LedgerKey::from_hex("00"));
  CHECK_FALSE(LedgerKey::from_hex(std::string(32, 'g')));
}

TEST_CASE("ledger keys: addresses compare in ASCII case; Message-IDs without brackets",
          "[ledger]") {
  CHECK(rkey("Dave@Remote.EXAMPLE", "ALICE@example.org") == rkey("dave@remote.example"));
  CHECK(rkey("<dave@remote.example>") == rkey("dave@remote.example"));
  const LedgerKey m = kKeys.message_id_key("alice@example.org", "abc.123@mail.example.org");
  CHECK(kKeys.message_id_key("alice@example.org", "<abc.123@mail.example.org>") == m);
  CHECK(kKeys.message_id_key("Alice@Example.org", "  <ABC.123@Mail.Example.ORG> \r\n") == m);
  CHECK(kKeys.message_id_key("alice@example.org", "<abc.124@mail.example.org>") != m);
  CHECK(normalise_message_id(" < X@Y > ") == "x@y");
  CHECK(normalise_ledger_address("Dave@Remote") == "dave@remote");
}

TEST_CASE("ledger key file: created with mode 600 on first start, the same key after", "[ledger]") {
  const fs::path dir = fresh_dir("keyfile");
  const std::string path = (dir / "ledger.key").string();
  auto first = LedgerKeys::load_or_create(path);
  REQUIRE(first);
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  const std::string text = slurp(path);
  CHECK(text.size() == 65);  // 64 hex digits and a newline
  CHECK(text.find_first_not_of("0123456789abcdef\n") == std::string::npos);
  auto again = LedgerKeys::load_or_create(path);
  REQUIRE(again);
  CHECK(again->recipient_key("a@b", "c@d") == first->recipient_key("a@b", "c@d"));
  CHECK(again->fingerprint() == first->fingerprint());
  // Another directory, another secret.
  auto other = LedgerKeys::load_or_create((fresh_dir("keyfile2") / "ledger.key").string());
  REQUIRE(other);
  CHECK(other->recipient_key("a@b", "c@d") != first->recipient_key("a@b", "c@d"));
  // Nothing left behind but the key.
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);
}

TEST_CASE("ledger key file: group or world access, bad content and no file are refused",
          "[ledger]") {
  const fs::path dir = fresh_dir("keyfile-bad");
  const std::string path = (dir / "ledger.key").string();
  const std::string hex(64, 'a');
  spit(path, hex + "\n", fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  auto r = LedgerKeys::load_or_create(path);
  REQUIRE_FALSE(r);
  CHECK(r.error().where == path);
  CHECK_THAT(r.error().message, Catch::Contains("group or others") && Catch::Contains("0640"));
  CHECK(slurp(path) == hex + "\n");  // refused, not replaced

  spit(path, hex + "\n", fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_write);
  CHECK_FALSE(LedgerKeys::load(path));

  for (const std::string& bad : {std::string("not hex at all"), std::string(30, 'a'),
                                 std::string(130, 'a'), std::string(63, 'a'), std::string()}) {
    INFO(bad);
    spit(path, bad);
    auto e = LedgerKeys::load(path);
    REQUIRE_FALSE(e);
    CHECK(e.error().where == path);
    if (!bad.empty()) CHECK(e.error().message.find(bad) == std::string::npos);  // no echo
  }
  spit(path, std::string(5000, 'a'));
  CHECK_THAT(LedgerKeys::load(path).error().message, Catch::Contains("too large"));
  spit(path, "  " + hex + "\r\n");  // white space around it is fine
  CHECK(LedgerKeys::load(path));

  auto missing = LedgerKeys::load((dir / "absent.key").string());
  REQUIRE_FALSE(missing);
  CHECK(missing.error().where == (dir / "absent.key").string());
  auto no_dir = LedgerKeys::load_or_create((dir / "no" / "such" / "ledger.key").string());
  REQUIRE_FALSE(no_dir);
  CHECK_THAT(no_dir.error().message, Catch::Contains("cannot create"));
}

// --- MemoryLedger -----------------------------------------------------------------------------

TEST_CASE("memory ledger: what was recorded is found, nothing else", "[ledger]") {
  ManualClock clock;
  MemoryLedger l(memory_options(), kKeys);
  CHECK_FALSE(has(l, rkey("dave@remote.example"), clock.now()));
  const std::vector<LedgerKey> sent = {
      rkey("dave@remote.example"), rkey("erin@remote.example"),
      kKeys.message_id_key("alice@example.org", "<1@example.org>")};
  REQUIRE(l.record(sent, clock.now()));
  for (const auto& k : sent)
    CHECK(has(l, k, clock.now()));
  CHECK_FALSE(has(l, rkey("mallory@remote.example"), clock.now()));
  CHECK_FALSE(has(l, rkey("dave@remote.example", "bob@example.org"), clock.now()));
  // Any one of several keys.
  const std::vector<LedgerKey> asked = {rkey("mallory@remote.example"), sent[1]};
  CHECK(*l.contains(asked, clock.now()));
  CHECK(*l.contains({}, clock.now()) == false);
  // The same key twice is held once.
  REQUIRE(l.record(sent, clock.now()));
  CHECK(l.stats().entries == 3u);
  CHECK(l.stats().recorded == 6u);
  CHECK(l.stats().evictions == 0u);
  CHECK(l.describe() == "memory");
}

TEST_CASE("memory ledger: many keys, a grown table finds them all", "[ledger]") {
  ManualClock clock;
  MemoryLedger l(memory_options(), kKeys);
  std::vector<LedgerKey> keys;
  for (int i = 0; i < 20000; ++i)
    keys.push_back(rkey("r" + std::to_string(i) + "@remote.example"));
  REQUIRE(l.record(keys, clock.now()));
  int found = 0, false_hits = 0;
  for (int i = 0; i < 20000; ++i) {
    found += has(l, keys[static_cast<std::size_t>(i)], clock.now());
    false_hits += has(l, rkey("x" + std::to_string(i) + "@remote.example"), clock.now());
  }
  CHECK(found == 20000);
  CHECK(false_hits == 0);
  CHECK(l.stats().entries == 20000u);
  // 16 bytes a slot, at most 3/4 full, doubling: at most 43 bytes a key here.
  CHECK(l.memory_bytes() <= 20000u * 43);
}

TEST_CASE("memory ledger: the all-zero key (an empty slot inside) is kept too", "[ledger]") {
  ManualClock clock;
  MemoryLedger l(memory_options(), kKeys);
  const LedgerKey zero{};
  CHECK_FALSE(has(l, zero, clock.now()));
  put(l, zero, clock.now());
  CHECK(has(l, zero, clock.now()));
  CHECK(l.stats().entries == 1u);
}

TEST_CASE("memory ledger: a key lives the lifetime, and is gone a 32nd of it later", "[ledger]") {
  ManualClock clock;
  const auto lifetime = 32h;  // generations of one hour
  MemoryLedger l(memory_options(lifetime), kKeys);
  const TimePoint sent = clock.now();
  put(l, rkey("dave@remote.example"), sent);
  clock.advance(lifetime - 1ms);
  CHECK(has(l, rkey("dave@remote.example"), clock.now()));
  l.housekeeping(clock.now());
  CHECK(l.stats().entries == 1u);
  clock.advance(1h + 1ms);
  CHECK_FALSE(has(l, rkey("dave@remote.example"), clock.now()));  // before any housekeeping
  l.housekeeping(clock.now());
  CHECK(l.stats().entries == 0u);
  CHECK(l.generations() == 0u);
  CHECK(l.stats().evictions == 0u);  // expiry is not eviction
}

TEST_CASE("memory ledger: at max-entries the oldest generation goes first, and is counted",
          "[ledger]") {
  ManualClock clock;
  // 32 entries at most: generations of 2 keys (a 16th), one per hour (a 32nd of 32h).
  MemoryLedger l(memory_options(32h, 32), kKeys);
  std::vector<LedgerKey> keys;
  for (int i = 0; i < 33; ++i)
    keys.push_back(rkey("r" + std::to_string(i) + "@remote.example"));
  for (int i = 0; i < 32; ++i) {
    put(l, keys[static_cast<std::size_t>(i)], clock.now());
    if (i % 2) clock.advance(1h);
  }
  CHECK(l.stats().entries == 32u);
  CHECK(l.stats().evictions == 0u);
  put(l, keys[32], clock.now());
  CHECK(l.stats().evictions == 2u);
  CHECK(l.stats().entries == 31u);
  CHECK_FALSE(has(l, keys[0], clock.now()));
  CHECK_FALSE(has(l, keys[1], clock.now()));
  for (std::size_t i = 2; i < 33; ++i)
    CHECK(has(l, keys[i], clock.now()));
}

TEST_CASE("memory ledger: one busy hour is cut into generations, so eviction stays partial",
          "[ledger]") {
  ManualClock clock;
  MemoryLedger l(memory_options(14 * 24h, 1600), kKeys);  // generations of 100 keys
  std::vector<LedgerKey> keys;
  for (int i = 0; i < 1700; ++i)
    keys.push_back(rkey("r" + std::to_string(i) + "@remote.example"));
  REQUIRE(l.record(keys, clock.now()));
  CHECK(l.stats().entries == 1600u);
  CHECK(l.stats().evictions == 100u);
  CHECK_FALSE(has(l, keys[99], clock.now()));
  CHECK(has(l, keys[100], clock.now()));
  CHECK(has(l, keys[1699], clock.now()));
}

TEST_CASE("memory ledger: recording since the first record, until a lifetime of silence",
          "[ledger]") {
  ManualClock clock;
  MemoryLedger l(memory_options(32h), kKeys);
  CHECK_FALSE(l.recording_since()->has_value());
  const TimePoint start = clock.now();
  put(l, rkey("a@remote.example"), start);
  clock.advance(10h);
  put(l, rkey("b@remote.example"), clock.now());
  CHECK(**l.recording_since() == start);
  clock.advance(31h);
  l.housekeeping(clock.now());
  CHECK(**l.recording_since() == start);
  clock.advance(1h);  // a whole lifetime after the last record
  l.housekeeping(clock.now());
  CHECK_FALSE(l.recording_since()->has_value());
  put(l, rkey("c@remote.example"), clock.now());
  CHECK(**l.recording_since() == clock.now());
}

TEST_CASE("memory ledger: the file keeps keys and recording-since across a restart", "[ledger]") {
  ManualClock clock;
  const fs::path dir = fresh_dir("file");
  const std::string file = (dir / "ledger").string();
  const TimePoint start = clock.now();
  {
    MemoryLedger l(memory_options(32h, 2'000'000, file), kKeys);
    CHECK(l.load(clock.now()).status == LedgerLoad::Status::NoFile);
    put(l, rkey("dave@remote.example"), clock.now());
    clock.advance(5h);
    put(l, kKeys.message_id_key("alice@example.org", "<1@example.org>"), clock.now());
    l.shutdown();
  }
  CHECK(fs::exists(file));
  CHECK_FALSE(fs::exists(file + ".tmp"));
  CHECK((fs::status(file).permissions() & (fs::perms::group_all | fs::perms::others_all)) ==
        fs::perms::none);
  MemoryLedger again(memory_options(32h, 2'000'000, file), kKeys);
  auto loaded = again.load(clock.now());
  CHECK(loaded.status == LedgerLoad::Status::Loaded);
  CHECK(loaded.entries == 2u);
  CHECK(has(again, rkey("dave@remote.example"), clock.now()));
  CHECK(has(again, kKeys.message_id_key("alice@example.org", "1@example.org"), clock.now()));
  CHECK_FALSE(has(again, rkey("erin@remote.example"), clock.now()));
  CHECK(**again.recording_since() == start);
  // Restored keys keep their age: the first one expires on time.
  clock.advance(28h);
  CHECK_FALSE(has(again, rkey("dave@remote.example"), clock.now()));
  CHECK(has(again, kKeys.message_id_key("alice@example.org", "1@example.org"), clock.now()));

  // Restored long after: what expired meanwhile is left out.
  MemoryLedger late(memory_options(32h, 2'000'000, file), kKeys);
  clock.advance(10h);
  CHECK(late.load(clock.now()).entries == 0u);
  CHECK_FALSE(late.recording_since()->has_value());
}

TEST_CASE("memory ledger: housekeeping saves a changed ledger every save interval", "[ledger]") {
  ManualClock clock;
  const fs::path dir = fresh_dir("save");
  const std::string file = (dir / "ledger").string();
  MemoryLedger l(memory_options(14 * 24h, 2'000'000, file), kKeys);
  REQUIRE(l.load(clock.now()).status == LedgerLoad::Status::NoFile);
  l.housekeeping(clock.now());
  CHECK_FALSE(fs::exists(file));  // nothing changed
  put(l, rkey("dave@remote.example"), clock.now());
  clock.advance(4min);
  l.housekeeping(clock.now());
  CHECK_FALSE(fs::exists(file));  // not due yet
  clock.advance(1min);
  l.housekeeping(clock.now());
  REQUIRE(fs::exists(file));
  auto image = parse_ledger_image(slurp(file));
  REQUIRE(image);
  REQUIRE(image->generations.size() == 1);
  CHECK(image->generations[0].keys == std::vector<LedgerKey>{rkey("dave@remote.example")});
  CHECK(image->fingerprint == kKeys.fingerprint());
}

TEST_CASE("memory ledger: a bad file is logged and ignored, never fatal", "[ledger]") {
  ManualClock clock;
  const fs::path dir = fresh_dir("bad");
  const std::string file = (dir / "ledger").string();
  std::string good;
  {
    MemoryLedger l(memory_options(14 * 24h, 2'000'000, file), kKeys);
    put(l, rkey("dave@remote.example"), clock.now());
    REQUIRE(l.save());
    good = slurp(file);
  }
  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 0x01;
  struct Case {
    const char* what;
    std::string bytes;
    const char* detail;
  };
  const std::vector<Case> cases = {
      {"empty", "", "empty"},
      {"text", "mxguard-state 1\nend 0 0\n", "bad header"},
      {"cut short", good.substr(0, good.size() - 5), ""},
      {"one bit flipped", flipped, "checksum"},
      {"data after the end", good + "x", ""},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    spit(file, c.bytes);
    MemoryLedger l(memory_options(14 * 24h, 2'000'000, file), kKeys);
    auto r = l.load(clock.now());
    CHECK(r.status == LedgerLoad::Status::Ignored);
    CHECK_THAT(r.detail, Catch::Contains(c.detail));
    CHECK(l.stats().entries == 0u);
    CHECK_FALSE(l.recording_since()->has_value());
    put(l, rkey("erin@remote.example"), clock.now());  // and it works
    CHECK(has(l, rkey("erin@remote.example"), clock.now()));
  }
  // Written under another ledger key: its keys cannot match ours, so it is not trusted.
  spit(file, good);
  MemoryLedger other(memory_options(14 * 24h, 2'000'000, file),
                     LedgerKeys("some other secret of sixteen bytes"));
  auto r = other.load(clock.now());
  CHECK(r.status == LedgerLoad::Status::Ignored);
  CHECK_THAT(r.detail, Catch::Contains("another ledger key"));
  CHECK_FALSE(other.recording_since()->has_value());
  // Unreadable (a directory where the file should be).
  fs::remove(file);
  fs::create_directories(file);
  MemoryLedger unreadable(memory_options(14 * 24h, 2'000'000, file), kKeys);
  CHECK(unreadable.load(clock.now()).status == LedgerLoad::Status::Ignored);
  put(unreadable, rkey("dave@remote.example"), clock.now());
  auto saved = unreadable.save();
  REQUIRE_FALSE(saved);
  CHECK_THAT(saved.error().message, Catch::Contains(file));
}

TEST_CASE("ledger file: write and parse are a pair; every cut and a bad count are refused",
          "[ledger]") {
  LedgerImage image;
  image.fingerprint = 0x0123456789abcdefULL;
  image.recording_since_ms = 1'700'000'000'000;
  image.last_record_ms = 1'700'000'360'000;
  image.generations.push_back({1'700'000'100'000, {rkey("a@x"), rkey("b@x")}});
  image.generations.push_back({1'700'000'360'000, {}});
  image.generations.push_back({1'700'000'360'000, {LedgerKey{}}});
  const std::string bytes = write_ledger_image(image);
  auto back = parse_ledger_image(bytes);
  REQUIRE(back);
  CHECK(*back == image);
  CHECK(bytes.rfind("mxguard-ledger 1\n", 0) == 0);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    INFO(n);
    CHECK_FALSE(parse_ledger_image(bytes.substr(0, n)));
  }
  // A generation count far beyond the bytes is refused before anything is reserved.
  std::string lie = bytes;
  lie[17 + 24] = '\xff';
  lie[17 + 25] = '\xff';
  lie[17 + 26] = '\xff';
  lie[17 + 27] = '\x7f';
  auto r = parse_ledger_image(lie);
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error(), Catch::Contains("generation count"));
  CHECK(parse_ledger_image(write_ledger_image(LedgerImage{})));
}

TEST_CASE("memory ledger: records, lookups and housekeeping from many threads", "[ledger]") {
  ManualClock clock;
  MemoryLedger l(memory_options(14 * 24h, 100'000), kKeys);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const LedgerKey k = rkey(std::to_string(t) + "-" + std::to_string(i) + "@remote");
        if (!l.record(std::span<const LedgerKey>(&k, 1), clock.now())) ++failures;
        auto r = l.contains(std::span<const LedgerKey>(&k, 1), clock.now());
        if (!r || !*r) ++failures;
        if (t == 0 && i % 100 == 0) {
          clock.advance(1min);
          l.housekeeping(clock.now());
        }
      }
    });
  for (auto& th : threads)
    th.join();
  CHECK(failures == 0);
  CHECK(l.stats().entries == 8000u);
}

// --- StoreLedger ------------------------------------------------------------------------------

TEST_CASE("store ledger over a memory store: keys, expiry, recording since", "[ledger]") {
  ManualClock clock;
  auto store = std::make_shared<MemoryStore>(MemoryStoreOptions{}, clock);
  StoreLedger l(store, kKeys, 32h);
  CHECK_FALSE(l.recording_since()->has_value());
  const TimePoint start = clock.now();
  put(l, rkey("dave@remote.example"), start);
  CHECK(has(l, rkey("dave@remote.example"), clock.now()));
  CHECK_FALSE(has(l, rkey("erin@remote.example"), clock.now()));
  CHECK(**l.recording_since() == start);
  // As stored: the key's hex, the time of the record, expiring after the lifetime.
  const std::string key = "ledger:" + rkey("dave@remote.example").hex();
  CHECK(**store->get(key) == std::to_string(1'700'000'000'000LL));
  CHECK(**store->ttl(key) == 32h);
  CHECK(store->get(std::string(StoreLedger::kSinceKey))->has_value());
  CHECK(l.stats().recorded == 1u);
  CHECK_FALSE(l.stats().entries.has_value());

  clock.advance(32h);
  CHECK_FALSE(has(l, rkey("dave@remote.example"), clock.now()));
  // Records kept "since" alive; a lifetime without one lets it go.
  clock.advance(1h);
  l.housekeeping(clock.now());
  CHECK_FALSE(l.recording_since()->has_value());
}

TEST_CASE("store ledger: records keep 'since' alive; a host with another key never warms up",
          "[ledger]") {
  ManualClock clock;
  auto store = std::make_shared<MemoryStore>(MemoryStoreOptions{}, clock);
  StoreLedger a(store, kKeys, 32h);
  const TimePoint start = clock.now();
  for (int h = 0; h < 40; ++h) {
    put(a, rkey("r" + std::to_string(h) + "@remote.example"), clock.now());
    clock.advance(1h);
    a.housekeeping(clock.now());
  }
  CHECK(**a.recording_since() == start);  // 40 h later, still the first record's time

  // A second host with the same key shares the ledger and its start.
  StoreLedger b(store, kKeys, 32h);
  CHECK(**b.recording_since() == start);
  CHECK(has(b, rkey("r39@remote.example"), clock.now()));

  StoreLedger stranger(store, LedgerKeys("some other secret of sixteen bytes"), 32h);
  put(stranger, stranger.keys().recipient_key("x@example.org", "y@remote"), clock.now());
  CHECK_FALSE(stranger.recording_since()->has_value());
  CHECK(**a.recording_since() == start);  // left alone
}

TEST_CASE("store ledger over redis: two hosts share it; redis down is an error, not a miss",
          "[ledger][redis]") {
  RedisServer server;
  auto options = [&] {
    RedisStoreOptions o;
    o.url = *RedisUrl::parse(server.url());
    o.timeout = 200ms;
    o.min_backoff = 50ms;
    o.max_backoff = 200ms;
    return o;
  };
  ManualClock clock;
  auto store_a = std::make_shared<RedisStore>(options(), clock);
  auto store_b = std::make_shared<RedisStore>(options(), clock);
  StoreLedger a(store_a, kKeys, 14 * 24h);
  StoreLedger b(store_b, kKeys, 14 * 24h);
  REQUIRE(store_a->redis_up());

  put(a, rkey("dave@remote.example"), clock.now());
  CHECK(has(b, rkey("dave@remote.example"), clock.now()));  // sent via a, bounce at b
  CHECK_FALSE(has(b, rkey("erin@remote.example"), clock.now()));
  CHECK(**b.recording_since() == clock.now());
  // The Redis key names the hex of the key, under mxguard:.
  RedisStoreOptions raw = options();
  raw.key_prefix = "";
  RedisStore plain(raw, clock);
  CHECK(plain.get("mxguard:ledger:" + rkey("dave@remote.example").hex())->has_value());
  auto ttl = plain.ttl("mxguard:ledger:" + rkey("dave@remote.example").hex());
  REQUIRE(ttl);
  CHECK(**ttl > 14 * 24h - 1min);

  server.stop();
  // A key this host recorded before is not in its fallback: the ledger cannot tell.
  const LedgerKey dave = rkey("dave@remote.example");
  auto down = a.contains(std::span<const LedgerKey>(&dave, 1), clock.now());
  REQUIRE_FALSE(down);
  CHECK(down.error().kind == StoreErrorKind::Unavailable);
  auto miss = a.contains(std::span<const LedgerKey>(&dave, 1), clock.now());
  REQUIRE_FALSE(miss);  // and again, answered by the fallback at once
  // Recorded during the outage: found locally.
  put(a, rkey("frank@remote.example"), clock.now());
  CHECK(has(a, rkey("frank@remote.example"), clock.now()));
  // recording_since keeps what it last read.
  CHECK(**a.recording_since() == **b.recording_since());
}
