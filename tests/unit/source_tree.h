// The source tree for the unit tests: paths to the shipped tables and test data, and
// load_config() with the shipped tables named explicitly, so that no unit test reads
// /etc/mxguard, whatever the machine running it has installed there (the package test,
// running beside the unit tests, installs one).
// Who uses it: the unit tests that load a configuration. MXGUARD_SOURCE_DIR is defined for the
// test targets only (tests/CMakeLists.txt), never for the shipped binary.
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mxguard/config.h"

namespace mxguard::test {

inline std::string source_path(std::string_view relative) {
  return std::string(MXGUARD_SOURCE_DIR) + "/" + std::string(relative);
}

// load_config() with the shipped tables named: bogus-networks (bogus-mx, on by default, would
// look for /etc/mxguard/rules/bogus-networks.cidr) and message-rules (check.backscatter would
// read /etc/mxguard/rules). Placed first, so that the
// same option given by the test on the command line still wins; a test's config file must not
// name them (the command line wins over the file).
inline Expected<std::shared_ptr<const Config>, ConfigError> load_hermetic(
    std::vector<std::string> args) {
  args.insert(args.begin(), {"--bogus-networks=" + source_path("rules/bogus-networks.cidr"),
                             "--message-rules=" + source_path("rules")});
  return load_config(CommandLine{std::move(args)});
}

}  // namespace mxguard::test
