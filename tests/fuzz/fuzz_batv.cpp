// libFuzzer target for BATV tag parsing: any string as a recipient must verify without a crash,
// and a plain address that we sign must verify as valid and give the address back.
// Run: build-fuzz/tests/fuzz/fuzz_batv tests/fuzz/corpus/batv
#include <cstddef>
#include <cstdint>
#include <string>

#include "mxguard/batv/keys.h"
#include "mxguard/batv/prvs.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mxguard::batv;
  static const KeyRing keys =
      KeyRing::from_keys({{0, "fuzzing-key-0123456789"}, {7, "another-key-abcdefghij"}}, 7);
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::time_t now = 1'800'000'000;
  (void)is_tagged(input);
  PrvsResult r = verify(keys, input, now);
  (void)to_string(r.status);
  if (auto tagged = sign(keys, input, now)) {
    PrvsResult back = verify(keys, *tagged, now);
    if (back.status != PrvsStatus::Valid || back.address != input) __builtin_trap();
  }
  return 0;
}
