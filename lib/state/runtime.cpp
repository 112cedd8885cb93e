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
    r.sentinels = o.redis_sentinels;
    r.master_name = o.redis_master_name;
    r.sentinel_password = o.sentinel_password;
    r.tls = o.redis_tls;
    // A failover moves the master within seconds: look for the new one often.
    if (!r.sentinels.empty()) r.max_backoff = std::chrono::milliseconds(1000);
    return std::make_shared<RedisStore>(std::move(r), clock);
  }
  MemoryStoreOptions m;
  m.max_entries = o.max_entries;
  m.state_file = o.state_file;
  auto store = std::make_shared<MemoryStore>(std::move(m), clock);
  (void)store->load_snapshot();  // logs what it found
  return store;
}

std::shared_ptr<Ledger> StateRuntime::make_ledger(const StateOptions& o,
                                                  std::shared_ptr<StateStore> store, TimePoint now,
                                                  bool create_key) {
  const LedgerOptions& l = o.ledger;
  if (!l.enabled) return nullptr;
  auto keys = create_key ? LedgerKeys::load_or_create(l.key_file) : LedgerKeys::load(l.key_file);
  if (!keys) {
    log(LogLevel::Error, "ledger: {}; running without a ledger (no bounce can prove itself by it)",
        keys.error().to_string());
    return nullptr;
  }
  const auto lifetime = std::chrono::duration_cast<std::chrono::milliseconds>(l.lifetime);
  if (o.redis) {
    log(LogLevel::Info, "ledger: in {}, lifetime {}h", store->describe(),
        std::chrono::duration_cast<std::chrono::hours>(l.lifetime).count());
    return std::make_shared<StoreLedger>(std::move(store), std::move(*keys), lifetime);
  }
  MemoryLedgerOptions m;
  m.lifetime = lifetime;
  m.max_entries = l.max_entries;
  m.file = l.file;
  auto ledger = std::make_shared<MemoryLedger>(std::move(m), std::move(*keys));
  (void)ledger->load(now);  // logs what it found
  return ledger;
}

StateRuntime::StateRuntime(const StateOptions& options, const Clock& clock)
    : clock_(clock),
      options_(options),
      store_(make_store(options, clock)),
      bans_(std::make_shared<Bans>(store_, options.bans)),
      ledger_(make_ledger(options, store_, clock.now())) {}

StateRuntime::~StateRuntime() {
  stop();
}

std::shared_ptr<Bans> StateRuntime::bans() const {
  std::lock_guard lock(mu_);
  return bans_;
}

std::shared_ptr<Ledger> StateRuntime::ledger() const {
  std::lock_guard lock(mu_);
  return ledger_;
}

void StateRuntime::reload(const StateOptions& options) {
  std::shared_ptr<StateStore> store;
  std::shared_ptr<Ledger> old_ledger;
  bool same_store = false;
  {
    std::lock_guard lock(mu_);
    same_store = options_.same_store(options);
    store = store_;
    old_ledger = ledger_;
  }
  // A ledger in Redis lives in the store: a new store, a new ledger.
  const bool new_ledger =
      !(options_.ledger == options.ledger) || (!same_store && (options.redis || options_.redis));
  if (!same_store) {
    log(LogLevel::Notice, "state: switching from {} to {}", options_.state, options.state);
    // The old store writes its snapshot before the new one reads it (state-file may be the same).
    store->shutdown();
    store = make_store(options, clock_);
  }
  // Likewise the ledger and its file.
  if (new_ledger && old_ledger) old_ledger->shutdown();
  std::shared_ptr<Ledger> ledger =
      new_ledger ? make_ledger(options, store, clock_.now()) : old_ledger;
  std::lock_guard lock(mu_);
  if (same_store) {
    bans_->update_settings(options.bans);
  } else {
    store_ = store;
    bans_ = std::make_shared<Bans>(store, options.bans);
  }
  ledger_ = std::move(ledger);
  options_ = options;
}

void StateRuntime::maintain() {
  std::shared_ptr<Bans> b;
  std::shared_ptr<Ledger> l;
  {
    std::lock_guard lock(mu_);
    b = bans_;
    l = ledger_;
  }
  b->store().housekeeping();
  b->sweep(clock_.now());
  if (l) l->housekeeping(clock_.now());
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
  std::shared_ptr<Ledger> l;
  {
    std::lock_guard lock(mu_);
    b = bans_;
    l = ledger_;
  }
  if (b) b->store().shutdown();
  if (l) l->shutdown();
}

}  // namespace mxguard::state
