// libFuzzer target for address parsing: IP addresses and CIDR blocks (text → value → text must
// be stable), and the envelope address helpers every callback uses.
// Run: build-fuzz/tests/fuzz/fuzz_address tests/fuzz/corpus/address
#include <cstddef>
#include <cstdint>
#include <string>

#include "mxguard/net/ip.h"
#include "mxguard/session.h"

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
  std::string bare = strip_angle(input);
  (void)local_part(bare);
  (void)domain_part(bare);
  (void)lowercase(bare);
  return 0;
}
