#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "mxguard/batv/prvs.h"
#include "mxguard/batv/tag.h"

using namespace mxguard;
using namespace mxguard::batv;

namespace {

constexpr std::time_t kNow = 1715688000;  // 2024-05-14 12:00:00 UTC, day 19857
const std::string kKey = "0123456789abcdef-test-key";

KeyRing ring() {
  return KeyRing::from_keys({{3, kKey}, {0, "an-exim-compatible-secret"}}, 3);
}

// The formula from the issue, computed here with OpenSSL's one-shot HMAC() and nothing from
// lib/batv: first 3 bytes of HMAC-SHA1(key, "K" + "DDD" + "local@domain"), lower-case hex.
std::string independent_sig(const std::string& key, const std::string& k_ddd_addr) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha1(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(k_ddd_addr.data()), k_ddd_addr.size(), mac, &len);
  char hex[7];
  std::snprintf(hex, sizeof hex, "%02x%02x%02x", mac[0], mac[1], mac[2]);
  return hex;
}

std::string temp_key_file(const std::string& text, mode_t mode) {
  auto path =
      std::filesystem::temp_directory_path() / ("mxguard-batv-" + std::to_string(::getpid()) + "-" +
                                                std::to_string(std::hash<std::string>{}(text)));
  {
    std::ofstream f(path);
    f << text;
  }
  ::chmod(path.c_str(), mode);
  return path.string();
}

}  // namespace

TEST_CASE("prvs vectors cross-checked with Python's hmac module", "[batv]") {
  // Computed once with:
  //   python3 -c 'import hmac,hashlib; print(hmac.new(KEY, b"3864alice@example.com",
  //               hashlib.sha1).hexdigest()[:6])'
  // (day 19857 + 7 = 19864 -> "864"), and likewise for the other rows.
  KeyRing keys = ring();
  CHECK(day_stamp(kNow, 7) == "864");
  CHECK(sign(keys, "alice@example.com", kNow) ==
        "prvs=3864"
        "33ed4f"
        "=alice@example.com");
  // Case is kept in the HMAC input, as Exim does.
  CHECK(sign(keys, "Alice.Smith@Example.COM", kNow) ==
        "prvs=3864"
        "30e302"
        "=Alice.Smith@Example.COM");
  CHECK(signature("an-exim-compatible-secret", 0, "864", "bob@example.org") == "220598");
}

TEST_CASE("prvs signatures match the formula computed independently", "[batv]") {
  KeyRing keys = ring();
  for (const char* addr : {"a@b.test", "first.last+ext@sub.example.com", "x_y@EXAMPLE.test"}) {
    for (std::time_t t : {kNow, kNow + 86400 * 100, std::time_t(86400) * 999 + 5}) {
      auto tagged = sign(keys, addr, t);
      REQUIRE(tagged);
      std::string ddd = day_stamp(t, 7);
      std::string expect = "prvs=3" + ddd + independent_sig(kKey, "3" + ddd + addr) + "=" + addr;
      CHECK(*tagged == expect);
    }
  }
}

TEST_CASE("prvs verify: valid, upper-case hex, expired, bad, unknown key, not tagged", "[batv]") {
  KeyRing keys = ring();
  std::string tagged = *sign(keys, "alice@example.com", kNow);

  auto v = verify(keys, tagged, kNow);
  CHECK(v.status == PrvsStatus::Valid);
  CHECK(v.address == "alice@example.com");
  CHECK(v.key == 3);

  std::string upper = tagged;
  for (std::size_t i = 9; i < 15; ++i)
    upper[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(upper[i])));
  CHECK(verify(keys, upper, kNow).status == PrvsStatus::Valid);
  CHECK(verify(keys, "PRVS=" + tagged.substr(5), kNow).status == PrvsStatus::Valid);

  CHECK(verify(keys, tagged, kNow + 7 * 86400).status == PrvsStatus::Valid);  // last day
  CHECK(verify(keys, tagged, kNow + 8 * 86400).status == PrvsStatus::Expired);
  CHECK(verify(keys, tagged, kNow + 400 * 86400).status == PrvsStatus::Expired);

  std::string bad = tagged;
  bad[14] = bad[14] == '0' ? '1' : '0';
  CHECK(verify(keys, bad, kNow).status == PrvsStatus::BadSignature);
  // The tag binds the address: moving it to another local part breaks it.
  CHECK(verify(keys, tagged.substr(0, 16) + "bob@example.com", kNow).status ==
        PrvsStatus::BadSignature);

  std::string other_key = tagged;
  other_key[5] = '7';
  CHECK(verify(keys, other_key, kNow).status == PrvsStatus::UnknownKey);

  auto plain = verify(keys, "alice@example.com", kNow);
  CHECK(plain.status == PrvsStatus::NotTagged);
  CHECK(plain.address == "alice@example.com");
  for (const char* junk : {"prvs=@x", "prvs=3864zzzzzz=a@b", "prvs=386433ed4f=@b", "@", "",
                           "prvs=3864"
                           "33ed4f"
                           "alice@example.com",
                           "+prvs=3864abcdef@x"})
    CHECK(verify(keys, junk, kNow).status == PrvsStatus::NotTagged);
}

TEST_CASE("prvs across the day-stamp wrap from 999 to 000", "[batv]") {
  KeyRing keys = ring();
  std::time_t t = std::time_t(86400) * 19995;  // day 19995 -> stamp 995; expiry 20002 -> 002
  auto tagged = sign(keys, "alice@example.com", t);
  REQUIRE(tagged);
  CHECK(tagged->substr(6, 3) == "002");
  CHECK(verify(keys, *tagged, t).status == PrvsStatus::Valid);
  CHECK(verify(keys, *tagged, t + 6 * 86400).status == PrvsStatus::Valid);  // today is 001
  CHECK(verify(keys, *tagged, t + 8 * 86400).status == PrvsStatus::Expired);
}

TEST_CASE("prvs sub-address form", "[batv]") {
  KeyRing keys = ring();
  auto tagged = sign(keys, "alice@example.com", kNow, 7, PrvsForm::SubAddress);
  REQUIRE(tagged);
  CHECK(*tagged ==
        "alice+prvs=3864"
        "33ed4f"
        "@example.com");
  auto v = verify(keys, *tagged, kNow);
  CHECK(v.status == PrvsStatus::Valid);
  CHECK(v.form == PrvsForm::SubAddress);
  CHECK(v.address == "alice@example.com");
  CHECK_FALSE(sign(keys, *tagged, kNow));  // never tag twice
  CHECK_FALSE(sign(keys, "no-at-sign", kNow));
}

TEST_CASE("X-Mxguard-Tag: format, Python cross-check, and verification", "[batv][tag]") {
  KeyRing keys = ring();
  // python3 -c 'import hmac,hashlib; print(hmac.new(KEY, b"v1|<m1@example.com>|1715688000",
  //             hashlib.sha256).hexdigest()[:32])'
  std::string tag = make_tag(keys, "<m1@example.com>", kNow);
  CHECK(tag == "v1; t=1715688000; k=3; h=8bd47459dc25638689393af135c90116");
  CHECK(verify_tag(keys, tag, "<m1@example.com>", kNow + 3600) == TagStatus::Valid);
  CHECK(verify_tag(keys, "k=3;v1;h=8BD47459DC25638689393AF135C90116; t=1715688000; x=y",
                   "<m1@example.com>", kNow) == TagStatus::Valid);
  CHECK(verify_tag(keys, tag, "<m2@example.com>", kNow) == TagStatus::BadSignature);
  CHECK(verify_tag(keys, tag, "<m1@example.com>", kNow + 31 * 86400) == TagStatus::Expired);
  CHECK(verify_tag(keys, tag, "<m1@example.com>", kNow - 2 * 86400) == TagStatus::Expired);
  CHECK(verify_tag(keys, "v1; t=1715688000; k=5; h=8bd47459dc25638689393af135c90116",
                   "<m1@example.com>", kNow) == TagStatus::UnknownKey);
  for (const char* junk : {"", "v2; t=1; k=3; h=00", "v1; t=x; k=3; h=8bd4", "v1; k=33", ";;;;",
                           "v1; t=-5; k=3; h=8bd47459dc25638689393af135c90116"})
    CHECK(verify_tag(keys, junk, "<m1@example.com>", kNow) != TagStatus::Valid);
}

TEST_CASE("the key file: syntax, rotation, and refusal of loose modes", "[batv][keys]") {
  SECTION("good file: the last key signs, all verify") {
    auto path =
        temp_key_file("# keys\n\n1 first-secret-0123456789\n2 second-secret-0123456789\n", 0600);
    auto r = KeyRing::load(path);
    REQUIRE(r);
    CHECK((*r)->signing_key() == 2);
    CHECK((*r)->key(1) != nullptr);
    CHECK((*r)->key(3) == nullptr);
    std::filesystem::remove(path);
  }
  SECTION("group- or world-readable: refused with a clear message") {
    for (mode_t mode : {0640, 0604, 0660}) {
      auto path = temp_key_file("1 first-secret-0123456789\n", mode);
      auto r = KeyRing::load(path);
      REQUIRE_FALSE(r);
      CHECK(r.error().message.find("group or others") != std::string::npos);
      std::filesystem::remove(path);
    }
  }
  SECTION("errors name file and line and never show the secret") {
    struct Row {
      const char* text;
      const char* where;
      const char* says;
    };
    const Row rows[] = {
        {"1 first-secret-0123456789\nx secret-secret-secret\n", ":2", "key number"},
        {"1 short\n", ":1", "too short"},
        {"1 first-secret-0123456789\n1 other-secret-0123456789\n", ":2", "twice"},
        {"# only comments\n", "", "no key"},
        {"1 "
         "0123456789012345678901234567890123456789012345678901234567890123456789\n",
         ":1", "too long"},
    };
    for (const Row& row : rows) {
      auto path = temp_key_file(row.text, 0600);
      auto r = KeyRing::load(path);
      REQUIRE_FALSE(r);
      INFO(r.error().to_string());
      CHECK(r.error().where == path + row.where);
      CHECK(r.error().message.find(row.says) != std::string::npos);
      CHECK(r.error().to_string().find("secret-0123") == std::string::npos);
      std::filesystem::remove(path);
    }
  }
  SECTION("missing file") {
    auto r = KeyRing::load("/nonexistent/mxguard-keys");
    REQUIRE_FALSE(r);
    CHECK(r.error().where == "/nonexistent/mxguard-keys");
  }
}
