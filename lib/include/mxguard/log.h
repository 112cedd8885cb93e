// Logging: one sink for the whole process (syslog mail facility, and stderr in the foreground),
// and the one-line-per-decision format that admins grep next to Postfix's own lines.
// Thread-safety: the sink is set once at start-up; write() is safe from any thread.
#pragma once

#include <fmt/format.h>

#include <optional>
#include <string_view>

namespace mxguard {

enum class LogLevel { Error = 0, Warning = 1, Notice = 2, Info = 3, Debug = 4 };
std::optional<LogLevel> parse_log_level(std::string_view s);

class LogSink {
 public:
  virtual ~LogSink() = default;
  virtual void write(LogLevel level, std::string_view line) = 0;
};

// Process-wide logging. Until a sink is installed, lines go to stderr.
void set_log_sink(LogSink* sink);
void set_log_level(LogLevel level);
bool log_enabled(LogLevel level);
void log_line(LogLevel level, std::string_view line);

template <class... Args>
void log(LogLevel level, fmt::format_string<Args...> f, Args&&... args) {
  if (log_enabled(level)) log_line(level, fmt::format(f, std::forward<Args>(args)...));
}

// A sink that writes "mxguard: line" to stderr (foreground) and/or syslog.
class StandardSink final : public LogSink {
 public:
  StandardSink(bool to_stderr, bool to_syslog);
  ~StandardSink() override;
  void write(LogLevel level, std::string_view line) override;

 private:
  bool stderr_;
  bool syslog_;
};

}  // namespace mxguard
