// MailRoute: where mail for a domain would go, as RFC 5321 §5.1 and RFC 7505 say, and whether
// that place can take it. The MX set (or, with no MX records, the implicit MX: the domain's
// own A/AAAA), every exchanger's addresses (A and AAAA looked up in parallel, CNAMEs followed
// up to a bound), and each address judged against BogusNetworks. The result:
//   deliverable    some exchanger has some routable address (a bogus backup MX, or a
//                  nolisting dead primary on 127.0.0.1, is noted but does not matter)
//   null-mx        exactly one MX, exchange "." (RFC 7505). "." among other MX records is not
//                  a valid null MX (RFC 7505 §3): that record is ignored, the others decide
//   bogus          every address of every exchanger is non-routable (names the first range)
//   no-exchanger   no exchanger has any address (MX targets that do not exist, or no MX and
//                  no A/AAAA)
//   no-such-domain NXDOMAIN
//   tempfail       a lookup that could change the answer failed (SERVFAIL, timeout, garbage)
//                  or the overall deadline passed: never a 5xx on incomplete information
//   invalid        the domain is not a usable DNS name (policy decides, as for tempfail)
// Who uses it: the DNS checks (once per recipient, see checks/route_lookup.h), `mxguard audit`.
// Thread-safety: RouteAnalyzer is used by all sessions at once: immutable but for the routes
// route() remembers, which are behind sharded mutexes. Lookups that the
// resolver cannot answer from its cache run on lookup threads (up to 64 idle ones are kept 5 s
// for the next lookup, so that a busy server reuses them and their ldns resolvers), so the
// caller can give up at the deadline; a lookup holds the resolver alive until its query ends,
// and the process ends the threads and joins them before it exits (join_lookup_threads()).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mxguard/dns/bogus_networks.h"
#include "mxguard/dns/resolver.h"

namespace mxguard::dns {

enum class RouteKind : std::uint8_t {
  Deliverable,
  NullMx,
  Bogus,
  NoExchanger,
  NoSuchDomain,
  TempFail,
  Invalid,
  MxOnly,  // RouteDepth::MxOnly and not null MX: the exchangers were not resolved
};
std::string_view to_string(RouteKind k);

struct RouteAddress {
  net::IpAddress address;
  std::optional<BogusMatch> bogus;  // empty: routable
};

struct Exchanger {
  std::string name;
  std::uint16_t preference = 0;
  bool implicit = false;  // the domain itself, for lack of MX records
  std::vector<RouteAddress> addresses;
  bool lookup_failed = false;      // an A or AAAA lookup failed temporarily
  std::vector<std::string> notes;  // "AAAA: SERVFAIL from ...", "does not exist", "via CNAME x"
  bool routable() const;
};

struct MailRoute {
  std::string domain;  // the A-label form looked up
  RouteKind kind = RouteKind::TempFail;
  bool has_mx = false;                // MX records exist (false: implicit MX, or none)
  bool null_mx_mixed = false;         // "." among other MX records: ignored
  std::vector<Exchanger> exchangers;  // in preference order
  // For Bogus: the first non-routable address by preference, and why.
  std::optional<RouteAddress> bogus;
  std::string detail;            // why tempfail / invalid / no-exchanger, for logs
  std::string describe() const;  // one line for logs
};

enum class RouteDepth : std::uint8_t { MxOnly, Full };

struct RouteOptions {
  std::chrono::milliseconds deadline{10000};
  int max_cname_chain = 8;
  std::size_t max_exchangers = 16;     // lowest preference first; bounds threads per analysis
  std::size_t max_remembered = 16384;  // routes route() keeps (see there)
};

// Lower-cases, drops trailing dots, turns U-labels into A-labels (IDNA 2008 via libidn2) and
// checks the result is a host name DNS can carry (labels 1..63 octets, name ≤ 253).
Expected<std::string, std::string> to_a_label(std::string_view domain);

// Ends the idle lookup threads, waits up to `wait` for those still in a lookup (their callers
// gave up at the deadline) and joins them; false when some are still running. The process
// calls it before it ends: a lookup thread left running would meet static destructors and
// OpenSSL's exit handler tearing down what it uses.
bool join_lookup_threads(std::chrono::milliseconds wait);

class RouteAnalyzer {
 public:
  RouteAnalyzer(std::shared_ptr<Resolver> resolver, std::shared_ptr<const BogusNetworks> bogus,
                RouteOptions o = {});
  // Worked out afresh (from the resolver's cache where it has the answers).
  MailRoute analyse(std::string_view domain, RouteDepth depth = RouteDepth::Full) const;
  // The same, remembered: a route built from cached answers alone is kept until the first of
  // those answers expires, so never longer than the cache would give them, and given again
  // without asking the cache (a warm route decision then costs one lookup, not three). A route
  // that needed a query is not kept: the next one is built from the cache and kept.
  std::shared_ptr<const MailRoute> route(std::string_view domain,
                                         RouteDepth depth = RouteDepth::Full) const;
  std::size_t remembered() const;  // routes route() keeps now (at most max_remembered, rounded up)
  Resolver& resolver() const { return *resolver_; }
  const std::shared_ptr<Resolver>& resolver_ptr() const { return resolver_; }
  const BogusNetworks* bogus_networks() const { return bogus_.get(); }
  const RouteOptions& options() const { return opts_; }

 private:
  struct Memo;
  std::shared_ptr<Resolver> resolver_;
  std::shared_ptr<const BogusNetworks> bogus_;
  RouteOptions opts_;
  std::shared_ptr<Memo> memo_;  // shared by copies: same resolver, same answers
};

}  // namespace mxguard::dns
