// options::Reader: the one typed reader of option values. The command line and the config file
// are gathered into raw values that remember where each was set ("file:line" or "command
// line"); each module then reads its own options from the Reader, with one parser per kind of
// value (flag, number, size, duration, list, domains, networks, on-error), and every bad value
// comes back as a ConfigError naming its place.
// Who calls it: lib/config.cpp gathers the raw values; each module's load_*_options() reads
// them (dns/options, state/options, batv/options, ...); tables/options adds table lists.
// Thread-safety: immutable after construction.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mxguard/check_mode.h"
#include "mxguard/config_error.h"
#include "mxguard/expected.h"
#include "mxguard/net/ip.h"

namespace mxguard::options {

struct RawValue {
  std::string value;
  std::string where;  // "file:line" or "command line"
};
using RawMap = std::map<std::string, std::vector<RawValue>, std::less<>>;

// How an option takes its value on the command line (the config file is always key = value).
enum class Kind { Value, List, Flag, Files };
struct Spec {
  const char* name;  // "dns-timeout"; "config,c" adds a short flag
  Kind kind;
  const char* help;
};

// "30m", "1800s", "1800", "1h", "1d", "200ms". A bare number counts `bare_unit`s.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text,
                                                        std::chrono::milliseconds bare_unit);

// Lower case, no trailing dot: how domains are compared.
std::string normalise_domain(std::string_view d);

using Problem = std::optional<ConfigError>;

class Reader {
 public:
  explicit Reader(RawMap raw) : raw_(std::move(raw)) {}

  const RawValue* last(std::string_view key) const;
  bool has(std::string_view key) const { return last(key) != nullptr; }
  std::string string(std::string_view key, std::string fallback) const;
  // A list: repeated, comma/space separated, or file:/path with one entry per line; each item
  // keeps the place it came from (the file's own line for file: sources).
  Expected<std::vector<RawValue>, ConfigError> list(std::string_view key) const;

  // Each reads `key` into `out` when it is set and leaves `out` alone when it is not.
  Problem flag(std::string_view key, bool& out) const;
  Problem number(std::string_view key, long long lo, long long hi, long long& out) const;
  template <class T>
  Problem number(std::string_view key, long long lo, long long hi, T& out) const {
    long long n = static_cast<long long>(out);
    if (auto e = number(key, lo, hi, n)) return e;
    out = static_cast<T>(n);
    return std::nullopt;
  }
  // A byte count with an optional k or m suffix (128k).
  Problem size(std::string_view key, long long lo, long long hi, std::size_t& out) const;
  Problem duration(std::string_view key, std::chrono::milliseconds bare_unit,
                   std::chrono::milliseconds lo, std::chrono::milliseconds hi,
                   std::string_view example, std::chrono::milliseconds& out) const;
  template <class D>
  Problem duration(std::string_view key, std::chrono::milliseconds bare_unit,
                   std::chrono::milliseconds lo, std::chrono::milliseconds hi,
                   std::string_view example, D& out) const {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(out);
    if (auto e = duration(key, bare_unit, lo, hi, example, ms)) return e;
    out = std::chrono::duration_cast<D>(ms);
    return std::nullopt;
  }
  Problem on_error(std::string_view key, FailureAction& out) const;
  // on, off, report; and auto where `with_auto`.
  Problem check_mode(std::string_view key, bool with_auto, CheckMode& out) const;
  // One of `words`; `out` gets its index.
  Problem choice(std::string_view key, std::initializer_list<std::string_view> words,
                 std::size_t& out) const;
  // Domains, normalised; an item holding one of `forbidden` is an error.
  Problem domains(std::string_view key, std::string_view forbidden,
                  std::vector<std::string>& out) const;
  // Addresses or local parts: angle brackets stripped, lower case.
  Problem addresses(std::string_view key, std::vector<std::string>& out) const;
  Problem networks(std::string_view key, net::CidrSet& out) const;
  Problem ip_addresses(std::string_view key, std::vector<net::IpAddress>& out) const;

 private:
  ConfigError bad(const RawValue& v, std::string_view key, std::string_view expected) const;
  RawMap raw_;
};

}  // namespace mxguard::options
