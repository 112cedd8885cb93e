// The X-Mxguard-Tag header: added to mail we send, so that a bounce quoting the original can
// prove that the original was ours (backscatter proof b) even when the bounce goes to the
// plain, untagged address (many MTAs bounce to the From address, or strip BATV tags).
//
//   X-Mxguard-Tag: v1; t=<unix-time>; k=<keyno>; h=<hex>
//
//   t    when the tag was made, seconds since 1970 UTC, decimal
//   k    BATV key number (0-9) of the key file (batv-key-file)
//   h    the first 16 bytes, 32 lower-case hex digits, of
//        HMAC-SHA256(key k, "v1|" + msg-id + "|" + t)
//        where msg-id is the Message-ID's "<...>" with white space removed (empty when the
//        message has none — the tag then binds only the time, and proves less)
//
// Verification accepts hex in either case and fields in any order; unknown fields are ignored
// (room for later versions). A tag is valid for max_age seconds after t (default 30 days:
// bounces of long-retried mail come late), and not more than a day ahead of our clock.
// Who calls it: the message-change planner (add at end of message), the backscatter check.
// Thread-safety: pure functions.
#pragma once

#include <ctime>
#include <string>
#include <string_view>

#include "mxguard/batv/keys.h"

namespace mxguard::batv {

constexpr std::string_view kTagHeader = "X-Mxguard-Tag";
constexpr std::time_t kDefaultTagMaxAge = 30 * 86400;

std::string make_tag(const KeyRing& keys, std::string_view message_id, std::time_t now);

enum class TagStatus { Valid, Expired, BadSignature, UnknownKey, Malformed };
std::string_view to_string(TagStatus s);

TagStatus verify_tag(const KeyRing& keys, std::string_view value, std::string_view message_id,
                     std::time_t now, std::time_t max_age = kDefaultTagMaxAge);

}  // namespace mxguard::batv
