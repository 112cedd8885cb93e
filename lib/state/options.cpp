#include "mxguard/state/options.h"

#include <fmt/format.h>

namespace mxguard::state {

std::vector<options::Spec> state_option_specs() {
  using options::Kind;
  return {
      {"state", Kind::Value,
       "where strikes and bans live: memory, or redis://host:port/db to share them"},
      {"state-file", Kind::Value, "memory state: file that keeps bans across restarts"},
      {"state-max-entries", Kind::Value, "memory state: most entries kept (about 100 bytes each)"},
      {"redis-timeout", Kind::Value, "give up on one Redis call after this long (default 200ms)"},
      {"on-store-error", Kind::Value,
       "accept (default) or tempfail when the state store cannot answer"},
      {"ban-strikes", Kind::Value, "strikes within ban-window that ban a client (default 3)"},
      {"ban-window", Kind::Value, "strikes count within this window from the first (default 10m)"},
      {"ban-time", Kind::Value, "length of a first ban (default 30m)"},
      {"ban-escalated-time", Kind::Value, "length of a repeated ban (default 1d)"},
      {"ban-escalation-window", Kind::Value,
       "a ban this soon after the last one ended is repeated (1d)"},
      {"ban-aggregate-v4-prefix", Kind::Value,
       "IPv4 clients share strikes per network of this prefix (32)"},
      {"ban-aggregate-v6-prefix", Kind::Value,
       "IPv6 clients share strikes per network of this prefix (64)"},
      {"allow-networks", Kind::List, "clients never banned (CIDR)"},
      {"ban-loopback", Kind::Value,
       "strike and ban loopback clients too (yes/no, no; for test set-ups only)"},
      {"provider-suffixes", Kind::List, "host name suffixes of providers never banned (FCrDNS)"},
      {"ledger", Kind::Value,
       "remember the mail our users send, so bounces can prove they answer it (yes/no, yes)"},
      {"ledger-lifetime", Kind::Value, "how long the ledger remembers a message (default 14d)"},
      {"ledger-max-entries", Kind::Value,
       "memory state: most recipients and Message-IDs the ledger holds (about 40 bytes each)"},
      {"ledger-file", Kind::Value, "memory state: file that keeps the ledger across restarts"},
      {"ledger-key-file", Kind::Value,
       "secret the ledger's hashes are made with; created on first start; the same on every host"},
  };
}

namespace {

options::Problem load_backend(const options::Reader& r, StateOptions& o) {
  if (const options::RawValue* v = r.last("state")) {
    if (v->value != "memory") {
      auto url = RedisUrl::parse(v->value);
      if (!url)
        return ConfigError{v->where, fmt::format("state: expected memory or "
                                                 "redis://host:port/db, got '{}': {}",
                                                 v->value, url.error())};
      o.redis = *url;
    }
    o.state = v->value;
  }
  o.state_file = r.string("state-file", o.state_file);
  return std::nullopt;
}

options::Problem load_provider_suffixes(const options::Reader& r, BanSettings& b) {
  auto suffixes = r.list("provider-suffixes");
  if (!suffixes) return suffixes.error();
  for (const auto& s : *suffixes) {
    std::string d = options::normalise_domain(s.value);
    if (d.empty() || d.find_first_of("@/[]:") != std::string::npos)
      return ConfigError{s.where,
                         fmt::format("provider-suffixes: '{}' is not a domain suffix", s.value)};
    b.provider_suffixes.push_back(d);
  }
  return std::nullopt;
}

options::Problem load_ledger(const options::Reader& r, LedgerOptions& o) {
  using std::chrono::hours;
  constexpr std::chrono::milliseconds sec(1000);
  for (auto e : {r.flag("ledger", o.enabled),
                 r.duration("ledger-lifetime", sec, sec, hours(24 * 90), "14d, 336h", o.lifetime),
                 r.number("ledger-max-entries", 1000, 1'000'000'000, o.max_entries)})
    if (e) return e;
  o.file = r.string("ledger-file", o.file);
  o.key_file = r.string("ledger-key-file", o.key_file);
  if (o.enabled && o.key_file.empty()) {
    const options::RawValue* v = r.last("ledger-key-file");
    return ConfigError{v ? v->where : "ledger-key-file",
                       "ledger-key-file: the ledger needs a key file (or set ledger = no)"};
  }
  return std::nullopt;
}

}  // namespace

options::Problem load_state_options(const options::Reader& r, StateOptions& o) {
  using std::chrono::milliseconds;
  constexpr milliseconds ms(1), sec(1000), year(365LL * 86'400'000);
  constexpr std::string_view eg = "30m, 1800s, 1d";
  BanSettings& b = o.bans;
  for (auto e :
       {load_backend(r, o), r.number("state-max-entries", 1000, 1'000'000'000, o.max_entries),
        r.duration("redis-timeout", ms, 10 * ms, 30 * sec, "200ms", o.redis_timeout),
        r.on_error("on-store-error", o.on_error), r.number("ban-strikes", 1, 1'000'000, b.strikes),
        r.duration("ban-window", sec, sec, year, eg, b.window),
        r.duration("ban-time", sec, sec, year, eg, b.ban_time),
        r.duration("ban-escalated-time", sec, sec, year, eg, b.escalated_time),
        r.duration("ban-escalation-window", sec, milliseconds(0), year, eg, b.escalation_window),
        r.number("ban-aggregate-v4-prefix", 8, 32, b.v4_prefix),
        r.number("ban-aggregate-v6-prefix", 16, 128, b.v6_prefix),
        r.networks("allow-networks", b.allow), r.flag("ban-loopback", b.ban_loopback),
        load_provider_suffixes(r, b), load_ledger(r, o.ledger)})
    if (e) return e;
  return std::nullopt;
}

}  // namespace mxguard::state
