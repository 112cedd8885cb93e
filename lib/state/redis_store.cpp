#include "mxguard/state/redis_store.h"
#include "mxguard/text.h"

#include <hiredis/hiredis.h>

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

}  // namespace

Expected<RedisUrl, std::string> RedisUrl::parse(std::string_view url) {
  constexpr std::string_view scheme = "redis://";
  if (url.substr(0, scheme.size()) != scheme)
    return unexpected(std::string("expected redis://host:port/db"));
  std::string_view rest = url.substr(scheme.size());
  RedisUrl out;
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
  if (!hostport.empty() && hostport.front() == '[') {
    auto close = hostport.find(']');
    if (close == std::string_view::npos) return unexpected(std::string("unclosed '[' in host"));
    out.host = std::string(hostport.substr(1, close - 1));
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return unexpected(std::string("junk after ']'"));
      port = after.substr(1);
    }
  } else {
    auto colon = hostport.find(':');
    out.host = std::string(hostport.substr(0, colon));
    if (colon != std::string_view::npos) port = hostport.substr(colon + 1);
  }
  if (out.host.empty()) return unexpected(std::string("missing host"));
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
  bool v6 = host.find(':') != std::string::npos;
  return fmt::format("redis://{}{}{}:{}/{}", v6 ? "[" : "", host, v6 ? "]" : "", port, db);
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
  StoreError err;
  Conn c = acquire(&err);
  if (c) {
    release(std::move(c));
    log(LogLevel::Info, "state: using {}", options_.url.to_string());
  } else {
    mark_down(err);
  }
}

RedisStore::~RedisStore() = default;

std::string RedisStore::k(std::string_view key) const {
  std::string out;
  out.reserve(options_.key_prefix.size() + key.size());
  out.append(options_.key_prefix).append(key);
  return out;
}

Expected<RedisStore::Conn, StoreError> RedisStore::connect() {
  const timeval tv = to_timeval(options_.timeout);
  Conn c(redisConnectWithTimeout(options_.url.host.c_str(), options_.url.port, tv));
  if (!c || c->err) return unexpected(context_error(c.get()));
  redisSetTimeout(c.get(), tv);
  redisEnableKeepAlive(c.get());
  auto simple = [&](std::vector<std::string> argv) -> std::optional<StoreError> {
    std::vector<const char*> ptrs;
    std::vector<std::size_t> lens;
    for (const auto& a : argv) {
      ptrs.push_back(a.data());
      lens.push_back(a.size());
    }
    ReplyPtr r(static_cast<redisReply*>(
        redisCommandArgv(c.get(), static_cast<int>(argv.size()), ptrs.data(), lens.data())));
    if (!r) return context_error(c.get());
    if (r->type == REDIS_REPLY_ERROR) return protocol_error(r.get(), argv[0]);
    return std::nullopt;
  };
  if (!options_.url.password.empty()) {
    auto e = options_.url.user.empty() ? simple({"AUTH", options_.url.password})
                                       : simple({"AUTH", options_.url.user, options_.url.password});
    if (e) return unexpected(*e);
  }
  if (options_.url.db != 0) {
    if (auto e = simple({"SELECT", std::to_string(options_.url.db)})) return unexpected(*e);
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
    log(LogLevel::Notice, "state: {} is reachable again; using shared state",
        options_.url.to_string());
}

void RedisStore::mark_down(const StoreError& e) {
  std::vector<Conn> stale;
  {
    std::lock_guard lock(health_mu_);
    const bool was_up = up_.exchange(false);
    const bool was_probe = probing_.exchange(false);
    if (was_up) {
      backoff_ = options_.min_backoff;
      log(LogLevel::Warning, "state: {} is unreachable ({}); {}", options_.url.to_string(),
          e.message,
          options_.fallback ? "using local memory state until it is back"
                            : "state calls fail until it is back");
    } else if (was_probe) {
      backoff_ = std::min(options_.max_backoff, std::max(options_.min_backoff, backoff_ * 2));
    }
    next_attempt_ = std::chrono::steady_clock::now() + backoff_;
  }
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
  std::vector<const char*> ptrs;
  std::vector<std::size_t> lens;
  ptrs.reserve(argv.size());
  lens.reserve(argv.size());
  for (const auto& a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  out.reply.reset(static_cast<redisReply*>(
      redisCommandArgv(c.get(), static_cast<int>(argv.size()), ptrs.data(), lens.data())));
  if (!out.reply) {
    out.error = context_error(c.get());
    out.transport = true;
    mark_down(*out.error);
    return out;  // the connection is in an unknown state: dropped, not pooled
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
    return unexpected(
        StoreError{StoreErrorKind::Unavailable, options_.url.to_string() + " is unreachable"});
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
        return unexpected(
            StoreError{StoreErrorKind::Unavailable, options_.url.to_string() + " is unreachable"});
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
