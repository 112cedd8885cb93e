// A Resolver for unit tests: answers from a table built in the test, counts the questions it
// is asked, and can be made slow. Unknown names are NXDOMAIN.
// Thread-safety: the table is set up before use; lookup() may run on many threads.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

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
  void set_delay(std::chrono::milliseconds d) { delay_ = d; }

  dns::DnsResult lookup(std::string_view name, dns::RrType type) override {
    queries++;
    if (delay_.count()) std::this_thread::sleep_for(delay_);
    std::string n = dns::canonical_name(name);
    {
      std::lock_guard lock(mu_);
      asked_.push_back({n, type});
    }
    if (auto it = table_.find({n, type}); it != table_.end() && it->second) return *it->second;
    dns::DnsAnswer a;
    a.status = names_.count(n) ? dns::DnsStatus::NoData : dns::DnsStatus::NxDomain;
    a.ttl = 60;
    return a;
  }

  std::atomic<int> queries{0};
  std::vector<Key> asked() {
    std::lock_guard lock(mu_);
    return asked_;
  }

 private:
  std::map<Key, std::optional<dns::DnsResult>> table_;
  std::set<std::string> names_;
  std::chrono::milliseconds delay_{0};
  std::mutex mu_;
  std::vector<Key> asked_;
};

}  // namespace mxguard::test
