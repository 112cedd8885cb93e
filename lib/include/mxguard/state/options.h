// StateOptions: the state-store and ban settings of the configuration (keys state, state-file,
// state-max-entries, redis-timeout, ban-*, allow-networks, provider-suffixes), and the value
// parsers config.cpp uses for them.
// Who calls it: lib/config.cpp (parsing), StateRuntime (building the store and the engine).
// Thread-safety: plain values.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "mxguard/state/bans.h"
#include "mxguard/state/redis_store.h"

namespace mxguard::state {

struct StateOptions {
  std::string state = "memory";  // "memory" or a redis:// URL, as given
  std::optional<RedisUrl> redis{};
  std::string state_file{};  // memory backend: where bans survive a restart (empty: nowhere)
  std::size_t max_entries = 2'000'000;
  std::chrono::milliseconds redis_timeout{200};
  BanSettings bans{};

  // Whether a reload with `o` can keep the store built for *this (only ban settings differ).
  bool same_store(const StateOptions& o) const {
    return state == o.state && state_file == o.state_file && max_entries == o.max_entries &&
           redis_timeout == o.redis_timeout;
  }
};

// "30m", "1800s", "1800", "1h", "1d", "200ms". A bare number counts `bare_unit`s (seconds for
// ban times, as fail2ban's bantime; milliseconds for redis-timeout).
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text,
                                                        std::chrono::milliseconds bare_unit);

}  // namespace mxguard::state
