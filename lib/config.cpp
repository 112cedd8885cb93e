// Option parsing. Boost.Program_options holds the one list of options and parses the command
// line; the config file is read here line by line (rather than with parse_config_file) so that
// every error can name its file and line, which an admin needs at 3 a.m.
#include "mxguard/config.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <charconv>
#include <chrono>
#include <fstream>
#include <sstream>

#include "mxguard/batv/keys.h"
#include "mxguard/checks/backscatter.h"
#include "mxguard/dns/ldns_resolver.h"
#include "mxguard/message/classifier.h"
#include "mxguard/state/options.h"
#include "mxguard/tables/access_action.h"

namespace po = boost::program_options;

namespace mxguard {

namespace {

struct RawValue {
  std::string value;
  std::string where;  // "file:line" or "command line"
};
using RawMap = std::map<std::string, std::vector<RawValue>, std::less<>>;

// Options that make sense only on the command line.
constexpr std::string_view kCommandLineOnly[] = {"config", "check-config", "version",       "help",
                                                 "test",   "test-sender",  "test-recipient"};

const std::vector<std::pair<std::string, CheckMode>>& check_defaults() {
  static const std::vector<std::pair<std::string, CheckMode>> checks = {
      {"access", CheckMode::On},         {"forged-local-sender", CheckMode::Off},
      {"null-mx-sender", CheckMode::On}, {"unroutable-sender", CheckMode::Off},
      {"null-mx", CheckMode::On},        {"no-mail-domain", CheckMode::On},
      {"bogus-mx", CheckMode::On},       {"batv", CheckMode::Off},
      {"backscatter", CheckMode::Off},   {"ban", CheckMode::On},
      {"trap-mx", CheckMode::On},        {"unhandled-domain", CheckMode::On},
  };
  return checks;
}

po::options_description describe_options() {
  po::options_description d("mxguard options");
  auto str = [] { return po::value<std::string>(); };
  auto list = [] { return po::value<std::vector<std::string>>()->composing(); };
  auto flag = [] { return po::value<std::string>()->implicit_value("yes"); };
  // clang-format off
  d.add_options()
    ("help,h", flag(), "print this help and exit")
    ("version,V", flag(), "print the version and exit")
    ("config,c", str(), "read options from this file (key = value lines)")
    ("check-config,n", flag(), "check the configuration and tables, then exit")
    ("test,t", po::value<std::vector<std::string>>()->multitoken(), "run the message checks on these message files offline, then exit")
    ("test-sender", str(), "with -t: the envelope sender (default: the file's Return-Path)")
    ("test-recipient", str(), "with -t: the recipient (default: the first To address)")
    ("socket,p", str(), "milter socket: unix:/path, local:/path, inet:port@host, inet6:port@host")
    ("user,u", str(), "run as user[:group] after binding the socket")
    ("pidfile,P", str(), "write the process id to this file")
    ("foreground,f", flag(), "stay in the foreground and log to stderr too")
    ("log-level", str(), "error, warning, notice, info or debug")
    ("syslog", str(), "log to syslog, mail facility (yes/no)")
    ("report-only", flag(), "log what would be rejected, reject nothing")
    ("report-header", flag(), "add X-Mxguard: would-reject=CHECK to mail a report-only check would reject")
    ("metrics-file", str(), "write Prometheus metrics to this file every 5 s")
    ("metrics-listen", str(), "serve Prometheus metrics on ADDR:PORT, path /metrics")
    ("local-domains", list(), "domains we receive mail for")
    ("trusted-networks", list(), "client networks whose mail is ours (CIDR)")
    ("exempt-recipients", list(), "recipients never rejected (local parts or addresses)")
    ("exempt-senders", list(), "senders never rejected (local parts or addresses)")
    ("on-internal-error", str(), "tempfail or accept when mxguard itself fails")
    ("client-access", list(), "Postfix access tables for the client address and name")
    ("helo-access", list(), "Postfix access tables for the HELO/EHLO name")
    ("sender-access", list(), "Postfix access tables for the envelope sender")
    ("recipient-access", list(), "Postfix access tables for each recipient")
    ("our-relays", list(), "our outbound relays: host names, addresses or networks")
    ("our-message-id-domains", list(), "Message-ID domains of our mail besides local-domains")
    ("batv-key-file", str(), "BATV keys, 'K secret' per line, mode 600")
    ("batv-sign", str(), "sign envelope senders of outgoing mail (yes/no, default yes)")
    ("batv-form", str(), "prvs (prvs=KDDDSSSSSS=local@domain) or subaddress (local+prvs=...)")
    ("batv-lifetime", str(), "days a BATV tag stays valid (default 7)")
    ("batv-exclude-senders", list(), "senders never signed: addresses, local parts, @domain")
    ("batv-enforce-domains", list(), "domains whose bounces must carry a valid BATV tag")
    ("tag-lifetime", str(), "days an X-Mxguard-Tag stays valid (default 30)")
    ("max-body-scan", str(), "body bytes read for bounce classification (default 128k)")
    ("message-rules", str(), "directory of the bounce classifier tables")
    ("backscatter-allow", list(), "tables of senders/recipients whose bounces always pass")
    ("backscatter-check-mdn", str(), "judge read receipts (MDNs) as bounces (default no)")
    ("backscatter-reject-multi-recipient", str(), "refuse null-sender mail to several recipients")
    ("dns-server", list(), "DNS servers as address[:port] ([v6]:port); default /etc/resolv.conf")
    ("dns-timeout", str(), "wait this long for one DNS answer (e.g. 2s, 500ms)")
    ("dns-retries", str(), "ask every DNS server this many more times after a timeout")
    ("dns-deadline", str(), "a whole DNS route decision ends within this time (default 10s)")
    ("on-dns-error", str(), "tempfail or accept when DNS cannot answer")
    ("dns-cache-size", str(), "DNS answers kept in memory (0: no cache)")
    ("dns-cache-min-ttl", str(), "keep DNS answers at least this long (e.g. 10s)")
    ("dns-cache-max-ttl", str(), "keep DNS answers at most this long (e.g. 1d)")
    ("bogus-networks", str(), "cidr table of non-routable networks for bogus-mx");
  // clang-format on
  for (const auto& [name, mode] : check_defaults()) {
    d.add_options()(("check." + name).c_str(), str(),
                    fmt::format("on, off or report (default {})", to_string(mode)).c_str());
  }
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
    ("unhandled-domains", list(), "website-only domains: their mail is refused, their senders may earn strikes")
    ("self", list(), "our listening addresses, for MTAs that do not pass {daemon_addr} or {if_addr}")
    ("trap-address", list(), "listener addresses published only as fake (nolisting) MX")
    ("trap-allow-senders", list(), "access tables of senders or recipients let through a trap address")
    ("on-store-error", str(), "accept (default) or tempfail when the state store cannot answer")
    ("provider-suffixes", list(), "host name suffixes of providers never banned (FCrDNS)");
  // clang-format on
  return d;
}

std::string trim(std::string_view s) {
  auto sp = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && sp(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && sp(s.back()))
    s.remove_suffix(1);
  return std::string(s);
}

Expected<RawMap, ConfigError> parse_command_line(const po::options_description& desc,
                                                 const CommandLine& cl) {
  RawMap raw;
  try {
    po::parsed_options parsed = po::command_line_parser(cl.args).options(desc).run();
    for (const auto& o : parsed.options) {
      if (o.position_key != -1 || o.string_key.empty())
        return unexpected(ConfigError{
            "command line", fmt::format("unexpected argument '{}'", fmt::join(o.value, " "))});
      if (o.value.empty()) {
        raw[o.string_key].push_back({"yes", "command line"});
      } else {
        for (const auto& v : o.value)
          raw[o.string_key].push_back({v, "command line"});
      }
    }
  } catch (const po::error& e) {
    return unexpected(ConfigError{"command line", e.what()});
  }
  return raw;
}

Expected<RawMap, ConfigError> parse_config_file(const po::options_description& desc,
                                                const std::string& path) {
  std::ifstream in(path);
  if (!in) return unexpected(ConfigError{path, "cannot read the file"});
  RawMap raw;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    std::string where = fmt::format("{}:{}", path, lineno);
    auto eq = t.find('=');
    if (eq == std::string::npos)
      return unexpected(ConfigError{where, fmt::format("expected 'key = value', got '{}'", t)});
    std::string key = trim(std::string_view(t).substr(0, eq));
    std::string value = trim(std::string_view(t).substr(eq + 1));
    if (key.empty()) return unexpected(ConfigError{where, "missing key before '='"});
    if (!desc.find_nothrow(key, false))
      return unexpected(ConfigError{where, fmt::format("unknown option '{}'", key)});
    if (std::find(std::begin(kCommandLineOnly), std::end(kCommandLineOnly), key) !=
        std::end(kCommandLineOnly))
      return unexpected(ConfigError{where, fmt::format("'{}' is a command-line option", key)});
    raw[key].push_back({value, where});
  }
  return raw;
}

// Typed readers. Each names the place of a bad value.
class Reader {
 public:
  explicit Reader(RawMap raw) : raw_(std::move(raw)) {}

  const RawValue* last(std::string_view key) const {
    auto it = raw_.find(key);
    return it == raw_.end() || it->second.empty() ? nullptr : &it->second.back();
  }
  bool has(std::string_view key) const { return last(key) != nullptr; }

  std::string string(std::string_view key, std::string fallback) const {
    const RawValue* v = last(key);
    return v ? v->value : fallback;
  }

  Expected<bool, ConfigError> boolean(std::string_view key, bool fallback) const {
    const RawValue* v = last(key);
    if (!v) return fallback;
    std::string s = lowercase(v->value);
    if (s == "yes" || s == "true" || s == "on" || s == "1") return true;
    if (s == "no" || s == "false" || s == "off" || s == "0") return false;
    return unexpected(
        ConfigError{v->where, fmt::format("{}: expected yes or no, got '{}'", key, v->value)});
  }

  // A list: repeated, comma/space separated, or file:/path with one entry per line.
  Expected<std::vector<RawValue>, ConfigError> list(std::string_view key) const {
    std::vector<RawValue> out;
    auto it = raw_.find(key);
    if (it == raw_.end()) return out;
    for (const RawValue& rv : it->second) {
      std::string item;
      auto flush = [&]() -> std::optional<ConfigError> {
        if (item.empty()) return std::nullopt;
        if (item.rfind("file:", 0) == 0) {
          std::string path = item.substr(5);
          std::ifstream in(path);
          if (!in) return ConfigError{rv.where, fmt::format("{}: cannot read '{}'", key, path)};
          std::string line;
          int n = 0;
          while (std::getline(in, line)) {
            ++n;
            std::string t = trim(line);
            if (t.empty() || t[0] == '#') continue;
            out.push_back({t, fmt::format("{}:{}", path, n)});
          }
        } else {
          out.push_back({item, rv.where});
        }
        item.clear();
        return std::nullopt;
      };
      for (char c : rv.value) {
        if (c == ',' || c == ' ' || c == '\t') {
          if (auto e = flush()) return unexpected(*e);
        } else {
          item.push_back(c);
        }
      }
      if (auto e = flush()) return unexpected(*e);
    }
    return out;
  }

 private:
  RawMap raw_;
};

std::optional<ConfigError> load_tables(const Reader& r, std::string_view key,
                                       std::vector<std::shared_ptr<const tables::Table>>& out) {
  auto specs = r.list(key);
  if (!specs) return specs.error();
  for (const RawValue& spec : *specs) {
    auto t = tables::load_table(spec.value, &tables::validate_access_action);
    if (!t) {
      // The table's own file and line when it has one; else where the option was set.
      const tables::LoadError& e = t.error();
      if (e.line > 0) return ConfigError{fmt::format("{}:{}", e.file, e.line), e.message};
      return ConfigError{spec.where, fmt::format("{}: {}", key, e.to_string())};
    }
    out.push_back(std::move(t).value());
  }
  return std::nullopt;
}

// State store and bans (see state/options.h). Every bad value names its file and line.
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
      return ConfigError{
          v->where, fmt::format("{}: expected a number from {} to {}, got '{}'", key, lo, hi, s)};
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
      return ConfigError{n.where, fmt::format("allow-networks: '{}': {}", n.value, c.error())};
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

std::string normalise_domain(std::string_view d) {
  std::string s = lowercase(d);
  while (!s.empty() && s.back() == '.')
    s.pop_back();
  return s;
}

// "2s", "500ms", "5m", "1h", "1d", or a bare number of seconds.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9')
    ++i;
  if (i == 0 || i > 9) return std::nullopt;
  const long long n = std::stoll(std::string(s.substr(0, i)));
  const std::string_view unit = s.substr(i);
  if (unit == "ms") return std::chrono::milliseconds(n);
  if (unit.empty() || unit == "s") return std::chrono::milliseconds(n * 1000);
  if (unit == "m") return std::chrono::milliseconds(n * 60'000);
  if (unit == "h") return std::chrono::milliseconds(n * 3'600'000);
  if (unit == "d") return std::chrono::milliseconds(n * 86'400'000);
  return std::nullopt;
}

std::optional<ConfigError> load_dns_options(const Reader& r, Config& cfg) {
  dns::DnsOptions& o = cfg.dns;
  auto servers = r.list("dns-server");
  if (!servers) return servers.error();
  for (const auto& s : *servers) {
    auto a = dns::parse_server(s.value);
    if (!a) return ConfigError{s.where, fmt::format("dns-server: {}", a.error())};
    o.servers.push_back(s.value);
  }
  auto duration = [&](std::string_view key, auto& out, std::chrono::milliseconds min,
                      std::chrono::milliseconds max) -> std::optional<ConfigError> {
    const RawValue* v = r.last(key);
    if (!v) return std::nullopt;
    auto d = parse_duration(v->value);
    if (!d || *d < min || *d > max)
      return ConfigError{v->where, fmt::format("{}: expected a duration from {} ms to {} ms "
                                               "(e.g. 2s, 500ms), got '{}'",
                                               key, min.count(), max.count(), v->value)};
    out = std::chrono::duration_cast<std::remove_reference_t<decltype(out)>>(*d);
    return std::nullopt;
  };
  using std::chrono::milliseconds;
  if (auto e = duration("dns-timeout", o.timeout, milliseconds(10), milliseconds(30'000))) return e;
  if (auto e = duration("dns-deadline", o.deadline, milliseconds(10), milliseconds(60'000)))
    return e;
  if (auto e = duration("dns-cache-min-ttl", o.cache_min_ttl, milliseconds(0),
                        milliseconds(86'400'000LL * 7)))
    return e;
  if (auto e = duration("dns-cache-max-ttl", o.cache_max_ttl, milliseconds(1000),
                        milliseconds(86'400'000LL * 7)))
    return e;
  auto number = [&](std::string_view key, long long max, auto& out) -> std::optional<ConfigError> {
    const RawValue* v = r.last(key);
    if (!v) return std::nullopt;
    const std::string& s = v->value;
    const bool digits = !s.empty() && s.size() < 10 && std::all_of(s.begin(), s.end(), [](char c) {
      return c >= '0' && c <= '9';
    });
    if (!digits || std::stoll(s) > max)
      return ConfigError{v->where,
                         fmt::format("{}: expected a number from 0 to {}, got '{}'", key, max, s)};
    out = static_cast<std::remove_reference_t<decltype(out)>>(std::stoll(s));
    return std::nullopt;
  };
  if (auto e = number("dns-retries", 10, o.retries)) return e;
  if (auto e = number("dns-cache-size", 100'000'000, o.cache_size)) return e;
  if (o.cache_min_ttl > o.cache_max_ttl)
    return ConfigError{"dns-cache-min-ttl", "must not be above dns-cache-max-ttl"};
  if (const RawValue* v = r.last("on-dns-error")) {
    if (v->value == "tempfail") {
      cfg.on_dns_error = FailureAction::Tempfail;
    } else if (v->value == "accept") {
      cfg.on_dns_error = FailureAction::Accept;
    } else {
      return ConfigError{
          v->where, fmt::format("on-dns-error: expected tempfail or accept, got '{}'", v->value)};
    }
  }
  // The table is needed only when a check judges addresses; a missing default file must not
  // stop a configuration that uses no DNS check.
  const bool needed =
      cfg.mode("bogus-mx") != CheckMode::Off || cfg.mode("unroutable-sender") != CheckMode::Off;
  std::string path;
  std::string where = "bogus-networks";
  if (const RawValue* v = r.last("bogus-networks")) {
    path = v->value;
    where = v->where;
  } else if (needed) {
    for (const auto& candidate : dns::default_bogus_networks_paths())
      if (std::ifstream(candidate)) {
        path = candidate;
        break;
      }
    if (path.empty())
      return ConfigError{where,
                         fmt::format("no table found at {}; set bogus-networks",
                                     fmt::join(dns::default_bogus_networks_paths(), " or "))};
  }
  if (!path.empty()) {
    auto t = dns::BogusNetworks::load(path);
    if (!t) {
      const tables::LoadError& e = t.error();
      if (e.line > 0) return ConfigError{fmt::format("{}:{}", e.file, e.line), e.message};
      return ConfigError{where, fmt::format("bogus-networks: {}", e.to_string())};
    }
    o.bogus_networks_path = path;
    o.bogus_networks = *t;
  }
  return std::nullopt;
}

// Backscatter and BATV options. The rule tables and key file are loaded here so that a bad
// line stops start-up (exit 78) instead of the first bounce.
std::optional<ConfigError> load_backscatter_options(const Reader& r, Config& cfg) {
  auto relays = r.list("our-relays");
  if (!relays) return relays.error();
  for (const auto& v : *relays) {
    if (auto c = net::Cidr::parse(v.value)) {
      cfg.our_relay_networks.add(*c);
    } else {
      std::string n = normalise_domain(v.value);
      if (n.empty() || n.find_first_of("@/[] ") != std::string::npos)
        return ConfigError{v.where,
                           fmt::format("our-relays: '{}' is not a host name or address", v.value)};
      cfg.our_relay_names.push_back(n);
    }
  }
  auto domain_list = [&](std::string_view key,
                         std::vector<std::string>& out) -> std::optional<ConfigError> {
    auto items = r.list(key);
    if (!items) return items.error();
    for (const auto& d : *items) {
      std::string n = normalise_domain(d.value);
      if (n.empty() || n.find_first_of("@/[]") != std::string::npos)
        return ConfigError{d.where, fmt::format("{}: '{}' is not a domain", key, d.value)};
      out.push_back(n);
    }
    return std::nullopt;
  };
  if (auto e = domain_list("our-message-id-domains", cfg.our_message_id_domains)) return e;
  if (auto e = domain_list("batv-enforce-domains", cfg.batv_enforce_domains)) return e;
  auto excl = r.list("batv-exclude-senders");
  if (!excl) return excl.error();
  for (const auto& v : *excl)
    cfg.batv_exclude_senders.push_back(lowercase(strip_angle(v.value)));

  auto integer = [&](std::string_view key, long long min, long long max,
                     long long& out) -> std::optional<ConfigError> {
    const RawValue* v = r.last(key);
    if (!v) return std::nullopt;
    std::string s = lowercase(v->value);
    long long mult = 1;
    if (!s.empty() && (s.back() == 'k' || s.back() == 'm')) {
      mult = s.back() == 'k' ? 1024 : 1024 * 1024;
      s.pop_back();
    }
    const bool digits = !s.empty() && s.size() < 10 && std::all_of(s.begin(), s.end(), [](char c) {
      return c >= '0' && c <= '9';
    });
    if (!digits || std::stoll(s) * mult < min || std::stoll(s) * mult > max)
      return ConfigError{v->where, fmt::format("{}: expected a number from {} to {}, got '{}'", key,
                                               min, max, v->value)};
    out = std::stoll(s) * mult;
    return std::nullopt;
  };
  long long n = static_cast<long long>(cfg.max_body_scan);
  if (auto e = integer("max-body-scan", 1024, 64LL * 1024 * 1024, n)) return e;
  cfg.max_body_scan = static_cast<std::size_t>(n);
  // Days, and below 1000: the prvs day stamp wraps every 1000 days.
  n = cfg.batv_lifetime_days;
  if (auto e = integer("batv-lifetime", 1, 90, n)) return e;
  cfg.batv_lifetime_days = static_cast<int>(n);
  n = cfg.tag_max_age_days;
  if (auto e = integer("tag-lifetime", 1, 365, n)) return e;
  cfg.tag_max_age_days = static_cast<int>(n);

  auto flag = [&](std::string_view key, bool& out) -> std::optional<ConfigError> {
    auto b = r.boolean(key, out);
    if (!b) return b.error();
    out = *b;
    return std::nullopt;
  };
  if (auto e = flag("batv-sign", cfg.batv_sign)) return e;
  if (auto e = flag("backscatter-check-mdn", cfg.backscatter_check_mdn)) return e;
  if (auto e = flag("backscatter-reject-multi-recipient", cfg.backscatter_reject_multi_rcpt))
    return e;
  if (const RawValue* v = r.last("batv-form")) {
    if (v->value == "prvs") {
      cfg.batv_subaddress = false;
    } else if (v->value == "subaddress") {
      cfg.batv_subaddress = true;
    } else {
      return ConfigError{v->where,
                         fmt::format("batv-form: expected prvs or subaddress, got '{}'", v->value)};
    }
  }
  if (const RawValue* v = r.last("batv-key-file")) {
    auto keys = batv::KeyRing::load(v->value);
    if (!keys) return keys.error();
    cfg.batv_keys = *keys;
  }
  {
    // A table result is OK or DUNNO; the lookup order is access(5)'s for addresses.
    auto specs = r.list("backscatter-allow");
    if (!specs) return specs.error();
    for (const auto& spec : *specs) {
      auto t = tables::load_table(spec.value, &checks::validate_allow_result);
      if (!t) {
        const tables::LoadError& e = t.error();
        if (e.line > 0) return ConfigError{fmt::format("{}:{}", e.file, e.line), e.message};
        return ConfigError{spec.where, fmt::format("backscatter-allow: {}", e.to_string())};
      }
      cfg.backscatter_allow.push_back(std::move(t).value());
    }
  }
  const bool backscatter = cfg.mode("backscatter") != CheckMode::Off;
  {
    // The shipped rules directory is optional; one the admin names must be complete.
    const RawValue* v = r.last("message-rules");
    std::string dir = v ? v->value : std::string("/etc/mxguard/rules");
    if (v || backscatter) {
      auto rules = message::load_rules(dir, v != nullptr);
      if (!rules) {
        const tables::LoadError& e = rules.error();
        if (e.line > 0) return ConfigError{fmt::format("{}:{}", e.file, e.line), e.message};
        return ConfigError{v ? v->where : "message-rules",
                           fmt::format("message-rules: {}", e.to_string())};
      }
      cfg.message_rules = std::make_shared<const message::Rules>(std::move(rules).value());
    }
  }
  if (backscatter && !cfg.batv_keys && cfg.our_relay_names.empty() &&
      cfg.our_relay_networks.empty() && cfg.backscatter_allow.empty())
    return ConfigError{"check.backscatter",
                       "no way to recognise bounces of our own mail: set batv-key-file, "
                       "our-relays or backscatter-allow (else every bounce would be refused)"};
  if (cfg.mode("batv") != CheckMode::Off && !cfg.batv_keys)
    return ConfigError{"check.batv", "needs batv-key-file"};
  return std::nullopt;
}

// unhandled-domains, self, trap-address, trap-allow-senders, on-store-error.
std::optional<ConfigError> read_website_options(const Reader& r, Config& cfg) {
  auto domains = r.list("unhandled-domains");
  if (!domains) return domains.error();
  for (const auto& d : *domains) {
    std::string n = normalise_domain(d.value);
    if (n.empty() || n.find_first_of("@/[] ") != std::string::npos)
      return ConfigError{d.where, fmt::format("unhandled-domains: '{}' is not a domain", d.value)};
    cfg.unhandled_domains.push_back(n);
  }
  for (auto [key, out] :
       {std::pair{"self", &cfg.self_addresses}, std::pair{"trap-address", &cfg.trap_addresses}}) {
    auto items = r.list(key);
    if (!items) return items.error();
    for (const auto& i : *items) {
      auto a = net::IpAddress::parse(i.value);
      if (!a) return ConfigError{i.where, fmt::format("{}: '{}' is not an address", key, i.value)};
      out->push_back(*a);
    }
  }
  if (auto e = load_tables(r, "trap-allow-senders", cfg.trap_allow_senders)) return e;
  if (const RawValue* v = r.last("on-store-error")) {
    if (v->value == "tempfail") {
      cfg.on_store_error = FailureAction::Tempfail;
    } else if (v->value == "accept") {
      cfg.on_store_error = FailureAction::Accept;
    } else {
      return ConfigError{
          v->where, fmt::format("on-store-error: expected accept or tempfail, got '{}'", v->value)};
    }
  }
  return std::nullopt;
}

Expected<std::shared_ptr<const Config>, ConfigError> build(const Reader& r) {
  auto cfg = std::make_shared<Config>();
#define MXG_TRY(var, expr) \
  auto var = (expr);       \
  if (!var) return unexpected(var.error())

  cfg->config_file = r.string("config", "");
  cfg->socket = r.string("socket", "local:/run/mxguard/mxguard.sock");
  cfg->user = r.string("user", "");
  cfg->pidfile = r.string("pidfile", "");
  MXG_TRY(fg, r.boolean("foreground", false));
  cfg->foreground = *fg;
  cfg->log_stderr = *fg;
  MXG_TRY(sl, r.boolean("syslog", true));
  cfg->syslog = *sl;
  MXG_TRY(ro, r.boolean("report-only", false));
  cfg->report_only = *ro;
  MXG_TRY(rh, r.boolean("report-header", false));
  cfg->report_header = *rh;
  cfg->metrics_file = r.string("metrics-file", "");
  cfg->metrics_listen = r.string("metrics-listen", "");

  if (const RawValue* v = r.last("log-level")) {
    auto lvl = parse_log_level(v->value);
    if (!lvl)
      return unexpected(ConfigError{
          v->where, fmt::format("log-level: expected error, warning, notice, info or debug, "
                                "got '{}'",
                                v->value)});
    cfg->log_level = *lvl;
  }
  if (auto e = read_website_options(r, *cfg)) return unexpected(*e);
  if (const RawValue* v = r.last("on-internal-error")) {
    if (v->value == "tempfail") {
      cfg->on_internal_error = FailureAction::Tempfail;
    } else if (v->value == "accept") {
      cfg->on_internal_error = FailureAction::Accept;
    } else {
      return unexpected(ConfigError{
          v->where,
          fmt::format("on-internal-error: expected tempfail or accept, got '{}'", v->value)});
    }
  }

  MXG_TRY(domains, r.list("local-domains"));
  for (const auto& d : *domains) {
    std::string n = normalise_domain(d.value);
    if (n.empty() || n.find_first_of("@/[]") != std::string::npos)
      return unexpected(
          ConfigError{d.where, fmt::format("local-domains: '{}' is not a domain", d.value)});
    cfg->local_domains.push_back(n);
  }
  MXG_TRY(nets, r.list("trusted-networks"));
  for (const auto& n : *nets) {
    auto c = net::Cidr::parse(n.value);
    if (!c)
      return unexpected(ConfigError{
          n.where, fmt::format("trusted-networks: '{}' is not an address or network", n.value)});
    cfg->trusted_networks.add(*c);
  }
  auto address_list = [&](std::string_view key, std::vector<std::string> fallback,
                          std::vector<std::string>& out) -> std::optional<ConfigError> {
    if (!r.has(key)) {
      out = std::move(fallback);
      return std::nullopt;
    }
    auto items = r.list(key);
    if (!items) return items.error();
    for (const auto& i : *items)
      out.push_back(lowercase(strip_angle(i.value)));
    return std::nullopt;
  };
  if (auto e = address_list("exempt-recipients", {"postmaster"}, cfg->exempt_recipients))
    return unexpected(*e);
  if (auto e = address_list("exempt-senders", {"double-bounce"}, cfg->exempt_senders))
    return unexpected(*e);

  if (auto e = load_tables(r, "client-access", cfg->client_access)) return unexpected(*e);
  if (auto e = load_tables(r, "helo-access", cfg->helo_access)) return unexpected(*e);
  if (auto e = load_tables(r, "sender-access", cfg->sender_access)) return unexpected(*e);
  if (auto e = load_tables(r, "recipient-access", cfg->recipient_access)) return unexpected(*e);
  if (auto e = load_state_options(r, cfg->state)) return unexpected(*e);

  for (const auto& [name, def] : check_defaults()) {
    CheckMode mode = def;
    if (const RawValue* v = r.last("check." + name)) {
      if (v->value == "on") {
        mode = CheckMode::On;
      } else if (v->value == "off") {
        mode = CheckMode::Off;
      } else if (v->value == "report") {
        mode = CheckMode::Report;
      } else {
        return unexpected(ConfigError{
            v->where,
            fmt::format("check.{}: expected on, off or report, got '{}'", name, v->value)});
      }
    }
    cfg->checks.emplace(name, mode);
  }
  if (auto e = load_backscatter_options(r, *cfg)) return unexpected(*e);
  if (auto e = load_dns_options(r, *cfg)) return unexpected(*e);
#undef MXG_TRY
  return std::shared_ptr<const Config>(std::move(cfg));
}

}  // namespace

bool Config::is_local_domain(std::string_view domain) const {
  std::string d = lowercase(domain);
  while (!d.empty() && d.back() == '.')
    d.pop_back();
  return std::find(local_domains.begin(), local_domains.end(), d) != local_domains.end();
}

CheckMode Config::mode(std::string_view check) const {
  auto it = checks.find(check);
  return it == checks.end() ? CheckMode::Off : it->second;
}

std::vector<std::string> option_names() {
  std::vector<std::string> out;
  const po::options_description desc = describe_options();
  for (const auto& o : desc.options())
    out.push_back(o->long_name());
  return out;
}

std::vector<std::pair<std::string, CheckMode>> known_checks() {
  return check_defaults();
}

Expected<std::shared_ptr<const Config>, ConfigError> load_config(const CommandLine& cl,
                                                                 Invocation* invocation) {
  po::options_description desc = describe_options();
  auto cmd = parse_command_line(desc, cl);
  if (!cmd) return unexpected(cmd.error());
  RawMap merged = std::move(cmd).value();
  if (invocation) {
    invocation->help = merged.count("help") > 0;
    invocation->version = merged.count("version") > 0;
    invocation->check_config = merged.count("check-config") > 0;
    if (auto it = merged.find("test"); it != merged.end())
      for (const auto& v : it->second)
        invocation->test_files.push_back(v.value);
    if (auto it = merged.find("test-sender"); it != merged.end())
      invocation->test_sender = it->second.back().value;
    if (auto it = merged.find("test-recipient"); it != merged.end())
      invocation->test_recipient = it->second.back().value;
    std::ostringstream os;
    os << desc;
    invocation->help_text = os.str();
    if (invocation->help || invocation->version) return std::make_shared<const Config>();
  }
  if (auto it = merged.find("config"); it != merged.end()) {
    auto file = parse_config_file(desc, it->second.back().value);
    if (!file) return unexpected(file.error());
    // The command line wins: a key given there replaces the file's values for that key.
    for (auto& [key, values] : *file)
      merged.try_emplace(key, std::move(values));
  }
  return build(Reader(std::move(merged)));
}

}  // namespace mxguard
