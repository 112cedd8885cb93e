// The ldns-backed resolver. One ldns_resolver per server and thread: a server list entry may
// carry its own port, which ldns keeps per resolver, and ldns resolvers must not be shared
// between threads. Failover and retries are done here rather than inside ldns so that every
// try is bounded by the same timeout and a SERVFAIL moves on to the next server too.
#include "dns/ldns_resolver.h"

#include <fmt/format.h>
#include <ldns/ldns.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <string_view>

namespace mxguard::dns {

namespace {

std::atomic<std::uint64_t> g_next_id{1};

// The ldns resolvers of one thread, for the few LdnsResolver objects it has used (the current
// one, and the one before a reload until its sessions end).
class ThreadResolvers {
 public:
  ~ThreadResolvers() {
    for (auto& s : slots_)
      free_slot(s);
  }
  std::vector<ldns_resolver*>* find(std::uint64_t id) {
    for (auto& s : slots_)
      if (s.id == id) return &s.per_server;
    return nullptr;
  }
  std::vector<ldns_resolver*>& add(std::uint64_t id) {
    constexpr std::size_t kMaxSlots = 4;
    if (slots_.size() >= kMaxSlots) {
      free_slot(slots_.front());
      slots_.erase(slots_.begin());
    }
    slots_.push_back(Slot{id, {}});
    return slots_.back().per_server;
  }

 private:
  struct Slot {
    std::uint64_t id;
    std::vector<ldns_resolver*> per_server;
  };
  static void free_slot(Slot& s) {
    for (ldns_resolver* r : s.per_server)
      if (r) ldns_resolver_deep_free(r);
    s.per_server.clear();
  }
  std::vector<Slot> slots_;
};

thread_local ThreadResolvers t_resolvers;

struct PktDeleter {
  void operator()(ldns_pkt* p) const { ldns_pkt_free(p); }
};
using PktPtr = std::unique_ptr<ldns_pkt, PktDeleter>;

std::string rdf_text(const ldns_rdf* rdf) {
  char* s = ldns_rdf2str(rdf);
  std::string out = s ? s : "";
  std::free(s);
  return out;
}

std::string dname_text(const ldns_rdf* rdf) {
  std::string s = canonical_name(rdf_text(rdf));
  return s.empty() ? "." : s;
}

ldns_resolver* make_ldns(const ServerAddress& server, std::chrono::milliseconds timeout) {
  ldns_resolver* r = ldns_resolver_new();
  if (!r) return nullptr;
  std::string addr = server.address.to_string();
  ldns_rdf* ns = ldns_rdf_new_frm_str(server.address.is_v4() ? LDNS_RDF_TYPE_A : LDNS_RDF_TYPE_AAAA,
                                      addr.c_str());
  if (!ns || ldns_resolver_push_nameserver(r, ns) != LDNS_STATUS_OK) {
    if (ns) ldns_rdf_deep_free(ns);
    ldns_resolver_deep_free(r);
    return nullptr;
  }
  ldns_rdf_deep_free(ns);  // push_nameserver copies it
  ldns_resolver_set_port(r, server.port);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ldns_resolver_set_timeout(r, tv);
  ldns_resolver_set_retry(r, 1);  // our own loop retries, across servers
  ldns_resolver_set_fallback(r, true);
  ldns_resolver_set_igntc(r, false);
  ldns_resolver_set_recursive(r, true);
  ldns_resolver_set_defnames(r, false);  // never append a search domain to a mail domain
  ldns_resolver_set_dnsrch(r, false);
  ldns_resolver_set_random(r, false);
  return r;
}

bool same_name(const ldns_rdf* a, std::string_view canonical) {
  return dname_text(a) == canonical;
}

// What was asked, for the errors about the response. `qname` is canonical.
struct Question {
  const std::string& qname;
  RrType type;
  const std::string& server;
};

DnsError malformed(const Question& q, std::string_view why) {
  return DnsError{DnsError::Kind::Malformed,
                  fmt::format("{} from {} for {}/{}", why, q.server, q.qname, to_string(q.type))};
}

// Why the response does not answer the query, or is a SERVFAIL or REFUSED; nothing when it is
// a NOERROR or NXDOMAIN answer to the question asked.
std::optional<DnsError> response_error(const ldns_pkt* pkt, const ldns_pkt* query,
                                       const Question& q) {
  if (!ldns_pkt_qr(pkt)) return malformed(q, "not a response");
  if (ldns_pkt_id(pkt) != ldns_pkt_id(query)) return malformed(q, "mismatched id");
  const ldns_rr_list* question = ldns_pkt_question(pkt);
  if (!question || ldns_rr_list_rr_count(question) != 1) return malformed(q, "no question echoed");
  const ldns_rr* rr = ldns_rr_list_rr(question, 0);
  if (!same_name(ldns_rr_owner(rr), q.qname) ||
      ldns_rr_get_type(rr) != static_cast<ldns_rr_type>(q.type))
    return malformed(q, "mismatched question");
  if (ldns_pkt_tc(pkt)) return malformed(q, "truncated answer (TCP fallback failed)");

  const ldns_pkt_rcode rcode = ldns_pkt_get_rcode(pkt);
  switch (rcode) {
    case LDNS_RCODE_NOERROR:
    case LDNS_RCODE_NXDOMAIN:
      return std::nullopt;
    case LDNS_RCODE_SERVFAIL:
      return DnsError{DnsError::Kind::ServFail, fmt::format("SERVFAIL from {} for {}/{}", q.server,
                                                            q.qname, to_string(q.type))};
    case LDNS_RCODE_REFUSED:
      return DnsError{DnsError::Kind::Refused, fmt::format("REFUSED from {} for {}/{}", q.server,
                                                           q.qname, to_string(q.type))};
    default:
      return malformed(q, fmt::format("rcode {}", static_cast<int>(rcode)));
  }
}

// Adds one record of the type asked to `ans`; why it is malformed otherwise.
std::optional<std::string_view> add_record(DnsAnswer& ans, const ldns_rr* rr, RrType type) {
  const ldns_rdf* rd0 = ldns_rr_rd_count(rr) > 0 ? ldns_rr_rdf(rr, 0) : nullptr;
  switch (type) {
    case RrType::A:
    case RrType::Aaaa: {
      if (!rd0) return "empty address record";
      const std::size_t want = type == RrType::A ? 4 : 16;
      if (ldns_rdf_size(rd0) != want) return "bad address length";
      std::array<std::uint8_t, 16> b{};
      std::memcpy(b.data(), ldns_rdf_data(rd0), want);
      if (type == RrType::A) {
        ans.addresses.push_back(
            net::IpAddress::v4((std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) |
                               (std::uint32_t{b[2]} << 8) | std::uint32_t{b[3]}));
      } else {
        ans.addresses.push_back(net::IpAddress::v6(b));
      }
      break;
    }
    case RrType::Mx: {
      if (ldns_rr_rd_count(rr) != 2) return "bad MX record";
      ans.mx.push_back(
          MxRecord{ldns_rdf2native_int16(ldns_rr_rdf(rr, 0)), dname_text(ldns_rr_rdf(rr, 1))});
      break;
    }
    case RrType::Txt: {
      std::string text;
      for (std::size_t k = 0; k < ldns_rr_rd_count(rr); ++k) {
        const ldns_rdf* s = ldns_rr_rdf(rr, k);
        const std::uint8_t* d = ldns_rdf_data(s);
        if (ldns_rdf_size(s) < 1 || d[0] + 1u > ldns_rdf_size(s)) return "bad TXT string";
        text.append(reinterpret_cast<const char*>(d + 1), d[0]);
      }
      ans.txt.push_back(std::move(text));
      break;
    }
    case RrType::Ptr: {
      if (!rd0) return "empty PTR record";
      ans.names.push_back(dname_text(rd0));
      break;
    }
    case RrType::Cname:
    case RrType::Soa:
      break;
  }
  return std::nullopt;
}

// Where the answer section has led from the name asked.
struct Chase {
  std::string current;  // the name whose records are wanted
  std::uint32_t min_ttl = UINT32_MAX;
  bool followed = false;  // a CNAME was followed
};

// Moves `c` along the CNAME the answer section gives for its current name; false if none.
bool follow_cname(const ldns_rr_list* answer, std::size_t n, Chase& c) {
  for (std::size_t i = 0; i < n; ++i) {
    const ldns_rr* rr = ldns_rr_list_rr(answer, i);
    if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME && same_name(ldns_rr_owner(rr), c.current) &&
        ldns_rr_rd_count(rr) == 1) {
      c.current = dname_text(ldns_rr_rdf(rr, 0));
      c.min_ttl = std::min(c.min_ttl, ldns_rr_ttl(rr));
      c.followed = true;
      return true;
    }
  }
  return false;
}

// Adds to `ans` the records of type `type` at the end of the CNAME chain inside the answer
// section, from the name asked; a chain longer than the records given is a loop. Why a record
// is malformed, if one is.
std::optional<std::string_view> chase_answer(const ldns_rr_list* answer, RrType type,
                                             DnsAnswer& ans, Chase& c) {
  const std::size_t n = answer ? ldns_rr_list_rr_count(answer) : 0;
  for (std::size_t step = 0; step <= n; ++step) {
    bool found = false;
    for (std::size_t i = 0; i < n; ++i) {
      const ldns_rr* rr = ldns_rr_list_rr(answer, i);
      if (ldns_rr_get_type(rr) != static_cast<ldns_rr_type>(type) ||
          !same_name(ldns_rr_owner(rr), c.current))
        continue;
      found = true;
      c.min_ttl = std::min(c.min_ttl, ldns_rr_ttl(rr));
      if (auto why = add_record(ans, rr, type)) return why;
    }
    if (found || !follow_cname(answer, n, c)) break;
  }
  return std::nullopt;
}

// How long to remember a negative answer: what the SOA in the authority section says, or 0.
std::uint32_t negative_ttl(const ldns_pkt* pkt) {
  const ldns_rr_list* auth = ldns_pkt_authority(pkt);
  for (std::size_t i = 0; auth && i < ldns_rr_list_rr_count(auth); ++i) {
    const ldns_rr* rr = ldns_rr_list_rr(auth, i);
    if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA && ldns_rr_rd_count(rr) == 7)
      return std::min(ldns_rr_ttl(rr), ldns_rdf2native_int32(ldns_rr_rdf(rr, 6)));
  }
  return 0;
}

// Turns a response into an answer or an error. `qname` is canonical.
DnsResult parse_response(const ldns_pkt* pkt, const ldns_pkt* query, const std::string& qname,
                         RrType type, const std::string& server) {
  const Question q{qname, type, server};
  if (auto error = response_error(pkt, query, q)) return unexpected(std::move(*error));
  const ldns_pkt_rcode rcode = ldns_pkt_get_rcode(pkt);
  DnsAnswer ans;
  Chase c{qname};
  if (auto why = chase_answer(ldns_pkt_answer(pkt), type, ans, c))
    return unexpected(malformed(q, *why));

  const bool have =
      !ans.addresses.empty() || !ans.mx.empty() || !ans.txt.empty() || !ans.names.empty();
  if (have) {
    ans.status = DnsStatus::Ok;
    ans.ttl = c.min_ttl;
    return ans;
  }
  ans.status = rcode == LDNS_RCODE_NXDOMAIN ? DnsStatus::NxDomain : DnsStatus::NoData;
  if (c.followed && rcode == LDNS_RCODE_NOERROR) {
    // The chain leaves the response: the caller asks again for its end.
    ans.cname_target = c.current;
    ans.ttl = c.min_ttl;
    return ans;
  }
  ans.ttl = negative_ttl(pkt);
  return ans;
}

std::vector<std::string> resolv_conf_servers(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::string_view l = line;
    if (l.rfind("nameserver", 0) != 0) continue;
    l.remove_prefix(10);
    while (!l.empty() && (l.front() == ' ' || l.front() == '\t'))
      l.remove_prefix(1);
    auto end = l.find_first_of(" \t#;");
    l = l.substr(0, end);
    // A zone id (fe80::1%eth0) cannot be expressed here; such servers are skipped.
    if (!l.empty() && l.find('%') == std::string_view::npos) out.emplace_back(l);
  }
  return out;
}

}  // namespace

std::string ServerAddress::to_string() const {
  if (address.is_v4()) return fmt::format("{}:{}", address.to_string(), port);
  return fmt::format("[{}]:{}", address.to_string(), port);
}

Expected<ServerAddress, std::string> parse_server(std::string_view text) {
  std::string_view host = text;
  std::optional<std::uint16_t> port;
  auto parse_port = [&](std::string_view p) -> bool {
    unsigned v = 0;
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
    if (ec != std::errc() || ptr != p.data() + p.size() || v == 0 || v > 65535) return false;
    port = static_cast<std::uint16_t>(v);
    return true;
  };
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) return unexpected(fmt::format("'{}': missing ']'", text));
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty() && (rest.front() != ':' || !parse_port(rest.substr(1))))
      return unexpected(fmt::format("'{}': bad port", text));
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    auto colon = text.find(':');
    host = text.substr(0, colon);
    if (!parse_port(text.substr(colon + 1))) return unexpected(fmt::format("'{}': bad port", text));
  }
  auto addr = net::IpAddress::parse(host);
  if (!addr) return unexpected(fmt::format("'{}' is not an IP address[:port]", text));
  return ServerAddress{*addr, port.value_or(53)};
}

Expected<std::shared_ptr<LdnsResolver>, std::string> LdnsResolver::create(const LdnsOptions& o) {
  std::vector<std::string> specs = o.servers;
  if (specs.empty()) specs = resolv_conf_servers(o.resolv_conf);
  // resolv.conf(5): with no nameserver line the resolver asks the local host.
  if (specs.empty()) specs.push_back("127.0.0.1");
  std::vector<ServerAddress> servers;
  for (const auto& s : specs) {
    auto a = parse_server(s);
    if (!a) return unexpected(a.error());
    servers.push_back(*a);
  }
  if (o.timeout.count() <= 0) return unexpected(std::string("timeout must be positive"));
  if (o.retries < 0 || o.retries > 10) return unexpected(std::string("retries must be 0..10"));
  return std::shared_ptr<LdnsResolver>(new LdnsResolver(std::move(servers), o));
}

LdnsResolver::LdnsResolver(std::vector<ServerAddress> servers, const LdnsOptions& o)
    : servers_(std::move(servers)), timeout_(o.timeout), retries_(o.retries), id_(g_next_id++) {}

DnsResult LdnsResolver::lookup(std::string_view name_in, RrType type) {
  const std::string name = canonical_name(name_in);
  if (name.empty() || name == "." || name.size() > 253)
    return unexpected(DnsError{DnsError::Kind::BadName, fmt::format("bad name '{}'", name_in)});

  std::vector<ldns_resolver*>* mine = t_resolvers.find(id_);
  if (!mine) {
    mine = &t_resolvers.add(id_);
    mine->assign(servers_.size(), nullptr);
  }

  DnsError last{DnsError::Kind::Network, "no server tried"};
  for (int attempt = 0; attempt <= retries_; ++attempt) {
    for (std::size_t i = 0; i < servers_.size(); ++i) {
      const std::string server = servers_[i].to_string();
      ldns_resolver*& res = (*mine)[i];
      if (!res) res = make_ldns(servers_[i], timeout_);
      if (!res) return unexpected(DnsError{DnsError::Kind::Network, "cannot make a resolver"});

      ldns_rdf* qname = ldns_dname_new_frm_str((name + ".").c_str());
      if (!qname)
        return unexpected(DnsError{DnsError::Kind::BadName, fmt::format("bad name '{}'", name)});
      PktPtr query(
          ldns_pkt_query_new(qname, static_cast<ldns_rr_type>(type), LDNS_RR_CLASS_IN, LDNS_RD));
      if (!query) return unexpected(DnsError{DnsError::Kind::Network, "out of memory"});
      // An id no off-path attacker can guess (RFC 5452) from glibc's arc4random (getrandom,
      // 0.4 us) rather than ldns_pkt_set_random_id: its OpenSSL RAND_bytes sets up a generator
      // in every thread that asks, ~15 us on a thread's first query, 0.7 us after.
      ldns_pkt_set_id(query.get(), static_cast<std::uint16_t>(arc4random() & 0xffff));
      ldns_pkt* raw = nullptr;
      ldns_status st = ldns_resolver_send_pkt(&raw, res, query.get());
      PktPtr reply(raw);
      if (st != LDNS_STATUS_OK || !reply) {
        // ldns marks a server that did not answer as unreachable and skips it from then on;
        // this thread's resolvers serve many lookups, so the next one starts afresh.
        ldns_resolver_deep_free(res);
        res = nullptr;
        const bool timeout = st == LDNS_STATUS_NETWORK_ERR || st == LDNS_STATUS_RES_NO_NS;
        last = DnsError{timeout ? DnsError::Kind::Timeout : DnsError::Kind::Malformed,
                        fmt::format("{} asking {} for {}/{}",
                                    timeout ? "no answer" : ldns_get_errorstr_by_id(st), server,
                                    name, to_string(type))};
        continue;
      }
      DnsResult r = parse_response(reply.get(), query.get(), name, type, server);
      if (r) return r;
      last = r.error();
    }
  }
  if (last.kind == DnsError::Kind::Timeout)
    last.message +=
        fmt::format(" ({} tries of {} ms)", (retries_ + 1) * servers_.size(), timeout_.count());
  return unexpected(std::move(last));
}

}  // namespace mxguard::dns
