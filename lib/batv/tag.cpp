#include "mxguard/batv/tag.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <fmt/format.h>

#include <charconv>

#include "mxguard/text.h"

namespace mxguard::batv {

namespace {

constexpr std::size_t kHexLen = 32;  // 16 bytes: enough against forgery, short in a header
constexpr std::time_t kClockSkew = 86400;

std::string mac_hex(std::string_view secret, std::string_view message_id, long long t) {
  std::string input = fmt::format("v1|{}|{}", message_id, t);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  std::string out;
  for (std::size_t i = 0; i < kHexLen / 2; ++i)
    out += fmt::format("{:02x}", mac[i]);
  return out;
}

}  // namespace

std::string_view to_string(TagStatus s) {
  switch (s) {
    case TagStatus::Valid:
      return "valid";
    case TagStatus::Expired:
      return "expired";
    case TagStatus::BadSignature:
      return "bad-signature";
    case TagStatus::UnknownKey:
      return "unknown-key";
    case TagStatus::Malformed:
      return "malformed";
  }
  return "?";
}

std::string make_tag(const KeyRing& keys, std::string_view message_id, std::time_t now) {
  const int k = keys.signing_key();
  long long t = static_cast<long long>(now);
  return fmt::format("v1; t={}; k={}; h={}", t, k, mac_hex(keys.signing_secret(), message_id, t));
}

TagStatus verify_tag(const KeyRing& keys, std::string_view value, std::string_view message_id,
                     std::time_t now, std::time_t max_age) {
  std::string_view v, h;
  long long t = -1;
  int k = -1;
  std::size_t pos = 0;
  while (pos <= value.size()) {
    std::size_t semi = value.find(';', pos);
    std::string_view item = trim(
        value.substr(pos, semi == std::string_view::npos ? std::string_view::npos : semi - pos));
    pos = semi == std::string_view::npos ? value.size() + 1 : semi + 1;
    if (item.empty()) continue;
    if (v.empty() && item.find('=') == std::string_view::npos) {
      v = item;
      continue;
    }
    auto eq = item.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = trim(item.substr(0, eq));
    std::string_view val = trim(item.substr(eq + 1));
    if (name == "t") {
      auto [p, ec] = std::from_chars(val.data(), val.data() + val.size(), t);
      if (ec != std::errc() || p != val.data() + val.size()) return TagStatus::Malformed;
    } else if (name == "k") {
      if (val.size() != 1 || val[0] < '0' || val[0] > '9') return TagStatus::Malformed;
      k = val[0] - '0';
    } else if (name == "h") {
      h = val;
    }
  }
  if (v != "v1" || t < 0 || k < 0 || h.size() != kHexLen) return TagStatus::Malformed;
  const std::string* secret = keys.key(k);
  if (!secret) return TagStatus::UnknownKey;
  std::string got = ascii_lowercase(h);
  std::string expected = mac_hex(*secret, message_id, t);
  if (CRYPTO_memcmp(expected.data(), got.data(), kHexLen) != 0) return TagStatus::BadSignature;
  long long n = static_cast<long long>(now);
  if (t > n + kClockSkew || n - t > static_cast<long long>(max_age)) return TagStatus::Expired;
  return TagStatus::Valid;
}

}  // namespace mxguard::batv
