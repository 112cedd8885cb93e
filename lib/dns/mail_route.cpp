#include "mxguard/dns/mail_route.h"

#include <fmt/format.h>
#include <idn2.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <vector>

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

// The same from the cache only; nothing when any step would need a query.
std::optional<Chain> cached_chain(Resolver& r, const std::string& name, RrType type,
                                  int max_chain) {
  return follow_chain(name, type, max_chain,
                      [&](const std::string& n, RrType t) { return r.try_cached(n, t); });
}

// The threads that run lookups, which may outlive the analysis that started them. A thread
// that has finished a lookup waits 5 s for the next one (up to 64 threads wait; the rest
// end), so that a busy server reuses its threads and, with them, each thread's ldns resolvers
// (see ldns_resolver.cpp). A lookup never waits for a busy thread: when none is idle, a new
// one starts. None is detached: join_lookup_threads() ends the idle ones and joins them all
// before the process ends, so that none is still inside ldns or OpenSSL when exit handlers
// tear those down.
class LookupThreads {
 public:
  // Never destroyed: a thread still running at exit must find it intact. A program that does
  // not call join_lookup_threads() itself (the unit tests) still joins them on its way out.
  static LookupThreads& instance() {
    static auto* threads = [] {
      auto* t = new LookupThreads;
      std::atexit([] { instance().join_all(std::chrono::seconds(5)); });
      return t;
    }();
    return *threads;
  }

  // Runs `work` on an idle thread or a new one; std::system_error when none can be had.
  void start(std::function<void()> work) {
    reap();
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(work));
    if (queue_.size() <= idle_) {
      woken_.notify_one();
      return;
    }
    const std::uint64_t id = next_id_++;
    try {
      running_.emplace(id, std::thread([this, id] { serve(id); }));
    } catch (...) {
      queue_.pop_back();
      throw;
    }
  }

  bool join_all(std::chrono::milliseconds wait) {
    std::unique_lock lock(mutex_);
    ++stopping_;
    woken_.notify_all();
    const bool all =
        ended_.wait_for(lock, wait, [&] { return finished_.size() == running_.size(); });
    --stopping_;
    lock.unlock();
    reap();
    return all;
  }

 private:
  // Long enough for a busy server to reuse its threads, short enough that the threads and
  // their memory a burst leaves behind are gone soon after (at a lookup every few seconds a new
  // thread costs nothing that matters).
  static constexpr auto kIdleWait = std::chrono::seconds(5);
  static constexpr std::size_t kMaxIdle = 64;  // after a burst, the rest end at once

  void serve(std::uint64_t id) {
    std::unique_lock lock(mutex_);
    for (;;) {
      if (queue_.empty()) {
        if (idle_ >= kMaxIdle) break;
        ++idle_;
        const bool got =
            woken_.wait_for(lock, kIdleWait, [&] { return !queue_.empty() || stopping_ > 0; });
        --idle_;
        if (!got || queue_.empty()) break;
      }
      std::function<void()> work = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      work();
      // What the work held (the resolver) goes before the thread can be counted as done.
      work = nullptr;
      lock.lock();
    }
    finished_.push_back(id);
    ended_.notify_all();
  }

  void reap() {
    std::vector<std::thread> done;
    {
      std::lock_guard lock(mutex_);
      for (std::uint64_t id : finished_) {
        auto it = running_.find(id);
        done.push_back(std::move(it->second));
        running_.erase(it);
      }
      finished_.clear();
    }
    for (auto& t : done)
      t.join();  // past its last work already: only the thread's own exit is waited for
  }

  std::mutex mutex_;
  std::condition_variable woken_;  // work queued, or join_all() wants the idle threads to end
  std::condition_variable ended_;
  std::deque<std::function<void()>> queue_;  // started lookups no thread has taken yet
  std::size_t idle_ = 0;                     // threads waiting for work
  int stopping_ = 0;                         // join_all() calls in progress
  std::uint64_t next_id_ = 0;
  std::unordered_map<std::uint64_t, std::thread> running_;  // started, not joined yet
  std::vector<std::uint64_t> finished_;                     // of those, the ones that ended
};

// A lookup that is either answered already or running on its own thread.
class Job {
 public:
  Job(const std::shared_ptr<Resolver>& r, const std::string& name, RrType type, int max_chain) {
    if (auto hit = cached_chain(*r, name, type, max_chain)) {
      done_ = std::move(hit);
      return;
    }
    name_ = name;
    auto promise = std::make_shared<std::promise<Chain>>();
    future_ = promise->get_future();
    try {
      // If the caller gives up at the deadline, the query still ends on its own timeout and
      // its answer warms the cache. The thread keeps the resolver alive.
      LookupThreads::instance().start([r, name, type, max_chain, promise] {
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
  std::string d(domain);
  while (!d.empty() && d.back() == '.')
    d.pop_back();
  if (d.empty()) return unexpected(std::string("empty domain"));
  if (d.size() > 1024) return unexpected(std::string("domain too long"));
  const bool ascii =
      std::all_of(d.begin(), d.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (!ascii) {
    char* out = nullptr;
    int rc = idn2_to_ascii_8z(d.c_str(), &out, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
    if (rc != IDN2_OK) {
      idn2_free(out);
      return unexpected(
          fmt::format("'{}' is not a valid internationalised domain: {}", d, idn2_strerror(rc)));
    }
    d = out;
    idn2_free(out);
  }
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
  return LookupThreads::instance().join_all(wait);
}

RouteAnalyzer::RouteAnalyzer(std::shared_ptr<Resolver> resolver,
                             std::shared_ptr<const BogusNetworks> bogus, RouteOptions o)
    : resolver_(std::move(resolver)), bogus_(std::move(bogus)), opts_(o) {}

MailRoute RouteAnalyzer::analyse(std::string_view domain_in, RouteDepth depth) const {
  const Clock::time_point deadline = Clock::now() + opts_.deadline;
  MailRoute route;

  auto classify = [&](const net::IpAddress& a) {
    RouteAddress ra{a, std::nullopt};
    if (bogus_) ra.bogus = bogus_->classify(a);
    return ra;
  };

  // An address literal ("[192.0.2.1]", "[IPv6:...]") names its one exchanger directly.
  if (!domain_in.empty() && domain_in.front() == '[') {
    route.domain = std::string(domain_in);
    auto addr = net::IpAddress::parse(domain_in);
    if (!addr) {
      route.kind = RouteKind::Invalid;
      route.detail = "bad address literal";
      return route;
    }
    Exchanger e{route.domain, 0, true, {classify(*addr)}, false, {}};
    route.exchangers.push_back(std::move(e));
  } else {
    auto name = to_a_label(domain_in);
    if (!name) {
      route.domain = std::string(domain_in);
      route.kind = RouteKind::Invalid;
      route.detail = name.error();
      return route;
    }
    route.domain = *name;

    Chain mx = Job(resolver_, route.domain, RrType::Mx, opts_.max_cname_chain).wait(deadline);
    if (!mx.ok()) {
      route.kind = RouteKind::TempFail;
      route.detail = fmt::format("MX: {}", mx.error.message);
      return route;
    }
    const DnsAnswer& ans = *mx.answer;
    if (ans.status == DnsStatus::NxDomain) {
      route.kind = RouteKind::NoSuchDomain;
      route.detail = mx.cnames ? fmt::format("CNAME target {} does not exist", mx.final_name)
                               : std::string("NXDOMAIN");
      return route;
    }
    if (ans.status == DnsStatus::Ok) {
      route.has_mx = true;
      if (ans.mx.size() == 1 && ans.mx.front().exchange == ".") {
        route.kind = RouteKind::NullMx;
        return route;
      }
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
        if (route.exchangers.size() >= opts_.max_exchangers) break;
        const bool dup = std::any_of(route.exchangers.begin(), route.exchangers.end(),
                                     [&](const Exchanger& e) { return e.name == r.exchange; });
        if (!dup)
          route.exchangers.push_back(Exchanger{r.exchange, r.preference, false, {}, false, {}});
      }
    } else {
      // No MX records: RFC 5321 §5.1 implicit MX, the domain's own addresses.
      route.exchangers.push_back(Exchanger{mx.final_name, 0, true, {}, false, {}});
    }
    if (depth == RouteDepth::MxOnly) {
      route.kind = RouteKind::MxOnly;
      return route;
    }

    // Every exchanger's A and AAAA at once.
    std::vector<Job> jobs;
    jobs.reserve(route.exchangers.size() * 2);
    for (const auto& e : route.exchangers) {
      jobs.emplace_back(resolver_, e.name, RrType::A, opts_.max_cname_chain);
      jobs.emplace_back(resolver_, e.name, RrType::Aaaa, opts_.max_cname_chain);
    }
    for (std::size_t i = 0; i < route.exchangers.size(); ++i) {
      Exchanger& e = route.exchangers[i];
      bool missing = true;
      for (std::size_t k = 0; k < 2; ++k) {
        const std::string_view type = k == 0 ? "A" : "AAAA";
        Chain c = jobs[i * 2 + k].wait(deadline);
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
          e.addresses.push_back(classify(addr));
      }
      if (missing) {
        e.notes.push_back("does not exist");
      } else if (e.addresses.empty() && !e.lookup_failed) {
        e.notes.push_back("has no address");
      }
    }
  }

  bool any_failed = false;
  bool any_address = false;
  for (const auto& e : route.exchangers) {
    if (e.routable()) {
      route.kind = RouteKind::Deliverable;
      return route;
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
    return route;
  }
  if (any_address) {
    route.kind = RouteKind::Bogus;
    for (const auto& e : route.exchangers)
      if (!e.addresses.empty()) {
        route.bogus = e.addresses.front();
        break;
      }
    return route;
  }
  route.kind = RouteKind::NoExchanger;
  if (route.exchangers.empty()) {
    route.detail = "no usable MX record";
  } else if (route.has_mx) {
    route.detail = "no MX host has an address";
  } else {
    route.detail = "no MX record and no address";
  }
  return route;
}

}  // namespace mxguard::dns
