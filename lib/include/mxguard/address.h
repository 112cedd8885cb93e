// The envelope address as a value: the argument of MAIL FROM or RCPT TO, split and normalised
// once. The milter adapter builds one per MAIL and RCPT (Address::parse) and keeps it in the
// Transaction; the checks, the message path and the DNS checks read its parts instead of
// splitting the text again. Also the syntax of a BATV tag (batv/prvs.cpp verifies it).
// Thread-safety: a plain value; the functions are pure (libidn2 keeps no state).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mxguard {

// Where a BATV prvs tag sits in a local part:
//   Prefix      prvs=KDDDSSSSSS=local   (the form Exim writes)
//   SubAddress  local+prvs=KDDDSSSSSS   (for MTAs that match recipient_delimiter '+')
enum class BatvForm : std::uint8_t { Prefix, SubAddress };

// A local part taken apart at its BATV tag; syntax only, nothing verified.
struct BatvSplit {
  std::string_view tag;    // "KDDDSSSSSS": key digit, three day digits, six hex digits
  std::string_view local;  // the local part without the tag; never empty
  BatvForm form = BatvForm::Prefix;
};
// The tag of `local` ("prvs=" in either case), or nothing when it carries none. A local part
// that starts with "prvs=" is read in the prefix form only.
std::optional<BatvSplit> split_batv(std::string_view local);

struct Address {
  std::string raw;       // as given, without <> and surrounding white space: what the logs print
  std::string local;     // the local part as given, BATV tag removed
  std::string domain;    // lower case, no trailing dot, A-label; empty: no domain
  std::string batv_tag;  // "KDDDSSSSSS" when the local part carries one
  BatvForm batv_form = BatvForm::Prefix;
  bool domain_invalid = false;  // not a valid (internationalised) domain: `domain` only lowered

  // The argument of MAIL FROM or RCPT TO ("<a@b>", "a@b", "<>", "postmaster"); never fails.
  // The domain is what follows the last '@', so a quoted local part may hold an '@'.
  static Address parse(std::string_view arg);

  bool null() const { return raw.empty(); }  // the null sender "<>"
  bool tagged() const { return !batv_tag.empty(); }
  // An address literal ("[192.0.2.1]", "[IPv6:...]"), not a domain name.
  bool literal() const { return !domain.empty() && domain.front() == '['; }
  // The local part as given: with its BATV tag, if any.
  std::string_view given_local() const;
  // The domain as given (case, trailing dots and U-labels kept); empty without '@'.
  std::string_view given_domain() const;
  // local@domain without the tag, the domain as given: what a tag signs (Exim's prvscheck
  // keeps the case) and what a tagged recipient is delivered to.
  std::string plain() const;
};

// Strips surrounding space and tab, then one pair of <>; keeps the address as given otherwise.
std::string strip_angle(std::string_view arg);
// The text before the last '@' (all of it without one), and after it (empty without one).
std::string_view local_part(std::string_view address);
std::string_view domain_part(std::string_view address);

}  // namespace mxguard
