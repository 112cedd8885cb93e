#include <catch2/catch.hpp>

#include <map>

#include "mxguard/dns/fcrdns.h"

using namespace mxguard;
using namespace mxguard::dns;

namespace {

// Answers from a fixed table; a missing entry is NXDOMAIN, "fail" a SERVFAIL.
class TableResolver final : public Resolver {
 public:
  std::map<std::pair<std::string, RrType>, DnsAnswer> answers;
  std::map<std::pair<std::string, RrType>, bool> failing;
  DnsResult lookup(std::string_view name, RrType type) override {
    std::pair<std::string, RrType> key{std::string(name), type};
    if (failing.count(key)) return unexpected(DnsError{DnsError::Kind::ServFail, "test"});
    auto it = answers.find(key);
    if (it == answers.end()) return DnsAnswer{DnsStatus::NxDomain, {}, {}, {}, {}, {}, 60};
    return it->second;
  }
  void ptr(const std::string& rev, std::vector<std::string> names) {
    DnsAnswer a;
    a.status = DnsStatus::Ok;
    a.names = std::move(names);
    answers[{rev, RrType::Ptr}] = a;
  }
  void addr(const std::string& name, RrType t, std::vector<std::string> addrs) {
    DnsAnswer a;
    a.status = DnsStatus::Ok;
    for (const auto& s : addrs)
      a.addresses.push_back(*net::IpAddress::parse(s));
    answers[{name, t}] = a;
  }
};

}  // namespace

TEST_CASE("a PTR name counts only when its address records lead back", "[dns][fcrdns]") {
  TableResolver r;
  r.ptr("7.113.0.203.in-addr.arpa", {"mail-a.provider.test", "liar.provider.test"});
  r.addr("mail-a.provider.test", RrType::A, {"192.0.2.1", "203.0.113.7"});
  r.addr("liar.provider.test", RrType::A, {"192.0.2.99"});
  auto names = confirmed_names(r, *net::IpAddress::parse("203.0.113.7"));
  CHECK(names == std::vector<std::string>{"mail-a.provider.test"});
}

TEST_CASE("no PTR, a failing PTR or a failing forward lookup confirm nothing", "[dns][fcrdns]") {
  TableResolver r;
  CHECK(confirmed_names(r, *net::IpAddress::parse("203.0.113.8")).empty());
  r.failing[{"9.113.0.203.in-addr.arpa", RrType::Ptr}] = true;
  CHECK(confirmed_names(r, *net::IpAddress::parse("203.0.113.9")).empty());
  r.ptr("10.113.0.203.in-addr.arpa", {"mx.provider.test"});
  r.failing[{"mx.provider.test", RrType::A}] = true;
  CHECK(confirmed_names(r, *net::IpAddress::parse("203.0.113.10")).empty());
}

TEST_CASE("IPv6 clients are confirmed through ip6.arpa and AAAA", "[dns][fcrdns]") {
  TableResolver r;
  auto a = *net::IpAddress::parse("2001:db8::25");
  r.ptr(a.reverse_name(), {"mx6.provider.test"});
  r.addr("mx6.provider.test", RrType::Aaaa, {"2001:db8::25"});
  r.addr("mx6.provider.test", RrType::A, {"192.0.2.25"});
  CHECK(confirmed_names(r, a) == std::vector<std::string>{"mx6.provider.test"});
}
