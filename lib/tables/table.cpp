// load_table(): the spec dispatch, the shared line reader, and the exact ("key value") tables.
#include "mxguard/tables/table.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unordered_map>

#include "table_source.h"

namespace mxguard::tables {

std::string LoadError::to_string() const {
  return fmt::format("{}:{}: {}", file, line, message);
}

namespace detail {

bool is_space(char c) {
  return kTableSpace.find(c) != std::string_view::npos;
}

std::optional<LoadError> check_result(ResultValidator validate, const std::string& path, int line,
                                      std::string_view result) {
  if (validate == nullptr) return std::nullopt;
  if (auto problem = validate(result)) return LoadError{path, line, *problem};
  return std::nullopt;
}

Expected<std::vector<LogicalLine>, LoadError> read_logical_lines(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return unexpected(LoadError{path, 0, std::strerror(errno)});
  std::string content;
  char buffer[8192];
  std::size_t got = 0;
  while ((got = std::fread(buffer, 1, sizeof buffer, file)) > 0)
    content.append(buffer, got);
  // fopen() succeeds on a directory; the read then fails with EISDIR.
  int read_errno = std::ferror(file) ? errno : 0;
  std::fclose(file);
  if (read_errno != 0) return unexpected(LoadError{path, 0, std::strerror(read_errno)});

  std::vector<LogicalLine> lines;
  int number = 0;
  std::size_t pos = 0;
  while (pos < content.size()) {
    std::size_t eol = content.find('\n', pos);
    if (eol == std::string::npos) eol = content.size();
    std::string_view raw(content.data() + pos, eol - pos);
    pos = eol + 1;
    ++number;
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    if (raw.find('\0') != std::string_view::npos)
      return unexpected(LoadError{path, number, "NUL byte in line"});
    std::string_view content_part = trim(raw, kTableSpace);
    if (content_part.empty() || content_part.front() == '#') continue;
    if (is_space(raw.front())) {
      if (lines.empty())
        return unexpected(LoadError{
            path, number, "continuation line (starts with white space) before any entry"});
      lines.back().text.append(raw);
      continue;
    }
    lines.push_back(LogicalLine{number, std::string(raw)});
  }
  for (auto& line : lines)
    line.text = std::string(trim(line.text, kTableSpace));
  return lines;
}

namespace {

// hash:, btree:, ... and bare paths: the postmap source text, "key whitespace value".
class ExactTable final : public Table {
 public:
  ExactTable(std::string spec, std::unordered_map<std::string, std::string> entries)
      : spec_(std::move(spec)), entries_(std::move(entries)) {}
  TableKind kind() const override { return TableKind::Exact; }
  const std::string& spec() const override { return spec_; }
  std::optional<std::string> find(std::string_view key) const override {
    auto it = entries_.find(ascii_lowercase(key));
    if (it == entries_.end()) return std::nullopt;
    return it->second;
  }
  std::optional<std::string> find_address(const net::IpAddress& addr) const override {
    return find(addr.to_string());
  }

 private:
  std::string spec_;
  std::unordered_map<std::string, std::string> entries_;
};

}  // namespace

TableResult load_exact_table(std::string spec, const std::string& path, ResultValidator validate) {
  auto lines = read_logical_lines(path);
  if (!lines) return unexpected(std::move(lines).error());
  std::unordered_map<std::string, std::string> entries;
  for (const auto& line : *lines) {
    std::string_view text = line.text;
    auto key_end = std::find_if(text.begin(), text.end(), is_space);
    std::string_view key = text.substr(0, static_cast<std::size_t>(key_end - text.begin()));
    std::string_view value = trim(text.substr(key.size()), kTableSpace);
    if (value.empty())
      return unexpected(LoadError{path, line.number,
                                  fmt::format("'{}' has no value (expected 'key value')", key)});
    if (auto error = check_result(validate, path, line.number, value)) return unexpected(*error);
    // Keys fold to lower case as postmap folds them. A duplicate key keeps the first value, as
    // postmap does (it only warns), so a file that works with Postfix loads here too.
    entries.emplace(ascii_lowercase(key), std::string(value));
  }
  return std::shared_ptr<const Table>(
      std::make_shared<ExactTable>(std::move(spec), std::move(entries)));
}

}  // namespace detail

Expected<std::shared_ptr<const Table>, LoadError> load_table(std::string_view spec,
                                                             ResultValidator validate) {
  std::string type;
  std::string path(spec);
  // "type:/path"; a bare path ("/etc/postfix/access") has no lower-case word before a ':'.
  std::size_t colon = spec.find(':');
  if (colon != std::string_view::npos && colon > 0 &&
      std::all_of(spec.begin(), spec.begin() + static_cast<std::ptrdiff_t>(colon), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
      })) {
    type = std::string(spec.substr(0, colon));
    path = std::string(spec.substr(colon + 1));
  }
  if (path.empty())
    return unexpected(LoadError{std::string(spec), 0, "no file name in table spec"});
  std::string spec_text(spec);
  if (type == "cidr") return detail::load_cidr_table(std::move(spec_text), path, validate);
  if (type == "regexp")
    return detail::load_pattern_table(std::move(spec_text), path, detail::PatternDialect::Regexp,
                                      validate);
  if (type == "pcre")
    return detail::load_pattern_table(std::move(spec_text), path, detail::PatternDialect::Pcre,
                                      validate);
  // The indexed types are read from their source text: the file postmap would compile.
  if (type.empty() || type == "hash" || type == "btree" || type == "lmdb" || type == "cdb" ||
      type == "dbm" || type == "sdbm" || type == "texthash")
    return detail::load_exact_table(std::move(spec_text), path, validate);
  return unexpected(LoadError{path, 0, fmt::format("unsupported table type '{}'", type)});
}

}  // namespace mxguard::tables
