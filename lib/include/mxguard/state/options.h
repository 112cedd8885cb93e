// StateOptions: the state-store, ban and ledger settings of the configuration (keys state,
// state-file, state-max-entries, redis-timeout, redis-user, redis-password-file, redis-sentinels,
// redis-master-name, redis-database, redis-sentinel-password-file, redis-tls-*, ban-*,
// allow-networks, provider-suffixes, on-store-error, ledger*) and their loader. Who calls it:
// lib/config.cpp (loading), StateRuntime (building the store and the engine). Thread-safety: plain
// values.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mxguard/check_mode.h"
#include "mxguard/options/reader.h"
#include "mxguard/state/bans.h"
#include "mxguard/state/redis_store.h"

namespace mxguard::state {

// The ledger of mail we sent (mxguard/state/ledger.h).
struct LedgerOptions {
  bool enabled = true;
  std::chrono::seconds lifetime{std::chrono::hours(24 * 14)};
  std::size_t max_entries = 2'000'000;           // memory ledger only
  std::string file = "/var/lib/mxguard/ledger";  // memory ledger only; empty: not saved
  std::string key_file = "/var/lib/mxguard/ledger.key";
  bool operator==(const LedgerOptions&) const = default;
};

struct StateOptions {
  std::string state = "memory";  // "memory", "sentinel" or a redis:// URL, as given
  // Set for Redis state (plain or Sentinel), with the password read from redis-password-file.
  std::optional<RedisUrl> redis{};
  std::string redis_password_file{};  // where the password came from (for -n); empty: URL/none
  std::vector<RedisEndpoint> redis_sentinels{};  // state = sentinel
  std::string redis_master_name{};
  std::string sentinel_password{};
  std::string redis_sentinel_password_file{};
  RedisTlsOptions redis_tls{};  // rediss:// (a build with TLS)
  std::string state_file{};     // memory backend: where bans survive a restart (empty: nowhere)
  std::size_t max_entries = 2'000'000;
  std::chrono::milliseconds redis_timeout{200};
  BanSettings bans{};
  // What a check does when the store cannot answer (on-store-error).
  FailureAction on_error = FailureAction::Accept;
  LedgerOptions ledger{};

  // Whether a reload with `o` can keep the store built for *this (ban or ledger settings may
  // differ: the ledger is rebuilt on its own).
  bool same_store(const StateOptions& o) const {
    return state == o.state && redis == o.redis && redis_sentinels == o.redis_sentinels &&
           redis_master_name == o.redis_master_name && sentinel_password == o.sentinel_password &&
           redis_tls == o.redis_tls && state_file == o.state_file && max_entries == o.max_entries &&
           redis_timeout == o.redis_timeout;
  }
};

// The options above, for the one list of options (help, man page test).
std::vector<options::Spec> state_option_specs();

options::Problem load_state_options(const options::Reader& r, StateOptions& o);

// The first line of a file that holds a secret (a password), refused when group or others may
// read or write the file, when it cannot be read, or when the line is empty. The error starts
// with the path and never holds the secret.
Expected<std::string, std::string> read_secret_file(const std::string& path);

// One line for `mxguard -n`: memory, or the Redis mode (plain URL, or Sentinel with its master
// name and sentinels) and whether it authenticates; never a secret.
std::string describe_state(const StateOptions& o);

}  // namespace mxguard::state
