// The check registry: one table of every check mxguard has, in pipeline order, with its name
// (check.NAME in the config, check= in logs, metrics labels), its default mode and the factory
// that builds it from the configuration. build_policy() builds the pipeline from it, config.cpp
// reads check.NAME for exactly these names, and -n, --help and the man page test list them in
// this order. Adding a check is one row here and one file under lib/checks/.
// Thread-safety: the table is a constant.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "mxguard/check.h"
#include "mxguard/check_mode.h"
#include "mxguard/checks/backscatter.h"

namespace mxguard {

struct Config;

struct CheckInfo {
  CheckId id;
  std::string_view name;
  CheckMode default_mode;
  // Builds the check with its own options taken from the configuration.
  std::unique_ptr<Check> (*make)(const Config& cfg);
};

// Every check, in pipeline order; check_registry()[index(id)].id == id.
std::span<const CheckInfo> check_registry();
const CheckInfo& check_info(CheckId id);
std::optional<CheckId> find_check(std::string_view name);
std::string_view to_string(CheckId id);

// The settings the registry gives the backscatter check (also for tests of its judgement).
checks::BackscatterSettings backscatter_settings(const Config& cfg);

}  // namespace mxguard
