// Clock: where the core reads the time of day (ban expiry, BATV day stamps, tag ages), so that
// tests can set it. Checks read it through CheckContext; the daemon passes the system clock.
// Thread-safety: now() may be called from any thread; ManualClock is atomic.
#pragma once

#include <atomic>
#include <chrono>
#include <ctime>

namespace mxguard {

class Clock {
 public:
  using time_point = std::chrono::system_clock::time_point;
  virtual ~Clock() = default;
  virtual time_point now() const = 0;
  std::time_t time() const { return std::chrono::system_clock::to_time_t(now()); }
};

// The process's real clock.
const Clock& system_clock();

// A clock that moves only when told (unit tests).
class ManualClock final : public Clock {
 public:
  explicit ManualClock(time_point start = time_point(std::chrono::seconds(1'700'000'000)))
      : now_(start.time_since_epoch().count()) {}
  time_point now() const override { return time_point(time_point::duration(now_.load())); }
  void set(time_point t) { now_.store(t.time_since_epoch().count()); }
  void advance(std::chrono::system_clock::duration d) { now_.fetch_add(d.count()); }

 private:
  std::atomic<time_point::rep> now_;
};

}  // namespace mxguard
