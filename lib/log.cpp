#include "mxguard/log.h"

#include <utility>

#include <syslog.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
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

// Bytes written as they are: printable ASCII but the backslash. A table, so that the scan of
// a clean line (nearly every line) is one load and test per byte.
constexpr auto kPlain = [] {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x7f; ++c)
    t[static_cast<std::size_t>(c)] = c != '\\';
  return t;
}();

bool plain(unsigned char c) {
  return kPlain[c];
}

// Length of the valid UTF-8 sequence (RFC 3629: no overlong forms, no surrogates, nothing
// above U+10FFFF) at the start of `s`, whose first byte is >= 0x80; 0 when it is not one.
std::size_t utf8_length(std::string_view s) {
  auto at = [&s](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  auto cont = [&](std::size_t i, unsigned char lo = 0x80, unsigned char hi = 0xbf) {
    return i < s.size() && at(i) >= lo && at(i) <= hi;
  };
  const unsigned char b = at(0);
  if (b >= 0xc2 && b <= 0xdf) return cont(1) ? 2 : 0;
  if (b == 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if (b == 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (b >= 0xe1 && b <= 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (b == 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (b >= 0xf1 && b <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (b == 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

// Valid UTF-8 that still breaks or hides a line for some reader: the C1 controls (U+0085 is
// NEXT LINE) and U+2028/U+2029 (Python's str.splitlines() splits at all of them).
bool unprintable_utf8(std::string_view seq) {
  auto at = [&seq](std::size_t i) { return static_cast<unsigned char>(seq[i]); };
  if (seq.size() == 2) return at(0) == 0xc2 && at(1) <= 0x9f;
  return seq.size() == 3 && at(0) == 0xe2 && at(1) == 0x80 && (at(2) == 0xa8 || at(2) == 0xa9);
}

void append_hex(std::string& out, unsigned char c) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.append("\\x");
  out.push_back(kHex[c >> 4]);
  out.push_back(kHex[c & 0xf]);
}

// Where the first byte that needs escaping is, or line.size(): the fast path of every line.
std::size_t first_to_escape(std::string_view line) {
  const auto* p = reinterpret_cast<const unsigned char*>(line.data());
  std::size_t i = 0;
  while (i < line.size()) {
    // Eight bytes at a time while none is below 0x20, above 0x7e or a backslash (the usual
    // bit tricks for "has a byte less than / more than / equal to"), then byte by byte.
    constexpr std::uint64_t kOnes = 0x0101010101010101, kHigh = 0x8080808080808080;
    while (line.size() - i >= 8) {
      std::uint64_t w;
      std::memcpy(&w, p + i, 8);
      const std::uint64_t below = (w - kOnes * 0x20) & ~w & kHigh;
      const std::uint64_t above = ((w + kOnes) | w) & kHigh;
      const std::uint64_t b = w ^ (kOnes * '\\');
      const std::uint64_t backslash = (b - kOnes) & ~b & kHigh;
      if (below | above | backslash) break;
      i += 8;
    }
    while (i < line.size() && kPlain[p[i]])
      ++i;
    if (i == line.size()) break;
    const unsigned char c = p[i];
    if (c < 0x80) return i;
    const std::size_t n = utf8_length(line.substr(i));
    if (n == 0 || unprintable_utf8(line.substr(i, n))) return i;
    i += n;
  }
  return i;
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

bool escape_log_text(std::string_view line, std::string& out) {
  std::size_t i = first_to_escape(line);
  if (i == line.size()) return false;
  out.clear();
  out.reserve(line.size() + 16);
  out.append(line.substr(0, i));
  while (i < line.size()) {
    const auto c = static_cast<unsigned char>(line[i]);
    if (plain(c)) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    switch (c) {
      case '\\':
        out.append("\\\\");
        ++i;
        continue;
      case '\n':
        out.append("\\n");
        ++i;
        continue;
      case '\r':
        out.append("\\r");
        ++i;
        continue;
      case '\t':
        out.append("\\t");
        ++i;
        continue;
      default:
        break;
    }
    const std::size_t n = c >= 0x80 ? utf8_length(line.substr(i)) : 0;
    if (n == 0) {
      append_hex(out, c);  // a control, DEL, or a byte that starts no valid UTF-8 sequence
      ++i;
      continue;
    }
    const std::string_view seq = line.substr(i, n);
    if (unprintable_utf8(seq)) {
      for (char b : seq)
        append_hex(out, static_cast<unsigned char>(b));
    } else {
      out.append(seq);
    }
    i += n;
  }
  return true;
}

std::string escaped_log_text(std::string_view line) {
  std::string out;
  if (!escape_log_text(line, out)) out.assign(line);
  return out;
}

void log_line(LogLevel level, std::string_view line) {
  // Client text (HELO, addresses, header values) reaches log lines through many formats; it
  // is made harmless here, once, for every sink.
  std::string escaped;
  if (escape_log_text(line, escaped)) line = escaped;
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
