#include "mxguard/state/runtime.h"

#include "mxguard/log.h"
#include "mxguard/state/memory_store.h"
#include "mxguard/state/redis_store.h"

namespace mxguard::state {

std::shared_ptr<StateStore> StateRuntime::make_store(const StateOptions& o, const Clock& clock) {
  if (o.redis) {
    RedisStoreOptions r;
    r.url = *o.redis;
    r.timeout = o.redis_timeout;
    return std::make_shared<RedisStore>(std::move(r), clock);
  }
  MemoryStoreOptions m;
  m.max_entries = o.max_entries;
  m.state_file = o.state_file;
  auto store = std::make_shared<MemoryStore>(std::move(m), clock);
  (void)store->load_snapshot();  // logs what it found
  return store;
}

StateRuntime::StateRuntime(const StateOptions& options, const Clock& clock)
    : clock_(clock),
      options_(options),
      bans_(std::make_shared<Bans>(make_store(options, clock), options.bans)) {}

StateRuntime::~StateRuntime() {
  stop();
}

std::shared_ptr<Bans> StateRuntime::bans() const {
  std::lock_guard lock(mu_);
  return bans_;
}

void StateRuntime::reload(const StateOptions& options) {
  std::shared_ptr<Bans> old;
  {
    std::lock_guard lock(mu_);
    if (options_.same_store(options)) {
      bans_->update_settings(options.bans);
      options_ = options;
      return;
    }
    old = bans_;
  }
  log(LogLevel::Notice, "state: switching from {} to {}", options_.state, options.state);
  // The old store writes its snapshot before the new one reads it (state-file may be the same).
  old->store().shutdown();
  auto fresh = std::make_shared<Bans>(make_store(options, clock_), options.bans);
  std::lock_guard lock(mu_);
  bans_ = std::move(fresh);
  options_ = options;
}

void StateRuntime::maintain() {
  auto b = bans();
  b->store().housekeeping();
  b->sweep(clock_.now());
}

void StateRuntime::start_maintenance(std::chrono::milliseconds interval) {
  std::lock_guard lock(thread_mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this, interval] {
    std::unique_lock lk(thread_mu_);
    while (!stopping_) {
      wake_.wait_for(lk, interval, [this] { return stopping_; });
      if (stopping_) break;
      lk.unlock();
      maintain();
      lk.lock();
    }
  });
}

void StateRuntime::stop() {
  {
    std::lock_guard lock(thread_mu_);
    if (stopped_) return;
    stopped_ = stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::shared_ptr<Bans> b;
  {
    std::lock_guard lock(mu_);
    b = bans_;
  }
  if (b) b->store().shutdown();
}

}  // namespace mxguard::state
