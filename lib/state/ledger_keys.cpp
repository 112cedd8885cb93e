// LedgerKey and LedgerKeys: the ledger's key file and the HMAC that turns a sender and a
// recipient (or a Message-ID) into the 128 bits the ledger stores.
// The key file is one line of hex, so that an admin can copy it to every host of a fleet or
// make one with `openssl rand -hex 32`. HMAC input: the tag byte, the normalised sender's length
// (4 bytes, big-endian) and the sender, then the normalised value: the length keeps "ab"+"c"
// apart from "a"+"bc".
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "mxguard/state/ledger.h"
#include "mxguard/text.h"

namespace mxguard::state {

namespace {

constexpr std::size_t kMinSecret = 16;
constexpr std::size_t kMaxSecret = 64;
constexpr std::string_view kHex = "0123456789abcdef";

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = ascii_lower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::string to_hex(const unsigned char* p, std::size_t n) {
  std::string out;
  out.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(kHex[p[i] >> 4]);
    out.push_back(kHex[p[i] & 0xF]);
  }
  return out;
}

std::optional<std::string> decode_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi << 4 | lo));
  }
  return out;
}

std::string_view strip_brackets(std::string_view s) {
  s = trim(s);
  if (s.size() >= 2 && s.front() == '<' && s.back() == '>') s = trim(s.substr(1, s.size() - 2));
  return s;
}

void append_length(std::string& out, std::size_t n) {
  const auto v = static_cast<std::uint32_t>(n);
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

// The secret's keyed HMAC-SHA256 context, or null when OpenSSL cannot make one.
std::shared_ptr<const EVP_MAC_CTX> keyed_context(std::string_view secret) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (!mac) return nullptr;
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  EVP_MAC_free(mac);  // the context holds its own reference
  if (!ctx) return nullptr;
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_END};
  if (EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(secret.data()), secret.size(),
                   params) != 1) {
    EVP_MAC_CTX_free(ctx);
    return nullptr;
  }
  return std::shared_ptr<const EVP_MAC_CTX>(
      ctx, [](const EVP_MAC_CTX* c) { EVP_MAC_CTX_free(const_cast<EVP_MAC_CTX*>(c)); });
}

ConfigError file_error(const std::string& path, std::string message) {
  return ConfigError{path, std::move(message)};
}

// 32 bytes from the kernel's generator (getrandom), or OpenSSL's when that fails.
std::optional<std::string> random_secret() {
  std::string s(LedgerKeys::kSecretBytes, '\0');
  std::size_t got = 0;
  while (got < s.size()) {
    const ssize_t n = ::getrandom(s.data() + got, s.size() - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got == s.size()) return s;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(s.data()), static_cast<int>(s.size())) == 1)
    return s;
  return std::nullopt;
}

// Writes a new key file next to `path` and links it into place; EEXIST when another process
// was first (its key is then the one to read).
std::optional<ConfigError> create_key_file(const std::string& path) {
  auto secret = random_secret();
  if (!secret) return file_error(path, "cannot create the ledger key file: no random bytes");
  const std::string content =
      to_hex(reinterpret_cast<const unsigned char*>(secret->data()), secret->size()) + "\n";
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return file_error(path,
                      fmt::format("cannot create the ledger key file: {}", std::strerror(errno)));
  bool ok = ::fchmod(fd, 0600) == 0;
  std::size_t done = 0;
  while (ok && done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<std::size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  const int saved = errno;
  ok = ::close(fd) == 0 && ok;
  if (!ok) {
    ::unlink(tmp.c_str());
    return file_error(path, fmt::format("cannot write the ledger key file: {}",
                                        std::strerror(saved ? saved : errno)));
  }
  // link() fails if the file appeared meanwhile: never replace a key another process wrote.
  if (::link(tmp.c_str(), path.c_str()) != 0 && errno != EEXIST) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return file_error(path, fmt::format("cannot create the ledger key file: {}", std::strerror(e)));
  }
  ::unlink(tmp.c_str());
  return std::nullopt;
}

}  // namespace

std::string LedgerKey::hex() const {
  return to_hex(bytes.data(), bytes.size());
}

std::optional<LedgerKey> LedgerKey::from_hex(std::string_view hex) {
  if (hex.size() != 32) return std::nullopt;
  auto raw = decode_hex(hex);
  if (!raw) return std::nullopt;
  LedgerKey k;
  std::memcpy(k.bytes.data(), raw->data(), k.bytes.size());
  return k;
}

std::string normalise_ledger_address(std::string_view address) {
  return ascii_lowercase(strip_brackets(address));
}

std::string normalise_message_id(std::string_view message_id) {
  return ascii_lowercase(strip_brackets(message_id));
}

LedgerKeys::LedgerKeys(std::string_view secret) : secret_(secret), keyed_(keyed_context(secret)) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  constexpr std::string_view kWhat = "mxguard ledger key fingerprint";
  HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
       reinterpret_cast<const unsigned char*>(kWhat.data()), kWhat.size(), mac, &len);
  for (int i = 0; i < 8; ++i)
    fingerprint_ = fingerprint_ << 8 | mac[i];
}

Expected<LedgerKeys, ConfigError> LedgerKeys::load(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return unexpected(
        file_error(path, fmt::format("cannot read the ledger key file: {}", std::strerror(errno))));
  if (!S_ISREG(st.st_mode))
    return unexpected(file_error(path, "the ledger key file is not a regular file"));
  if ((st.st_mode & 077) != 0)
    return unexpected(file_error(
        path, fmt::format("the ledger key file is accessible by group or others (mode {:04o}); "
                          "anyone who reads it can tell which addresses our users wrote to: "
                          "chmod 600 it, owned by the user mxguard runs as",
                          st.st_mode & 07777)));
  if (st.st_size > 4096)
    return unexpected(file_error(path, "the ledger key file is too large for a key"));
  std::ifstream in(path, std::ios::binary);
  if (!in) return unexpected(file_error(path, "cannot read the ledger key file"));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  // Never echo the content: it is the secret.
  auto secret = decode_hex(trim(text));
  if (!secret)
    return unexpected(file_error(path,
                                 "the ledger key file must hold one line of hex digits "
                                 "(e.g. from `openssl rand -hex 32`)"));
  if (secret->size() < kMinSecret || secret->size() > kMaxSecret)
    return unexpected(file_error(path, fmt::format("the ledger key is {} bytes; it must be {} to "
                                                   "{} (64 hex digits are best)",
                                                   secret->size(), kMinSecret, kMaxSecret)));
  return LedgerKeys(*secret);
}

Expected<LedgerKeys, ConfigError> LedgerKeys::load_or_create(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0 && errno == ENOENT) {
    if (auto e = create_key_file(path)) return unexpected(std::move(*e));
  }
  return load(path);
}

LedgerKey LedgerKeys::mac(char tag, std::string_view sender, std::string_view value) const {
  std::string in;
  in.reserve(1 + 4 + sender.size() + value.size());
  in.push_back(tag);
  append_length(in, sender.size());
  in.append(sender);
  in.append(value);
  unsigned char mac[EVP_MAX_MD_SIZE];
  bool done = false;
  if (keyed_) {
    // A copy per call: the keyed context is shared by every thread and never changed.
    EVP_MAC_CTX* ctx = EVP_MAC_CTX_dup(keyed_.get());
    std::size_t len = 0;
    done = ctx &&
           EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(in.data()), in.size()) == 1 &&
           EVP_MAC_final(ctx, mac, &len, sizeof mac) == 1 && len >= LedgerKey{}.bytes.size();
    EVP_MAC_CTX_free(ctx);
  }
  if (!done) {
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
         reinterpret_cast<const unsigned char*>(in.data()), in.size(), mac, &len);
  }
  LedgerKey k;
  std::memcpy(k.bytes.data(), mac, k.bytes.size());
  return k;
}

LedgerKey LedgerKeys::recipient_key(std::string_view our_sender, std::string_view recipient) const {
  return mac('r', normalise_ledger_address(our_sender), normalise_ledger_address(recipient));
}

LedgerKey LedgerKeys::message_id_key(std::string_view our_sender,
                                     std::string_view message_id) const {
  return mac('m', normalise_ledger_address(our_sender), normalise_message_id(message_id));
}

}  // namespace mxguard::state
