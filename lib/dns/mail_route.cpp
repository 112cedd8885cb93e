#include "mxguard/dns/mail_route.h"

#include "mxguard/idna.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <future>
#include <mutex>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "dns/lookup_pool.h"

namespace mxguard::dns {

namespace {

using Clock = std::chrono::steady_clock;

// One lookup's outcome along its CNAME chain: the answer at the end of it (shared with the
// cache when it came from there) or why there is none.
struct Chain {
  SharedAnswer answer;  // null when `error` says why
  DnsError error;
  std::string final_name;  // where the CNAME chain ended
  int cnames = 0;
  bool ok() const { return answer != nullptr; }
};

Chain chain_error(std::string name, DnsError::Kind k, std::string msg) {
  Chain c;
  c.final_name = std::move(name);
  c.error = DnsError{k, std::move(msg)};
  return c;
}

// Follows the CNAMEs `ask` reports (cname_target) up to a bound. `ask` gives a step as a
// SharedAnswer, or as a DnsResult (then it is moved into a shared one); nothing when it has no
// answer for some step.
template <typename Ask>
std::optional<Chain> follow_chain(const std::string& name, RrType type, int max_chain, Ask ask) {
  Chain c;
  c.final_name = name;
  for (;;) {
    auto step = ask(c.final_name, type);
    if (!step) return std::nullopt;
    if constexpr (std::is_same_v<decltype(step), SharedAnswer>) {
      c.answer = std::move(step);
    } else if (*step) {
      c.answer = std::make_shared<const DnsAnswer>(std::move(*step).value());
    } else {
      c.error = std::move(*step).error();
      return c;
    }
    if (c.answer->cname_target.empty()) return c;
    if (++c.cnames > max_chain)
      return chain_error(name, DnsError::Kind::Malformed,
                         fmt::format("CNAME chain of {} longer than {}", name, max_chain));
    c.final_name = c.answer->cname_target;
  }
}

Chain resolve_chain(Resolver& r, const std::string& name, RrType type, int max_chain) {
  return *follow_chain(name, type, max_chain, [&](const std::string& n, RrType t) {
    return std::optional<DnsResult>(r.lookup(n, t));
  });
}

// Whether an analysis was answered from the cache alone, and until when those answers hold.
struct Freshness {
  bool cached = true;
  int answers = 0;
  Clock::time_point until = Clock::time_point::max();
};

// The same from the cache only; nothing when any step would need a query.
std::optional<Chain> cached_chain(Resolver& r, const std::string& name, RrType type, int max_chain,
                                  Freshness& fresh) {
  return follow_chain(name, type, max_chain, [&](const std::string& n, RrType t) {
    CachedAnswer c = r.try_cached_until(n, t);
    if (c.answer) {
      fresh.answers++;
      fresh.until = std::min(fresh.until, c.expires);
    }
    return c.answer;
  });
}

// A lookup that is either answered already or running on its own thread.
class Job {
 public:
  Job(const std::shared_ptr<Resolver>& r, const std::string& name, RrType type, int max_chain,
      Freshness& fresh) {
    if (auto hit = cached_chain(*r, name, type, max_chain, fresh)) {
      done_ = std::move(hit);
      return;
    }
    fresh.cached = false;
    name_ = name;
    auto promise = std::make_shared<std::promise<Chain>>();
    future_ = promise->get_future();
    try {
      // If the caller gives up at the deadline, the query still ends on its own timeout and
      // its answer warms the cache. The thread keeps the resolver alive.
      LookupPool::instance().start([r, name, type, max_chain, promise] {
        try {
          promise->set_value(resolve_chain(*r, name, type, max_chain));
        } catch (...) {
          promise->set_exception(std::current_exception());
        }
      });
    } catch (const std::system_error&) {
      // No thread to be had: ask in this one.
      done_ = resolve_chain(*r, name, type, max_chain);
    }
  }

  Chain wait(Clock::time_point deadline) {
    if (done_) return std::move(*done_);
    if (future_.wait_until(deadline) != std::future_status::ready)
      return chain_error(name_, DnsError::Kind::Timeout, "route deadline passed");
    try {
      return future_.get();
    } catch (const std::exception& e) {
      return chain_error(name_, DnsError::Kind::Network, e.what());
    }
  }

 private:
  std::string name_;  // for the errors of wait(): set when the lookup did not hit the cache
  std::optional<Chain> done_;
  std::future<Chain> future_;
};

bool host_label_ok(std::string_view label) {
  if (label.empty() || label.size() > 63) return false;
  for (char c : label) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

// What one analysis asks with.
struct Asker {
  const std::shared_ptr<Resolver>& resolver;
  const BogusNetworks* bogus;  // may be null: every address is routable
  const RouteOptions& opts;
  Clock::time_point deadline;
  Freshness& fresh;  // what the answers were and how long they hold
};

RouteAddress judge(const BogusNetworks* bogus, const net::IpAddress& a) {
  RouteAddress ra{a, std::nullopt};
  if (bogus) ra.bogus = bogus->classify(a);
  return ra;
}

// The one exchanger an address literal names; false (the route is invalid) when it is not one.
bool literal_exchanger(MailRoute& route, std::string_view literal, const BogusNetworks* bogus) {
  route.domain = std::string(literal);
  auto addr = net::IpAddress::parse(literal);
  if (!addr) {
    route.kind = RouteKind::Invalid;
    route.detail = "bad address literal";
    return false;
  }
  route.exchangers.push_back(Exchanger{route.domain, 0, true, {judge(bogus, *addr)}, false, {}});
  return true;
}

// The exchangers of an MX answer, in preference order, at most `max`, without duplicates.
void mx_exchangers(MailRoute& route, const DnsAnswer& ans, std::size_t max) {
  // In preference order, without copying the records out of the (shared) answer.
  std::vector<const MxRecord*> records;
  records.reserve(ans.mx.size());
  for (const auto& r : ans.mx)
    records.push_back(&r);
  std::stable_sort(records.begin(), records.end(),
                   [](const auto* a, const auto* b) { return a->preference < b->preference; });
  for (const MxRecord* rp : records) {
    const MxRecord& r = *rp;
    if (r.exchange == ".") {
      route.null_mx_mixed = true;
      continue;
    }
    if (route.exchangers.size() >= max) break;
    const bool dup = std::any_of(route.exchangers.begin(), route.exchangers.end(),
                                 [&](const Exchanger& e) { return e.name == r.exchange; });
    if (!dup) route.exchangers.push_back(Exchanger{r.exchange, r.preference, false, {}, false, {}});
  }
}

// The domain's exchangers from its MX records, or its implicit MX. False when the MX lookup
// settles the route already (invalid name, tempfail, no such domain, null MX).
bool find_exchangers(MailRoute& route, std::string_view domain_in, const Asker& ask) {
  auto name = to_a_label(domain_in);
  if (!name) {
    route.domain = std::string(domain_in);
    route.kind = RouteKind::Invalid;
    route.detail = name.error();
    return false;
  }
  route.domain = *name;
  Chain mx = Job(ask.resolver, route.domain, RrType::Mx, ask.opts.max_cname_chain, ask.fresh)
                 .wait(ask.deadline);
  if (!mx.ok()) {
    route.kind = RouteKind::TempFail;
    route.detail = fmt::format("MX: {}", mx.error.message);
    return false;
  }
  const DnsAnswer& ans = *mx.answer;
  if (ans.status == DnsStatus::NxDomain) {
    route.kind = RouteKind::NoSuchDomain;
    route.detail = mx.cnames ? fmt::format("CNAME target {} does not exist", mx.final_name)
                             : std::string("NXDOMAIN");
    return false;
  }
  if (ans.status != DnsStatus::Ok) {
    // No MX records: RFC 5321 §5.1 implicit MX, the domain's own addresses.
    route.exchangers.push_back(Exchanger{mx.final_name, 0, true, {}, false, {}});
    return true;
  }
  route.has_mx = true;
  if (ans.mx.size() == 1 && ans.mx.front().exchange == ".") {
    route.kind = RouteKind::NullMx;
    return false;
  }
  mx_exchangers(route, ans, ask.opts.max_exchangers);
  return true;
}

// Every exchanger's A and AAAA, asked all at once, with notes on what is missing or failed.
void resolve_addresses(MailRoute& route, const Asker& ask) {
  std::vector<Job> jobs;
  jobs.reserve(route.exchangers.size() * 2);
  for (const auto& e : route.exchangers) {
    jobs.emplace_back(ask.resolver, e.name, RrType::A, ask.opts.max_cname_chain, ask.fresh);
    jobs.emplace_back(ask.resolver, e.name, RrType::Aaaa, ask.opts.max_cname_chain, ask.fresh);
  }
  for (std::size_t i = 0; i < route.exchangers.size(); ++i) {
    Exchanger& e = route.exchangers[i];
    bool missing = true;
    for (std::size_t k = 0; k < 2; ++k) {
      const std::string_view type = k == 0 ? "A" : "AAAA";
      Chain c = jobs[i * 2 + k].wait(ask.deadline);
      if (c.cnames && k == 0) e.notes.push_back(fmt::format("via CNAME {}", c.final_name));
      if (!c.ok()) {
        e.lookup_failed = true;
        missing = false;
        e.notes.push_back(fmt::format("{}: {}", type, c.error.message));
        continue;
      }
      const DnsAnswer& a = *c.answer;
      if (a.status != DnsStatus::NxDomain) missing = false;
      for (const auto& addr : a.addresses)
        e.addresses.push_back(judge(ask.bogus, addr));
    }
    if (missing) {
      e.notes.push_back("does not exist");
    } else if (e.addresses.empty() && !e.lookup_failed) {
      e.notes.push_back("has no address");
    }
  }
}

// The route's kind (and detail) from its exchangers and their addresses.
void classify_route(MailRoute& route) {
  bool any_failed = false;
  bool any_address = false;
  for (const auto& e : route.exchangers) {
    if (e.routable()) {
      route.kind = RouteKind::Deliverable;
      return;
    }
    any_failed |= e.lookup_failed;
    any_address |= !e.addresses.empty();
  }
  if (any_failed) {
    route.kind = RouteKind::TempFail;
    for (const auto& e : route.exchangers)
      if (e.lookup_failed)
        for (const auto& n : e.notes)
          route.detail += (route.detail.empty() ? "" : "; ") + fmt::format("{}: {}", e.name, n);
    return;
  }
  if (any_address) {
    route.kind = RouteKind::Bogus;
    for (const auto& e : route.exchangers)
      if (!e.addresses.empty()) {
        route.bogus = e.addresses.front();
        break;
      }
    return;
  }
  route.kind = RouteKind::NoExchanger;
  if (route.exchangers.empty()) {
    route.detail = "no usable MX record";
  } else if (route.has_mx) {
    route.detail = "no MX host has an address";
  } else {
    route.detail = "no MX record and no address";
  }
}

}  // namespace

std::string_view to_string(RouteKind k) {
  switch (k) {
    case RouteKind::Deliverable:
      return "deliverable";
    case RouteKind::NullMx:
      return "null-mx";
    case RouteKind::Bogus:
      return "bogus";
    case RouteKind::NoExchanger:
      return "no-exchanger";
    case RouteKind::NoSuchDomain:
      return "no-such-domain";
    case RouteKind::TempFail:
      return "tempfail";
    case RouteKind::Invalid:
      return "invalid";
    case RouteKind::MxOnly:
      return "mx-only";
  }
  return "?";
}

bool Exchanger::routable() const {
  return std::any_of(addresses.begin(), addresses.end(),
                     [](const RouteAddress& a) { return !a.bogus; });
}

std::string MailRoute::describe() const {
  std::string s = fmt::format("domain={} route={}", domain, to_string(kind));
  if (kind == RouteKind::Bogus && bogus)
    s += fmt::format(" range=\"{}\"", bogus->bogus->describe(bogus->address));
  for (const auto& e : exchangers) {
    s += fmt::format(" {}={}:", e.implicit ? "implicit" : "mx", e.name);
    if (e.addresses.empty()) s += "-";
    for (std::size_t i = 0; i < e.addresses.size(); ++i)
      s += fmt::format("{}{}{}", i ? "," : "", e.addresses[i].address.to_string(),
                       e.addresses[i].bogus ? "(bogus)" : "");
  }
  if (null_mx_mixed) s += " note=\"'.' among other MX records ignored\"";
  if (!detail.empty()) s += fmt::format(" detail=\"{}\"", detail);
  return s;
}

Expected<std::string, std::string> to_a_label(std::string_view domain) {
  // The conversion the envelope addresses get (idna.h); then what DNS can carry.
  auto ascii = domain_to_ascii(domain);
  if (!ascii) return unexpected(ascii.error());
  std::string d = std::move(ascii).value();
  d = canonical_name(d);
  if (d.size() > 253) return unexpected(fmt::format("domain of {} octets (max 253)", d.size()));
  std::size_t start = 0;
  for (;;) {
    std::size_t dot = d.find('.', start);
    std::string_view label =
        std::string_view(d).substr(start, dot == std::string::npos ? dot : dot - start);
    if (!host_label_ok(label))
      return unexpected(label.size() > 63 ? fmt::format("label of {} octets (max 63)", label.size())
                                          : fmt::format("bad label '{}'", label));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return d;
}

bool join_lookup_threads(std::chrono::milliseconds wait) {
  return LookupPool::instance().join_all(wait);
}

// The routes route() keeps, by depth and domain as asked, each until its first answer expires.
// A shard full drops an entry to take a new one (any: they all expire soon enough).
struct RouteAnalyzer::Memo {
  struct Kept {
    std::shared_ptr<const MailRoute> route;
    Clock::time_point until;
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, Kept> kept;
  };
  static constexpr std::size_t kShards = 16;
  std::array<Shard, kShards> shards;
  std::size_t per_shard = 1;
  Shard& shard(const std::string& key) { return shards[std::hash<std::string>{}(key) % kShards]; }
};

namespace {

MailRoute analyse_with(std::string_view domain_in, RouteDepth depth, const Asker& ask);

}  // namespace

RouteAnalyzer::RouteAnalyzer(std::shared_ptr<Resolver> resolver,
                             std::shared_ptr<const BogusNetworks> bogus, RouteOptions o)
    : resolver_(std::move(resolver)),
      bogus_(std::move(bogus)),
      opts_(o),
      memo_(std::make_shared<Memo>()) {
  memo_->per_shard =
      std::max<std::size_t>(1, (opts_.max_remembered + Memo::kShards - 1) / Memo::kShards);
}

MailRoute RouteAnalyzer::analyse(std::string_view domain_in, RouteDepth depth) const {
  Freshness fresh;
  return analyse_with(domain_in, depth,
                      Asker{resolver_, bogus_.get(), opts_, Clock::now() + opts_.deadline, fresh});
}

std::shared_ptr<const MailRoute> RouteAnalyzer::route(std::string_view domain,
                                                      RouteDepth depth) const {
  std::string key;
  key.reserve(domain.size() + 2);
  key.push_back(depth == RouteDepth::Full ? 'F' : 'M');
  key.push_back(' ');
  key.append(domain);
  Memo::Shard& shard = memo_->shard(key);
  {
    std::lock_guard lock(shard.mu);
    if (auto it = shard.kept.find(key); it != shard.kept.end()) {
      if (resolver_->now() < it->second.until) return it->second.route;
      shard.kept.erase(it);
    }
  }
  Freshness fresh;
  auto route = std::make_shared<const MailRoute>(analyse_with(
      domain, depth, Asker{resolver_, bogus_.get(), opts_, Clock::now() + opts_.deadline, fresh}));
  // Only what the cache answered alone, and only while all of it holds; nothing asked of DNS
  // (an address literal, a name that is none) costs little to work out again.
  if (fresh.cached && fresh.answers > 0 && resolver_->now() < fresh.until) {
    std::lock_guard lock(shard.mu);
    if (shard.kept.size() >= memo_->per_shard && !shard.kept.count(key))
      shard.kept.erase(shard.kept.begin());
    shard.kept.insert_or_assign(std::move(key), Memo::Kept{route, fresh.until});
  }
  return route;
}

std::size_t RouteAnalyzer::remembered() const {
  std::size_t n = 0;
  for (auto& shard : memo_->shards) {
    std::lock_guard lock(shard.mu);
    n += shard.kept.size();
  }
  return n;
}

namespace {

MailRoute analyse_with(std::string_view domain_in, RouteDepth depth, const Asker& ask) {
  MailRoute route;
  // An address literal ("[192.0.2.1]", "[IPv6:...]") names its one exchanger directly.
  if (!domain_in.empty() && domain_in.front() == '[') {
    if (!literal_exchanger(route, domain_in, ask.bogus)) return route;
  } else {
    if (!find_exchangers(route, domain_in, ask)) return route;
    if (depth == RouteDepth::MxOnly) {
      route.kind = RouteKind::MxOnly;
      return route;
    }
    resolve_addresses(route, ask);
  }
  classify_route(route);
  return route;
}

}  // namespace

}  // namespace mxguard::dns
