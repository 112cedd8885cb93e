// libFuzzer target for address parsing: IP addresses and CIDR blocks (text → value → text must
// be stable), and the envelope address every MAIL and RCPT is parsed into (Address::parse: its
// parts must agree with the text it came from and with the BATV parser).
// Run: build-fuzz/tests/fuzz/fuzz_address tests/fuzz/corpus/address
#include <cstddef>
#include <cstdint>
#include <string>

#include "mxguard/address.h"
#include "mxguard/batv/prvs.h"
#include "mxguard/net/ip.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mxguard;
  const std::string input(reinterpret_cast<const char*>(data), size);
  if (auto a = net::IpAddress::parse(input)) {
    auto again = net::IpAddress::parse(a->to_string());
    if (!again || !(*again == *a)) __builtin_trap();
    (void)a->embedded_v4();
    (void)a->reverse_name();
  }
  if (auto c = net::Cidr::parse(input)) {
    auto again = net::Cidr::parse(c->to_string());
    if (!again || again->prefix() != c->prefix() || !(again->network() == c->network()))
      __builtin_trap();
  }

  const Address a = Address::parse(input);
  if (a.raw != strip_angle(input)) __builtin_trap();
  if (a.given_local() != local_part(a.raw) || a.given_domain() != domain_part(a.raw))
    __builtin_trap();
  // The domain: empty exactly when none was given (or only dots), lower case, no trailing dot.
  if (a.given_domain().empty() && (!a.domain.empty() || a.domain_invalid)) __builtin_trap();
  if (!a.domain.empty() && a.domain.back() == '.') __builtin_trap();
  for (char c : a.domain) {
    if (c >= 'A' && c <= 'Z') __builtin_trap();
    if (!a.domain_invalid && static_cast<unsigned char>(c) >= 0x80) __builtin_trap();
  }
  // The tag: the same verdict as the BATV parser, and the plain form is what it verifies.
  if (a.tagged() != batv::is_tagged(a.raw)) __builtin_trap();
  if (a.tagged()) {
    if (a.batv_tag.size() != 10 || a.local.empty()) __builtin_trap();
    batv::KeyRing none;
    if (batv::verify(none, a.raw, 0).address != a.plain()) __builtin_trap();
    if (batv::verify(none, a, 0).status != batv::verify(none, a.raw, 0).status) __builtin_trap();
  } else if (a.local != a.given_local() || a.plain() != a.raw) {
    __builtin_trap();
  }
  return 0;
}
