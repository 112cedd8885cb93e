// libFuzzer target for the escaping of log lines (escape_log_text, run on every line logged):
// the result never holds a control character or DEL, holds no byte of invalid UTF-8, reads
// back to exactly the input, and the fast path ("nothing to escape") agrees with the slow one.
// Run: build-fuzz/tests/fuzz/fuzz_log tests/fuzz/corpus/log
#include <cstddef>
#include <cstdint>
#include <string>

#include "mxguard/log.h"

namespace {

// Reads an escaped line back; false when it holds something that is not one of the escapes.
bool unescape(const std::string& s, std::string& out) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out.push_back(s[i]);
      continue;
    }
    if (++i == s.size()) return false;
    switch (s[i]) {
      case '\\':
        out.push_back('\\');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'x': {
        if (i + 2 >= s.size()) return false;
        const int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
        if (hi < 0 || lo < 0) return false;
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        break;
      }
      default:
        return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mxguard;
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::string out;
  const bool changed = escape_log_text(input, out);
  if (!changed) out = input;
  for (unsigned char c : out)
    if (c < 0x20 || c == 0x7f) __builtin_trap();
  std::string back;
  if (!unescape(out, back) || back != input) __builtin_trap();
  // What escaping leaves is printable: escaping it again only doubles its backslashes (so it
  // holds no control, no invalid UTF-8, no C1 control, no U+2028/9).
  std::string doubled;
  for (char c : out) {
    doubled.push_back(c);
    if (c == '\\') doubled.push_back(c);
  }
  if (escaped_log_text(out) != doubled) __builtin_trap();
  if (!changed && escaped_log_text(input) != input) __builtin_trap();
  return 0;
}
