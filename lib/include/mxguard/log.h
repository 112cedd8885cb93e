// Logging: one sink for the whole process (syslog mail facility, and stderr in the foreground),
// and the one-line-per-decision format that admins grep next to Postfix's own lines.
// Every line passes through escape_log_text() in log_line(), so no text a client controls
// (HELO, envelope addresses, header values) can end a line or start a forged one, whichever
// sink writes it.
// Thread-safety: the sink is set once at start-up; write() is safe from any thread.
#pragma once

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
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
// Escapes `line` (see escape_log_text) and hands it to the sink.
void log_line(LogLevel level, std::string_view line);

// The one escaping of logged text. Printable ASCII and valid UTF-8 stay as they are; a
// backslash is doubled, so that a client cannot write something that reads as an escape;
// LF, CR and TAB become \n, \r, \t; every other byte that is not printable (other C0
// controls, DEL, bytes that are not valid UTF-8, and the UTF-8 bytes of the C1 controls
// U+0080-U+009F and of U+2028/U+2029, which some readers take for line ends) becomes \xNN.
// Undone unambiguously by reading "\\", "\n", "\r", "\t" and "\xNN" left to right.
// Returns false, leaving `out` alone, when nothing needs escaping (the usual case: one scan).
bool escape_log_text(std::string_view line, std::string& out);
std::string escaped_log_text(std::string_view line);  // for tests and callers that need a copy

template <class... Args>
void log(LogLevel level, fmt::format_string<Args...> f, Args&&... args) {
  if (log_enabled(level)) log_line(level, fmt::format(f, std::forward<Args>(args)...));
}

// Lets one line a key through per interval (a failure policy applied to every message of a DNS
// outage must not flood the log); counts the lines held back so the next one can say so.
class LogLimiter {
 public:
  explicit LogLimiter(std::chrono::seconds interval) : interval_(interval) {}
  // Nothing: hold this line back. Else the number of lines held back since the last one.
  std::optional<std::uint64_t> admit(std::string_view key,
                                     std::chrono::system_clock::time_point now);

 private:
  struct Slot {
    std::chrono::system_clock::time_point next{};
    std::uint64_t held = 0;
  };
  std::chrono::seconds interval_;
  std::mutex mutex_;
  std::map<std::string, Slot, std::less<>> slots_;
};

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
