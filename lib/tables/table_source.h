// Private to lib/tables: reading a Postfix table source file into logical lines, and the
// per-type loaders that load_table() dispatches to.
// Thread-safety: loading runs on one thread (start-up or reload); the tables it builds are
// immutable afterwards.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mxguard/expected.h"
#include "mxguard/tables/table.h"
#include "mxguard/text.h"

namespace mxguard::tables::detail {

// One logical line: its continuation lines joined on, numbered after its first physical line.
struct LogicalLine {
  int number = 0;
  std::string text;
};

// Skips blank and '#' lines and joins lines that start with white space onto the previous one,
// as every Postfix table source does. A trailing CR (a file edited on Windows) is dropped.
Expected<std::vector<LogicalLine>, LoadError> read_logical_lines(const std::string& path);

// White space in a table source, as Postfix's ISSPACE sees it (no LF: lines are split on it).
constexpr std::string_view kTableSpace = " \t\r\f\v";
bool is_space(char c);

// Checks one result at load time; the validator's message becomes a LoadError at this line.
std::optional<LoadError> check_result(ResultValidator validate, const std::string& path, int line,
                                      std::string_view result);

enum class PatternDialect { Regexp, Pcre };

using TableResult = Expected<std::shared_ptr<const Table>, LoadError>;
TableResult load_exact_table(std::string spec, const std::string& path, ResultValidator validate);
TableResult load_cidr_table(std::string spec, const std::string& path, ResultValidator validate);
TableResult load_pattern_table(std::string spec, const std::string& path, PatternDialect dialect,
                               ResultValidator validate);

}  // namespace mxguard::tables::detail
