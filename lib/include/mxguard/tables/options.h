// Table-valued options (client-access, backscatter-allow, trap-allow-senders, ...): a list of
// "type:/path" specs, each loaded at configuration time so that a bad line stops start-up with
// its own file and line.
// Who calls it: the option loaders of the checks; config.cpp.
// Thread-safety: loaded tables are immutable.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "mxguard/options/reader.h"
#include "mxguard/tables/table.h"

namespace mxguard::tables {

using TableList = std::vector<std::shared_ptr<const Table>>;

// A table's load error as a configuration error: the table's own file and line when it has
// one; else `where` (the place the option was set), prefixed with the option's name.
ConfigError to_config_error(const LoadError& e, std::string_view where, std::string_view key);

options::Problem read_tables(const options::Reader& r, std::string_view key,
                             ResultValidator validate, TableList& out);

}  // namespace mxguard::tables
