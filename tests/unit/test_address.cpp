// The text helpers and the envelope address value: what MAIL FROM and RCPT TO are parsed into
// once, and what every check reads.
#include <catch2/catch.hpp>

#include "mxguard/address.h"
#include "mxguard/batv/prvs.h"
#include "mxguard/dns/mail_route.h"
#include "mxguard/idna.h"
#include "mxguard/text.h"

using namespace mxguard;

TEST_CASE("trim drops space, tab, CR and LF at both ends only", "[text]") {
  CHECK(trim(" \t\r\n a b \r\n") == "a b");
  CHECK(trim("") == "");
  CHECK(trim(" \t ") == "");
  CHECK(trim("\fa\v") == "\fa\v");  // not SMTP white space
  CHECK(trim("\fa\v ", " \f\v") == "a");
  CHECK(trim("--a--", "-") == "a");
  CHECK(trim("---", "-") == "");
}

TEST_CASE("ASCII case folding leaves every other byte alone", "[text]") {
  static_assert(ascii_lower('A') == 'a' && ascii_lower('z') == 'z' && ascii_lower('@') == '@');
  CHECK(ascii_lowercase("MAILER-Daemon@Example.COM") == "mailer-daemon@example.com");
  CHECK(ascii_lowercase("B\xc3\x9c"
                        "CHER") ==
        "b\xc3\x9c"
        "cher");  // "BÜCHER": Ü stays
  CHECK(iequals("Received", "rECEIVED"));
  CHECK_FALSE(iequals("Received", "Receive"));
  CHECK_FALSE(iequals("\xc3\x9c", "\xc3\xbc"));  // Ü and ü: not ASCII
  CHECK(istarts_with("OK fine", "ok"));
  CHECK(istarts_with("ok", "OK"));
  CHECK_FALSE(istarts_with("o", "ok"));
}

TEST_CASE("an address is split once: raw as logged, local part, lower-case domain", "[address]") {
  struct Row {
    const char* arg;
    const char* raw;
    const char* local;
    const char* domain;
  };
  const Row rows[] = {
      {"<alice@example.com>", "alice@example.com", "alice", "example.com"},
      {"  <Alice@Example.COM>\t", "Alice@Example.COM", "Alice", "example.com"},
      {"bob@EXAMPLE.com.", "bob@EXAMPLE.com.", "bob", "example.com"},
      {"bob@example.com..", "bob@example.com..", "bob", "example.com"},
      {"\"a@b c\"@example.com", "\"a@b c\"@example.com", "\"a@b c\"", "example.com"},
      {"<postmaster>", "postmaster", "postmaster", ""},
      {"postmaster", "postmaster", "postmaster", ""},
      {"user@", "user@", "user", ""},
      {"<a@b>x", "<a@b>x", "<a", "b>x"},  // not bracketed: kept as given
      {"user@[192.0.2.1]", "user@[192.0.2.1]", "user", "[192.0.2.1]"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.arg);
    Address a = Address::parse(row.arg);
    CHECK(a.raw == row.raw);
    CHECK(a.local == row.local);
    CHECK(a.given_local() == row.local);
    CHECK(a.domain == row.domain);
    CHECK_FALSE(a.tagged());
    CHECK_FALSE(a.null());
    CHECK_FALSE(a.domain_invalid);
    CHECK(a.plain() == a.raw);
  }
  Address a = Address::parse("bob@EXAMPLE.com.");
  CHECK(a.given_domain() == "EXAMPLE.com.");
  CHECK(Address::parse("user@[192.0.2.1]").literal());
  CHECK_FALSE(Address::parse("user@example.com").literal());
}

TEST_CASE("the null sender", "[address]") {
  for (const char* arg : {"<>", "", " <> ", "\t"}) {
    CAPTURE(arg);
    Address a = Address::parse(arg);
    CHECK(a.null());
    CHECK(a.raw.empty());
    CHECK(a.local.empty());
    CHECK(a.domain.empty());
    CHECK_FALSE(a.tagged());
  }
  CHECK(Address{}.null());
}

TEST_CASE("a U-label domain becomes its A-label; an invalid one stays, flagged", "[address][idn]") {
  Address a = Address::parse(
      "<user@B\xc3\xbc"
      "cher.TEST.>");  // Bücher.TEST.
  CHECK(a.domain == "xn--bcher-kva.test");
  CHECK_FALSE(a.domain_invalid);
  CHECK(a.given_domain() ==
        "B\xc3\xbc"
        "cher.TEST.");
  CHECK(a.raw ==
        "user@B\xc3\xbc"
        "cher.TEST.");

  Address bad = Address::parse("user@\xff\xfe.TEST");
  CHECK(bad.domain_invalid);
  CHECK(bad.domain == "\xff\xfe.test");
  CHECK(bad.raw == "user@\xff\xfe.TEST");

  Address dots = Address::parse("user@..");
  CHECK(dots.domain_invalid);
  CHECK(dots.domain.empty());
  CHECK(dots.given_domain() == "..");
}

TEST_CASE("domain_to_ascii agrees with the mail route's A-label for every valid name", "[idna]") {
  for (std::string d : {"example.com", "EXAMPLE.com.",
                        "B\xc3\xbc"
                        "cher.TEST.",
                        "xn--bcher-kva.test", "a.b.c.d"}) {
    CAPTURE(d);
    auto ours = domain_to_ascii(d);
    auto route = dns::to_a_label(d);
    REQUIRE(ours);
    REQUIRE(route);
    CHECK(*ours == *route);
  }
  // The same reasons as the route analysis gives, so that mail_route.cpp can call this.
  auto bad = domain_to_ascii("\xff\xfe.test.");
  REQUIRE_FALSE(bad);
  CHECK(bad.error() == dns::to_a_label("\xff\xfe.test.").error());
  CHECK(bad.error().rfind("'\xff\xfe.test' is not a valid internationalised domain: ", 0) == 0);
  CHECK(domain_to_ascii("..").error() == "empty domain");
  CHECK(domain_to_ascii(std::string(1025, 'a')).error() == "domain too long");
  CHECK(without_trailing_dots("example.com..") == "example.com");
  CHECK(without_trailing_dots("...").empty());
}

TEST_CASE("a BATV tag is taken off the local part, in both forms", "[address][batv]") {
  Address prefix = Address::parse("<prvs=1123abcdef=Victor@Example.COM>");
  CHECK(prefix.tagged());
  CHECK(prefix.batv_tag == "1123abcdef");
  CHECK(prefix.batv_form == BatvForm::Prefix);
  CHECK(prefix.local == "Victor");
  CHECK(prefix.given_local() == "prvs=1123abcdef=Victor");
  CHECK(prefix.domain == "example.com");
  CHECK(prefix.raw == "prvs=1123abcdef=Victor@Example.COM");  // the logs keep the tag
  CHECK(prefix.plain() == "Victor@Example.COM");              // the domain as given

  Address sub = Address::parse("victor+PRVS=1123ABCDEF@example.com");
  CHECK(sub.tagged());
  CHECK(sub.batv_tag == "1123ABCDEF");
  CHECK(sub.batv_form == BatvForm::SubAddress);
  CHECK(sub.local == "victor");
  CHECK(sub.plain() == "victor@example.com");

  Address both = Address::parse("a+b+prvs=2999000000@example.com");
  CHECK(both.local == "a+b");
}

TEST_CASE("what is not a BATV tag, exactly as the BATV parser sees it", "[address][batv]") {
  for (const char* arg : {
           "prvs=1123abcdef=@example.com",         // nothing after the tag
           "prvs=1123abcdef=victor",               // no domain
           "prvs=1123abcdef=victor@",              // empty domain
           "prvs=112xabcdef=victor@example.com",   // day not digits
           "prvs=1123abcdeg=victor@example.com",   // signature not hex
           "prvs=1123abcde=victor@example.com",    // signature too short
           "prvs=1123abcdef-victor@example.com",   // no '=' after the tag
           "prvs=x+prvs=1123abcdef@example.com",   // "prvs=" first: the prefix form or nothing
           "+prvs=1123abcdef@example.com",         // nothing before the '+'
           "victor+prvs=1123abcdef0@example.com",  // tag too long
           "victor@example.com",
       }) {
    CAPTURE(arg);
    Address a = Address::parse(arg);
    CHECK_FALSE(a.tagged());
    CHECK_FALSE(batv::is_tagged(arg));
    CHECK(a.local == a.given_local());
  }
  CHECK_FALSE(split_batv("prvs=1123abcdef="));
  auto s = split_batv("Prvs=0000000000=x");
  REQUIRE(s);
  CHECK(s->tag == "0000000000");
  CHECK(s->local == "x");
}

TEST_CASE("BATV verifies an Address as it verifies its text", "[address][batv]") {
  const auto keys = batv::KeyRing::from_keys({{3, "0123456789abcdef-test-key"}}, 3);
  const std::time_t now = 1715688000;
  for (auto form : {batv::PrvsForm::Prefix, batv::PrvsForm::SubAddress}) {
    std::string tagged = *batv::sign(keys, "Victor@Example.COM", now, 7, form);
    CAPTURE(tagged);
    Address a = Address::parse("<" + tagged + ">");
    REQUIRE(a.tagged());
    CHECK(a.batv_form == form);
    auto by_text = batv::verify(keys, tagged, now);
    auto by_value = batv::verify(keys, a, now);
    CHECK(by_value.status == batv::PrvsStatus::Valid);
    CHECK(by_value.status == by_text.status);
    CHECK(by_value.address == by_text.address);
    CHECK(by_value.address == "Victor@Example.COM");
    CHECK(batv::verify(keys, a, now + 30 * 86400).status == batv::PrvsStatus::Expired);
  }
  Address plain = Address::parse("victor@example.com");
  auto r = batv::verify(keys, plain, now);
  CHECK(r.status == batv::PrvsStatus::NotTagged);
  CHECK(r.address == "victor@example.com");
}

TEST_CASE("a NUL inside a U-label domain is not an A-label", "[address]") {
  // Found by fuzz_address: libidn2 reads a C string, so "bücher.\0..." became "xn--bcher-kva."
  // with a trailing dot.
  const std::string raw(
      "user@B\xc3\xbc"
      "cher.\0\0\x16",
      16);
  const Address a = Address::parse(raw);
  CHECK(a.domain_invalid);
  CHECK((a.domain.empty() || a.domain.back() != '.'));
  CHECK_FALSE(
      domain_to_ascii(std::string_view("b\xc3\xbc"
                                       "cher.\0x",
                                       9)));
}

TEST_CASE("a domain that maps to dots alone is empty, not '.'", "[address]") {
  // Found by fuzz_address: IDNA maps a zero-width space to nothing, leaving a trailing dot.
  const Address a = Address::parse("./1@.\xe2\x80\x8b");
  CHECK((a.domain.empty() || a.domain.back() != '.'));
  auto mapped = domain_to_ascii("x.\xe2\x80\x8b");
  CHECK((!mapped || mapped->back() != '.'));
}
