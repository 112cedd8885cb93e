// LookupPool: the process-wide threads that run DNS lookups for RouteAnalyzer, so that a caller
// can give up at its deadline while the query goes on. The threads may outlive the analysis
// that started them. A thread that has finished a lookup waits 5 s for the next one (up to 64
// threads wait; the rest end), so that a busy server reuses its threads and, with them, each
// thread's ldns resolvers (see ldns_resolver.cpp). A lookup never waits for a busy thread:
// when none is idle, a new one starts. None is detached: join_all() ends the idle ones and
// joins them all before the process ends, so that none is still inside ldns or OpenSSL when
// exit handlers tear those down.
// Who calls it: mail_route.cpp only (its lookups, and join_lookup_threads()).
// Thread-safety: every member may be called from any thread at once.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace mxguard::dns {

class LookupPool {
 public:
  // Never destroyed: a thread still running at exit must find it intact. A program that does
  // not call join_all() itself (the unit tests) still joins the threads on its way out.
  static LookupPool& instance();

  // Runs `work` on an idle thread or a new one; std::system_error when none can be had.
  void start(std::function<void()> work);

  // Ends the idle threads, waits up to `wait` for those still at work and joins them; false
  // when some are still running.
  bool join_all(std::chrono::milliseconds wait);

 private:
  LookupPool() = default;
  void serve(std::uint64_t id);
  void reap();

  std::mutex mutex_;
  std::condition_variable woken_;  // work queued, or join_all() wants the idle threads to end
  std::condition_variable ended_;
  std::deque<std::function<void()>> queue_;  // started lookups no thread has taken yet
  std::size_t idle_ = 0;                     // threads waiting for work
  int stopping_ = 0;                         // join_all() calls in progress
  std::uint64_t next_id_ = 0;
  std::unordered_map<std::uint64_t, std::thread> running_;  // started, not joined yet
  std::vector<std::uint64_t> finished_;                     // of those, the ones that ended
};

}  // namespace mxguard::dns
