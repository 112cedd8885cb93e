// A Resolver for unit tests: answers from a table built in the test, counts the questions it
// is asked and the answers it has given, and can hold its answers back (hold()) so that a test
// shows what happens while lookups are under way (a deadline passing, lookups running at once,
// askers waiting for one query) by counting, not by timing. Unknown names are NXDOMAIN.
// Thread-safety: the table is set up before use; lookup() may run on many threads.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>

#include "mxguard/dns/resolver.h"

namespace mxguard::test {

class FakeResolver : public dns::Resolver {
 public:
  using Key = std::pair<std::string, dns::RrType>;

  FakeResolver& mx(const std::string& name, std::vector<dns::MxRecord> records) {
    dns::DnsAnswer a;
    a.status = dns::DnsStatus::Ok;
    a.mx = std::move(records);
    a.ttl = 300;
    table_[{name, dns::RrType::Mx}] = a;
    exists(name);
    return *this;
  }
  FakeResolver& addr(const std::string& name, const std::string& ip) {
    auto a = net::IpAddress::parse(ip).value();
    auto type = a.is_v4() ? dns::RrType::A : dns::RrType::Aaaa;
    auto& e = table_[{name, type}];
    if (!e) {
      dns::DnsAnswer ans;
      ans.status = dns::DnsStatus::Ok;
      ans.ttl = 300;
      e = ans;
    }
    e->value().addresses.push_back(a);
    exists(name);
    return *this;
  }
  FakeResolver& cname(const std::string& name, const std::string& target) {
    for (auto t : {dns::RrType::Mx, dns::RrType::A, dns::RrType::Aaaa}) {
      dns::DnsAnswer a;
      a.cname_target = target;
      a.ttl = 300;
      table_[{name, t}] = a;
    }
    return *this;
  }
  FakeResolver& exists(const std::string& name) {  // the name exists (NODATA for the rest)
    names_.emplace(name);
    return *this;
  }
  FakeResolver& fail(const std::string& name, dns::RrType type,
                     dns::DnsError::Kind k = dns::DnsError::Kind::ServFail) {
    table_[{name, type}] = dns::DnsResult(unexpected(dns::DnsError{k, "SERVFAIL (fake)"}));
    exists(name);
    return *this;
  }
  // From now on, a lookup of one of `types` waits before answering until `together` lookups
  // are waiting at once (all go on then) or until release(). A lookup held for
  // kHoldSafety goes on by itself, so that a test whose code never releases it fails instead
  // of hanging.
  void hold(int together,
            std::set<dns::RrType> types = {dns::RrType::Mx, dns::RrType::A, dns::RrType::Aaaa}) {
    std::lock_guard lock(hold_mu_);
    hold_together_ = together;
    hold_types_ = std::move(types);
    released_ = false;
  }
  void release() {
    {
      std::lock_guard lock(hold_mu_);
      released_ = true;
    }
    hold_cv_.notify_all();
  }
  // The most lookups that were held at the same time.
  int most_held() {
    std::lock_guard lock(hold_mu_);
    return most_held_;
  }
  static constexpr std::chrono::seconds kHoldSafety{10};

  dns::DnsResult lookup(std::string_view name, dns::RrType type) override {
    queries++;
    wait_if_held(type);
    std::string n = dns::canonical_name(name);
    {
      std::lock_guard lock(mu_);
      asked_.push_back({n, type});
    }
    answered++;
    if (auto it = table_.find({n, type}); it != table_.end() && it->second) return *it->second;
    dns::DnsAnswer a;
    a.status = names_.count(n) ? dns::DnsStatus::NoData : dns::DnsStatus::NxDomain;
    a.ttl = 60;
    return a;
  }

  std::atomic<int> queries{0};   // lookups asked
  std::atomic<int> answered{0};  // lookups that have returned (or are returning) their answer
  std::vector<Key> asked() {
    std::lock_guard lock(mu_);
    return asked_;
  }

 private:
  void wait_if_held(dns::RrType type) {
    std::unique_lock lock(hold_mu_);
    if (hold_together_ == 0 || released_ || !hold_types_.count(type)) return;
    ++held_;
    most_held_ = std::max(most_held_, held_);
    if (held_ >= hold_together_) {
      released_ = true;  // the rendezvous is complete: everyone goes on
      hold_cv_.notify_all();
    }
    hold_cv_.wait_for(lock, kHoldSafety, [this] { return released_; });
    --held_;
  }

  std::map<Key, std::optional<dns::DnsResult>> table_;
  std::set<std::string> names_;
  std::mutex hold_mu_;
  std::condition_variable hold_cv_;
  int hold_together_ = 0;  // 0: no hold
  std::set<dns::RrType> hold_types_;
  bool released_ = false;
  int held_ = 0;
  int most_held_ = 0;
  std::mutex mu_;
  std::vector<Key> asked_;
};

}  // namespace mxguard::test
