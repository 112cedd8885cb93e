#include "mxguard/tables/options.h"

#include <fmt/format.h>

namespace mxguard::tables {

ConfigError to_config_error(const LoadError& e, std::string_view where, std::string_view key) {
  if (e.line > 0) return ConfigError{fmt::format("{}:{}", e.file, e.line), e.message};
  return ConfigError{std::string(where), fmt::format("{}: {}", key, e.to_string())};
}

options::Problem read_tables(const options::Reader& r, std::string_view key,
                             ResultValidator validate, TableList& out) {
  auto specs = r.list(key);
  if (!specs) return specs.error();
  for (const auto& spec : *specs) {
    auto t = load_table(spec.value, validate);
    if (!t) return to_config_error(t.error(), spec.where, key);
    out.push_back(std::move(t).value());
  }
  return std::nullopt;
}

}  // namespace mxguard::tables
