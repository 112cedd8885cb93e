// Resolver: the one way mxguard asks DNS a question. lookup(name, type) returns an answer or an
// error. NXDOMAIN and NODATA are answers (with the TTL to cache them for, from the SOA per
// RFC 2308); only SERVFAIL, REFUSED, timeouts and garbage are errors, because only those leave
// the question open and must never turn into a 5xx.
// Implementations: LdnsResolver (network), CachingResolver (decorator), fakes in the tests.
// Who calls it: MailRoute analysis, `mxguard audit`, tests.
// Thread-safety: lookup() and try_cached_until() may be called from any number of threads at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mxguard/expected.h"
#include "mxguard/net/ip.h"

namespace mxguard::dns {

enum class RrType : std::uint16_t {
  A = 1,
  Cname = 5,
  Soa = 6,
  Ptr = 12,
  Mx = 15,
  Txt = 16,
  Aaaa = 28
};
std::string_view to_string(RrType t);

struct MxRecord {
  std::uint16_t preference = 0;
  std::string exchange;  // lower case, no trailing dot; "." for the root (null MX)
  friend bool operator==(const MxRecord&, const MxRecord&) = default;
};

enum class DnsStatus : std::uint8_t {
  Ok,        // records of the asked type (possibly after CNAMEs in the same response)
  NoData,    // the name exists, no records of that type
  NxDomain,  // the name (or the end of its CNAME chain) does not exist
};
std::string_view to_string(DnsStatus s);

struct DnsAnswer {
  DnsStatus status = DnsStatus::NoData;
  // Set when the response ends in a CNAME whose target's records it does not carry (an
  // authoritative server answering for a target outside its zones): ask again for this name.
  std::string cname_target;
  std::vector<net::IpAddress> addresses;  // A or AAAA
  std::vector<MxRecord> mx;
  std::vector<std::string> txt;    // each TXT record's strings joined
  std::vector<std::string> names;  // PTR targets, lower case, no trailing dot
  // Seconds the answer may be cached: the smallest TTL of the records used, or for a negative
  // answer min(SOA TTL, SOA MINIMUM) (RFC 2308 §5); 0 when the response gave no clue.
  std::uint32_t ttl = 0;
};

struct DnsError {
  enum class Kind : std::uint8_t { ServFail, Refused, Timeout, Malformed, BadName, Network };
  Kind kind = Kind::Network;
  std::string message;  // for logs: "SERVFAIL from 127.0.0.1:53", "timeout after 3 tries"
};
std::string_view to_string(DnsError::Kind k);

using DnsResult = Expected<DnsAnswer, DnsError>;
// An answer shared, not copied, between the cache and its readers.
using SharedAnswer = std::shared_ptr<const DnsAnswer>;

// A cached answer and the moment the cache stops giving it, on the resolver's clock (now()).
struct CachedAnswer {
  SharedAnswer answer;  // null: not cached
  std::chrono::steady_clock::time_point expires{};
};

class Resolver {
 public:
  virtual ~Resolver() = default;
  // `name` is an A-label domain, case-insensitive, with or without the trailing dot.
  virtual DnsResult lookup(std::string_view name, RrType type) = 0;
  // The answer if it can be given at once without a query (a cache hit), and until when the
  // cache gives it; a null answer otherwise (without a cache: always). Lets callers skip
  // starting a thread for questions already answered; what is built from cached answers (a
  // route) holds as long as the first of them. The answer is shared with the cache, not copied.
  virtual CachedAnswer try_cached_until(std::string_view, RrType) { return {}; }
  SharedAnswer try_cached(std::string_view name, RrType type) {
    return try_cached_until(name, type).answer;
  }
  // The clock those moments are on.
  virtual std::chrono::steady_clock::time_point now() const {
    return std::chrono::steady_clock::now();
  }
};

// Lower case, without trailing dots: the form names are compared and cached in.
std::string canonical_name(std::string_view name);
// The same appended to `out` (for keys that carry more than the name, in one allocation).
void append_canonical_name(std::string& out, std::string_view name);

}  // namespace mxguard::dns
