// The ledger: what mail we sent, so that a bounce or an autoreply can prove it answers one of
// our messages. For each message our users send, the caller records one key per envelope
// recipient and one for its Message-ID, each bound to the envelope sender; a bounce later proves
// itself when a recipient or Message-ID it quotes gives a key the ledger holds.
// Keys are HMAC-SHA256 under a secret of this host (the ledger key file), cut to 128 bits: the
// ledger never holds an address or a Message-ID, and what it holds cannot be matched against a
// list of addresses without the key. Every host of a fleet that shares a ledger (Redis) needs the
// same key file, as it needs the same BATV keys.
// Two forms: MemoryLedger (the default: a few compact tables in memory, saved to a file of its
// own) and StoreLedger (through a StateStore, so a fleet shares it through Redis).
// Who calls it: StateRuntime builds the one ledger of the process (ledger()); the content feed
// records outgoing mail, the backscatter check asks contains(); tests, the benchmark and the
// ledger-file fuzz target use the pieces directly.
// Thread-safety: LedgerKeys is immutable; every Ledger may be called from any number of threads
// at once (MemoryLedger: lookups share a lock, records take it alone).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mxguard/config_error.h"
#include "mxguard/expected.h"
#include "mxguard/state/store.h"

struct evp_mac_ctx_st;  // OpenSSL's EVP_MAC_CTX

namespace mxguard::state {

// 128 bits of HMAC: what the ledger stores for one recipient or Message-ID of one sender.
struct LedgerKey {
  std::array<std::uint8_t, 16> bytes{};
  std::string hex() const;  // 32 lower-case hex digits
  static std::optional<LedgerKey> from_hex(std::string_view hex);
  bool operator==(const LedgerKey&) const = default;
};

// How values are compared: addresses and Message-IDs in ASCII lower case, white space and one
// pair of angle brackets around them stripped ("<Abc@Example.ORG> " -> "abc@example.org").
std::string normalise_ledger_address(std::string_view address);
std::string normalise_message_id(std::string_view message_id);

// The ledger secret and the keys made with it.
class LedgerKeys {
 public:
  static constexpr std::size_t kSecretBytes = 32;  // what a new key file holds

  // Reads the key file: one line of hex (16 to 64 bytes, `openssl rand -hex 32`). Refuses a file
  // that group or others may read or write. Errors name the file; none echoes the secret.
  static Expected<LedgerKeys, ConfigError> load(const std::string& path);
  // As load(), but a file that does not exist yet is created first: 32 random bytes from the
  // OS, mode 600, written to a temporary file and linked into place so that two processes
  // starting at once end up with the same key.
  static Expected<LedgerKeys, ConfigError> load_or_create(const std::string& path);
  // A key from a secret held in memory (tests, the benchmark).
  explicit LedgerKeys(std::string_view secret);

  // HMAC-SHA256 over a tag ('r' or 'm'), the normalised sender and the normalised value.
  LedgerKey recipient_key(std::string_view our_sender, std::string_view recipient) const;
  LedgerKey message_id_key(std::string_view our_sender, std::string_view message_id) const;
  // Names the secret without revealing it: a ledger saved or shared under another secret holds
  // keys this one cannot match, so it must not count as a ledger that has been recording.
  std::uint64_t fingerprint() const { return fingerprint_; }

 private:
  LedgerKey mac(char tag, std::string_view sender, std::string_view value) const;
  std::string secret_;
  std::uint64_t fingerprint_ = 0;
  // An HMAC-SHA256 context keyed once with the secret; each key is made on a copy of it, which
  // spares the digest lookup and the key schedule of a one-shot HMAC (a third of its cost).
  // Null when OpenSSL could not make one: mac() then falls back to the one-shot HMAC.
  std::shared_ptr<const ::evp_mac_ctx_st> keyed_;
};

struct LedgerStats {
  std::optional<std::uint64_t> entries;  // keys held now (empty: unknown, e.g. in Redis)
  std::uint64_t recorded = 0;            // keys recorded by this process
  std::uint64_t evictions = 0;           // keys dropped before their time to stay in bounds
};

class Ledger {
 public:
  explicit Ledger(LedgerKeys keys) : keys_(std::move(keys)) {}
  virtual ~Ledger() = default;

  // The keys this ledger's entries are made with: callers make theirs with these.
  const LedgerKeys& keys() const { return keys_; }
  // "memory" or the store's description, for logs.
  virtual std::string describe() const = 0;

  // Records keys of mail sent at `now`; they are found for at least the lifetime after.
  virtual StoreResult<Done> record(std::span<const LedgerKey> keys, TimePoint now) = 0;
  // True when any of `keys` was recorded within the lifetime before `now`. An error when the
  // ledger cannot tell (the shared store is away and the local memory does not hold the key):
  // never a false "not ours" because of an outage.
  virtual StoreResult<bool> contains(std::span<const LedgerKey> keys, TimePoint now) = 0;
  // When the ledger began recording (empty: it has recorded nothing yet). Kept across restarts;
  // starts again after a whole lifetime without a record, since by then the ledger holds
  // nothing, and when the ledger key changes. Decides when report-only "auto" starts enforcing.
  virtual StoreResult<std::optional<TimePoint>> recording_since() = 0;
  // Expiry, saving or refreshing when due; called about once a second by one thread.
  virtual void housekeeping(TimePoint now) = 0;
  // At an orderly stop: the last save. No calls follow.
  virtual void shutdown() = 0;
  virtual LedgerStats stats() const = 0;

 private:
  LedgerKeys keys_;
};

// --- MemoryLedger's file, as a pure pair (unit tests, the fuzz target) ----------------------
// Binary, little-endian:
//   "mxguard-ledger 1\n"
//   u64 key fingerprint, i64 recording since (ms since the epoch, -1: never), i64 last record
//   u32 generations, then per generation: i64 newest record (ms), u32 n, n keys of 16 bytes
//   u64 FNV-1a 64 of every byte before it
struct LedgerImage {
  struct Generation {
    std::int64_t newest_ms = 0;
    std::vector<LedgerKey> keys;
    bool operator==(const Generation&) const = default;
  };
  std::uint64_t fingerprint = 0;
  std::int64_t recording_since_ms = -1;
  std::int64_t last_record_ms = -1;
  std::vector<Generation> generations;  // oldest first
  bool operator==(const LedgerImage&) const = default;
};
std::string write_ledger_image(const LedgerImage& image);
// Why the bytes are not a ledger file, or what they hold.
Expected<LedgerImage, std::string> parse_ledger_image(std::string_view bytes);

// --- MemoryLedger ----------------------------------------------------------------------------

struct MemoryLedgerOptions {
  std::chrono::milliseconds lifetime{std::chrono::hours(24 * 14)};
  std::size_t max_entries = 2'000'000;
  std::string file{};  // empty: nothing is saved
  std::chrono::milliseconds save_interval{std::chrono::minutes(5)};
};

// What load() found.
struct LedgerLoad {
  enum class Status { Disabled, NoFile, Loaded, Ignored };
  Status status = Status::Disabled;
  std::size_t entries = 0;  // keys restored (expired ones are left out)
  std::string detail;       // why a file was ignored
};

// Keys live in generations: a generation takes the records of one slice of time (a 32nd of the
// lifetime) up to a 16th of max_entries, in a flat open-addressing table of 16-byte keys (no
// allocation per entry; 32 to 43 bytes a key with the table's spare room). A generation is
// dropped whole once its newest key is older than the lifetime, so a key is found for at least
// the lifetime and at most a 32nd longer; at max_entries the oldest generation goes first.
class MemoryLedger final : public Ledger {
 public:
  MemoryLedger(MemoryLedgerOptions options, LedgerKeys keys);
  ~MemoryLedger() override;
  MemoryLedger(const MemoryLedger&) = delete;
  MemoryLedger& operator=(const MemoryLedger&) = delete;

  std::string describe() const override { return "memory"; }
  StoreResult<Done> record(std::span<const LedgerKey> keys, TimePoint now) override;
  StoreResult<bool> contains(std::span<const LedgerKey> keys, TimePoint now) override;
  StoreResult<std::optional<TimePoint>> recording_since() override;
  void housekeeping(TimePoint now) override;
  void shutdown() override;
  LedgerStats stats() const override;

  // Reads the ledger file (call once, before use). A file that cannot be read, is garbled or
  // was written under another ledger key is logged and ignored: the ledger starts empty and the
  // next save replaces the file.
  LedgerLoad load(TimePoint now);
  // Writes the file now (temporary file, fsync, rename); returns the keys written.
  StoreResult<std::size_t> save();
  std::size_t generations() const;
  std::size_t memory_bytes() const;  // the tables' size

 private:
  struct Generation;  // one slice of time: its newest record and its table (memory_ledger.cpp)
  Generation& target(std::int64_t now_ms);
  void expire(std::int64_t now_ms);
  LedgerImage image() const;

  MemoryLedgerOptions options_;
  std::int64_t lifetime_ms_;
  std::int64_t slice_ms_;
  std::size_t generation_max_;
  mutable std::shared_mutex mu_;
  std::vector<Generation> generations_;  // oldest first (a vector: there are few)
  std::size_t entries_ = 0;
  std::int64_t recording_since_ms_ = -1;
  std::int64_t last_record_ms_ = -1;
  std::atomic<bool> dirty_{false};  // changed since the last save (set under mu_)
  std::int64_t last_save_ms_ = -1;
  std::atomic<std::uint64_t> recorded_{0};
  std::atomic<std::uint64_t> evictions_{0};
  std::mutex save_mu_;  // one writer of the file at a time
};

// --- StoreLedger -----------------------------------------------------------------------------

// The ledger in a StateStore: key "ledger:<32 hex>" (in Redis "mxguard:ledger:..."), the value
// the time of the record, expiring after the lifetime; when the ledger began recording is one
// key, "ledger:since" ("<ms> <key fingerprint>"), set by whichever host records first and kept
// alive by every host that records. A key is looked up with get_confirmed(): while Redis is away
// a key the local fallback lacks is an error, not a miss. Bounded by the server (maxmemory).
class StoreLedger final : public Ledger {
 public:
  StoreLedger(std::shared_ptr<StateStore> store, LedgerKeys keys,
              std::chrono::milliseconds lifetime);

  std::string describe() const override { return store_->describe(); }
  StoreResult<Done> record(std::span<const LedgerKey> keys, TimePoint now) override;
  StoreResult<bool> contains(std::span<const LedgerKey> keys, TimePoint now) override;
  StoreResult<std::optional<TimePoint>> recording_since() override;
  void housekeeping(TimePoint now) override;
  void shutdown() override {}
  LedgerStats stats() const override;

  static std::string store_key(const LedgerKey& k) { return "ledger:" + k.hex(); }
  static constexpr std::string_view kSinceKey = "ledger:since";

 private:
  // Reads "ledger:since" and keeps what it says; logs a key of another secret once.
  StoreResult<std::optional<TimePoint>> read_since();
  // Makes sure "ledger:since" exists and lives another lifetime.
  void keep_since(TimePoint now);

  std::shared_ptr<StateStore> store_;
  std::chrono::milliseconds lifetime_;
  std::mutex mu_;                     // the fields below
  std::mutex keep_mu_;                // one keep_since() at a time
  std::optional<TimePoint> since_;    // as last read
  bool since_known_ = false;          // since_ holds a read that succeeded
  TimePoint since_read_at_{};         // when (by the callers' clock) it was read
  TimePoint since_kept_at_{};         // when keep_since last ran
  bool recorded_since_kept_ = false;  // a record since keep_since last ran
  bool foreign_logged_ = false;
  std::atomic<std::uint64_t> recorded_{0};
};

}  // namespace mxguard::state
