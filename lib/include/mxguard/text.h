// ASCII text helpers for every layer: trimming white space and ASCII case folding. Mail
// protocol text (domains as A-labels, local parts, header field names, table keys, option
// values) is compared in ASCII case only; nothing here depends on the locale.
// Who calls it: all of lib/ (this is the bottom layer), milter/ and the tests.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mxguard {

// Space, tab, CR and LF: the white space of option lines, key files and header fields.
constexpr bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// `s` without leading and trailing space, tab, CR and LF.
std::string_view trim(std::string_view s);
// `s` without leading and trailing characters of `chars` (Postfix tables take FF and VT as
// white space too; access results only space and tab).
std::string_view trim(std::string_view s, std::string_view chars);

constexpr char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}
// ASCII letters lowered, every other byte (UTF-8 included) kept.
std::string ascii_lowercase(std::string_view s);

// Equal, or starting with `prefix`, ignoring ASCII case.
bool iequals(std::string_view a, std::string_view b);
bool istarts_with(std::string_view s, std::string_view prefix);

// The whole of `s` as a decimal integer (an optional '-', digits), or nothing.
std::optional<std::int64_t> parse_int(std::string_view s);

}  // namespace mxguard
