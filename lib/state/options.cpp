#include "mxguard/state/options.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

namespace mxguard::state {

std::vector<options::Spec> state_option_specs() {
  using options::Kind;
  return {
      {"state", Kind::Value,
       "where strikes and bans live: memory, redis://host:port/db, or sentinel (see "
       "redis-sentinels) to share them"},
      {"redis-user", Kind::Value, "Redis 6 ACL user to AUTH as (with redis-password-file)"},
      {"redis-password-file", Kind::Value,
       "file whose first line is the Redis password (mode 600, owned by the daemon's user)"},
      {"redis-sentinels", Kind::List,
       "state = sentinel: the sentinels to ask for the master, host:port (port 26379 if none)"},
      {"redis-master-name", Kind::Value, "state = sentinel: the name the sentinels monitor"},
      {"redis-database", Kind::Value, "state = sentinel: the database number (default 0)"},
      {"redis-sentinel-password-file", Kind::Value,
       "file whose first line is the sentinels' password (requirepass), mode 600"},
      {"redis-tls-ca-file", Kind::Value,
       "rediss://: CA certificates the server's certificate must chain to (default: system)"},
      {"redis-tls-cert-file", Kind::Value, "rediss://: client certificate, if Redis asks"},
      {"redis-tls-key-file", Kind::Value, "rediss://: the client certificate's key (mode 600)"},
      {"redis-tls-server-name", Kind::Value,
       "rediss://: name checked in the server's certificate (default: the URL's host)"},
      {"redis-tls-verify", Kind::Value, "rediss://: verify the server's certificate (yes)"},
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

Expected<std::string, std::string> read_secret_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return unexpected(fmt::format("{}: cannot read it: {}", path, std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) return unexpected(fmt::format("{}: not a regular file", path));
  if ((st.st_mode & 077) != 0)
    return unexpected(
        fmt::format("{}: group or others may access it (mode {:04o}); a secret "
                    "must be mode 600 (chmod 600 {})",
                    path, st.st_mode & 07777, path));
  std::ifstream in(path, std::ios::binary);
  std::string line;
  if (!in || !std::getline(in, line)) {
    if (in.bad() || !in.is_open())
      return unexpected(fmt::format("{}: cannot read it: {}", path, std::strerror(errno)));
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty())
    return unexpected(fmt::format("{}: the first line, the password, is empty", path));
  return line;
}

namespace {

const char* const kNoDatabaseWithUrl =
    "redis-database: only with state = sentinel (a redis:// "
    "URL names its database itself)";

// The last value of `key`, unless it is empty (an empty value means "none").
const options::RawValue* set_value(const options::Reader& r, std::string_view key) {
  const options::RawValue* v = r.last(key);
  return v && !v->value.empty() ? v : nullptr;
}

// redis-user, redis-password-file: merged into the URL's user and password.
options::Problem load_auth(const options::Reader& r, StateOptions& o) {
  const options::RawValue* user = set_value(r, "redis-user");
  const options::RawValue* file = set_value(r, "redis-password-file");
  if (!o.redis) {
    for (std::string_view key : {"redis-user", "redis-password-file", "redis-database",
                                 "redis-sentinel-password-file", "redis-master-name"})
      if (const options::RawValue* v = set_value(r, key))
        return ConfigError{v->where, fmt::format("{}: only with Redis state (state = "
                                                 "redis://... or sentinel)",
                                                 key)};
    return std::nullopt;
  }
  if (user) {
    if (!o.redis->user.empty() && o.redis->user != user->value)
      return ConfigError{user->where, "redis-user: the state URL names another user"};
    if (user->value.find_first_of(" \t") != std::string::npos)
      return ConfigError{user->where, "redis-user: expected a user name"};
    o.redis->user = user->value;
  }
  if (file) {
    if (!o.redis->password.empty())
      return ConfigError{file->where,
                         "redis-password-file: the state URL holds a password already; keep it "
                         "in one place, the file"};
    auto secret = read_secret_file(file->value);
    if (!secret) return ConfigError{file->where, "redis-password-file: " + secret.error()};
    o.redis->password = *secret;
    o.redis_password_file = file->value;
  }
  if (!o.redis->user.empty() && o.redis->password.empty()) {
    const options::RawValue* v = user ? user : r.last("state");
    return ConfigError{v ? v->where : "redis-user",
                       "redis-user: a user needs a password (redis-password-file)"};
  }
  return std::nullopt;
}

options::Problem load_sentinel(const options::Reader& r, StateOptions& o) {
  const options::RawValue* state = r.last("state");
  const bool sentinel = state && state->value == "sentinel";
  const options::RawValue* name = set_value(r, "redis-master-name");
  auto list = r.list("redis-sentinels");
  if (!list) return list.error();
  if (!sentinel) {
    if (!list->empty())
      return ConfigError{list->front().where, "redis-sentinels: only with state = sentinel"};
    if (name) return ConfigError{name->where, "redis-master-name: only with state = sentinel"};
    if (const options::RawValue* v = set_value(r, "redis-sentinel-password-file"))
      return ConfigError{v->where, "redis-sentinel-password-file: only with state = sentinel"};
    if (const options::RawValue* v = set_value(r, "redis-database"); v && o.redis)
      return ConfigError{v->where, kNoDatabaseWithUrl};
    return std::nullopt;
  }
  if (list->empty())
    return ConfigError{state->where,
                       "state = sentinel needs redis-sentinels (host:port, host:port, ...)"};
  if (!name || name->value.empty())
    return ConfigError{name ? name->where : state->where,
                       "state = sentinel needs redis-master-name (the name the sentinels "
                       "monitor)"};
  for (const auto& item : *list) {
    auto e = RedisEndpoint::parse(item.value, 26379);
    if (!e)
      return ConfigError{item.where,
                         fmt::format("redis-sentinels: '{}': {}", item.value, e.error())};
    o.redis_sentinels.push_back(*e);
  }
  o.redis_master_name = name->value;
  o.redis = RedisUrl{};
  o.redis->host.clear();
  o.redis->port = 0;
  if (auto e = r.number("redis-database", 0, 1'000'000, o.redis->db)) return e;
  if (const options::RawValue* f = set_value(r, "redis-sentinel-password-file")) {
    auto secret = read_secret_file(f->value);
    if (!secret) return ConfigError{f->where, "redis-sentinel-password-file: " + secret.error()};
    o.sentinel_password = *secret;
    o.redis_sentinel_password_file = f->value;
  }
  return std::nullopt;
}

// Permissions of a file that holds a secret we do not read ourselves (a TLS key).
std::optional<std::string> check_secret_mode(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return fmt::format("{}: cannot read it: {}", path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return fmt::format("{}: not a regular file", path);
  if ((st.st_mode & 077) != 0)
    return fmt::format(
        "{}: group or others may access it (mode {:04o}); a secret must be mode "
        "600 (chmod 600 {})",
        path, st.st_mode & 07777, path);
  return std::nullopt;
}

std::optional<std::string> check_readable(const std::string& path) {
  std::ifstream in(path);
  if (!in) return fmt::format("{}: cannot read it: {}", path, std::strerror(errno));
  return std::nullopt;
}

options::Problem load_tls(const options::Reader& r, StateOptions& o) {
  static constexpr const char* kKeys[] = {"redis-tls-ca-file", "redis-tls-cert-file",
                                          "redis-tls-key-file", "redis-tls-server-name",
                                          "redis-tls-verify"};
  if (!o.redis || !o.redis->tls) {
    for (const char* key : kKeys)
      if (const options::RawValue* v = set_value(r, key))
        return ConfigError{
            v->where,
            fmt::format("{}: only with state = rediss://...{}", key,
                        redis_tls_supported() ? ""
                                              : " (and this build has no TLS: mxguard(8), "
                                                "SEVERAL MX HOSTS, shows the stunnel route)")};
    return std::nullopt;
  }
  RedisTlsOptions& t = o.redis_tls;
  t.ca_file = r.string("redis-tls-ca-file", t.ca_file);
  t.cert_file = r.string("redis-tls-cert-file", t.cert_file);
  t.key_file = r.string("redis-tls-key-file", t.key_file);
  t.server_name = r.string("redis-tls-server-name", t.server_name);
  if (auto e = r.flag("redis-tls-verify", t.verify)) return e;
  if (t.cert_file.empty() != t.key_file.empty()) {
    const options::RawValue* v =
        r.last(t.cert_file.empty() ? "redis-tls-key-file" : "redis-tls-cert-file");
    return ConfigError{v->where,
                       "redis-tls-cert-file and redis-tls-key-file go together (or neither)"};
  }
  for (const auto& [key, path] :
       {std::pair{"redis-tls-ca-file", t.ca_file}, std::pair{"redis-tls-cert-file", t.cert_file}})
    if (!path.empty())
      if (auto e = check_readable(path)) return ConfigError{r.last(key)->where, key + (": " + *e)};
  if (!t.key_file.empty())
    if (auto e = check_secret_mode(t.key_file))
      return ConfigError{r.last("redis-tls-key-file")->where, "redis-tls-key-file: " + *e};
  return std::nullopt;
}

options::Problem load_backend(const options::Reader& r, StateOptions& o) {
  if (const options::RawValue* v = r.last("state")) {
    if (v->value != "memory" && v->value != "sentinel") {
      auto url = RedisUrl::parse(v->value);
      if (!url) {
        if (v->value.starts_with("rediss://"))
          return ConfigError{v->where, "state: " + url.error()};
        return ConfigError{v->where, fmt::format("state: expected memory or "
                                                 "redis://host:port/db (or sentinel), got "
                                                 "'{}': {}",
                                                 redact_redis_url(v->value), url.error())};
      }
      o.redis = *url;
    }
    o.state = v->value;
  }
  o.state_file = r.string("state-file", o.state_file);
  if (auto e = load_sentinel(r, o)) return e;
  if (auto e = load_tls(r, o)) return e;
  return load_auth(r, o);
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

std::string describe_state(const StateOptions& o) {
  if (!o.redis) return o.state_file.empty() ? "memory" : "memory, saved in " + o.state_file;
  std::string auth = "no";
  if (!o.redis->password.empty()) {
    auth = "yes";
    if (!o.redis->user.empty()) auth += ", user " + o.redis->user;
    auth += ", password from " +
            (o.redis_password_file.empty() ? std::string("the URL") : o.redis_password_file);
  }
  if (o.redis_sentinels.empty()) {
    std::string how = redis_tls_supported()
                          ? "plain connection; rediss:// would use TLS"
                          : "plain connection; this build has no TLS: use a tunnel for it";
    if (o.redis->tls) {
      const RedisTlsOptions& t = o.redis_tls;
      how = !t.verify ? "TLS, the server's certificate NOT verified"
                      : fmt::format("TLS, certificate verified against {} for {}",
                                    t.ca_file.empty() ? "the system's CAs" : t.ca_file,
                                    t.server_name.empty() ? o.redis->host : t.server_name);
      if (!t.cert_file.empty()) how += ", client certificate " + t.cert_file;
    }
    return fmt::format("redis {} ({}), auth: {}", o.redis->to_string(), how, auth);
  }
  std::string list;
  for (const auto& s : o.redis_sentinels)
    list += (list.empty() ? "" : ", ") + s.to_string();
  return fmt::format(
      "redis through sentinel: master name {}, sentinels {}, db {}, auth: {}, sentinel "
      "auth: {}",
      o.redis_master_name, list, o.redis->db, auth,
      o.sentinel_password.empty() ? "no" : "yes, password from " + o.redis_sentinel_password_file);
}

}  // namespace mxguard::state
