#include "mxguard/state/snapshot.h"
#include "mxguard/text.h"

#include <fmt/format.h>

#include <charconv>
#include <utility>

namespace mxguard::state {

namespace {

constexpr std::string_view kHeader = "mxguard-state 1";

void fnv_add(std::uint64_t& h, std::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
}

void escape_into(std::string& out, std::string_view s) {
  if (s.empty()) {
    out.push_back('-');
    return;
  }
  static const char* hex = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if (c <= 0x20 || c >= 0x7f || c == '%' || (c == '-' && s.size() == 1)) {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
}

std::optional<std::string> unescape(std::string_view s) {
  if (s == "-") return std::string();
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
    if (ec != std::errc() || p != s.data() + i + 3) return std::nullopt;
    out.push_back(static_cast<char>(v));
    i += 2;
  }
  return out;
}

}  // namespace

bool SnapshotReader::fail(std::string message) {
  error_ = SnapshotError{lineno_, std::move(message)};
  return false;
}

bool SnapshotReader::add_line(std::string_view line) {
  if (error_) return false;
  ++lineno_;
  if (ended_) return fail(fmt::format("line {}: data after the end line", lineno_));
  if (lineno_ == 1) return header_line(line);
  if (line.rfind("end ", 0) == 0) return end_line(line.substr(4));
  fnv_add(sum_, line);
  fnv_add(sum_, "\n");
  return entry_line(line);
}

bool SnapshotReader::header_line(std::string_view line) {
  if (line != kHeader) return fail("line 1: not an mxguard state file (bad header)");
  fnv_add(sum_, line);
  fnv_add(sum_, "\n");
  return true;
}

// "end <entries> <checksum>", `rest` being what follows "end ".
bool SnapshotReader::end_line(std::string_view rest) {
  auto sp = rest.find(' ');
  const std::int64_t n =
      sp == std::string_view::npos ? -1 : parse_int(rest.substr(0, sp)).value_or(-1);
  std::uint64_t want = 0;
  std::string_view hex = sp == std::string_view::npos ? "" : rest.substr(sp + 1);
  auto [p, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), want, 16);
  if (n < 0 || ec != std::errc() || p != hex.data() + hex.size() || hex.empty())
    return fail(fmt::format("line {}: bad end line", lineno_));
  if (static_cast<std::size_t>(n) != entries_.size())
    return fail(fmt::format("line {}: end line counts {} entries, the file has {}", lineno_, n,
                            entries_.size()));
  if (want != sum_) return fail(fmt::format("line {}: checksum mismatch", lineno_));
  ended_ = true;
  return true;
}

// "<expiry> <key> <value>".
bool SnapshotReader::entry_line(std::string_view v) {
  auto a = v.find(' ');
  auto b = a == std::string_view::npos ? a : v.find(' ', a + 1);
  if (b == std::string_view::npos || v.find(' ', b + 1) != std::string_view::npos)
    return fail(fmt::format("line {}: expected 'expiry key value'", lineno_));
  auto exp = parse_int(v.substr(0, a));
  auto key = unescape(v.substr(a + 1, b - a - 1));
  auto value = unescape(v.substr(b + 1));
  if (!exp || *exp < 0 || !key || key->empty() || !value)
    return fail(fmt::format("line {}: bad entry", lineno_));
  entries_.push_back({*exp, std::move(*key), std::move(*value)});
  return true;
}

SnapshotParse SnapshotReader::finish() && {
  if (error_) return unexpected(std::move(*error_));
  if (!ended_)
    return unexpected(SnapshotError{
        0, lineno_ == 0 ? "the file is empty" : "no end line (the file is cut short)"});
  return std::move(entries_);
}

SnapshotParse parse_snapshot(std::string_view text) {
  SnapshotReader reader;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    if (!reader.add_line(text.substr(0, nl))) break;
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
  }
  return std::move(reader).finish();
}

SnapshotWriter::SnapshotWriter() {
  text_.append(kHeader).push_back('\n');
}

void SnapshotWriter::add(std::int64_t expires_ms, std::string_view key, std::string_view value) {
  text_.append(std::to_string(expires_ms)).push_back(' ');
  escape_into(text_, key);
  text_.push_back(' ');
  escape_into(text_, value);
  text_.push_back('\n');
  ++entries_;
}

std::string SnapshotWriter::take() {
  // Summed here rather than in add(): the store adds under a shard's lock and takes after it.
  fnv_add(sum_, text_);
  return std::exchange(text_, std::string());
}

std::string SnapshotWriter::finish() {
  std::string text = take();
  text.append(fmt::format("end {} {:016x}\n", entries_, sum_));
  return text;
}

std::string write_snapshot(const std::vector<SnapshotEntry>& entries) {
  SnapshotWriter w;
  for (const auto& e : entries)
    w.add(e.expires_ms, e.key, e.value);
  return w.finish();
}

}  // namespace mxguard::state
