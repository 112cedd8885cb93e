#include "mxguard/state/redis_store.h"
#include "mxguard/text.h"

#include <hiredis/hiredis.h>
#ifdef MXGUARD_HAVE_HIREDIS_SSL
#include <hiredis/hiredis_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#endif

#include <charconv>
#include <cstring>

#include "mxguard/log.h"

namespace mxguard::state {

namespace {

// INCR and the expiry of a new counter in one atomic step. A counter found without expiry
// (left by an older version or by hand) gets one too, so it cannot count forever.
constexpr std::string_view kIncrWithWindow =
    "local n = redis.call('INCR', KEYS[1])\n"
    "local w = tonumber(ARGV[1])\n"
    "if w > 0 and (n == 1 or redis.call('PTTL', KEYS[1]) == -1) then\n"
    "  redis.call('PEXPIRE', KEYS[1], w)\n"
    "end\n"
    "return n\n";

struct ReplyDeleter {
  void operator()(redisReply* r) const {
    if (r) freeReplyObject(r);
  }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

timeval to_timeval(std::chrono::milliseconds ms) {
  if (ms.count() < 1) ms = std::chrono::milliseconds(1);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

StoreError context_error(const redisContext* c) {
  std::string msg = c ? c->errstr : "cannot allocate a Redis context";
  // hiredis reports a socket timeout as an I/O error carrying strerror(EAGAIN/ETIMEDOUT).
  bool timeout = c && c->err == REDIS_ERR_IO &&
                 (msg.find("temporarily unavailable") != std::string::npos ||
                  msg.find("timed out") != std::string::npos);
  return StoreError{timeout ? StoreErrorKind::Timeout : StoreErrorKind::Unavailable,
                    msg.empty() ? "connection lost" : msg};
}

std::optional<int> parse_number(std::string_view s, int lo, int hi) {
  auto v = parse_int(s);
  if (!v || *v < lo || *v > hi) return std::nullopt;
  return static_cast<int>(*v);
}

StoreError protocol_error(const redisReply* r, std::string_view what) {
  if (r && r->type == REDIS_REPLY_ERROR)
    return {StoreErrorKind::Protocol, std::string(r->str, r->len)};
  return {StoreErrorKind::Protocol, fmt::format("unexpected reply to {}", what)};
}

ReplyPtr run_argv(redisContext* c, const std::vector<std::string>& argv) {
  std::vector<const char*> ptrs;
  std::vector<std::size_t> lens;
  ptrs.reserve(argv.size());
  lens.reserve(argv.size());
  for (const auto& a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  return ReplyPtr(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), ptrs.data(), lens.data())));
}

// A command whose reply only says yes or no (AUTH, SELECT).
std::optional<StoreError> simple_command(redisContext* c, const std::vector<std::string>& argv) {
  ReplyPtr r = run_argv(c, argv);
  if (!r) return context_error(c);
  if (r->type == REDIS_REPLY_ERROR) return protocol_error(r.get(), argv[0]);
  return std::nullopt;
}

// Replies that say "not this server, not now": a demoted master (READONLY), a replica still
// loading its data set (LOADING), a replica cut off from its master (MASTERDOWN). Like a lost
// connection, they send the store to the fallback and, with Sentinel, to the sentinels.
bool is_unavailable_reply(const redisReply& r) {
  if (r.type != REDIS_REPLY_ERROR) return false;
  const std::string_view text(r.str, r.len);
  for (std::string_view word : {"READONLY", "LOADING", "MASTERDOWN"})
    if (text.substr(0, word.size()) == word) return true;
  return false;
}

// host and port out of "host", "host:port", "[v6]" or "[v6]:port".
std::optional<std::string> split_host_port(std::string_view hostport, std::string& host,
                                           std::string_view& port) {
  if (!hostport.empty() && hostport.front() == '[') {
    auto close = hostport.find(']');
    if (close == std::string_view::npos) return std::string("unclosed '[' in host");
    host = std::string(hostport.substr(1, close - 1));
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return std::string("junk after ']'");
      port = after.substr(1);
    }
  } else {
    auto colon = hostport.find(':');
    host = std::string(hostport.substr(0, colon));
    if (colon != std::string_view::npos) port = hostport.substr(colon + 1);
  }
  if (host.empty()) return std::string("missing host");
  return std::nullopt;
}

std::string bracketed(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

#ifdef MXGUARD_HAVE_HIREDIS_SSL
std::string openssl_error(std::string_view what) {
  const unsigned long e = ERR_get_error();
  char buf[256] = "unknown error";
  if (e) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return fmt::format("{}: {}", what, buf);
}

// One SSL_CTX for every connection of a store: CA, client certificate, verification.
Expected<std::shared_ptr<void>, std::string> make_tls_context(const RedisTlsOptions& o) {
  SSL_CTX* raw = SSL_CTX_new(TLS_client_method());
  if (!raw) return unexpected(openssl_error("cannot make a TLS context"));
  std::shared_ptr<void> ctx(raw, [](void* p) { SSL_CTX_free(static_cast<SSL_CTX*>(p)); });
  SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION);
  if (o.ca_file.empty() ? SSL_CTX_set_default_verify_paths(raw) != 1
                        : SSL_CTX_load_verify_locations(raw, o.ca_file.c_str(), nullptr) != 1)
    return unexpected(openssl_error("cannot load the CA certificates " + o.ca_file));
  if (!o.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(raw, o.cert_file.c_str()) != 1)
      return unexpected(openssl_error("cannot load the certificate " + o.cert_file));
    if (SSL_CTX_use_PrivateKey_file(raw, o.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
      return unexpected(openssl_error("cannot load the key " + o.key_file));
  }
  SSL_CTX_set_verify(raw, o.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  return ctx;
}

// The TLS handshake on a connected context, bounded by the context's socket timeout; the
// server's name (or address) is checked against its certificate when verification is on.
std::optional<StoreError> start_tls(redisContext* c, void* ctx, const RedisTlsOptions& o,
                                    const std::string& host) {
  SSL* ssl = SSL_new(static_cast<SSL_CTX*>(ctx));
  if (!ssl) return StoreError{StoreErrorKind::Unavailable, openssl_error("SSL_new")};
  const std::string& name = o.server_name.empty() ? host : o.server_name;
  const bool is_ip = name.find_first_not_of("0123456789.") == std::string::npos ||
                     name.find(':') != std::string::npos;
  // SSL_set_tlsext_host_name() is a macro with a C cast (-Wold-style-cast); its expansion:
  if (!is_ip)
    SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(name.c_str()));
  if (o.verify) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                         : X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0);
    if (ok != 1) {
      SSL_free(ssl);
      return StoreError{StoreErrorKind::Unavailable,
                        fmt::format("cannot check the certificate against '{}'", name)};
    }
  }
  if (redisInitiateSSL(c, ssl) != REDIS_OK) {
    SSL_free(ssl);  // hiredis keeps it only when the handshake succeeds
    return context_error(c);
  }
  return std::nullopt;
}
#endif

}  // namespace

bool redis_tls_supported() {
#ifdef MXGUARD_HAVE_HIREDIS_SSL
  return true;
#else
  return false;
#endif
}

std::string redact_redis_url(std::string_view text) {
  auto scheme = text.find("://");
  if (scheme == std::string_view::npos) return std::string(text);
  std::string_view rest = text.substr(scheme + 3);
  auto at = rest.rfind('@');
  if (at == std::string_view::npos) return std::string(text);
  std::string_view info = rest.substr(0, at);
  auto colon = info.find(':');
  std::string user = colon == std::string_view::npos ? "" : std::string(info.substr(0, colon));
  return fmt::format("{}{}{}***@{}", text.substr(0, scheme + 3), user, user.empty() ? "" : ":",
                     rest.substr(at + 1));
}

Expected<RedisEndpoint, std::string> RedisEndpoint::parse(std::string_view text, int default_port) {
  RedisEndpoint out;
  std::string_view port;
  if (auto e = split_host_port(text, out.host, port)) return unexpected(*e);
  out.port = default_port;
  if (!port.empty()) {
    auto p = parse_number(port, 1, 65535);
    if (!p) return unexpected(fmt::format("bad port '{}'", port));
    out.port = *p;
  }
  return out;
}

std::string RedisEndpoint::to_string() const {
  return fmt::format("{}:{}", bracketed(host), port);
}

Expected<RedisUrl, std::string> RedisUrl::parse(std::string_view url) {
  std::string_view scheme = "redis://";
  const bool tls = url.substr(0, 9) == "rediss://";
  if (tls && redis_tls_supported()) scheme = "rediss://";
  if (tls && !redis_tls_supported())
    return unexpected(std::string(
        "rediss:// (Redis over TLS) needs hiredis 1.0 or later with hiredis_ssl, and this "
        "build has none (Debian 12 ships hiredis 0.14): run stunnel in client mode on this "
        "host, with certificate verification, and set state to its local plain end, e.g. "
        "redis://127.0.0.1:6380/0 (mxguard(8), \"Several MX hosts\")"));
  if (url.substr(0, scheme.size()) != scheme)
    return unexpected(std::string("expected redis://host:port/db"));
  std::string_view rest = url.substr(scheme.size());
  RedisUrl out;
  out.tls = tls;
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view info = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = info.find(':');
    if (colon == std::string_view::npos) {
      out.password = std::string(info);
    } else {
      out.user = std::string(info.substr(0, colon));
      out.password = std::string(info.substr(colon + 1));
    }
  }
  std::string_view hostport = rest.substr(0, rest.find('/'));
  std::string_view path =
      rest.find('/') == std::string_view::npos ? "" : rest.substr(rest.find('/') + 1);
  std::string_view port;
  if (auto e = split_host_port(hostport, out.host, port)) return unexpected(*e);
  if (!port.empty()) {
    auto p = parse_number(port, 1, 65535);
    if (!p) return unexpected(fmt::format("bad port '{}'", port));
    out.port = *p;
  }
  if (!path.empty()) {
    auto d = parse_number(path, 0, 1'000'000);
    if (!d) return unexpected(fmt::format("bad database number '{}'", path));
    out.db = *d;
  }
  return out;
}

std::string RedisUrl::to_string() const {
  return fmt::format("{}://{}:{}/{}", tls ? "rediss" : "redis", bracketed(host), port, db);
}

struct RedisStore::Outcome {
  ReplyPtr reply;
  std::optional<StoreError> error;
  bool transport = false;  // the connection failed (not an error reply from Redis)
};

void RedisStore::ContextDeleter::operator()(redisContext* c) const {
  if (c) redisFree(c);
}

RedisStore::RedisStore(RedisStoreOptions options, const Clock& clock)
    : options_(std::move(options)), fallback_(options_.fallback_options, clock) {
#ifdef MXGUARD_HAVE_HIREDIS_SSL
  if (options_.url.tls) {
    auto ctx = make_tls_context(options_.tls);
    if (ctx)
      tls_context_ = std::move(*ctx);
    else  // every connection attempt then fails: the store runs on the fallback
      log(LogLevel::Error, "state: {}: {}", options_.url.to_string(), ctx.error());
  }
#endif
  StoreError err;
  Conn c = acquire(&err);
  if (c) {
    release(std::move(c));
    log(LogLevel::Info, "state: using {}", describe());
  } else {
    mark_down(err);
  }
}

RedisStore::~RedisStore() = default;

std::string RedisStore::describe() const {
  if (options_.sentinels.empty()) return options_.url.to_string();
  std::string list;
  for (const auto& s : options_.sentinels)
    list += (list.empty() ? "" : ",") + s.to_string();
  return fmt::format("sentinel master {} (sentinels {}) db {}", options_.master_name, list,
                     options_.url.db);
}

void RedisStore::forget_master() {
  std::lock_guard lock(master_mu_);
  master_.reset();
}

Expected<RedisEndpoint, StoreError> RedisStore::master() {
  {
    std::lock_guard lock(master_mu_);
    if (master_) return *master_;
  }
  auto found = ask_sentinels();
  if (!found) return found;
  std::lock_guard lock(master_mu_);
  if (last_master_ != *found)
    log(LogLevel::Notice, "state: the sentinels name {} as master {}", found->to_string(),
        options_.master_name);
  master_ = last_master_ = *found;
  return *found;
}

Expected<RedisEndpoint, StoreError> RedisStore::ask_sentinels() {
  const timeval tv = to_timeval(options_.timeout);
  const std::size_t n = options_.sentinels.size();
  const std::size_t first = preferred_sentinel_.load() % n;
  std::string why;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t at = (first + i) % n;
    const RedisEndpoint& s = options_.sentinels[at];
    auto note = [&](std::string_view what) {
      why += fmt::format("{}{}: {}", why.empty() ? "" : "; ", s.to_string(), what);
    };
    Conn c(redisConnectWithTimeout(s.host.c_str(), s.port, tv));
    if (!c || c->err) {
      note(context_error(c.get()).message);
      continue;
    }
    redisSetTimeout(c.get(), tv);
    if (!options_.sentinel_password.empty()) {
      if (auto e = simple_command(c.get(), {"AUTH", options_.sentinel_password})) {
        note(e->message);
        continue;
      }
    }
    ReplyPtr r = run_argv(c.get(), {"SENTINEL", "get-master-addr-by-name", options_.master_name});
    if (!r) {
      note(context_error(c.get()).message);
      continue;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING) {
      auto port = parse_number(std::string_view(r->element[1]->str, r->element[1]->len), 1, 65535);
      if (port) {
        preferred_sentinel_ = at;
        return RedisEndpoint{std::string(r->element[0]->str, r->element[0]->len), *port};
      }
    }
    note(r->type == REDIS_REPLY_NIL ? fmt::format("knows no master {}", options_.master_name)
                                    : protocol_error(r.get(), "SENTINEL").message);
  }
  return unexpected(StoreError{StoreErrorKind::Unavailable, "no sentinel named a master: " + why});
}

std::string RedisStore::k(std::string_view key) const {
  std::string out;
  out.reserve(options_.key_prefix.size() + key.size());
  out.append(options_.key_prefix).append(key);
  return out;
}

Expected<RedisStore::Conn, StoreError> RedisStore::connect() {
  const bool sentinel = !options_.sentinels.empty();
  RedisEndpoint where{options_.url.host, options_.url.port};
  if (sentinel) {
    auto m = master();
    if (!m) return unexpected(m.error());
    where = *m;
  }
  const timeval tv = to_timeval(options_.timeout);
  Conn c(redisConnectWithTimeout(where.host.c_str(), where.port, tv));
  if (!c || c->err) return unexpected(context_error(c.get()));
  redisSetTimeout(c.get(), tv);
  redisEnableKeepAlive(c.get());
  if (options_.url.tls) {
#ifdef MXGUARD_HAVE_HIREDIS_SSL
    if (!tls_context_)
      return unexpected(StoreError{StoreErrorKind::Unavailable, "no TLS context (see above)"});
    if (auto e = start_tls(c.get(), tls_context_.get(), options_.tls, where.host))
      return unexpected(*e);
#else
    return unexpected(StoreError{StoreErrorKind::Unavailable, "this build has no TLS"});
#endif
  }
  if (!options_.url.password.empty()) {
    auto e = options_.url.user.empty()
                 ? simple_command(c.get(), {"AUTH", options_.url.password})
                 : simple_command(c.get(), {"AUTH", options_.url.user, options_.url.password});
    if (e) return unexpected(*e);
  }
  if (sentinel) {
    // The sentinels may be behind (a failover under way): only a master will do.
    ReplyPtr r = run_argv(c.get(), {"ROLE"});
    if (!r) return unexpected(context_error(c.get()));
    std::string_view role;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_STRING)
      role = std::string_view(r->element[0]->str, r->element[0]->len);
    if (role != "master") {
      forget_master();
      return unexpected(
          StoreError{StoreErrorKind::Unavailable,
                     fmt::format("{} is not a master (role {})", where.to_string(),
                                 role.empty() ? std::string("unknown") : std::string(role))});
    }
  }
  if (options_.url.db != 0) {
    if (auto e = simple_command(c.get(), {"SELECT", std::to_string(options_.url.db)}))
      return unexpected(*e);
  }
  return c;
}

RedisStore::Conn RedisStore::acquire(StoreError* err) {
  {
    std::lock_guard lock(pool_mu_);
    if (!idle_.empty()) {
      Conn c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  auto c = connect();
  if (!c) {
    *err = c.error();
    return nullptr;
  }
  return std::move(c).value();
}

void RedisStore::release(Conn c) {
  std::lock_guard lock(pool_mu_);
  if (idle_.size() < options_.max_idle_connections) idle_.push_back(std::move(c));
}

bool RedisStore::should_try() {
  if (up_.load()) return true;
  std::lock_guard lock(health_mu_);
  if (probing_.load() || std::chrono::steady_clock::now() < next_attempt_) return false;
  probing_ = true;  // this caller probes; the others keep using the fallback meanwhile
  return true;
}

void RedisStore::mark_up() {
  std::lock_guard lock(health_mu_);
  probing_ = false;
  backoff_ = std::chrono::milliseconds(0);
  if (!up_.exchange(true))
    log(LogLevel::Notice, "state: {} is reachable again; using shared state", describe());
}

void RedisStore::mark_down(const StoreError& e) {
  std::vector<Conn> stale;
  {
    std::lock_guard lock(health_mu_);
    const bool was_up = up_.exchange(false);
    const bool was_probe = probing_.exchange(false);
    if (was_up) {
      backoff_ = options_.min_backoff;
      log(LogLevel::Warning, "state: {} is unreachable ({}); {}", describe(), e.message,
          options_.fallback ? "using local memory state until it is back"
                            : "state calls fail until it is back");
    } else if (was_probe) {
      backoff_ = std::min(options_.max_backoff, std::max(options_.min_backoff, backoff_ * 2));
    }
    next_attempt_ = std::chrono::steady_clock::now() + backoff_;
  }
  // With Sentinel, the next attempt asks where the master is now.
  if (!options_.sentinels.empty()) forget_master();
  {
    // The other pooled connections are most likely dead too.
    std::lock_guard lock(pool_mu_);
    stale.swap(idle_);
  }
}

RedisStore::Outcome RedisStore::command(const std::vector<std::string>& argv) {
  Outcome out;
  StoreError err;
  Conn c = acquire(&err);
  if (!c) {
    mark_down(err);
    out.error = err;
    out.transport = true;
    return out;
  }
  out.reply = run_argv(c.get(), argv);
  if (!out.reply) {
    out.error = context_error(c.get());
    out.transport = true;
    mark_down(*out.error);
    return out;  // the connection is in an unknown state: dropped, not pooled
  }
  if (is_unavailable_reply(*out.reply)) {
    // E.g. a master demoted to replica (a failover): as good as unreachable until the store
    // finds the new master.
    out.error =
        StoreError{StoreErrorKind::Unavailable, std::string(out.reply->str, out.reply->len)};
    out.reply.reset();
    out.transport = true;
    mark_down(*out.error);
    return out;
  }
  release(std::move(c));
  if (!up_.load() || probing_.load()) mark_up();
  return out;  // an error reply is the caller's to interpret (e.g. "not an integer")
}

template <class T, class OnReply, class OnFallback>
StoreResult<T> RedisStore::run(const std::vector<std::string>& argv, OnReply on_reply,
                               OnFallback on_fallback) {
  if (should_try()) {
    Outcome o = command(argv);
    if (o.reply) return on_reply(*o.reply);
    if (!o.transport || !options_.fallback) return unexpected(*o.error);
  } else if (!options_.fallback) {
    return unexpected(StoreError{StoreErrorKind::Unavailable, describe() + " is unreachable"});
  }
  fallback_calls_.fetch_add(1, std::memory_order_relaxed);
  return on_fallback();
}

StoreResult<std::optional<std::string>> RedisStore::get_reply(const redisReply& r,
                                                              std::string_view key) {
  using R = std::optional<std::string>;
  if (r.type == REDIS_REPLY_STRING) return R(std::string(r.str, r.len));
  if (r.type == REDIS_REPLY_NIL) return fallback_.get(key);
  return unexpected(protocol_error(&r, "GET"));
}

StoreResult<std::optional<std::string>> RedisStore::get(std::string_view key) {
  using R = std::optional<std::string>;
  return run<R>(
      {"GET", k(key)}, [&](const redisReply& r) { return get_reply(r, key); },
      [&] { return fallback_.get(key); });
}

StoreResult<std::optional<std::string>> RedisStore::get_confirmed(std::string_view key) {
  using R = std::optional<std::string>;
  return run<R>(
      {"GET", k(key)}, [&](const redisReply& r) { return get_reply(r, key); },
      [&]() -> StoreResult<R> {
        auto local = fallback_.get(key);
        if (!local || *local) return local;
        return unexpected(StoreError{StoreErrorKind::Unavailable, describe() + " is unreachable"});
      });
}

StoreResult<Done> RedisStore::put(std::string_view key, std::string_view value, Ttl ttl) {
  std::vector<std::string> argv = {"SET", k(key), std::string(value)};
  if (ttl.count() > 0) {
    argv.emplace_back("PX");
    argv.push_back(std::to_string(ttl.count()));
  }
  return run<Done>(
      argv,
      [&](const redisReply& r) -> StoreResult<Done> {
        if (r.type == REDIS_REPLY_STATUS) return Done{};
        return unexpected(protocol_error(&r, "SET"));
      },
      [&] { return fallback_.put(key, value, ttl); });
}

StoreResult<bool> RedisStore::set_if_absent(std::string_view key, std::string_view value, Ttl ttl) {
  std::vector<std::string> argv = {"SET", k(key), std::string(value), "NX"};
  if (ttl.count() > 0) {
    argv.emplace_back("PX");
    argv.push_back(std::to_string(ttl.count()));
  }
  return run<bool>(
      argv,
      [&](const redisReply& r) -> StoreResult<bool> {
        if (r.type == REDIS_REPLY_STATUS) return true;
        if (r.type == REDIS_REPLY_NIL) return false;
        return unexpected(protocol_error(&r, "SET NX"));
      },
      [&] { return fallback_.set_if_absent(key, value, ttl); });
}

StoreResult<std::int64_t> RedisStore::incr_with_window(std::string_view key, Ttl window) {
  return run<std::int64_t>(
      {"EVAL", std::string(kIncrWithWindow), "1", k(key), std::to_string(window.count())},
      [&](const redisReply& r) -> StoreResult<std::int64_t> {
        if (r.type == REDIS_REPLY_INTEGER) return static_cast<std::int64_t>(r.integer);
        if (r.type == REDIS_REPLY_ERROR &&
            std::string_view(r.str, r.len).find("integer") != std::string_view::npos)
          return unexpected(StoreError{StoreErrorKind::BadValue, std::string(r.str, r.len)});
        return unexpected(protocol_error(&r, "EVAL"));
      },
      [&] { return fallback_.incr_with_window(key, window); });
}

StoreResult<std::optional<Ttl>> RedisStore::ttl(std::string_view key) {
  using R = std::optional<Ttl>;
  return run<R>(
      {"PTTL", k(key)},
      [&](const redisReply& r) -> StoreResult<R> {
        if (r.type != REDIS_REPLY_INTEGER) return unexpected(protocol_error(&r, "PTTL"));
        if (r.integer == -2) return fallback_.ttl(key);
        if (r.integer == -1) return R(Ttl::zero());
        return R(Ttl(r.integer));
      },
      [&] { return fallback_.ttl(key); });
}

StoreResult<bool> RedisStore::erase(std::string_view key) {
  return run<bool>(
      {"DEL", k(key)},
      [&](const redisReply& r) -> StoreResult<bool> {
        if (r.type != REDIS_REPLY_INTEGER) return unexpected(protocol_error(&r, "DEL"));
        auto local = fallback_.erase(key);
        return r.integer > 0 || (local && *local);
      },
      [&] { return fallback_.erase(key); });
}

void RedisStore::housekeeping() {
  fallback_.sweep();
  // Notice a recovery even when no mail comes in.
  if (!up_.load() && should_try()) (void)command({"PING"});
}

}  // namespace mxguard::state
