#include "mxguard/options/reader.h"

#include "mxguard/idna.h"
#include "mxguard/text.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <fstream>

namespace mxguard::options {

namespace {

// Reads a file: source of a list, one item a line, '#' comments.
Problem read_list_file(std::string_view key, const RawValue& from, const std::string& path,
                       std::vector<RawValue>& out) {
  std::ifstream in(path);
  if (!in) return ConfigError{from.where, fmt::format("{}: cannot read '{}'", key, path)};
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    std::string_view t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    out.push_back({std::string(t), fmt::format("{}:{}", path, n)});
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text,
                                                        std::chrono::milliseconds bare_unit) {
  std::int64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || p == text.data() || n < 0 || n > 1'000'000'000) return std::nullopt;
  std::string_view unit(p, static_cast<std::size_t>(text.data() + text.size() - p));
  using std::chrono::milliseconds;
  if (unit.empty()) return milliseconds(n * bare_unit.count());
  if (unit == "ms") return milliseconds(n);
  if (unit == "s") return milliseconds(n * 1000);
  if (unit == "m") return milliseconds(n * 60'000);
  if (unit == "h") return milliseconds(n * 3'600'000);
  if (unit == "d") return milliseconds(n * 86'400'000);
  return std::nullopt;
}

std::string normalise_domain(std::string_view d) {
  // The A-label, as the envelope's domains are compared (address.h); a name that cannot be
  // one stays lower case for the caller to judge.
  auto ascii = domain_to_ascii(d);
  return ascii ? *ascii : ascii_lowercase(without_trailing_dots(d));
}

const RawValue* Reader::last(std::string_view key) const {
  auto it = raw_.find(key);
  return it == raw_.end() || it->second.empty() ? nullptr : &it->second.back();
}

std::string Reader::string(std::string_view key, std::string fallback) const {
  const RawValue* v = last(key);
  return v ? v->value : fallback;
}

ConfigError Reader::bad(const RawValue& v, std::string_view key, std::string_view expected) const {
  return ConfigError{v.where, fmt::format("{}: expected {}, got '{}'", key, expected, v.value)};
}

Expected<std::vector<RawValue>, ConfigError> Reader::list(std::string_view key) const {
  std::vector<RawValue> out;
  auto it = raw_.find(key);
  if (it == raw_.end()) return out;
  for (const RawValue& rv : it->second) {
    std::string_view rest = rv.value;
    while (!rest.empty()) {
      const std::size_t end = std::min(rest.find_first_of(", \t"), rest.size());
      const std::string item(rest.substr(0, end));
      rest.remove_prefix(std::min(end + 1, rest.size()));
      if (item.empty()) continue;
      if (item.rfind("file:", 0) == 0) {
        if (auto e = read_list_file(key, rv, item.substr(5), out)) return unexpected(*e);
      } else {
        out.push_back({item, rv.where});
      }
    }
  }
  return out;
}

Problem Reader::flag(std::string_view key, bool& out) const {
  const RawValue* v = last(key);
  if (!v) return std::nullopt;
  const std::string s = ascii_lowercase(v->value);
  if (s == "yes" || s == "true" || s == "on" || s == "1") {
    out = true;
  } else if (s == "no" || s == "false" || s == "off" || s == "0") {
    out = false;
  } else {
    return bad(*v, key, "yes or no");
  }
  return std::nullopt;
}

Problem Reader::number(std::string_view key, long long lo, long long hi, long long& out) const {
  const RawValue* v = last(key);
  if (!v) return std::nullopt;
  long long n = 0;
  const std::string& s = v->value;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || n < lo || n > hi)
    return bad(*v, key, fmt::format("a number from {} to {}", lo, hi));
  out = n;
  return std::nullopt;
}

Problem Reader::size(std::string_view key, long long lo, long long hi, std::size_t& out) const {
  const RawValue* v = last(key);
  if (!v) return std::nullopt;
  std::string s = ascii_lowercase(v->value);
  long long mult = 1;
  if (!s.empty() && (s.back() == 'k' || s.back() == 'm')) {
    mult = s.back() == 'k' ? 1024 : 1024 * 1024;
    s.pop_back();
  }
  long long n = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (s.empty() || s.size() > 9 || ec != std::errc() || p != s.data() + s.size() || n * mult < lo ||
      n * mult > hi)
    return bad(*v, key, fmt::format("a number from {} to {}", lo, hi));
  out = static_cast<std::size_t>(n * mult);
  return std::nullopt;
}

Problem Reader::duration(std::string_view key, std::chrono::milliseconds bare_unit,
                         std::chrono::milliseconds lo, std::chrono::milliseconds hi,
                         std::string_view example, std::chrono::milliseconds& out) const {
  const RawValue* v = last(key);
  if (!v) return std::nullopt;
  auto d = parse_duration(v->value, bare_unit);
  if (!d || *d < lo || *d > hi)
    return bad(
        *v, key,
        fmt::format("a duration from {} ms to {} ms (e.g. {})", lo.count(), hi.count(), example));
  out = *d;
  return std::nullopt;
}

Problem Reader::on_error(std::string_view key, FailureAction& out) const {
  std::size_t i = 0;
  if (auto e = choice(key, {"tempfail", "accept"}, i)) return e;
  if (has(key)) out = i == 0 ? FailureAction::Tempfail : FailureAction::Accept;
  return std::nullopt;
}

Problem Reader::check_mode(std::string_view key, bool with_auto, CheckMode& out) const {
  std::size_t i = 0;
  auto e = with_auto ? choice(key, {"on", "off", "report", "auto"}, i)
                     : choice(key, {"on", "off", "report"}, i);
  if (e) return e;
  constexpr CheckMode kModes[] = {CheckMode::On, CheckMode::Off, CheckMode::Report,
                                  CheckMode::Auto};
  if (has(key)) out = kModes[i];
  return std::nullopt;
}

Problem Reader::choice(std::string_view key, std::initializer_list<std::string_view> words,
                       std::size_t& out) const {
  const RawValue* v = last(key);
  if (!v) return std::nullopt;
  std::size_t i = 0;
  for (std::string_view w : words) {
    if (v->value == w) {
      out = i;
      return std::nullopt;
    }
    ++i;
  }
  std::string expected;
  i = 0;
  for (std::string_view w : words) {
    expected += i == 0 ? "" : i + 1 == words.size() ? " or " : ", ";
    expected += w;
    ++i;
  }
  return bad(*v, key, expected);
}

Problem Reader::domains(std::string_view key, std::string_view forbidden,
                        std::vector<std::string>& out) const {
  auto items = list(key);
  if (!items) return items.error();
  for (const auto& d : *items) {
    std::string n = normalise_domain(d.value);
    if (n.empty() || n.find_first_of(forbidden) != std::string::npos)
      return ConfigError{d.where, fmt::format("{}: '{}' is not a domain", key, d.value)};
    out.push_back(n);
  }
  return std::nullopt;
}

Problem Reader::addresses(std::string_view key, std::vector<std::string>& out) const {
  auto items = list(key);
  if (!items) return items.error();
  for (const auto& i : *items) {
    std::string_view a = trim(i.value);
    if (a.size() >= 2 && a.front() == '<' && a.back() == '>') a = a.substr(1, a.size() - 2);
    out.push_back(ascii_lowercase(a));
  }
  return std::nullopt;
}

Problem Reader::networks(std::string_view key, net::CidrSet& out) const {
  auto items = list(key);
  if (!items) return items.error();
  for (const auto& n : *items) {
    auto c = net::Cidr::parse_or_explain(n.value);
    if (!c)
      return ConfigError{n.where, fmt::format("{}: '{}' is not an address or network ({})", key,
                                              n.value, c.error())};
    out.add(*c);
  }
  return std::nullopt;
}

Problem Reader::ip_addresses(std::string_view key, std::vector<net::IpAddress>& out) const {
  auto items = list(key);
  if (!items) return items.error();
  for (const auto& i : *items) {
    auto a = net::IpAddress::parse(i.value);
    if (!a) return ConfigError{i.where, fmt::format("{}: '{}' is not an address", key, i.value)};
    out.push_back(*a);
  }
  return std::nullopt;
}

}  // namespace mxguard::options
