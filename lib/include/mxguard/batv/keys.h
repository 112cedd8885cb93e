// KeyRing: the BATV secrets, by key number 0-9, read from the key file named by batv-key-file.
// The same keys sign and check both prvs= envelope senders and the X-Mxguard-Tag header.
// Who calls it: config loading (at start and reload); tests.
// Thread-safety: immutable after load; shared by all sessions through the Config.
//
// File format, one key per line:   K secret
//   K        the key number, one digit 0-9 (it appears in every tag, so keys can rotate)
//   secret   the rest of the line, 16 to 64 bytes (Exim refuses prvs keys over 64 bytes)
// Blank lines and lines starting with '#' are ignored. The last key in the file signs; every
// key listed verifies — to rotate, append the new key and delete the old one after the tag
// lifetime has passed. The file must not be readable or writable by group or others: the
// secrets let anyone forge bounces that pass as ours.
// Secrets never appear in logs or error messages.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "mxguard/config_error.h"
#include "mxguard/expected.h"

namespace mxguard::batv {

class KeyRing {
 public:
  // Errors name "path:line" (or the path itself) and say what is wrong; exit status 78.
  static Expected<std::shared_ptr<const KeyRing>, ConfigError> load(const std::string& path);
  // For tests and the offline mode: keys given directly. `signing` must be one of them.
  static KeyRing from_keys(std::initializer_list<std::pair<int, std::string>> keys, int signing);

  // The secret of key number k, or nothing.
  const std::string* key(int k) const;
  int signing_key() const { return signing_; }
  const std::string& signing_secret() const { return *key(signing_); }

 private:
  std::array<std::optional<std::string>, 10> keys_;
  int signing_ = -1;
};

}  // namespace mxguard::batv
