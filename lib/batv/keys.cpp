#include "mxguard/batv/keys.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "mxguard/text.h"

namespace mxguard::batv {

namespace {

constexpr std::size_t kMinSecret = 16;
constexpr std::size_t kMaxSecret = 64;  // Exim's prvs refuses longer keys; stay compatible

}  // namespace

Expected<std::shared_ptr<const KeyRing>, ConfigError> KeyRing::load(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return unexpected(
        ConfigError{path, fmt::format("cannot read the BATV key file: {}", std::strerror(errno))});
  if (!S_ISREG(st.st_mode))
    return unexpected(ConfigError{path, "the BATV key file is not a regular file"});
  if ((st.st_mode & 077) != 0)
    return unexpected(ConfigError{
        path, fmt::format("the BATV key file is accessible by group or others (mode {:04o}); "
                          "anyone who reads it can forge bounces that pass as ours: "
                          "chmod 600 it, owned by the user mxguard runs as",
                          st.st_mode & 07777)});
  std::ifstream in(path);
  if (!in) return unexpected(ConfigError{path, "cannot read the BATV key file"});
  auto ring = std::make_shared<KeyRing>();
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    std::string_view t = trim(line);
    if (t.empty() || t.front() == '#') continue;
    std::string where = fmt::format("{}:{}", path, lineno);
    // "K secret": never echo the secret in a message.
    if (t.size() < 2 || t[0] < '0' || t[0] > '9' || (t[1] != ' ' && t[1] != '\t'))
      return unexpected(
          ConfigError{where, "expected 'K secret' with K a key number 0-9 and a space"});
    int k = t[0] - '0';
    std::string_view secret = trim(t.substr(1));
    if (secret.size() < kMinSecret)
      return unexpected(
          ConfigError{where, fmt::format("key {} is too short ({} bytes; at least {})", k,
                                         secret.size(), kMinSecret)});
    if (secret.size() > kMaxSecret)
      return unexpected(ConfigError{
          where, fmt::format("key {} is too long ({} bytes; at most {}, as Exim's prvs allows)", k,
                             secret.size(), kMaxSecret)});
    if (ring->keys_[static_cast<std::size_t>(k)])
      return unexpected(ConfigError{where, fmt::format("key number {} is listed twice", k)});
    ring->keys_[static_cast<std::size_t>(k)] = std::string(secret);
    ring->signing_ = k;
  }
  if (ring->signing_ < 0) return unexpected(ConfigError{path, "the BATV key file holds no key"});
  return std::shared_ptr<const KeyRing>(std::move(ring));
}

KeyRing KeyRing::from_keys(std::initializer_list<std::pair<int, std::string>> keys, int signing) {
  KeyRing r;
  for (const auto& [k, s] : keys)
    if (k >= 0 && k <= 9) r.keys_[static_cast<std::size_t>(k)] = s;
  r.signing_ = signing;
  return r;
}

const std::string* KeyRing::key(int k) const {
  if (k < 0 || k > 9 || !keys_[static_cast<std::size_t>(k)]) return nullptr;
  return &*keys_[static_cast<std::size_t>(k)];
}

}  // namespace mxguard::batv
