// A log sink for unit tests: captures every line logged while it lives (after escaping, as a
// real sink gets it) and puts stderr logging back when it goes.
// Who uses it: tests that assert on log lines (bans, log escaping).
// Thread-safety: write() may be called from any thread; read after the threads are done.
#pragma once

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "mxguard/log.h"

namespace mxguard::test {

class CaptureLog final : public LogSink {
 public:
  CaptureLog() { set_log_sink(this); }
  ~CaptureLog() override { set_log_sink(nullptr); }
  CaptureLog(const CaptureLog&) = delete;
  CaptureLog& operator=(const CaptureLog&) = delete;

  void write(LogLevel, std::string_view line) override {
    std::lock_guard lock(mu_);
    lines_.emplace_back(line);
  }
  // Every line so far.
  std::vector<std::string> lines() {
    std::lock_guard lock(mu_);
    return lines_;
  }
  // The lines that start with `prefix`.
  std::vector<std::string> matching(std::string_view prefix) {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const auto& l : lines_)
      if (l.rfind(prefix, 0) == 0) out.push_back(l);
    return out;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

}  // namespace mxguard::test
