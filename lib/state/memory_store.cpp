// MemoryStore. The state file's format is in snapshot.cpp; here it is read, written
// atomically and applied to the shards.
#include "mxguard/state/memory_store.h"
#include "mxguard/text.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <fstream>
#include <limits>
#include <random>
#include <unordered_map>

#include "mxguard/log.h"
#include "mxguard/state/snapshot.h"

namespace mxguard::state {

namespace {

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct Entry {
  std::string value;
  std::int64_t expires_ms = 0;  // 0: never
};

bool expired(const Entry& e, std::int64_t now) {
  return e.expires_ms != 0 && e.expires_ms <= now;
}

constexpr std::size_t kSample = 16;
constexpr std::size_t kSampleBuckets = 64;

std::string utc_stamp(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

struct MemoryStore::Shard {
  std::mutex mu;
  std::unordered_map<std::string, Entry, StringHash, std::equal_to<>> map;
  std::minstd_rand rng;

  // Makes room for one more entry: drops an expired entry or the soonest-expiring one among a
  // small sample taken from a random bucket on. Returns false if the shard is empty.
  std::int64_t last_full_sweep = 0;

  bool evict_one(std::int64_t now) {
    if (map.empty()) return false;
    // A full shard first drops what has expired, at most once a second: cheaper over time
    // than evicting live entries one by one, and it keeps the ones that still matter.
    if (now - last_full_sweep >= 1000) {
      last_full_sweep = now;
      if (std::erase_if(map, [now](const auto& kv) { return expired(kv.second, now); }) > 0)
        return true;
    }
    const std::size_t buckets = map.bucket_count();
    std::size_t b = std::uniform_int_distribution<std::size_t>(0, buckets - 1)(rng);
    std::string victim;  // a copy: erasing by a reference into the node itself is fragile
    std::int64_t victim_expiry = std::numeric_limits<std::int64_t>::max();
    std::size_t seen = 0;
    for (std::size_t step = 0; step < buckets; ++step, b = (b + 1) % buckets) {
      for (auto it = map.begin(b); it != map.end(b); ++it) {
        const Entry& e = it->second;
        std::int64_t exp =
            e.expires_ms == 0 ? std::numeric_limits<std::int64_t>::max() : e.expires_ms;
        if (expired(e, now)) exp = std::numeric_limits<std::int64_t>::min();
        if (seen == 0 || exp < victim_expiry) {
          victim = it->first;
          victim_expiry = exp;
        }
        ++seen;
      }
      if (seen >= kSample || (seen > 0 && step + 1 >= kSampleBuckets)) break;
    }
    map.erase(victim);
    return true;
  }
};

MemoryStore::MemoryStore(MemoryStoreOptions options, const Clock& clock)
    : options_(std::move(options)), clock_(clock) {
  if (options_.shards == 0) options_.shards = 1;
  per_shard_max_ = std::max<std::size_t>(1, options_.max_entries / options_.shards);
  shards_.reserve(options_.shards);
  for (std::size_t i = 0; i < options_.shards; ++i) {
    shards_.push_back(std::make_unique<Shard>());
    shards_.back()->rng.seed(static_cast<unsigned>(i + 1));
  }
  last_snapshot_ = std::chrono::steady_clock::now();
}

MemoryStore::~MemoryStore() = default;

MemoryStore::Shard& MemoryStore::shard_for(std::string_view key) {
  // The high bits pick the shard; the map's buckets use the low ones.
  std::size_t h = StringHash{}(key);
  return *shards_[(h >> 24) % shards_.size()];
}

std::int64_t MemoryStore::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now().time_since_epoch())
      .count();
}

std::int64_t MemoryStore::expiry_for(Ttl ttl) const {
  return ttl.count() <= 0 ? 0 : now_ms() + ttl.count();
}

StoreResult<std::optional<std::string>> MemoryStore::get(std::string_view key) {
  Shard& s = shard_for(key);
  const std::int64_t now = now_ms();
  std::lock_guard lock(s.mu);
  auto it = s.map.find(key);
  if (it == s.map.end()) return std::optional<std::string>();
  if (expired(it->second, now)) {
    s.map.erase(it);
    return std::optional<std::string>();
  }
  return std::optional<std::string>(it->second.value);
}

StoreResult<Done> MemoryStore::put(std::string_view key, std::string_view value, Ttl ttl) {
  Shard& s = shard_for(key);
  const std::int64_t now = now_ms();
  const std::int64_t exp = expiry_for(ttl);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(key);
  if (it == s.map.end()) {
    if (s.map.size() >= per_shard_max_ && s.evict_one(now))
      evictions_.fetch_add(1, std::memory_order_relaxed);
    s.map.emplace(std::string(key), Entry{std::string(value), exp});
  } else {
    it->second.value.assign(value);
    it->second.expires_ms = exp;
  }
  return Done{};
}

StoreResult<bool> MemoryStore::set_if_absent(std::string_view key, std::string_view value,
                                             Ttl ttl) {
  Shard& s = shard_for(key);
  const std::int64_t now = now_ms();
  const std::int64_t exp = expiry_for(ttl);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(key);
  if (it != s.map.end()) {
    if (!expired(it->second, now)) return false;
    it->second.value.assign(value);
    it->second.expires_ms = exp;
    return true;
  }
  if (s.map.size() >= per_shard_max_ && s.evict_one(now))
    evictions_.fetch_add(1, std::memory_order_relaxed);
  s.map.emplace(std::string(key), Entry{std::string(value), exp});
  return true;
}

StoreResult<std::int64_t> MemoryStore::incr_with_window(std::string_view key, Ttl window) {
  Shard& s = shard_for(key);
  const std::int64_t now = now_ms();
  const std::int64_t exp = expiry_for(window);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(key);
  if (it != s.map.end() && expired(it->second, now)) {
    s.map.erase(it);
    it = s.map.end();
  }
  if (it == s.map.end()) {
    if (s.map.size() >= per_shard_max_ && s.evict_one(now))
      evictions_.fetch_add(1, std::memory_order_relaxed);
    s.map.emplace(std::string(key), Entry{"1", exp});
    return std::int64_t{1};
  }
  auto v = parse_int(it->second.value);
  if (!v)
    return unexpected(
        StoreError{StoreErrorKind::BadValue, fmt::format("'{}' does not hold a counter", key)});
  std::int64_t n = *v + 1;
  it->second.value = std::to_string(n);
  if (it->second.expires_ms == 0) it->second.expires_ms = exp;
  return n;
}

StoreResult<std::optional<Ttl>> MemoryStore::ttl(std::string_view key) {
  Shard& s = shard_for(key);
  const std::int64_t now = now_ms();
  std::lock_guard lock(s.mu);
  auto it = s.map.find(key);
  if (it == s.map.end() || expired(it->second, now)) return std::optional<Ttl>();
  if (it->second.expires_ms == 0) return std::optional<Ttl>(Ttl::zero());
  return std::optional<Ttl>(Ttl(it->second.expires_ms - now));
}

StoreResult<bool> MemoryStore::erase(std::string_view key) {
  Shard& s = shard_for(key);
  const std::int64_t now = now_ms();
  std::lock_guard lock(s.mu);
  auto it = s.map.find(key);
  if (it == s.map.end()) return false;
  bool live = !expired(it->second, now);
  s.map.erase(it);
  return live;
}

std::size_t MemoryStore::sweep() {
  const std::int64_t now = now_ms();
  std::size_t removed = 0;
  for (auto& sp : shards_) {
    std::lock_guard lock(sp->mu);
    removed += std::erase_if(sp->map, [now](const auto& kv) { return expired(kv.second, now); });
  }
  return removed;
}

std::size_t MemoryStore::size() const {
  std::size_t n = 0;
  for (const auto& sp : shards_) {
    std::lock_guard lock(sp->mu);
    n += sp->map.size();
  }
  return n;
}

void MemoryStore::housekeeping() {
  sweep();
  if (options_.state_file.empty()) return;
  bool due = false;
  {
    std::lock_guard lock(snapshot_mu_);
    due = std::chrono::steady_clock::now() - last_snapshot_ >= options_.snapshot_interval;
  }
  if (due) {
    auto r = save_snapshot();
    if (!r) log(LogLevel::Warning, "state: {}", r.error().message);
  }
}

void MemoryStore::shutdown() {
  if (options_.state_file.empty()) return;
  auto r = save_snapshot();
  if (r) {
    log(LogLevel::Info, "state: saved {} entries to {}", *r, options_.state_file);
  } else {
    log(LogLevel::Warning, "state: {}", r.error().message);
  }
}

StoreResult<std::size_t> MemoryStore::save_snapshot() {
  const std::string& path = options_.state_file;
  if (path.empty()) return std::size_t{0};
  if (persist_blocked_.load())
    return unexpected(StoreError{
        StoreErrorKind::Unavailable,
        fmt::format("not writing {}: the existing file could not be read or moved aside", path)});
  std::lock_guard snap_lock(snapshot_mu_);
  last_snapshot_ = std::chrono::steady_clock::now();
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  auto fail = [&](std::string_view what) -> StoreResult<std::size_t> {
    std::string msg =
        fmt::format("cannot write state file {}: {}: {}", path, what, std::strerror(errno));
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    return unexpected(StoreError{StoreErrorKind::Unavailable, std::move(msg)});
  };
  if (fd < 0) return fail("open " + tmp);
  SnapshotWriter w;
  const std::int64_t now = now_ms();
  for (auto& sp : shards_) {
    {
      // Format under the lock, checksum and write after it: a slow disk must not stall the
      // shard.
      std::lock_guard lock(sp->mu);
      for (const auto& [key, e] : sp->map)
        if (!expired(e, now)) w.add(e.expires_ms, key, e.value);
    }
    if (w.pending() > (1u << 20) && !write_all(fd, w.take())) return fail("write");
  }
  if (!write_all(fd, w.finish())) return fail("write");
  if (::fsync(fd) != 0) return fail("fsync");
  if (::close(fd) != 0) {
    fd = -1;
    return fail("close");
  }
  fd = -1;
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("rename");
  // The rename is durable only once the directory is on disk too.
  int dfd = ::open(dir_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return w.entries();
}

SnapshotLoad MemoryStore::load_snapshot() {
  SnapshotLoad result;
  const std::string& path = options_.state_file;
  if (path.empty()) return result;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) {
      result.status = SnapshotLoad::Status::NoFile;
      log(LogLevel::Info, "state: no state file {} yet; starting empty", path);
      return result;
    }
    result.status = SnapshotLoad::Status::Unreadable;
    result.detail = std::strerror(errno);
    persist_blocked_ = true;
    log(LogLevel::Error,
        "state: cannot read state file {}: {}; starting with empty state and not writing the "
        "file until mxguard can read it",
        path, result.detail);
    return result;
  }
  SnapshotReader reader;
  std::string line;
  while (std::getline(in, line) && reader.add_line(line)) {
  }
  auto parsed = std::move(reader).finish();
  if (!parsed) return set_aside(std::move(parsed).error().message);
  result.status = SnapshotLoad::Status::Loaded;
  result.entries = restore(std::move(*parsed));
  log(LogLevel::Info, "state: restored {} entries from {}", result.entries, path);
  return result;
}

SnapshotLoad MemoryStore::set_aside(std::string problem) {
  const std::string& path = options_.state_file;
  SnapshotLoad result;
  result.status = SnapshotLoad::Status::Corrupt;
  result.detail = std::move(problem);
  const std::string aside = path + ".corrupt-" + utc_stamp(clock_.now());
  if (::rename(path.c_str(), aside.c_str()) == 0) {
    result.moved_to = aside;
    log(LogLevel::Error,
        "state: state file {} is garbled ({}); starting with empty state; the file was moved "
        "to {}",
        path, result.detail, aside);
  } else {
    persist_blocked_ = true;
    log(LogLevel::Error,
        "state: state file {} is garbled ({}); starting with empty state; could not move it "
        "aside ({}), so it will not be overwritten",
        path, result.detail, std::strerror(errno));
  }
  return result;
}

std::size_t MemoryStore::restore(std::vector<SnapshotEntry> entries) {
  const std::int64_t now = now_ms();
  std::size_t restored = 0;
  for (auto& e : entries) {
    if (e.expires_ms != 0 && e.expires_ms <= now) continue;
    Shard& s = shard_for(e.key);
    std::lock_guard lock(s.mu);
    if (s.map.size() >= per_shard_max_ && s.evict_one(now))
      evictions_.fetch_add(1, std::memory_order_relaxed);
    s.map.insert_or_assign(std::move(e.key), Entry{std::move(e.value), e.expires_ms});
    ++restored;
  }
  return restored;
}

}  // namespace mxguard::state
