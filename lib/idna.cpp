#include "mxguard/idna.h"

#include <fmt/format.h>
#include <idn2.h>

#include <algorithm>

#include "mxguard/text.h"

namespace mxguard {

std::string_view without_trailing_dots(std::string_view domain) {
  while (!domain.empty() && domain.back() == '.')
    domain.remove_suffix(1);
  return domain;
}

Expected<std::string, std::string> domain_to_ascii(std::string_view domain) {
  std::string d(without_trailing_dots(domain));
  if (d.empty()) return unexpected(std::string("empty domain"));
  if (d.size() > 1024) return unexpected(std::string("domain too long"));
  const bool ascii =
      std::all_of(d.begin(), d.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (!ascii) {
    // libidn2 reads a C string: a NUL inside would cut the name short ("b\xc3\xbccher.\0x").
    if (d.find('\0') != std::string::npos) return unexpected(std::string("domain with a NUL byte"));
    char* out = nullptr;
    int rc = idn2_to_ascii_8z(d.c_str(), &out, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
    if (rc != IDN2_OK) {
      idn2_free(out);
      return unexpected(
          fmt::format("'{}' is not a valid internationalised domain: {}", d, idn2_strerror(rc)));
    }
    d = out;
    idn2_free(out);
    // Mapping can leave dots at the end ("x.\u200b" -> "x."; found by fuzz_address).
    d = std::string(without_trailing_dots(d));
    if (d.empty()) return unexpected(std::string("empty domain"));
  }
  for (char& c : d)
    c = ascii_lower(c);
  return d;
}

}  // namespace mxguard
