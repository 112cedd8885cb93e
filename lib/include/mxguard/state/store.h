// StateStore: the small key/value interface behind strikes and bans, with two backends
// (MemoryStore, the default, and RedisStore, for several MX hosts sharing state).
// Who calls it: the Bans engine (lib/state/bans.cpp), checks through CheckContext, milter/main
// (creates the store once per process), tests and benchmarks.
// Thread-safety: every implementation is safe to call from any number of threads at once.
// Every call is bounded in time: MemoryStore never blocks on I/O; RedisStore gives up after its
// timeout and answers from local memory while Redis is away.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "mxguard/clock.h"
#include "mxguard/expected.h"

namespace mxguard::state {

// Wall-clock time: bans must mean the same instant after a restart and on every MX host.
using TimePoint = std::chrono::system_clock::time_point;
using Ttl = std::chrono::milliseconds;  // zero: the entry never expires

// Where time comes from, so tests can move it instead of sleeping: the core's one Clock
// (clock.h), under the names the state code has always used.
using Clock = mxguard::Clock;
using ManualClock = mxguard::ManualClock;
struct SystemClock {
  static const Clock& instance() { return mxguard::system_clock(); }
};

enum class StoreErrorKind {
  Unavailable,  // the backend cannot be reached (and no fallback is configured)
  Timeout,      // the backend did not answer in time
  Protocol,     // the backend answered something unexpected
  Full,         // the store is at its bound and nothing could be evicted
  BadValue,     // e.g. incr on a value that is not a number
};
std::string_view to_string(StoreErrorKind k);

struct StoreError {
  StoreErrorKind kind = StoreErrorKind::Unavailable;
  std::string message;
  std::string to_string() const;
};

using Done = std::monostate;

template <class T>
using StoreResult = Expected<T, StoreError>;

class StateStore {
 public:
  virtual ~StateStore() = default;

  // "memory" or "redis://host:port/db", for logs.
  virtual std::string describe() const = 0;

  virtual StoreResult<std::optional<std::string>> get(std::string_view key) = 0;
  // As get(), for lookups where a miss is taken as proof (the ledger: "we did not send that"):
  // a miss is answered only by the backend of record. While a shared backend is away, a key
  // its local fallback holds is still found, but one it lacks is Unavailable, not absent.
  virtual StoreResult<std::optional<std::string>> get_confirmed(std::string_view key) {
    return get(key);
  }
  // Sets the value and replaces any expiry with ttl (zero: none).
  virtual StoreResult<Done> put(std::string_view key, std::string_view value, Ttl ttl) = 0;
  // Sets the value only if the key is absent; true when this call set it. Used so that of two
  // MX hosts racing to ban the same client, exactly one issues (and logs) the ban.
  virtual StoreResult<bool> set_if_absent(std::string_view key, std::string_view value,
                                          Ttl ttl) = 0;
  // Adds one to a decimal counter (a missing key counts from zero) and returns the new value.
  // A key created by this call (or found without expiry) expires after `window`, so a counter
  // counts events in a fixed window that starts at its first event. Atomic on every backend.
  virtual StoreResult<std::int64_t> incr_with_window(std::string_view key, Ttl window) = 0;
  // Time left before the key expires: empty if the key is absent, zero if it never expires.
  virtual StoreResult<std::optional<Ttl>> ttl(std::string_view key) = 0;
  // True if the key existed.
  virtual StoreResult<bool> erase(std::string_view key) = 0;

  // Periodic upkeep (expiry sweep, snapshot when due, reconnect probes); called about once a
  // second from one maintenance thread. Never blocks for long.
  virtual void housekeeping() {}
  // Final upkeep at an orderly stop (the last snapshot). No calls follow.
  virtual void shutdown() {}
};

}  // namespace mxguard::state
