#include "options/sources.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "mxguard/text.h"

namespace po = boost::program_options;

namespace mxguard::options {

namespace {

po::options_description describe(const Catalogue& c) {
  po::options_description d("mxguard options");
  for (const Spec& s : c.specs) {
    const po::value_semantic* v = nullptr;
    switch (s.kind) {
      case Kind::Value:
        v = po::value<std::string>();
        break;
      case Kind::List:
        v = po::value<std::vector<std::string>>()->composing();
        break;
      case Kind::Flag:
        v = po::value<std::string>()->implicit_value("yes");
        break;
      case Kind::Files:
        v = po::value<std::vector<std::string>>()->multitoken();
        break;
    }
    d.add_options()(s.name, v, s.help);
  }
  return d;
}

// A flag given alone ("--report-only", "-f") means yes; written out here so that the word
// after it is never taken for its value ("mxguard audit --report-header DOMAIN").
std::vector<std::string> spell_out_flags(const Catalogue& c, std::vector<std::string> args) {
  for (std::string& a : args) {
    for (const Spec& s : c.specs) {
      if (s.kind != Kind::Flag) continue;
      const std::string_view name(s.name);
      const std::string_view long_name = name.substr(0, name.find(','));
      const bool short_form = name.find(',') != std::string_view::npos && a.size() == 2 &&
                              a[0] == '-' && a[1] == name.back();
      if (short_form || (a.size() == long_name.size() + 2 && a.starts_with("--") &&
                         std::string_view(a).substr(2) == long_name)) {
        a = fmt::format("--{}=yes", long_name);
        break;
      }
    }
  }
  return args;
}

std::optional<std::string> explain(const Catalogue& c, std::string_view key) {
  return c.explain_unknown ? c.explain_unknown(key) : std::nullopt;
}

}  // namespace

Expected<RawMap, ConfigError> read_command_line(const Catalogue& c,
                                                const std::vector<std::string>& args,
                                                std::vector<std::string>* operands) {
  RawMap raw;
  try {
    po::parsed_options parsed =
        po::command_line_parser(spell_out_flags(c, args)).options(describe(c)).run();
    for (const auto& o : parsed.options) {
      if (operands && o.position_key != -1) {
        operands->insert(operands->end(), o.value.begin(), o.value.end());
        continue;
      }
      if (o.position_key != -1 || o.string_key.empty())
        return unexpected(ConfigError{
            "command line", fmt::format("unexpected argument '{}'", fmt::join(o.value, " "))});
      if (o.value.empty()) raw[o.string_key].push_back({"yes", "command line"});
      for (const auto& v : o.value)
        raw[o.string_key].push_back({v, "command line"});
    }
  } catch (const po::unknown_option& e) {
    std::string key = e.get_option_name();
    key = key.substr(std::min(key.find_first_not_of('-'), key.size()));
    key = key.substr(0, key.find('='));
    return unexpected(ConfigError{"command line", explain(c, key).value_or(e.what())});
  } catch (const po::error& e) {
    return unexpected(ConfigError{"command line", e.what()});
  }
  return raw;
}

Expected<RawMap, ConfigError> read_config_file(const Catalogue& c, const std::string& path) {
  // A directory opens and reads as an empty file: say so rather than run on the defaults.
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return unexpected(ConfigError{path, "is a directory, not a config file"});
  std::ifstream in(path);
  if (!in) return unexpected(ConfigError{path, "cannot read the file"});
  const po::options_description desc = describe(c);
  RawMap raw;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    std::string_view t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    std::string where = fmt::format("{}:{}", path, lineno);
    auto eq = t.find('=');
    if (eq == std::string::npos)
      return unexpected(ConfigError{where, fmt::format("expected 'key = value', got '{}'", t)});
    std::string key(trim(t.substr(0, eq)));
    std::string value(trim(t.substr(eq + 1)));
    if (key.empty()) return unexpected(ConfigError{where, "missing key before '='"});
    if (!desc.find_nothrow(key, false))
      return unexpected(
          ConfigError{where, explain(c, key).value_or(fmt::format("unknown option '{}'", key))});
    if (std::find(c.command_line_only.begin(), c.command_line_only.end(), key) !=
        c.command_line_only.end())
      return unexpected(ConfigError{where, fmt::format("'{}' is a command-line option", key)});
    raw[key].push_back({value, where});
  }
  return raw;
}

std::string help_text(const Catalogue& c) {
  std::ostringstream os;
  os << describe(c);
  return os.str();
}

std::vector<std::string> option_names(const Catalogue& c) {
  std::vector<std::string> out;
  const po::options_description d = describe(c);
  for (const auto& o : d.options())
    out.push_back(o->long_name());
  return out;
}

}  // namespace mxguard::options
