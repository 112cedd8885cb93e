// BATV "prvs" (Bounce Address Tag Validation, draft-levine-smtp-batv-01), interoperable with
// Exim's ${prvs} and ${prvscheck}:
//
//   prvs=KDDDSSSSSS=local@domain          (the form Exim writes; the default)
//   local+prvs=KDDDSSSSSS@domain          (sub-address form, for MTAs that match
//                                          recipient_delimiter '+'; an option)
//
//   K       key number, one digit
//   DDD     expiry day: (days since 1970-01-01 UTC) mod 1000, three digits
//   SSSSSS  the first 3 bytes, in lower-case hex, of HMAC-SHA1(key, K + DDD + local@domain)
//
// Who calls it: the batv check (verify at RCPT), the message-change planner (sign at end of
// message), the backscatter check (proof a), tests.
// Thread-safety: pure functions; the KeyRing is immutable.
#pragma once

#include <ctime>
#include <optional>
#include <string>
#include <string_view>

#include "mxguard/address.h"
#include "mxguard/batv/keys.h"

namespace mxguard::batv {

constexpr int kDefaultLifetimeDays = 7;

// The syntax of a tag is the address layer's (mxguard::split_batv); this file signs and checks.
using PrvsForm = BatvForm;

enum class PrvsStatus { Valid, Expired, BadSignature, UnknownKey, NotTagged };
std::string_view to_string(PrvsStatus s);

struct PrvsResult {
  PrvsStatus status = PrvsStatus::NotTagged;
  std::string address;  // the plain address (the input itself when not tagged)
  int key = -1;
  PrvsForm form = PrvsForm::Prefix;
};

// "DDD" for the day that holds `t` plus `offset_days`.
std::string day_stamp(std::time_t t, int offset_days = 0);
// The six hex digits for key number `keyno` with `secret`, expiry `ddd`, plain `address`.
std::string signature(std::string_view secret, int keyno, std::string_view ddd,
                      std::string_view address);

// Signs `address` with the signing key, valid through now + lifetime_days. Returns nothing for
// an address without '@' or one that is already tagged (signing twice would bury the tag).
std::optional<std::string> sign(const KeyRing& keys, std::string_view address, std::time_t now,
                                int lifetime_days = kDefaultLifetimeDays,
                                PrvsForm form = PrvsForm::Prefix);

// Checks a possibly tagged address. Valid when the signature matches (hex in either case) and
// the expiry day is today or within the next `lifetime_days` days (a tag dated further ahead
// was not made by a signer with that lifetime and counts as expired).
PrvsResult verify(const KeyRing& keys, std::string_view address, std::time_t now,
                  int lifetime_days = kDefaultLifetimeDays);
// The same for an envelope address already taken apart (its tag, its plain form).
PrvsResult verify(const KeyRing& keys, const Address& address, std::time_t now,
                  int lifetime_days = kDefaultLifetimeDays);

// Cheap test used before verifying: does the address carry a prvs tag in either form?
bool is_tagged(std::string_view address);

}  // namespace mxguard::batv
