// cidr: tables per cidr_table(5): "network/prefix result", "!network/prefix result",
// "if [!]network/prefix" ... "endif" (nesting), first match in file order.
#include <fmt/format.h>

#include <vector>

#include "table_source.h"

namespace mxguard::tables::detail {
namespace {

struct CidrRule {
  net::Cidr block{net::IpAddress{}, 0};
  bool negate = false;
  bool is_if = false;
  std::size_t skip_to = 0;  // if: the first rule after the matching endif
  std::string result;
};

class CidrTable final : public Table {
 public:
  CidrTable(std::string spec, std::vector<CidrRule> rules)
      : spec_(std::move(spec)), rules_(std::move(rules)) {}
  TableKind kind() const override { return TableKind::Cidr; }
  const std::string& spec() const override { return spec_; }
  std::optional<std::string> find(std::string_view key) const override {
    auto addr = net::IpAddress::parse(key);
    if (!addr) return std::nullopt;
    return find_address(*addr);
  }
  std::optional<std::string> find_address(const net::IpAddress& addr) const override {
    std::size_t i = 0;
    while (i < rules_.size()) {
      const CidrRule& rule = rules_[i];
      // A rule, negated or not, only speaks about addresses of its own family: Postfix skips
      // "!10.0.0.0/8" for an IPv6 client rather than treating it as a match.
      bool hit = rule.block.network().family() == addr.family() &&
                 rule.block.contains(addr) != rule.negate;
      if (rule.is_if) {
        i = hit ? i + 1 : rule.skip_to;
        continue;
      }
      if (hit) return rule.result;
      ++i;
    }
    return std::nullopt;
  }

 private:
  std::string spec_;
  std::vector<CidrRule> rules_;
};

bool word_is(std::string_view text, std::string_view word) {
  return istarts_with(text, word) && (text.size() == word.size() || is_space(text[word.size()]));
}

}  // namespace

TableResult load_cidr_table(std::string spec, const std::string& path, ResultValidator validate) {
  auto lines = read_logical_lines(path);
  if (!lines) return unexpected(std::move(lines).error());
  std::vector<CidrRule> rules;
  std::vector<std::pair<std::size_t, int>> open_ifs;  // rule index, line number
  for (const auto& line : *lines) {
    auto fail = [&](std::string message) {
      return unexpected(LoadError{path, line.number, std::move(message)});
    };
    std::string_view text = line.text;
    if (word_is(text, "endif")) {
      if (!trim(text.substr(5), kTableSpace).empty()) return fail("text after endif");
      if (open_ifs.empty()) return fail("endif without matching if");
      rules[open_ifs.back().first].skip_to = rules.size();
      open_ifs.pop_back();
      continue;
    }
    CidrRule rule;
    rule.is_if = word_is(text, "if");
    if (rule.is_if) text = trim(text.substr(2), kTableSpace);
    std::size_t end = 0;
    while (end < text.size() && !is_space(text[end]))
      ++end;
    std::string_view pattern = text.substr(0, end);
    std::string_view rest = trim(text.substr(end), kTableSpace);
    if (!pattern.empty() && pattern.front() == '!') {
      rule.negate = true;
      pattern.remove_prefix(1);
    }
    if (pattern.empty()) return fail("missing address pattern");
    auto block = net::Cidr::parse_or_explain(pattern);
    if (!block) return fail(block.error());
    rule.block = *block;
    if (rule.is_if) {
      if (!rest.empty()) return fail(fmt::format("text after if pattern: '{}'", rest));
      open_ifs.emplace_back(rules.size(), line.number);
    } else {
      if (rest.empty()) return fail(fmt::format("'{}' has no result", pattern));
      if (auto error = check_result(validate, path, line.number, rest)) return unexpected(*error);
      rule.result = std::string(rest);
    }
    rules.push_back(std::move(rule));
  }
  if (!open_ifs.empty())
    return unexpected(LoadError{path, open_ifs.back().second, "if without matching endif"});
  return std::shared_ptr<const Table>(
      std::make_shared<CidrTable>(std::move(spec), std::move(rules)));
}

}  // namespace mxguard::tables::detail
