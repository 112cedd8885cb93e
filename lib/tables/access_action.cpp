// Parsing of access(5) results (see mxguard/tables/access_action.h).
// The order of the tests follows access(5) and Postfix's own reading of a result: action words
// (case-insensitive) first, then "all-numerical", then 4NN/5NN, then restriction names.
#include "mxguard/tables/access_action.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <iterator>

#include "mxguard/text.h"

namespace mxguard::tables {
namespace {

constexpr std::string_view kSpace = " \t";

// Restriction names access(5) allows as a result ("Apply the named UCE restriction(s)"). They
// need Postfix's own state, so mxguard cannot evaluate them; they are accepted and ignored.
constexpr std::string_view kRestrictions[] = {
    "check_address_map",
    "check_ccert_access",
    "check_client_a_access",
    "check_client_access",
    "check_client_mx_access",
    "check_client_ns_access",
    "check_etrn_access",
    "check_helo_a_access",
    "check_helo_access",
    "check_helo_mx_access",
    "check_helo_ns_access",
    "check_policy_service",
    "check_recipient_a_access",
    "check_recipient_access",
    "check_recipient_mx_access",
    "check_recipient_ns_access",
    "check_reverse_client_hostname_access",
    "check_reverse_client_hostname_a_access",
    "check_reverse_client_hostname_mx_access",
    "check_reverse_client_hostname_ns_access",
    "check_sasl_access",
    "check_sender_a_access",
    "check_sender_access",
    "check_sender_mx_access",
    "check_sender_ns_access",
    "defer_unauth_destination",
    "defer_unverified_recipient",
    "defer_unverified_sender",
    "permit_auth_destination",
    "permit_dnswl_client",
    "permit_inet_interfaces",
    "permit_mx_backup",
    "permit_mynetworks",
    "permit_naked_ip_address",
    "permit_rhswl_client",
    "permit_sasl_authenticated",
    "permit_tls_all_clientcerts",
    "permit_tls_clientcerts",
    "reject_authenticated_sender_login_mismatch",
    "reject_invalid_helo_hostname",
    "reject_known_sender_login_mismatch",
    "reject_multi_recipient_bounce",
    "reject_non_fqdn_helo_hostname",
    "reject_non_fqdn_recipient",
    "reject_non_fqdn_sender",
    "reject_plaintext_session",
    "reject_rbl_client",
    "reject_rhsbl_client",
    "reject_rhsbl_helo",
    "reject_rhsbl_recipient",
    "reject_rhsbl_reverse_client",
    "reject_rhsbl_sender",
    "reject_sender_login_mismatch",
    "reject_unauth_destination",
    "reject_unauth_pipelining",
    "reject_unauthenticated_sender_login_mismatch",
    "reject_unknown_client_hostname",
    "reject_unknown_helo_hostname",
    "reject_unknown_recipient_domain",
    "reject_unknown_reverse_client_hostname",
    "reject_unknown_sender_domain",
    "reject_unlisted_recipient",
    "reject_unlisted_sender",
    "reject_unverified_recipient",
    "reject_unverified_sender",
    "sleep",
    "warn_if_reject",
};

// Prefixes of restriction names Postfix has or may add; a lower-case word with one of them is
// taken for a restriction we do not know yet rather than a typo.
constexpr std::array<std::string_view, 6> kRestrictionPrefixes = {"permit_", "reject_", "check_",
                                                                  "defer_",  "warn_",   "sleep_"};

std::string upper(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](char c) {
    return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  });
  return out;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool is_restriction_name(std::string_view word) {
  std::string low = ascii_lowercase(word);
  if (std::find(std::begin(kRestrictions), std::end(kRestrictions), low) != std::end(kRestrictions))
    return true;
  // Unknown names must look like Postfix's: lower case, digits and '_' only.
  if (low != word) return false;
  if (!std::all_of(word.begin(), word.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
      }))
    return false;
  return std::any_of(kRestrictionPrefixes.begin(), kRestrictionPrefixes.end(),
                     [word](std::string_view p) {
                       return word.size() > p.size() && word.substr(0, p.size()) == p;
                     });
}

// "X.Y.Z" with X one digit and Y, Z of one to three digits (RFC 3463).
bool looks_enhanced(std::string_view w) {
  std::size_t first = w.find('.');
  if (first != 1 || !all_digits(w.substr(0, 1))) return false;
  std::size_t second = w.find('.', 2);
  if (second == std::string_view::npos) return false;
  std::string_view subject = w.substr(2, second - 2);
  std::string_view detail = w.substr(second + 1);
  return subject.size() <= 3 && detail.size() <= 3 && all_digits(subject) && all_digits(detail);
}

// Splits "5.7.1 some text" into the enhanced code (checked against the reply class) and the text.
Expected<bool, std::string> take_enhanced(std::string_view rest, char reply_class,
                                          AccessAction& out) {
  std::size_t end = rest.find_first_of(kSpace);
  std::string_view first = rest.substr(0, end);
  if (looks_enhanced(first)) {
    if (first[0] != reply_class)
      return unexpected(fmt::format("enhanced status code {} does not match reply class {}xx",
                                    first, reply_class));
    out.enhanced = std::string(first);
    rest = end == std::string_view::npos ? std::string_view{} : trim(rest.substr(end), kSpace);
  }
  out.text = std::string(rest);
  return true;
}

bool printable(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= 0x20 && c < 0x7f) || c == '\t'; });
}

}  // namespace

Expected<AccessAction, std::string> parse_access_action(std::string_view result) {
  std::string_view value = trim(result, kSpace);
  if (value.empty()) return unexpected(std::string("empty access action"));
  if (!printable(value))
    return unexpected(std::string("access action contains control or non-ASCII characters"));

  std::size_t word_end = value.find_first_of(kSpace);
  std::string_view word = value.substr(0, word_end);
  std::string_view rest = word_end == std::string_view::npos ? std::string_view{}
                                                             : trim(value.substr(word_end), kSpace);
  std::string keyword = upper(word);

  AccessAction action;
  action.word = std::string(word);
  auto with_text = [&](AccessAction::Kind kind) {
    action.kind = kind;
    action.text = std::string(rest);
    return Expected<AccessAction, std::string>(action);
  };
  auto with_reply = [&](AccessAction::Kind kind,
                        char reply_class) -> Expected<AccessAction, std::string> {
    action.kind = kind;
    auto ok = take_enhanced(rest, reply_class, action);
    if (!ok) return unexpected(ok.error());
    return action;
  };
  auto needs_argument = [&](std::string_view what) -> Expected<AccessAction, std::string> {
    if (rest.empty()) return unexpected(fmt::format("{} needs {}", keyword, what));
    return with_text(AccessAction::Kind::Ignored);
  };

  if (keyword == "OK") return with_text(AccessAction::Kind::Ok);
  if (keyword == "DUNNO") return with_text(AccessAction::Kind::Dunno);
  if (keyword == "REJECT") return with_reply(AccessAction::Kind::Reject, '5');
  if (keyword == "DEFER" || keyword == "DEFER_IF_REJECT" || keyword == "DEFER_IF_PERMIT")
    return with_reply(AccessAction::Kind::Defer, '4');
  if (keyword == "DISCARD") return with_text(AccessAction::Kind::Discard);
  if (keyword == "WARN") return with_text(AccessAction::Kind::Warn);
  if (keyword == "HOLD" || keyword == "INFO") return with_text(AccessAction::Kind::Ignored);
  if (keyword == "FILTER") {
    if (rest.find(':') == std::string_view::npos)
      return unexpected(std::string("FILTER needs transport:destination"));
    return with_text(AccessAction::Kind::Ignored);
  }
  if (keyword == "PREPEND") {
    std::size_t colon = rest.find(':');
    if (colon == 0 || colon == std::string_view::npos ||
        rest.substr(0, colon).find_first_of(kSpace) != std::string_view::npos)
      return unexpected(std::string("PREPEND needs 'headername: headervalue'"));
    return with_text(AccessAction::Kind::Ignored);
  }
  if (keyword == "REDIRECT" || keyword == "BCC") return needs_argument("user@domain");

  // access(5): "An all-numerical result is treated as OK" (pop-before-smtp time stamps). Postfix
  // tests this before 4NN/5NN, so a bare "550" is OK too; we keep that to behave identically.
  if (all_digits(value)) return with_text(AccessAction::Kind::Ok);
  if (all_digits(word) && word.size() == 3) {
    if (word[0] != '4' && word[0] != '5')
      return unexpected(fmt::format("reply code {} is not 4NN or 5NN", word));
    action.code = (word[0] - '0') * 100 + (word[1] - '0') * 10 + (word[2] - '0');
    return with_reply(word[0] == '4' ? AccessAction::Kind::Defer : AccessAction::Kind::Reject,
                      word[0]);
  }

  // "permit" and "reject" are the restriction names with a meaning we can apply.
  std::string_view first_restriction = value.substr(0, value.find_first_of(" \t,"));
  if (iequals(first_restriction, "permit")) return with_text(AccessAction::Kind::Ok);
  if (iequals(first_restriction, "reject")) {
    action.kind = AccessAction::Kind::Reject;
    return action;
  }
  if (is_restriction_name(first_restriction)) {
    action.word = std::string(first_restriction);
    action.kind = AccessAction::Kind::Ignored;
    action.text = std::string(value);
    return action;
  }
  return unexpected(fmt::format("unknown access action '{}'", first_restriction));
}

std::optional<std::string> validate_access_action(std::string_view result) {
  auto parsed = parse_access_action(result);
  if (parsed) return std::nullopt;
  return parsed.error();
}

}  // namespace mxguard::tables
