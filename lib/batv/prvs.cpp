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

#include "mxguard/text.h"

namespace mxguard::batv {

namespace {

constexpr std::time_t kDay = 86400;

// A tag taken apart; its syntax (mxguard::split_batv) is already checked.
struct Parsed {
  int key = -1;
  std::string_view ddd;
  std::string_view sig;
  std::string address;  // the plain address
  PrvsForm form = PrvsForm::Prefix;
};

Parsed parsed(std::string_view tag, std::string address, PrvsForm form) {
  return Parsed{tag[0] - '0', tag.substr(1, 3), tag.substr(4, 6), std::move(address), form};
}

bool parse(std::string_view a, Parsed& p) {
  auto at = a.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == a.size()) return false;
  auto split = split_batv(a.substr(0, at));
  if (!split) return false;
  p = parsed(split->tag, fmt::format("{}@{}", split->local, a.substr(at + 1)), split->form);
  return true;
}

PrvsResult verify_parsed(const KeyRing& keys, const Parsed& p, std::time_t now, int lifetime_days) {
  PrvsResult r;
  r.address = p.address;
  r.key = p.key;
  r.form = p.form;
  const std::string* secret = keys.key(p.key);
  if (!secret) {
    r.status = PrvsStatus::UnknownKey;
    return r;
  }
  std::string expected = signature(*secret, p.key, p.ddd, p.address);
  std::string got = ascii_lowercase(p.sig);
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
  Parsed p;
  if (!parse(address, p)) {
    PrvsResult r;
    r.address = std::string(address);
    return r;
  }
  return verify_parsed(keys, p, now, lifetime_days);
}

PrvsResult verify(const KeyRing& keys, const Address& address, std::time_t now, int lifetime_days) {
  if (!address.tagged()) {
    PrvsResult r;
    r.address = address.raw;
    return r;
  }
  return verify_parsed(keys, parsed(address.batv_tag, address.plain(), address.batv_form), now,
                       lifetime_days);
}

}  // namespace mxguard::batv
