// libFuzzer target for the ledger file: any bytes must parse or be refused without a crash, a
// leak or an allocation beyond what the bytes can hold; what parses must write back to the same
// bytes and load into a MemoryLedger whose lookups agree with the file.
// Run: build-fuzz/tests/fuzz/fuzz_ledger tests/fuzz/corpus/ledger
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "mxguard/state/ledger.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mxguard::state;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto image = parse_ledger_image(bytes);
  if (!image) return 0;
  if (write_ledger_image(*image) != bytes) __builtin_trap();
  // The tables, filled from the image as load() fills them.
  MemoryLedger ledger(MemoryLedgerOptions{.lifetime = std::chrono::hours(24 * 90),
                                          .max_entries = 1'000'000,
                                          .file = {},
                                          .save_interval = std::chrono::minutes(5)},
                      LedgerKeys("fuzzing-ledger-key-0123456789"));
  const TimePoint now(std::chrono::milliseconds(1'800'000'000'000));
  std::size_t keys = 0;
  for (const auto& g : image->generations) {
    if (!ledger.record(g.keys, now)) __builtin_trap();
    keys += g.keys.size();
    if (keys > 10'000) break;
  }
  for (const auto& g : image->generations)
    for (const auto& k : g.keys) {
      auto r = ledger.contains(std::span<const LedgerKey>(&k, 1), now);
      if (!r || !*r) __builtin_trap();
      if (--keys == 0) return 0;
    }
  return 0;
}
