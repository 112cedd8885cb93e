// MemoryLedger: generations of flat open-addressing tables (see ledger.h), and the ledger file.
// A key is already the output of a MAC, so its first 8 bytes serve as the hash; the all-zero
// key marks an empty slot and is kept aside as a flag should a MAC ever produce it.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "mxguard/log.h"
#include "mxguard/state/ledger.h"
#include "state/ledger_file.h"

namespace mxguard::state {

namespace {

constexpr std::size_t kSlices = 32;           // generations by time within one lifetime
constexpr std::size_t kSizeGenerations = 16;  // a generation holds at most max_entries / 16

std::uint64_t word(const LedgerKey& k, std::size_t i) {
  std::uint64_t w;
  std::memcpy(&w, k.bytes.data() + 8 * i, sizeof w);
  return w;
}

bool is_zero(const LedgerKey& k) {
  return (word(k, 0) | word(k, 1)) == 0;
}

std::int64_t to_ms(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

TimePoint from_ms(std::int64_t ms) {
  return TimePoint(std::chrono::milliseconds(ms));
}

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// tmp + fsync + rename + fsync of the directory; the error says which step failed.
std::optional<std::string> write_atomically(const std::string& path, std::string_view bytes) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  auto fail = [&](std::string_view what) -> std::optional<std::string> {
    std::string msg = fmt::format("{}: {}", what, std::strerror(errno));
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    return msg;
  };
  if (fd < 0) return fail("open " + tmp);
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("write");
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("fsync");
  const int closed = ::close(fd);
  fd = -1;
  if (closed != 0) return fail("close");
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("rename");
  int dfd = ::open(dir_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return std::nullopt;
}

// Open addressing, linear probing, at most 3/4 full: a miss reads a few neighbouring slots,
// mostly within one cache line.
class Table {
 public:
  explicit Table(std::size_t expected = 0) {
    std::size_t cap = 16;
    while (cap * 3 / 4 < expected)
      cap *= 2;
    slots_.resize(cap);
  }

  // True when the key was not there yet.
  bool insert(const LedgerKey& k) {
    if (is_zero(k)) return !std::exchange(has_zero_, true);
    if ((size_ + 1) * 4 > slots_.size() * 3) grow();
    if (!place(k)) return false;
    ++size_;
    return true;
  }

  bool contains(const LedgerKey& k) const {
    if (is_zero(k)) return has_zero_;
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = word(k, 0) & mask;; i = (i + 1) & mask) {
      const LedgerKey& s = slots_[i];
      if (is_zero(s)) return false;
      if (s == k) return true;
    }
  }

  // Starts loading the key's first slot: a lookup in every generation is a cache miss in
  // each, and asked for all at once they overlap instead of queueing.
  void prefetch(const LedgerKey& k) const {
    __builtin_prefetch(&slots_[word(k, 0) & (slots_.size() - 1)]);
  }

  std::size_t size() const { return size_ + (has_zero_ ? 1 : 0); }
  std::size_t bytes() const { return slots_.capacity() * sizeof(LedgerKey); }

  template <class F>
  void for_each(F f) const {
    if (has_zero_) f(LedgerKey{});
    for (const auto& s : slots_)
      if (!is_zero(s)) f(s);
  }

 private:
  bool place(const LedgerKey& k) {
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = word(k, 0) & mask;; i = (i + 1) & mask) {
      LedgerKey& s = slots_[i];
      if (is_zero(s)) {
        s = k;
        return true;
      }
      if (s == k) return false;
    }
  }

  void grow() {
    std::vector<LedgerKey> old(slots_.size() * 2);
    old.swap(slots_);
    for (const auto& s : old)
      if (!is_zero(s)) place(s);
  }

  std::vector<LedgerKey> slots_;
  std::size_t size_ = 0;
  bool has_zero_ = false;
};

}  // namespace

struct MemoryLedger::Generation {
  std::int64_t slice = -1;  // -1: restored from the file, takes no new records
  std::int64_t newest_ms = 0;
  Table table;
};

MemoryLedger::MemoryLedger(MemoryLedgerOptions options, LedgerKeys keys)
    : Ledger(std::move(keys)),
      options_(std::move(options)),
      lifetime_ms_(std::max<std::int64_t>(1, options_.lifetime.count())),
      slice_ms_(std::max<std::int64_t>(1, lifetime_ms_ / static_cast<std::int64_t>(kSlices))),
      generation_max_(std::max<std::size_t>(1, options_.max_entries / kSizeGenerations)) {}

MemoryLedger::~MemoryLedger() = default;

MemoryLedger::Generation& MemoryLedger::target(std::int64_t now_ms) {
  const std::int64_t slice = now_ms / slice_ms_;
  if (!generations_.empty()) {
    Generation& g = generations_.back();
    if (g.slice == slice && g.table.size() < generation_max_) return g;
  }
  generations_.push_back(Generation{slice, now_ms, Table()});
  return generations_.back();
}

void MemoryLedger::expire(std::int64_t now_ms) {
  std::erase_if(generations_, [&](const Generation& g) {
    if (g.newest_ms + lifetime_ms_ > now_ms) return false;
    entries_ -= g.table.size();
    dirty_ = true;
    return true;
  });
  if (last_record_ms_ >= 0 && last_record_ms_ + lifetime_ms_ <= now_ms &&
      recording_since_ms_ >= 0) {
    // A whole lifetime without a record: nothing is left to prove anything with.
    recording_since_ms_ = -1;
    dirty_ = true;
  }
}

StoreResult<Done> MemoryLedger::record(std::span<const LedgerKey> keys, TimePoint now) {
  const std::int64_t now_ms = to_ms(now);
  std::unique_lock lock(mu_);
  for (const LedgerKey& k : keys) {
    if (target(now_ms).table.contains(k)) continue;
    if (entries_ >= options_.max_entries) {
      expire(now_ms);
      // Oldest first; the loop ends at the latest when the target itself was full.
      while (entries_ >= options_.max_entries && !generations_.empty()) {
        const std::size_t n = generations_.front().table.size();
        evictions_.fetch_add(n, std::memory_order_relaxed);
        entries_ -= n;
        generations_.erase(generations_.begin());
      }
    }
    Generation& g = target(now_ms);
    if (g.table.insert(k)) ++entries_;
    g.newest_ms = std::max(g.newest_ms, now_ms);
  }
  recorded_.fetch_add(keys.size(), std::memory_order_relaxed);
  if (!keys.empty()) {
    if (recording_since_ms_ < 0) recording_since_ms_ = now_ms;
    last_record_ms_ = std::max(last_record_ms_, now_ms);
    dirty_ = true;
  }
  return Done{};
}

StoreResult<bool> MemoryLedger::contains(std::span<const LedgerKey> keys, TimePoint now) {
  const std::int64_t now_ms = to_ms(now);
  std::shared_lock lock(mu_);
  for (const auto& g : generations_)
    for (const LedgerKey& k : keys)
      g.table.prefetch(k);
  // Newest first: bounces come soon after the mail they answer.
  for (auto g = generations_.rbegin(); g != generations_.rend(); ++g) {
    if (g->newest_ms + lifetime_ms_ <= now_ms) continue;
    for (const LedgerKey& k : keys)
      if (g->table.contains(k)) return true;
  }
  return false;
}

StoreResult<std::optional<TimePoint>> MemoryLedger::recording_since() {
  std::shared_lock lock(mu_);
  if (recording_since_ms_ < 0) return std::optional<TimePoint>();
  return std::optional<TimePoint>(from_ms(recording_since_ms_));
}

LedgerStats MemoryLedger::stats() const {
  LedgerStats s;
  {
    std::shared_lock lock(mu_);
    s.entries = entries_;
  }
  s.recorded = recorded_.load(std::memory_order_relaxed);
  s.evictions = evictions_.load(std::memory_order_relaxed);
  return s;
}

std::size_t MemoryLedger::generations() const {
  std::shared_lock lock(mu_);
  return generations_.size();
}

std::size_t MemoryLedger::memory_bytes() const {
  std::shared_lock lock(mu_);
  std::size_t n = 0;
  for (const auto& g : generations_)
    n += g.table.bytes();
  return n;
}

void MemoryLedger::housekeeping(TimePoint now) {
  const std::int64_t now_ms = to_ms(now);
  bool due = false;
  {
    std::unique_lock lock(mu_);
    expire(now_ms);
    due = dirty_ && !options_.file.empty() &&
          (last_save_ms_ < 0 || now_ms - last_save_ms_ >= options_.save_interval.count() ||
           now_ms < last_save_ms_);
    if (due) last_save_ms_ = now_ms;  // a failing disk is retried an interval later
  }
  if (!due) return;
  auto r = save();
  if (!r) log(LogLevel::Warning, "ledger: {}", r.error().message);
}

void MemoryLedger::shutdown() {
  if (options_.file.empty()) return;
  if (!dirty_) return;
  auto r = save();
  if (r) {
    log(LogLevel::Info, "ledger: saved {} keys to {}", *r, options_.file);
  } else {
    log(LogLevel::Warning, "ledger: {}", r.error().message);
  }
}

StoreResult<std::size_t> MemoryLedger::save() {
  if (options_.file.empty()) return std::size_t{0};
  std::lock_guard save_lock(save_mu_);
  std::string bytes;
  std::size_t written = 0;
  {
    // Lookups go on while the tables are copied; records wait.
    std::shared_lock lock(mu_);
    LedgerImageWriter w(keys().fingerprint(), recording_since_ms_, last_record_ms_,
                        static_cast<std::uint32_t>(generations_.size()), entries_);
    for (const auto& g : generations_) {
      w.generation(g.newest_ms, static_cast<std::uint32_t>(g.table.size()));
      g.table.for_each([&](const LedgerKey& k) { w.key(k); });
      written += g.table.size();
    }
    dirty_ = false;
    bytes = w.finish();
  }
  if (auto e = write_atomically(options_.file, bytes)) {
    std::unique_lock lock(mu_);
    dirty_ = true;
    return unexpected(
        StoreError{StoreErrorKind::Unavailable,
                   fmt::format("cannot write ledger file {}: {}", options_.file, *e)});
  }
  return written;
}

LedgerLoad MemoryLedger::load(TimePoint now) {
  LedgerLoad result;
  const std::string& path = options_.file;
  if (path.empty()) return result;
  const std::int64_t now_ms = to_ms(now);
  {
    std::unique_lock lock(mu_);
    last_save_ms_ = now_ms;
  }
  auto ignore = [&](std::string why) {
    result.status = LedgerLoad::Status::Ignored;
    result.detail = std::move(why);
    log(LogLevel::Warning,
        "ledger: ignoring the ledger file {} ({}); starting with an empty ledger, the next save "
        "replaces the file",
        path, result.detail);
    return result;
  };
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      result.status = LedgerLoad::Status::NoFile;
      log(LogLevel::Info, "ledger: no ledger file {} yet; starting empty", path);
      return result;
    }
    return ignore(fmt::format("cannot read it: {}", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) return ignore("not a regular file");
  // Twice what max-entries allows, and a margin: anything larger is not a ledger of ours.
  const auto most =
      static_cast<std::uintmax_t>(options_.max_entries) * 2 * sizeof(LedgerKey) + (1u << 20);
  if (static_cast<std::uintmax_t>(st.st_size) > most)
    return ignore(fmt::format("{} bytes, more than ledger-max-entries allows", st.st_size));
  std::ifstream in(path, std::ios::binary);
  if (!in) return ignore(fmt::format("cannot read it: {}", std::strerror(errno)));
  std::string bytes(static_cast<std::size_t>(st.st_size), '\0');
  if (!bytes.empty() && !in.read(bytes.data(), static_cast<std::streamsize>(bytes.size())))
    return ignore("cannot read it");
  auto image = parse_ledger_image(bytes);
  if (!image) return ignore(image.error());
  if (image->fingerprint != keys().fingerprint())
    return ignore("it was written under another ledger key");

  std::unique_lock lock(mu_);
  generations_.clear();
  entries_ = 0;
  for (auto& g : image->generations) {
    // A time from the future (the clock was set back) counts as now.
    const std::int64_t newest = std::min(g.newest_ms, now_ms);
    if (newest + lifetime_ms_ <= now_ms || g.keys.empty()) continue;
    Generation gen{-1, newest, Table(g.keys.size())};
    for (const auto& k : g.keys)
      gen.table.insert(k);
    entries_ += gen.table.size();
    generations_.push_back(std::move(gen));
  }
  while (entries_ > options_.max_entries && !generations_.empty()) {
    const std::size_t n = generations_.front().table.size();
    evictions_.fetch_add(n, std::memory_order_relaxed);
    entries_ -= n;
    generations_.erase(generations_.begin());
  }
  last_record_ms_ = std::min(image->last_record_ms, now_ms);
  recording_since_ms_ = std::min(image->recording_since_ms, now_ms);
  dirty_ = false;
  expire(now_ms);  // forgets when recording began after a lifetime without records
  result.status = LedgerLoad::Status::Loaded;
  result.entries = entries_;
  log(LogLevel::Info, "ledger: restored {} keys from {}", entries_, path);
  return result;
}

}  // namespace mxguard::state
