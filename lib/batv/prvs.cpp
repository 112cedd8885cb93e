// What Exim does, read from its source (src/src/expand.c, prvs_daystamp / prvs_hmac_sha1 and
// the EITEM_PRVS / EITEM_PRVSCHECK cases; Exim 4.9x):
//  - the day stamp is the last three decimal digits of (now + 7 days) / 86400, i.e. days since
//    the epoch mod 1000, zero-padded by construction once days exceed 999;
//  - the HMAC input is the text key number (one character), then the three-digit day stamp,
//    then the address exactly as given — no lower-casing; prvscheck rebuilds it as
//    local_part "@" domain from the tagged address, so case is kept there too;
//  - the key is used as an HMAC-SHA1 key as-is (at most 64 bytes, so no key hashing step);
//  - the signature is the first three bytes of the HMAC in lower-case hex;
//  - prvscheck matches ^prvs=([0-9])([0-9]{3})([A-F0-9]{6})=(.+)@(.+)$ without regard to case,
//    but then compares the hex case-sensitively; we accept either case, as the issue asks.
// The expiry rule differs slightly: Exim accepts any stamp >= today (with a wrap fix-up near
// 999); we accept today .. today + lifetime, modulo 1000, which agrees for Exim's 7 days.
#include "mxguard/batv/prvs.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <fmt/format.h>

namespace mxguard::batv {

namespace {

constexpr std::time_t kDay = 86400;

struct Parsed {
  int key = -1;
  std::string_view ddd;
  std::string_view sig;
  std::string address;
  PrvsForm form = PrvsForm::Prefix;
};

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool iprefix(std::string_view s, std::string_view p) {
  if (s.size() < p.size()) return false;
  for (std::size_t i = 0; i < p.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != p[i]) return false;
  }
  return true;
}

// "KDDDSSSSSS": ten characters.
bool parse_tag(std::string_view t, Parsed& p) {
  if (t.size() != 10 || !is_digit(t[0])) return false;
  for (int i = 1; i < 4; ++i)
    if (!is_digit(t[static_cast<std::size_t>(i)])) return false;
  for (int i = 4; i < 10; ++i)
    if (!is_hex(t[static_cast<std::size_t>(i)])) return false;
  p.key = t[0] - '0';
  p.ddd = t.substr(1, 3);
  p.sig = t.substr(4, 6);
  return true;
}

bool parse(std::string_view a, Parsed& p) {
  auto at = a.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == a.size()) return false;
  std::string_view local = a.substr(0, at);
  std::string_view domain = a.substr(at + 1);
  if (iprefix(local, "prvs=")) {
    // prvs=KDDDSSSSSS=local
    std::string_view rest = local.substr(5);
    if (rest.size() < 12 || rest[10] != '=') return false;
    if (!parse_tag(rest.substr(0, 10), p)) return false;
    std::string_view plain_local = rest.substr(11);
    if (plain_local.empty()) return false;
    p.address = fmt::format("{}@{}", plain_local, domain);
    p.form = PrvsForm::Prefix;
    return true;
  }
  // local+prvs=KDDDSSSSSS
  auto plus = local.rfind('+');
  if (plus == std::string_view::npos || plus == 0) return false;
  std::string_view tail = local.substr(plus + 1);
  if (!iprefix(tail, "prvs=") || !parse_tag(tail.substr(5), p)) return false;
  p.address = fmt::format("{}@{}", local.substr(0, plus), domain);
  p.form = PrvsForm::SubAddress;
  return true;
}

}  // namespace

std::string_view to_string(PrvsStatus s) {
  switch (s) {
    case PrvsStatus::Valid:
      return "valid";
    case PrvsStatus::Expired:
      return "expired";
    case PrvsStatus::BadSignature:
      return "bad-signature";
    case PrvsStatus::UnknownKey:
      return "unknown-key";
    case PrvsStatus::NotTagged:
      return "not-tagged";
  }
  return "?";
}

std::string day_stamp(std::time_t t, int offset_days) {
  long long days = static_cast<long long>(t / kDay) + offset_days;
  return fmt::format("{:03d}", ((days % 1000) + 1000) % 1000);
}

std::string signature(std::string_view secret, int keyno, std::string_view ddd,
                      std::string_view address) {
  std::string input = fmt::format("{}{}{}", keyno, ddd, address);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha1(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return fmt::format("{:02x}{:02x}{:02x}", mac[0], mac[1], mac[2]);
}

bool is_tagged(std::string_view address) {
  Parsed p;
  return parse(address, p);
}

std::optional<std::string> sign(const KeyRing& keys, std::string_view address, std::time_t now,
                                int lifetime_days, PrvsForm form) {
  auto at = address.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == address.size()) return std::nullopt;
  if (is_tagged(address) || keys.signing_key() < 0) return std::nullopt;
  const int k = keys.signing_key();
  std::string ddd = day_stamp(now, lifetime_days);
  std::string sig = signature(keys.signing_secret(), k, ddd, address);
  std::string_view local = address.substr(0, at);
  std::string_view domain = address.substr(at + 1);
  if (form == PrvsForm::SubAddress)
    return fmt::format("{}+prvs={}{}{}@{}", local, k, ddd, sig, domain);
  return fmt::format("prvs={}{}{}={}@{}", k, ddd, sig, local, domain);
}

PrvsResult verify(const KeyRing& keys, std::string_view address, std::time_t now,
                  int lifetime_days) {
  PrvsResult r;
  Parsed p;
  if (!parse(address, p)) {
    r.address = std::string(address);
    return r;
  }
  r.address = p.address;
  r.key = p.key;
  r.form = p.form;
  const std::string* secret = keys.key(p.key);
  if (!secret) {
    r.status = PrvsStatus::UnknownKey;
    return r;
  }
  std::string expected = signature(*secret, p.key, p.ddd, p.address);
  std::string got(p.sig);
  for (char& c : got)
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
  if (CRYPTO_memcmp(expected.data(), got.data(), 6) != 0) {
    r.status = PrvsStatus::BadSignature;
    return r;
  }
  int expiry = (p.ddd[0] - '0') * 100 + (p.ddd[1] - '0') * 10 + (p.ddd[2] - '0');
  int today = std::stoi(day_stamp(now));
  int remaining = ((expiry - today) % 1000 + 1000) % 1000;  // days left, across the wrap
  r.status = remaining <= lifetime_days ? PrvsStatus::Valid : PrvsStatus::Expired;
  return r;
}

}  // namespace mxguard::batv
