#include "mxguard/log.h"

#include <utility>

#include <syslog.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>

namespace mxguard {

namespace {
std::atomic<LogSink*> g_sink{nullptr};
std::atomic<int> g_level{static_cast<int>(LogLevel::Info)};

int syslog_priority(LogLevel level) {
  switch (level) {
    case LogLevel::Error:
      return LOG_ERR;
    case LogLevel::Warning:
      return LOG_WARNING;
    case LogLevel::Notice:
      return LOG_NOTICE;
    case LogLevel::Info:
      return LOG_INFO;
    case LogLevel::Debug:
      return LOG_DEBUG;
  }
  return LOG_INFO;
}

void write_stderr(std::string_view line) {
  // One write() per line so concurrent threads never interleave within a line.
  std::string out;
  out.reserve(line.size() + 10);
  out.append("mxguard: ").append(line).push_back('\n');
  std::size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::write(2, out.data() + done, out.size() - done);
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
}
}  // namespace

std::optional<LogLevel> parse_log_level(std::string_view s) {
  if (s == "error") return LogLevel::Error;
  if (s == "warning") return LogLevel::Warning;
  if (s == "notice") return LogLevel::Notice;
  if (s == "info") return LogLevel::Info;
  if (s == "debug") return LogLevel::Debug;
  return std::nullopt;
}

void set_log_sink(LogSink* sink) {
  g_sink.store(sink);
}
void set_log_level(LogLevel level) {
  g_level.store(static_cast<int>(level));
}
bool log_enabled(LogLevel level) {
  return static_cast<int>(level) <= g_level.load();
}

void log_line(LogLevel level, std::string_view line) {
  if (LogSink* s = g_sink.load()) {
    s->write(level, line);
  } else {
    write_stderr(line);
  }
}

StandardSink::StandardSink(bool to_stderr, bool to_syslog)
    : stderr_(to_stderr), syslog_(to_syslog) {
  if (syslog_) openlog("mxguard", LOG_PID | LOG_NDELAY, LOG_MAIL);
}

StandardSink::~StandardSink() {
  if (syslog_) closelog();
}

void StandardSink::write(LogLevel level, std::string_view line) {
  if (stderr_) write_stderr(line);
  if (syslog_) {
    ::syslog(syslog_priority(level), "%.*s", static_cast<int>(line.size()), line.data());
  }
}

std::optional<std::uint64_t> LogLimiter::admit(std::string_view key,
                                               std::chrono::system_clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto it = slots_.find(key);
  if (it == slots_.end()) it = slots_.emplace(std::string(key), Slot{}).first;
  Slot& slot = it->second;
  if (now < slot.next) {
    ++slot.held;
    return std::nullopt;
  }
  slot.next = now + interval_;
  return std::exchange(slot.held, 0);
}

}  // namespace mxguard
