// bogus-networks.cidr: syntax, errors naming the line, and what the shipped table says.
#include <catch2/catch.hpp>

#include "mxguard/dns/bogus_networks.h"

using namespace mxguard;
using namespace mxguard::dns;

TEST_CASE("the shipped bogus-networks table classifies the special-purpose blocks",
          "[dns][bogus]") {
  auto t = BogusNetworks::load(MXGUARD_SOURCE_DIR "/rules/bogus-networks.cidr");
  REQUIRE(t);
  struct Row {
    const char* addr;
    const char* reason;  // empty: routable
  };
  const Row rows[] = {
      {"127.0.0.1", "loopback network"},
      {"0.0.0.0", "this-network"},
      {"10.9.8.7", "private network"},
      {"172.31.255.255", "private network"},
      {"172.32.0.1", ""},
      {"192.168.0.1", "private network"},
      {"100.64.0.1", "carrier-grade NAT shared network"},
      {"100.128.0.1", ""},
      {"169.254.1.1", "link-local network"},
      {"192.0.0.8", "IETF protocol assignment network"},
      {"192.0.0.9", ""},
      {"192.0.2.1", "documentation network TEST-NET-1"},
      {"198.18.0.1", "benchmarking network"},
      {"198.19.255.255", "benchmarking network"},
      {"198.51.100.1", "documentation network TEST-NET-2"},
      {"203.0.113.5", "documentation network TEST-NET-3"},
      {"224.0.0.1", "multicast network"},
      {"240.0.0.1", "reserved class E network"},
      {"255.255.255.255", "limited broadcast address"},
      {"8.8.8.8", ""},
      {"::", "unspecified address"},
      {"::1", "loopback address"},
      {"::ffff:127.0.0.1", "loopback network"},
      {"::ffff:8.8.8.8", "IPv4-mapped address"},
      {"::8.8.8.8", "deprecated IPv4-compatible address"},
      {"::10.0.0.1", "private network"},
      {"64:ff9b::10.0.0.1", "private network"},
      {"64:ff9b::8.8.8.8", ""},
      {"64:ff9b:1::1", "local-use NAT64 network"},
      {"2002:7f00:1::1", "loopback network"},
      {"2002:808:808::1", ""},
      {"fc00::1", "unique local network"},
      {"fdff::1", "unique local network"},
      {"fe80::1", "link-local network"},
      {"fec0::1", "deprecated site-local network"},
      {"ff02::1", "multicast network"},
      {"2001:db8::25", "documentation network"},
      {"3fff::1", "documentation network"},
      {"2001:2::1", "benchmarking network"},
      {"2001::1", ""},  // Teredo
      {"2001:4:112::1", ""},
      {"2001:5::1", "IETF protocol assignment network"},
      {"100::1", "discard-only network"},
      {"2606:4700::1", ""},
  };
  for (const auto& row : rows) {
    CAPTURE(row.addr);
    auto m = (*t)->classify(net::IpAddress::parse(row.addr).value());
    if (*row.reason) {
      REQUIRE(m);
      CHECK(m->reason == row.reason);
    } else {
      CHECK_FALSE(m);
    }
  }
}

TEST_CASE("bogus-networks syntax: comments, continuation, DUNNO", "[dns][bogus]") {
  auto t = BogusNetworks::parse(
      "# comment\n\n10.0.0.1/32 DUNNO\n10.0.0.0/8   private\n  network\r\n", "t.cidr");
  REQUIRE(t);
  CHECK((*t)->size() == 2);
  CHECK_FALSE((*t)->classify(net::IpAddress::parse("10.0.0.1").value()));
  CHECK((*t)->classify(net::IpAddress::parse("10.0.0.2").value())->reason == "private network");
}

TEST_CASE("a malformed bogus-networks line names file and line", "[dns][bogus]") {
  struct Row {
    const char* text;
    int line;
  };
  const Row rows[] = {
      {"10.0.0.0/8 private\n10.0.0.0/33 bad\n", 2},
      {"# x\n\n10.1.0.0/8 host bits\n", 3},
      {"10.0.0.0/8\n", 1},
      {"  continuation first\n", 1},
      {"nonsense text\n", 1},
      {"10.0.0.0/8 caf\xc3\xa9\n", 1},
  };
  for (const auto& row : rows) {
    CAPTURE(row.text);
    auto t = BogusNetworks::parse(row.text, "x.cidr");
    REQUIRE_FALSE(t);
    CHECK(t.error().file == "x.cidr");
    CHECK(t.error().line == row.line);
  }
  auto missing = BogusNetworks::load("/nonexistent/bogus.cidr");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().line == 0);
}
