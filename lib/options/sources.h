// The two sources of option values: the command line (Boost.Program_options) and the config
// file (key = value lines, read here line by line rather than with parse_config_file, so that
// every error can name its file and line, which an admin needs at 3 a.m.). Both give RawValues
// that remember their place, for options::Reader.
// Who calls it: lib/config.cpp with the one list of options (every module's Specs).
// Thread-safety: plain functions.
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mxguard/config_error.h"
#include "mxguard/expected.h"
#include "mxguard/options/reader.h"

namespace mxguard::options {

struct Catalogue {
  std::vector<Spec> specs;                          // in --help order
  std::vector<std::string_view> command_line_only;  // not allowed in the config file
  // A better message than "unknown option" for some keys (check.NAME lists the checks).
  std::function<std::optional<std::string>(std::string_view key)> explain_unknown;
};

// `operands`: where words that are not options go; null: each is an error.
Expected<RawMap, ConfigError> read_command_line(const Catalogue& c,
                                                const std::vector<std::string>& args,
                                                std::vector<std::string>* operands);
Expected<RawMap, ConfigError> read_config_file(const Catalogue& c, const std::string& path);

std::string help_text(const Catalogue& c);
std::vector<std::string> option_names(const Catalogue& c);  // long names, in --help order

}  // namespace mxguard::options
