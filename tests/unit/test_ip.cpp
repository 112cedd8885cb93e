// IpAddress, Cidr and CidrMap: strict parsing, canonical text, embedded IPv4, matching.
#include <catch2/catch.hpp>

#include <string>

#include "mxguard/net/ip.h"

using mxguard::net::Cidr;
using mxguard::net::CidrMap;
using mxguard::net::CidrSet;
using mxguard::net::IpAddress;

TEST_CASE("IPv4 dotted quads parse and print back unchanged", "[ip]") {
  auto [text, host_order] = GENERATE(table<std::string, std::uint32_t>({
      {"0.0.0.0", 0x00000000u},
      {"1.2.3.4", 0x01020304u},
      {"10.0.0.1", 0x0a000001u},
      {"192.168.100.200", 0xc0a864c8u},
      {"255.255.255.255", 0xffffffffu},
  }));
  CAPTURE(text);
  auto addr = IpAddress::parse(text);
  REQUIRE(addr);
  CHECK(addr->is_v4());
  CHECK(addr->bit_width() == 32);
  CHECK(addr->v4_host_order() == host_order);
  CHECK(addr->to_string() == text);
  CHECK(IpAddress::v4(host_order) == *addr);
}

TEST_CASE("malformed addresses are refused, octal-looking octets included", "[ip]") {
  auto text =
      GENERATE(as<std::string>{}, "", "1.2.3", "1.2.3.4.5", "256.1.1.1", "010.1.1.1", "1.02.3.4",
               "00.1.2.3", "1.2.3.4 ", " 1.2.3.4", "1.2.3.4x", "1..2.3", "1.2.3.", "+1.2.3.4",
               "0x1.2.3.4", "1.2.3.-4", "1234.1.1.1", ":::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7",
               "1::2::3", "12345::", ":1::", "1::2:", "fe80::1%eth0", "::g", "1:2:3:4:5:6:7::8",
               "::1.2.3", "::1.2.3.4:5", "1:2:3:4:5:6:7:1.2.3.4", "::01.2.3.4", "[1.2.3.4",
               "1.2.3.4]", "[]", "IPv6:", "IPv6:1.2.3.4", "[::1", "::ffff:256.1.1.1");
  CAPTURE(text);
  CHECK_FALSE(IpAddress::parse(text));
}

TEST_CASE("IPv6 text forms parse to canonical RFC 5952 text", "[ip]") {
  auto [input, canonical] = GENERATE(table<std::string, std::string>({
      {"::", "::"},
      {"::1", "::1"},
      {"2001:DB8::1", "2001:db8::1"},
      {"2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"},
      {"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},     // first of two equal runs
      {"2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"},  // a single zero group stays
      {"2001:db8::", "2001:db8::"},
      {"fe80::", "fe80::"},
      {"1:0:0:2:0:0:0:3", "1:0:0:2::3"},  // the longest run wins
      {"::ffff:1.2.3.4", "::ffff:1.2.3.4"},
      {"::FFFF:0102:0304", "::ffff:1.2.3.4"},
      {"::1.2.3.4", "::1.2.3.4"},
      {"64:ff9b::192.0.2.33", "64:ff9b::c000:221"},
      {"1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"},
      {"[2001:db8::1]", "2001:db8::1"},
      {"IPv6:2001:db8::1", "2001:db8::1"},
      {"[IPv6:::1]", "::1"},
      {"ipv6:::1", "::1"},
  }));
  CAPTURE(input);
  auto addr = IpAddress::parse(input);
  REQUIRE(addr);
  CHECK_FALSE(addr->is_v4());
  CHECK(addr->bit_width() == 128);
  CHECK(addr->to_string() == canonical);
  CHECK(IpAddress::parse(canonical) == addr);
}

TEST_CASE("brackets around IPv4 are accepted, as in address literals", "[ip]") {
  auto addr = IpAddress::parse("[192.0.2.1]");
  REQUIRE(addr);
  CHECK(addr->to_string() == "192.0.2.1");
}

TEST_CASE("IPv4 and IPv6 forms of one address are different addresses", "[ip]") {
  CHECK(IpAddress::parse("1.2.3.4") != IpAddress::parse("::ffff:1.2.3.4"));
  CHECK(IpAddress::parse("1.2.3.4") < IpAddress::parse("1.2.3.5"));
}

TEST_CASE("embedded IPv4 is decoded from mapped, compatible, NAT64 and 6to4 forms", "[ip]") {
  auto [input, embedded] = GENERATE(table<std::string, std::string>({
      {"::ffff:127.0.0.1", "127.0.0.1"},
      {"::10.1.2.3", "10.1.2.3"},
      {"64:ff9b::10.0.0.1", "10.0.0.1"},
      {"64:ff9b::c0a8:101", "192.168.1.1"},
      {"2002:c0a8:0101::1", "192.168.1.1"},
      {"2002:7f00:1:5::", "127.0.0.1"},
  }));
  CAPTURE(input);
  auto addr = IpAddress::parse(input);
  REQUIRE(addr);
  auto v4 = addr->embedded_v4();
  REQUIRE(v4);
  CHECK(v4->is_v4());
  CHECK(v4->to_string() == embedded);
}

TEST_CASE("addresses without an embedded IPv4 say so", "[ip]") {
  auto input = GENERATE(as<std::string>{}, "::", "::1", "2001:db8::1", "64:ff9b:1::10.0.0.1",
                        "::fffe:1.2.3.4", "1.2.3.4", "2003::1");
  CAPTURE(input);
  auto addr = IpAddress::parse(input);
  REQUIRE(addr);
  CHECK_FALSE(addr->embedded_v4());
}

TEST_CASE("reverse names are in-addr.arpa and nibble ip6.arpa without a trailing dot", "[ip]") {
  CHECK(IpAddress::parse("192.0.2.10")->reverse_name() == "10.2.0.192.in-addr.arpa");
  CHECK(IpAddress::parse("2001:db8::567:89ab")->reverse_name() ==
        "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
}

TEST_CASE("cidr blocks parse with and without a prefix", "[ip][cidr]") {
  auto [input, canonical] = GENERATE(table<std::string, std::string>({
      {"10.0.0.0/8", "10.0.0.0/8"},
      {"0.0.0.0/0", "0.0.0.0/0"},
      {"192.0.2.1", "192.0.2.1/32"},
      {"100.64.0.0/10", "100.64.0.0/10"},
      {"fc00::/7", "fc00::/7"},
      {"::/0", "::/0"},
      {"2001:DB8::/32", "2001:db8::/32"},
      {"[2001:db8::]/32", "2001:db8::/32"},
      {"::1", "::1/128"},
  }));
  CAPTURE(input);
  auto block = Cidr::parse(input);
  REQUIRE(block);
  CHECK(block->to_string() == canonical);
}

TEST_CASE("cidr blocks with host bits set or bad prefixes are refused with a reason",
          "[ip][cidr]") {
  auto [input, reason] = GENERATE(table<std::string, std::string>({
      {"10.1.0.0/8", "host bits set"},
      {"192.168.1.1/24", "host bits set"},
      {"fc01::/7", "host bits set"},
      {"10.0.0.0/33", "bad prefix length"},
      {"::/129", "bad prefix length"},
      {"10.0.0.0/", "bad prefix length"},
      {"10.0.0.0/08", "bad prefix length"},
      {"10.0.0.0/-1", "bad prefix length"},
      {"10.0.0.0/8/8", "bad prefix length"},
      {"10.0.0/8", "not an IP address"},
      {"example.com/8", "not an IP address"},
  }));
  CAPTURE(input);
  auto block = Cidr::parse_or_explain(input);
  REQUIRE_FALSE(block);
  CHECK_THAT(block.error(), Catch::Contains(reason));
  CHECK_FALSE(Cidr::parse(input));
}

TEST_CASE("the host-bits error names the network the admin probably meant", "[ip][cidr]") {
  auto block = Cidr::parse_or_explain("192.168.1.77/24");
  REQUIRE_FALSE(block);
  CHECK_THAT(block.error(), Catch::Contains("192.168.1.0/24"));
}

TEST_CASE("cidr containment respects prefix and family", "[ip][cidr]") {
  auto [block_text, addr_text, inside] = GENERATE(table<std::string, std::string, bool>({
      {"10.0.0.0/8", "10.255.1.2", true},
      {"10.0.0.0/8", "11.0.0.0", false},
      {"100.64.0.0/10", "100.127.255.255", true},
      {"100.64.0.0/10", "100.128.0.0", false},
      {"198.18.0.0/15", "198.19.0.1", true},
      {"0.0.0.0/0", "203.0.113.9", true},
      {"0.0.0.0/0", "::1", false},
      {"::/0", "1.2.3.4", false},
      {"::/0", "2001:db8::1", true},
      {"fc00::/7", "fdff::1", true},
      {"fc00::/7", "fe00::1", false},
      {"192.0.2.1", "192.0.2.1", true},
      {"192.0.2.1", "192.0.2.2", false},
      {"::ffff:0:0/96", "::ffff:10.0.0.1", true},
      {"10.0.0.0/8", "::ffff:10.0.0.1", false},
  }));
  CAPTURE(block_text, addr_text);
  auto block = Cidr::parse(block_text);
  auto addr = IpAddress::parse(addr_text);
  REQUIRE(block);
  REQUIRE(addr);
  CHECK(block->contains(*addr) == inside);
}

TEST_CASE("CidrMap returns the first block in insertion order", "[ip][cidr]") {
  CidrMap<std::string> map;
  map.add(*Cidr::parse("192.168.1.1"), "OK");
  map.add(*Cidr::parse("192.168.0.0/16"), "REJECT");
  map.add(*Cidr::parse("192.168.1.0/24"), "never reached");
  REQUIRE(map.size() == 3);
  auto value_for = [&map](const char* text) {
    const std::string* value = map.find(*IpAddress::parse(text));
    return value != nullptr ? *value : std::string("(none)");
  };
  CHECK(value_for("192.168.1.1") == "OK");
  CHECK(value_for("192.168.1.2") == "REJECT");
  CHECK(map.find(*IpAddress::parse("10.0.0.1")) == nullptr);

  CidrSet set;
  set.add(*Cidr::parse("127.0.0.0/8"));
  set.add(*Cidr::parse("::1"));
  CHECK(set.contains(*IpAddress::parse("127.1.2.3")));
  CHECK(set.contains(*IpAddress::parse("::1")));
  CHECK_FALSE(set.contains(*IpAddress::parse("::2")));
}

TEST_CASE("loopback: 127.0.0.0/8, ::1 and 127.x mapped into IPv6, nothing else", "[ip]") {
  auto loop = [](const char* s) { return IpAddress::parse(s)->is_loopback(); };
  CHECK(loop("127.0.0.1"));
  CHECK(loop("127.255.0.9"));
  CHECK(loop("::1"));
  CHECK(loop("::ffff:127.0.0.1"));
  CHECK_FALSE(loop("128.0.0.1"));
  CHECK_FALSE(loop("10.0.0.1"));
  CHECK_FALSE(loop("::"));
  CHECK_FALSE(loop("::2"));
  CHECK_FALSE(loop("::ffff:10.0.0.1"));
  CHECK_FALSE(loop("64:ff9b::7f00:1"));  // NAT64 of 127.0.0.1 comes from elsewhere
}
