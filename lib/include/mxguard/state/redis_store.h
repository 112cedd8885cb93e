// RedisStore: a StateStore on a Redis server, so that several MX hosts share strikes and bans.
// Each call is one round trip (counters use a Lua script: INCR and PEXPIRE together) and is
// bounded by the timeout (connect and command alike). Connections come from a small pool: the
// pool's lock is held only to take or return one, never across the network.
// When Redis cannot be reached, calls are answered at once from a local MemoryStore (the
// fallback), the outage is logged once, and one caller at a time probes Redis again after a
// growing backoff; the recovery is logged too. While Redis is up, a key Redis does not have is
// still looked up in the fallback, so bans issued during an outage stay in force locally.
// get_confirmed() alone does not take a miss of the fallback for an answer: the ledger must not
// conclude "we never sent that" during an outage.
// With Sentinel (RedisStoreOptions::sentinels), the master's address is asked of the sentinels
// (SENTINEL get-master-addr-by-name), kept, and checked with ROLE on each new connection; a
// failed connection or a READONLY, LOADING or MASTERDOWN reply makes the next attempt ask again,
// so the store follows a failover. Meanwhile calls go to the fallback as for any outage.
// Who calls it: milter/main through make_store(); tests; the benchmark.
// Thread-safety: all members may be called concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "mxguard/state/memory_store.h"
#include "mxguard/state/store.h"

struct redisContext;
struct redisReply;

namespace mxguard::state {

// host:port (a bracketed IPv6 address is allowed), e.g. one Sentinel.
struct RedisEndpoint {
  std::string host;
  int port = 0;
  static Expected<RedisEndpoint, std::string> parse(std::string_view text, int default_port);
  std::string to_string() const;
  bool operator==(const RedisEndpoint&) const = default;
};

// redis://[[user]:password@]host[:port][/db]; the host may be a bracketed IPv6 address.
// rediss:// is the same over TLS: only in builds with hiredis >= 1.0 and hiredis_ssl
// (redis_tls_supported()); elsewhere, as on Debian 12 (hiredis 0.14), it is refused with a
// sentence that points at the stunnel route.
struct RedisUrl {
  std::string host;
  int port = 6379;
  int db = 0;
  bool tls = false;  // rediss://
  std::string user;  // Redis 6 ACL user; empty: AUTH with the password alone
  std::string password;
  static Expected<RedisUrl, std::string> parse(std::string_view url);
  std::string to_string() const;  // without the password
  bool operator==(const RedisUrl&) const = default;
};

// Whether this build speaks TLS to Redis itself (hiredis >= 1.0 with hiredis_ssl).
bool redis_tls_supported();

// rediss:// settings. Verification is on unless `verify` is false.
struct RedisTlsOptions {
  std::string ca_file{};      // empty: OpenSSL's default CA store
  std::string cert_file{};    // client certificate, for servers that ask for one
  std::string key_file{};     // its key
  std::string server_name{};  // checked against the certificate; empty: the URL's host
  bool verify = true;
  bool operator==(const RedisTlsOptions&) const = default;
};

// `text` with the password of a redis:// URL replaced by "***", for error messages and logs.
std::string redact_redis_url(std::string_view text);

struct RedisStoreOptions {
  RedisUrl url;
  std::chrono::milliseconds timeout{200};
  std::string key_prefix = "mxguard:";
  bool fallback = true;  // answer from local memory while Redis is away (else: an error)
  MemoryStoreOptions fallback_options{.max_entries = 200'000, .shards = 16, .state_file = {}};
  std::chrono::milliseconds min_backoff{500};
  std::chrono::milliseconds max_backoff{30'000};
  std::size_t max_idle_connections = 16;
  // Sentinel: when not empty, url.host and url.port are unused; the master of `master_name`
  // is asked of these (in order, the last one that answered first).
  std::vector<RedisEndpoint> sentinels{};
  std::string master_name{};
  std::string sentinel_password{};  // AUTH to the sentinels; empty: none
  RedisTlsOptions tls{};            // with url.tls
};

class RedisStore final : public StateStore {
 public:
  // Tries one connection (bounded by the timeout) and says in the log if Redis is away; the
  // store works either way.
  explicit RedisStore(RedisStoreOptions options, const Clock& clock = SystemClock::instance());
  ~RedisStore() override;
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  std::string describe() const override;
  StoreResult<std::optional<std::string>> get(std::string_view key) override;
  StoreResult<std::optional<std::string>> get_confirmed(std::string_view key) override;
  StoreResult<Done> put(std::string_view key, std::string_view value, Ttl ttl) override;
  StoreResult<bool> set_if_absent(std::string_view key, std::string_view value, Ttl ttl) override;
  StoreResult<std::int64_t> incr_with_window(std::string_view key, Ttl window) override;
  StoreResult<std::optional<Ttl>> ttl(std::string_view key) override;
  StoreResult<bool> erase(std::string_view key) override;
  void housekeeping() override;

  // False from a failed call until a later call succeeds.
  bool redis_up() const { return up_.load(); }
  std::uint64_t fallback_calls() const { return fallback_calls_.load(); }

 private:
  // A GET's reply: the value, or the fallback's for a key Redis does not hold.
  StoreResult<std::optional<std::string>> get_reply(const redisReply& r, std::string_view key);
  struct ContextDeleter {
    void operator()(redisContext* c) const;
  };
  using Conn = std::unique_ptr<redisContext, ContextDeleter>;
  struct Reply;
  struct Outcome;

  // Runs one command; on a transport failure marks Redis down and returns the error.
  Outcome command(const std::vector<std::string>& argv);
  // command(), then on_reply(reply) -> StoreResult<T>; from the fallback when Redis is away.
  template <class T, class OnReply, class OnFallback>
  StoreResult<T> run(const std::vector<std::string>& argv, OnReply on_reply,
                     OnFallback on_fallback);
  bool should_try();
  void mark_up();
  void mark_down(const StoreError& e);
  Expected<Conn, StoreError> connect();
  // Sentinel: the master's address, kept or asked of the sentinels.
  Expected<RedisEndpoint, StoreError> master();
  Expected<RedisEndpoint, StoreError> ask_sentinels();
  void forget_master();
  Conn acquire(StoreError* err);
  void release(Conn c);
  std::string k(std::string_view key) const;

  RedisStoreOptions options_;
  MemoryStore fallback_;
  std::mutex pool_mu_;
  std::vector<Conn> idle_;
  std::mutex health_mu_;  // guards the backoff schedule below; never held across I/O
  std::chrono::steady_clock::time_point next_attempt_{};
  std::chrono::milliseconds backoff_{0};
  std::atomic<bool> up_{true};
  std::atomic<bool> probing_{false};
  std::atomic<std::uint64_t> fallback_calls_{0};
  std::mutex master_mu_;  // guards the two below; never held across I/O
  std::optional<RedisEndpoint> master_;
  std::optional<RedisEndpoint> last_master_;  // for the log line when it changes
  std::atomic<std::size_t> preferred_sentinel_{0};
  std::shared_ptr<void> tls_context_;  // an SSL_CTX, with url.tls in a TLS build
};

}  // namespace mxguard::state
