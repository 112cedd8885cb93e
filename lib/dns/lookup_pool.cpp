#include "dns/lookup_pool.h"

#include <cstdlib>

namespace mxguard::dns {

namespace {

// Long enough for a busy server to reuse its threads, short enough that the threads and their
// memory a burst leaves behind are gone soon after (at a lookup every few seconds a new thread
// costs nothing that matters).
constexpr auto kIdleWait = std::chrono::seconds(5);
constexpr std::size_t kMaxIdle = 64;  // after a burst, the rest end at once

}  // namespace

LookupPool& LookupPool::instance() {
  static auto* threads = [] {
    auto* t = new LookupPool;
    std::atexit([] { instance().join_all(std::chrono::seconds(5)); });
    return t;
  }();
  return *threads;
}

void LookupPool::start(std::function<void()> work) {
  reap();
  std::lock_guard lock(mutex_);
  queue_.push_back(std::move(work));
  if (queue_.size() <= idle_) {
    woken_.notify_one();
    return;
  }
  const std::uint64_t id = next_id_++;
  try {
    running_.emplace(id, std::thread([this, id] { serve(id); }));
  } catch (...) {
    queue_.pop_back();
    throw;
  }
}

bool LookupPool::join_all(std::chrono::milliseconds wait) {
  std::unique_lock lock(mutex_);
  ++stopping_;
  woken_.notify_all();
  const bool all = ended_.wait_for(lock, wait, [&] { return finished_.size() == running_.size(); });
  --stopping_;
  lock.unlock();
  reap();
  return all;
}

void LookupPool::serve(std::uint64_t id) {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (queue_.empty()) {
      if (idle_ >= kMaxIdle) break;
      ++idle_;
      const bool got =
          woken_.wait_for(lock, kIdleWait, [&] { return !queue_.empty() || stopping_ > 0; });
      --idle_;
      if (!got || queue_.empty()) break;
    }
    std::function<void()> work = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    work();
    // What the work held (the resolver) goes before the thread can be counted as done.
    work = nullptr;
    lock.lock();
  }
  finished_.push_back(id);
  ended_.notify_all();
}

void LookupPool::reap() {
  std::vector<std::thread> done;
  {
    std::lock_guard lock(mutex_);
    for (std::uint64_t id : finished_) {
      auto it = running_.find(id);
      done.push_back(std::move(it->second));
      running_.erase(it);
    }
    finished_.clear();
  }
  for (auto& t : done)
    t.join();  // past its last work already: only the thread's own exit is waited for
}

}  // namespace mxguard::dns
