// ConfigError: what is wrong with a configuration, and where: "file:line: problem", or
// "command line: problem". Every loader of options returns one; main() prints it and exits
// with status 78 (EX_CONFIG).
// Thread-safety: a plain value.
#pragma once

#include <string>

namespace mxguard {

struct ConfigError {
  std::string where;
  std::string message;
  std::string to_string() const { return where + ": " + message; }
};

}  // namespace mxguard
