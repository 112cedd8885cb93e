// MemoryStore: the default, in-process StateStore. Entries live in shards (one mutex each, so
// the milter's many connection threads rarely meet), expire lazily on access and by a periodic
// sweep, and are bounded in number: a full shard evicts the entry that expires soonest among a
// few sampled (Redis's volatile-ttl idea: approximate, constant time, no extra index memory).
// Bans survive a restart through a state file: written atomically (tmp + rename) by
// housekeeping() every snapshot interval and by shutdown(), read back by load_snapshot() at
// start (its format: snapshot.h). A garbled file is moved aside (".corrupt-<UTC time>") and never
// overwritten.
// Who calls it: milter/main through make_store(); RedisStore keeps one as its fallback.
// Thread-safety: all members may be called concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mxguard/state/snapshot.h"
#include "mxguard/state/store.h"

namespace mxguard::state {

struct MemoryStoreOptions {
  // About 100 bytes an entry; a tracked client takes one (strikes) to three (a ban and its
  // escalation record) entries.
  std::size_t max_entries = 2'000'000;
  std::size_t shards = 64;
  std::string state_file{};  // empty: nothing is persisted
  std::chrono::seconds snapshot_interval{300};
};

// What load_snapshot() found.
struct SnapshotLoad {
  enum class Status { Disabled, NoFile, Loaded, Corrupt, Unreadable };
  Status status = Status::Disabled;
  std::size_t entries = 0;  // entries restored (expired ones are skipped)
  std::string detail;       // why the file was refused
  std::string moved_to;     // where a corrupt file was moved (empty if the move failed)
};

class MemoryStore final : public StateStore {
 public:
  explicit MemoryStore(MemoryStoreOptions options, const Clock& clock = SystemClock::instance());
  ~MemoryStore() override;
  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;

  std::string describe() const override { return "memory"; }
  StoreResult<std::optional<std::string>> get(std::string_view key) override;
  StoreResult<Done> put(std::string_view key, std::string_view value, Ttl ttl) override;
  StoreResult<bool> set_if_absent(std::string_view key, std::string_view value, Ttl ttl) override;
  StoreResult<std::int64_t> incr_with_window(std::string_view key, Ttl window) override;
  StoreResult<std::optional<Ttl>> ttl(std::string_view key) override;
  StoreResult<bool> erase(std::string_view key) override;
  void housekeeping() override;
  void shutdown() override;

  // Restores the state file (call once, before serving). Logs one clear line about a file it
  // refuses; a corrupt file is moved aside and the store starts empty.
  SnapshotLoad load_snapshot();
  // Writes the state file now (tmp + fsync + rename); returns the number of entries written.
  StoreResult<std::size_t> save_snapshot();
  // Removes every expired entry; returns how many.
  std::size_t sweep();
  std::size_t size() const;
  std::uint64_t evictions() const { return evictions_.load(std::memory_order_relaxed); }

 private:
  struct Shard;
  Shard& shard_for(std::string_view key);
  std::int64_t now_ms() const;
  std::int64_t expiry_for(Ttl ttl) const;
  // load_snapshot()'s two ends: a refused file moved aside, or the parsed entries applied.
  SnapshotLoad set_aside(std::string problem);
  std::size_t restore(std::vector<SnapshotEntry> entries);

  MemoryStoreOptions options_;
  const Clock& clock_;
  std::size_t per_shard_max_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<std::uint64_t> evictions_{0};
  // Set when a state file could not be read or moved aside: we must not overwrite it.
  std::atomic<bool> persist_blocked_{false};
  std::mutex snapshot_mu_;  // one writer of the state file at a time
  std::chrono::steady_clock::time_point last_snapshot_;
};

}  // namespace mxguard::state
