// StateRuntime: the one process-wide state store and Bans engine, and the thread that keeps
// them tidy (expiry sweep, snapshots, Redis reconnect probes, unban lines).
// milter/main creates it once from the first Config and calls reload() on SIGUSR1: ban settings
// change in place; the store is rebuilt only when state, state-file, state-max-entries or
// redis-timeout change (the old store writes its last snapshot first). Each milter callback
// takes bans() (a shared_ptr, like the Policy) and puts bans.get() / &bans->store() into its
// CheckContext, so a reload never pulls the store out from under a running check.
// Thread-safety: bans() from any thread; reload() and stop() from one control thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

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
  void reload(const StateOptions& options);
  // Starts the maintenance thread (once a second by default).
  void start_maintenance(std::chrono::milliseconds interval = std::chrono::seconds(1));
  // One round of maintenance, as the thread does it (for tests and -t mode).
  void maintain();
  // Stops the thread and writes the last snapshot. Called at an orderly stop.
  void stop();

  static std::shared_ptr<StateStore> make_store(const StateOptions& options, const Clock& clock);

 private:
  const Clock& clock_;
  mutable std::mutex mu_;
  StateOptions options_;
  std::shared_ptr<Bans> bans_;
  std::mutex thread_mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool stopped_ = false;
  std::thread thread_;
};

}  // namespace mxguard::state
