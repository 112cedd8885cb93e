// StateRuntime: the one process-wide state store, Bans engine and ledger of the mail we sent,
// and the thread that keeps them tidy (expiry sweep, snapshots, Redis reconnect probes, unban
// lines, the ledger's expiry and file).
// milter/main creates it once from the first Config and calls reload() on SIGUSR1: ban settings
// change in place; the store is rebuilt only when state, state-file, state-max-entries or
// redis-timeout change (the old store writes its last snapshot first); the ledger only when its
// own options change, or, with Redis, when the store it lives in is rebuilt (a memory ledger
// writes its file first). Each milter callback takes bans() and ledger() (shared_ptrs, like the
// Policy) and puts them into its CheckContext, so a reload never pulls either out from under a
// running check.
// Thread-safety: bans() and ledger() from any thread; reload() and stop() from one control
// thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "mxguard/state/ledger.h"
#include "mxguard/state/options.h"

namespace mxguard::state {

class StateRuntime {
 public:
  // Builds the store (restoring the state file, or trying Redis: both log what they find) and
  // the engine. Never fails: a bad state file or an absent Redis leaves a working empty store.
  explicit StateRuntime(const StateOptions& options, const Clock& clock = SystemClock::instance());
  ~StateRuntime();
  StateRuntime(const StateRuntime&) = delete;
  StateRuntime& operator=(const StateRuntime&) = delete;

  std::shared_ptr<Bans> bans() const;
  // Null when `ledger = no`, or when the ledger key file can be neither read nor created (the
  // reason is logged): mxguard then runs without a ledger.
  std::shared_ptr<Ledger> ledger() const;
  void reload(const StateOptions& options);
  // Starts the maintenance thread (once a second by default).
  void start_maintenance(std::chrono::milliseconds interval = std::chrono::seconds(1));
  // One round of maintenance, as the thread does it (for tests and -t mode).
  void maintain();
  // Stops the thread and writes the last snapshot. Called at an orderly stop.
  void stop();

  static std::shared_ptr<StateStore> make_store(const StateOptions& options, const Clock& clock);
  // The ledger for `options`: a MemoryLedger restored from its file with the memory backend, a
  // StoreLedger in `store` with Redis; null as ledger() says. The daemon creates a missing key
  // file; `mxguard -n` (create_key = false) only reads what is there.
  static std::shared_ptr<Ledger> make_ledger(const StateOptions& options,
                                             std::shared_ptr<StateStore> store, TimePoint now,
                                             bool create_key = true);

 private:
  const Clock& clock_;
  mutable std::mutex mu_;
  StateOptions options_;
  std::shared_ptr<StateStore> store_;
  std::shared_ptr<Bans> bans_;
  std::shared_ptr<Ledger> ledger_;
  std::mutex thread_mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool stopped_ = false;
  std::thread thread_;
};

}  // namespace mxguard::state
