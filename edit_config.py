import sys
def edit_cpp(s):
    s = s.replace('#include <fstream>\n', '#include <charconv>\n#include <fstream>\n', 1)
    # 1. includes
    s = s.replace('#include "mxguard/tables/access_action.h"\n',
                  '#include "mxguard/state/options.h"\n#include "mxguard/tables/access_action.h"\n', 1)
    # 2. options, in their own add_options() call so they read as a group
    anchor = '''                    fmt::format("on, off or report (default {})", to_string(mode)).c_str());
  }
  return d;
}'''
    assert anchor in s
    s = s.replace(anchor, '''                    fmt::format("on, off or report (default {})", to_string(mode)).c_str());
  }
  auto str = [] { return po::value<std::string>(); };
  auto list = [] { return po::value<std::vector<std::string>>()->composing(); };
  // clang-format off
  d.add_options()
    ("state", str(), "where strikes and bans live: memory, or redis://host:port/db to share them")
    ("state-file", str(), "memory state: file that keeps bans across restarts")
    ("state-max-entries", str(), "memory state: most entries kept (about 100 bytes each)")
    ("redis-timeout", str(), "give up on one Redis call after this long (default 200ms)")
    ("ban-strikes", str(), "strikes within ban-window that ban a client (default 3)")
    ("ban-window", str(), "strikes count within this window from the first (default 10m)")
    ("ban-time", str(), "length of a first ban (default 30m)")
    ("ban-escalated-time", str(), "length of a repeated ban (default 1d)")
    ("ban-escalation-window", str(), "a ban this soon after the last one ended is repeated (1d)")
    ("ban-aggregate-v4-prefix", str(), "IPv4 clients share strikes per network of this prefix (32)")
    ("ban-aggregate-v6-prefix", str(), "IPv6 clients share strikes per network of this prefix (64)")
    ("allow-networks", list(), "clients never banned (CIDR)")
    ("provider-suffixes", list(), "host name suffixes of providers never banned (FCrDNS)");
  // clang-format on
  return d;
}''', 1)
    # 3. the loader, before normalise_domain
    anchor = 'std::string normalise_domain(std::string_view d) {\n'
    assert s.count(anchor) == 1
    s = s.replace(anchor, LOADER + anchor, 1)
    # 4. the call in build()
    anchor = '''  if (auto e = load_tables(r, "recipient-access", cfg->recipient_access)) return unexpected(*e);
'''
    assert anchor in s
    s = s.replace(anchor, anchor + '''  if (auto e = load_state_options(r, cfg->state)) return unexpected(*e);
''', 1)
    return s

LOADER = '''// State store and bans (see state/options.h). Every bad value names its file and line.
std::optional<ConfigError> load_state_options(const Reader& r, state::StateOptions& o) {
  using std::chrono::milliseconds;
  if (const RawValue* v = r.last("state")) {
    if (v->value != "memory") {
      auto url = state::RedisUrl::parse(v->value);
      if (!url)
        return ConfigError{v->where, fmt::format("state: expected memory or "
                                                 "redis://host:port/db, got '{}': {}",
                                                 v->value, url.error())};
      o.redis = *url;
    }
    o.state = v->value;
  }
  o.state_file = r.string("state-file", o.state_file);
  auto number = [&](std::string_view key, long long lo, long long hi,
                    auto& out) -> std::optional<ConfigError> {
    const RawValue* v = r.last(key);
    if (!v) return std::nullopt;
    long long n = 0;
    const std::string& s = v->value;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size() || n < lo || n > hi)
      return ConfigError{v->where, fmt::format("{}: expected a number from {} to {}, got '{}'",
                                               key, lo, hi, s)};
    out = static_cast<std::remove_reference_t<decltype(out)>>(n);
    return std::nullopt;
  };
  auto duration = [&](std::string_view key, milliseconds bare, milliseconds lo, milliseconds hi,
                      auto& out) -> std::optional<ConfigError> {
    const RawValue* v = r.last(key);
    if (!v) return std::nullopt;
    auto d = state::parse_duration(v->value, bare);
    if (!d || *d < lo || *d > hi)
      return ConfigError{v->where,
                         fmt::format("{}: expected a duration from {} ms to {} ms (e.g. {}), "
                                     "got '{}'",
                                     key, lo.count(), hi.count(),
                                     bare.count() == 1 ? "200ms" : "30m, 1800s, 1d", v->value)};
    out = std::chrono::duration_cast<std::remove_reference_t<decltype(out)>>(*d);
    return std::nullopt;
  };
  constexpr milliseconds ms(1), sec(1000), year(365LL * 86'400'000);
  state::BanSettings& b = o.bans;
  for (auto e : {number("state-max-entries", 1000, 1'000'000'000, o.max_entries),
                 duration("redis-timeout", ms, 10 * ms, 30 * sec, o.redis_timeout),
                 number("ban-strikes", 1, 1'000'000, b.strikes),
                 duration("ban-window", sec, sec, year, b.window),
                 duration("ban-time", sec, sec, year, b.ban_time),
                 duration("ban-escalated-time", sec, sec, year, b.escalated_time),
                 duration("ban-escalation-window", sec, milliseconds(0), year, b.escalation_window),
                 number("ban-aggregate-v4-prefix", 8, 32, b.v4_prefix),
                 number("ban-aggregate-v6-prefix", 16, 128, b.v6_prefix)})
    if (e) return e;
  auto nets = r.list("allow-networks");
  if (!nets) return nets.error();
  for (const auto& n : *nets) {
    auto c = net::Cidr::parse_or_explain(n.value);
    if (!c)
      return ConfigError{n.where,
                         fmt::format("allow-networks: '{}': {}", n.value, c.error())};
    b.allow.add(*c);
  }
  auto suffixes = r.list("provider-suffixes");
  if (!suffixes) return suffixes.error();
  for (const auto& s : *suffixes) {
    std::string d = lowercase(s.value);
    if (d.empty() || d.find_first_of("@/[]:") != std::string::npos || d == ".")
      return ConfigError{s.where,
                         fmt::format("provider-suffixes: '{}' is not a domain suffix", s.value)};
    b.provider_suffixes.push_back(d);
  }
  return std::nullopt;
}

'''

def edit_config_h(s):
    a = '#include "mxguard/pipeline.h"\n'
    assert a in s
    s = s.replace(a, a + '#include "mxguard/state/options.h"\n', 1)
    a = '''  // check.NAME = on|off|report, for every known check.'''
    assert a in s
    s = s.replace(a, '''  // Strikes, bans and where they are kept (state, state-file, ban-*, allow-networks...).
  state::StateOptions state;

''' + a, 1)
    return s

def edit_check_h(s):
    a = '''struct CheckContext {
  const Config& config;
'''
    assert a in s
    s = s.replace(a, a + '''  // Strikes and bans (null: no state). Process-wide, owned by StateRuntime; the adapter holds a
  // reference for the duration of the callback (see state/runtime.h).
  state::Bans* bans = nullptr;
  state::StateStore* store = nullptr;
''', 1)
    a = 'struct Config;\n'
    s = s.replace(a, a + 'namespace state {\nclass Bans;\nclass StateStore;\n}  // namespace state\n', 1)
    return s

EDITS = {'lib/config.cpp': edit_cpp, 'lib/include/mxguard/config.h': edit_config_h,
         'lib/include/mxguard/check.h': edit_check_h}
path, src, dst = sys.argv[1], sys.argv[2], sys.argv[3]
open(dst, 'w').write(EDITS[path](open(src).read()))
