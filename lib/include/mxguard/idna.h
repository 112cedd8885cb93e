// A mail domain in the one form DNS and comparisons use: its A-label (IDNA2008 through libidn2).
// In the bottom layer so that the option reader (configured domain lists), the address value
// and the route analysis can all convert the same way.
// Who calls it: address.cpp (every MAIL and RCPT domain); mail_route.cpp and the option reader
// should (see the issue 13 notes).
// Thread-safety: a pure function (libidn2 keeps no state).
#pragma once

#include <string>
#include <string_view>

#include "mxguard/expected.h"

namespace mxguard {

// "example.com." and "example.com.." name "example.com": the root's dots go.
std::string_view without_trailing_dots(std::string_view domain);

// Trailing dots dropped, a U-label converted to its A-label (non-transitional, NFC input),
// ASCII lower-cased; ASCII names never reach libidn2. The error says why the name cannot be
// one, in the words mail route analysis reports ("empty domain", "domain too long", "'x' is
// not a valid internationalised domain: ...").
Expected<std::string, std::string> domain_to_ascii(std::string_view domain);

}  // namespace mxguard
