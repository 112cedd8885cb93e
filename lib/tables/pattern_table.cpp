// regexp: and pcre: tables per regexp_table(5) and pcre_table(5), both compiled with PCRE2.
// Patterns are compiled (and JIT-compiled where the platform allows) once at load. Lookups share
// nothing mutable: each thread reuses its own match data, so one table serves every thread
// without locks and without an allocation per rule per lookup.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <memory>
#include <vector>

#include "table_source.h"

namespace mxguard::tables::detail {
namespace {

// Bounds a pathological pattern's backtracking; a lookup that hits them counts as no match.
constexpr std::uint32_t kMatchLimit = 1'000'000;
constexpr std::uint32_t kDepthLimit = 10'000;

struct CodeFree {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
struct MatchContextFree {
  void operator()(pcre2_match_context* ctx) const { pcre2_match_context_free(ctx); }
};
struct MatchDataFree {
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};
using CodePtr = std::unique_ptr<pcre2_code, CodeFree>;
using MatchDataPtr = std::unique_ptr<pcre2_match_data, MatchDataFree>;

// A result split into literal text and capture references, so lookups only concatenate.
struct Piece {
  std::string literal;
  std::uint32_t group = 0;  // 0: literal
};

struct PatternRule {
  CodePtr code;
  bool jit = false;  // JIT-compiled: matched through pcre2_jit_match
  // Anchored patterns with a known first byte: which first bytes can match at all (both cases
  // when unsure). A key whose first byte is not in it cannot match, so PCRE2 is not called.
  bool first_filter = false;
  std::array<bool, 256> first_bytes{};
  bool negate = false;
  bool is_if = false;
  std::size_t skip_to = 0;  // if: the first rule after the matching endif
  std::vector<Piece> result;
};

class PatternTable final : public Table {
 public:
  PatternTable(std::string spec, std::vector<PatternRule> rules)
      : spec_(std::move(spec)),
        rules_(std::move(rules)),
        context_(pcre2_match_context_create(nullptr)) {
    for (const PatternRule& rule : rules_) {
      std::uint32_t captures = 0;
      pcre2_pattern_info(rule.code.get(), PCRE2_INFO_CAPTURECOUNT, &captures);
      max_pairs_ = std::max(max_pairs_, captures + 1);
    }
    if (context_) {
      pcre2_set_match_limit(context_.get(), kMatchLimit);
      pcre2_set_depth_limit(context_.get(), kDepthLimit);
    }
  }
  TableKind kind() const override { return TableKind::Pattern; }
  const std::string& spec() const override { return spec_; }

  std::optional<std::string> find(std::string_view key) const override {
    pcre2_match_data* data = thread_match_data(max_pairs_);
    if (data == nullptr) return std::nullopt;
    auto subject = reinterpret_cast<PCRE2_SPTR>(key.data());
    std::size_t i = 0;
    while (i < rules_.size()) {
      const PatternRule& rule = rules_[i];
      // A negative return is "no match" or a limit/UTF error: neither is a match.
      int rc = PCRE2_ERROR_NOMATCH;
      if (!rule.first_filter ||
          (!key.empty() && rule.first_bytes[static_cast<unsigned char>(key.front())])) {
        rc = rule.jit
                 ? pcre2_jit_match(rule.code.get(), subject, key.size(), 0, 0, data, context_.get())
                 : pcre2_match(rule.code.get(), subject, key.size(), 0, 0, data, context_.get());
      }
      bool hit = (rc >= 0) != rule.negate;
      if (rule.is_if) {
        i = hit ? i + 1 : rule.skip_to;
        continue;
      }
      if (hit) return expand(rule, key, rc >= 0 ? data : nullptr);
      ++i;
    }
    return std::nullopt;
  }

  std::optional<std::string> find_address(const net::IpAddress& addr) const override {
    return find(addr.to_string());
  }

 private:
  // This thread's match data, grown to hold `pairs` ovector pairs. find() uses it only between
  // its own pcre2 calls and expand(), and never re-enters a table, so one per thread suffices.
  static pcre2_match_data* thread_match_data(std::uint32_t pairs) {
    thread_local MatchDataPtr data;
    thread_local std::uint32_t capacity = 0;
    if (!data || capacity < pairs) {
      data.reset(pcre2_match_data_create(pairs, nullptr));
      capacity = data ? pairs : 0;
    }
    return data.get();
  }

  static std::string expand(const PatternRule& rule, std::string_view key, pcre2_match_data* data) {
    std::string out;
    for (const Piece& piece : rule.result) {
      if (piece.group == 0) {
        out += piece.literal;
        continue;
      }
      // Negated rules carry no references (refused at load), so data is set here.
      if (data == nullptr || piece.group >= pcre2_get_ovector_count(data)) continue;
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
      PCRE2_SIZE begin = ovector[2 * piece.group];
      PCRE2_SIZE end = ovector[2 * piece.group + 1];
      if (begin == PCRE2_UNSET || end < begin) continue;  // group did not take part
      out.append(key.substr(begin, end - begin));
    }
    return out;
  }

  std::string spec_;
  std::vector<PatternRule> rules_;
  std::uint32_t max_pairs_ = 1;
  std::unique_ptr<pcre2_match_context, MatchContextFree> context_;
};

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool keyword_is(std::string_view text, std::string_view word) {
  return istarts_with(text, word) && (text.size() == word.size() || !is_alnum(text[word.size()]));
}

struct ParsedPattern {
  bool negate = false;
  std::string pattern;
  std::uint32_t options = 0;
  std::string_view rest;  // what follows the flags, trimmed
};

// "[!]<d>pattern<d>flags rest"; <d> is any character other than a letter, digit, white space
// or backslash. A backslash keeps the next character (and itself) in the pattern, so "\/" is a
// literal slash for the regex engine, as in Postfix.
Expected<ParsedPattern, std::string> parse_pattern(std::string_view text, PatternDialect dialect) {
  ParsedPattern out;
  if (!text.empty() && text.front() == '!') {
    out.negate = true;
    text.remove_prefix(1);
  }
  if (text.empty() || is_alnum(text.front()) || is_space(text.front()) || text.front() == '\\')
    return unexpected(
        std::string("expected a pattern such as /regex/ (the delimiter may be any "
                    "character but a letter, digit, white space or backslash)"));
  char delim = text.front();
  std::size_t i = 1;
  for (; i < text.size() && text[i] != delim; ++i)
    if (text[i] == '\\' && i + 1 < text.size()) ++i;
  if (i >= text.size()) return unexpected(fmt::format("missing closing '{}' of pattern", delim));
  out.pattern = std::string(text.substr(1, i - 1));
  if (out.pattern.empty()) return unexpected(std::string("empty pattern"));
  ++i;

  // Both dialects match case-insensitively unless 'i' toggles it off.
  bool caseless = true;
  bool multiline = false;
  bool extended = dialect == PatternDialect::Regexp;  // regexp: POSIX "extended" syntax is on
  for (; i < text.size() && !is_space(text[i]); ++i) {
    char flag = text[i];
    if (flag == 'i') {
      caseless = !caseless;
    } else if (flag == 'm') {
      multiline = !multiline;
    } else if (flag == 'x') {
      extended = !extended;
    } else if (dialect == PatternDialect::Pcre && flag == 's') {
      out.options ^= PCRE2_DOTALL;
    } else if (dialect == PatternDialect::Pcre && flag == 'A') {
      out.options ^= PCRE2_ANCHORED;
    } else if (dialect == PatternDialect::Pcre && flag == 'E') {
      out.options ^= PCRE2_DOLLAR_ENDONLY;
    } else if (dialect == PatternDialect::Pcre && flag == 'U') {
      out.options ^= PCRE2_UNGREEDY;
    } else if (dialect == PatternDialect::Pcre && flag == 'X') {
      // PCRE_EXTRA made unknown escapes errors; PCRE2 always does, so nothing to set.
    } else {
      return unexpected(fmt::format("unknown {} flag '{}'",
                                    dialect == PatternDialect::Regexp ? "regexp" : "pcre", flag));
    }
  }
  if (caseless) out.options |= PCRE2_CASELESS;
  if (dialect == PatternDialect::Pcre) {
    if (multiline) out.options |= PCRE2_MULTILINE;
    if (extended) out.options |= PCRE2_EXTENDED;
  } else {
    // regexp: 'x' toggles POSIX extended (ERE) syntax, not PCRE's free spacing. PCRE2 reads
    // ERE; basic (BRE) syntax would need a translator, and nobody writes tables in it.
    if (!extended)
      return unexpected(
          std::string("flag 'x' (POSIX basic regular expression syntax) is not supported; "
                      "write the pattern as an extended regular expression"));
    // POSIX without REG_NEWLINE treats newline as an ordinary character: '.' matches it and
    // '$' matches only at the very end. With 'm' (REG_NEWLINE) it is the other way round.
    out.options |= multiline ? PCRE2_MULTILINE : (PCRE2_DOTALL | PCRE2_DOLLAR_ENDONLY);
  }
  out.rest = trim(text.substr(i), kTableSpace);
  return out;
}

Expected<CodePtr, std::string> compile(const std::string& pattern, std::uint32_t options) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  CodePtr code(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                             options | PCRE2_NEVER_BACKSLASH_C, &error, &offset, nullptr));
  if (!code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof message);
    return unexpected(fmt::format("bad pattern at offset {}: {}", offset,
                                  reinterpret_cast<const char*>(message)));
  }
  // JIT is an optimisation only: some platforms or hardened kernels refuse it.
  (void)pcre2_jit_compile(code.get(), PCRE2_JIT_COMPLETE);
  return code;
}

// Fills the rule's JIT flag and first-byte filter from what PCRE2 learnt at compile time. The
// filter is only set when PCRE2 itself would reject any other first byte: the pattern is
// anchored at the start of the subject and names its first code unit (or a bitmap of them).
void describe_start(PatternRule& rule) {
  const pcre2_code* code = rule.code.get();
  std::size_t jit_size = 0;
  rule.jit = pcre2_pattern_info(code, PCRE2_INFO_JITSIZE, &jit_size) == 0 && jit_size > 0;
  std::uint32_t options = 0;
  pcre2_pattern_info(code, PCRE2_INFO_ALLOPTIONS, &options);
  if ((options & PCRE2_ANCHORED) == 0) return;
  std::uint32_t type = 0;
  pcre2_pattern_info(code, PCRE2_INFO_FIRSTCODETYPE, &type);
  if (type == 1) {
    std::uint32_t unit = 0;
    pcre2_pattern_info(code, PCRE2_INFO_FIRSTCODEUNIT, &unit);
    if (unit > 255) return;
    // PCRE2 does not say whether the first unit is caseless: allow both cases.
    rule.first_bytes[unit] = true;
    rule.first_bytes[static_cast<unsigned char>(std::tolower(static_cast<int>(unit)))] = true;
    rule.first_bytes[static_cast<unsigned char>(std::toupper(static_cast<int>(unit)))] = true;
    rule.first_filter = true;
    return;
  }
  const std::uint8_t* bitmap = nullptr;
  if (type == 0 && pcre2_pattern_info(code, PCRE2_INFO_FIRSTBITMAP, &bitmap) == 0 && bitmap) {
    for (unsigned b = 0; b < 256; ++b)
      rule.first_bytes[b] = (bitmap[b / 8] & (1u << (b % 8))) != 0;
    rule.first_filter = true;
  }
}

// Splits a result into literals and $n / ${n} / $(n) references; "$$" is a literal '$'.
Expected<std::vector<Piece>, std::string> parse_result(std::string_view result,
                                                       std::uint32_t captures, bool negate) {
  std::vector<Piece> pieces;
  std::string literal;
  for (std::size_t i = 0; i < result.size(); ++i) {
    if (result[i] != '$') {
      literal += result[i];
      continue;
    }
    if (i + 1 < result.size() && result[i + 1] == '$') {
      literal += '$';
      ++i;
      continue;
    }
    std::string_view name;
    if (i + 1 < result.size() && (result[i + 1] == '{' || result[i + 1] == '(')) {
      char close = result[i + 1] == '{' ? '}' : ')';
      std::size_t end = result.find(close, i + 2);
      if (end == std::string_view::npos)
        return unexpected(fmt::format("missing '{}' after '$'", close));
      name = result.substr(i + 2, end - i - 2);
      i = end;
    } else {
      std::size_t end = i + 1;
      while (end < result.size() && (is_alnum(result[end]) || result[end] == '_'))
        ++end;
      name = result.substr(i + 1, end - i - 1);
      i = end - 1;
    }
    if (name.empty())
      return unexpected(std::string("'$' must be followed by a group number (write '$$' for '$')"));
    std::uint32_t group = 0;
    for (char c : name) {
      if (c < '0' || c > '9' || group > 1000)
        return unexpected(fmt::format("'${}' is not a group number", name));
      group = group * 10 + static_cast<std::uint32_t>(c - '0');
    }
    if (negate)
      return unexpected(
          fmt::format("'${}' in the result of a negated pattern, which captures "
                      "nothing",
                      name));
    if (group == 0 || group > captures)
      return unexpected(fmt::format("'${}' refers to a group the pattern does not have ({} groups)",
                                    name, captures));
    if (!literal.empty()) pieces.push_back(Piece{std::move(literal), 0});
    literal.clear();
    pieces.push_back(Piece{{}, group});
  }
  if (!literal.empty()) pieces.push_back(Piece{std::move(literal), 0});
  return pieces;
}

}  // namespace

TableResult load_pattern_table(std::string spec, const std::string& path, PatternDialect dialect,
                               ResultValidator validate) {
  auto lines = read_logical_lines(path);
  if (!lines) return unexpected(std::move(lines).error());
  std::vector<PatternRule> rules;
  std::vector<std::pair<std::size_t, int>> open_ifs;  // rule index, line number
  for (const auto& line : *lines) {
    auto fail = [&](std::string message) {
      return unexpected(LoadError{path, line.number, std::move(message)});
    };
    std::string_view text = line.text;
    if (keyword_is(text, "endif")) {
      if (!trim(text.substr(5), kTableSpace).empty()) return fail("text after endif");
      if (open_ifs.empty()) return fail("endif without matching if");
      rules[open_ifs.back().first].skip_to = rules.size();
      open_ifs.pop_back();
      continue;
    }
    PatternRule rule;
    rule.is_if = keyword_is(text, "if");
    if (rule.is_if) text = trim(text.substr(2), kTableSpace);
    auto parsed = parse_pattern(text, dialect);
    if (!parsed) return fail(parsed.error());
    rule.negate = parsed->negate;
    auto code = compile(parsed->pattern, parsed->options);
    if (!code) return fail(code.error());
    rule.code = std::move(*code);
    describe_start(rule);
    if (rule.is_if) {
      if (!parsed->rest.empty())
        return fail(fmt::format("text after if pattern: '{}'", parsed->rest));
      open_ifs.emplace_back(rules.size(), line.number);
    } else {
      if (parsed->rest.empty()) return fail("pattern has no result");
      std::uint32_t captures = 0;
      pcre2_pattern_info(rule.code.get(), PCRE2_INFO_CAPTURECOUNT, &captures);
      auto pieces = parse_result(parsed->rest, captures, rule.negate);
      if (!pieces) return fail(pieces.error());
      rule.result = std::move(*pieces);
      // A result with $n is only known at lookup time; the caller validates it then.
      bool constant = rule.result.size() <= 1 && (rule.result.empty() || rule.result[0].group == 0);
      if (constant) {
        std::string_view fixed = rule.result.empty() ? std::string_view{} : rule.result[0].literal;
        if (auto error = check_result(validate, path, line.number, fixed))
          return unexpected(*error);
      }
    }
    rules.push_back(std::move(rule));
  }
  if (!open_ifs.empty())
    return unexpected(LoadError{path, open_ifs.back().second, "if without matching endif"});
  return std::shared_ptr<const Table>(
      std::make_shared<PatternTable>(std::move(spec), std::move(rules)));
}

}  // namespace mxguard::tables::detail
