// libFuzzer target for the state file format (state/snapshot.h): any text must parse to entries
// or to a reason, never a crash; what parses must write back to a text that parses to the same
// entries; and the input taken as a key and a value must survive a write and a parse.
// Run: build-fuzz/tests/fuzz/fuzz_snapshot tests/fuzz/corpus/snapshot
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "mxguard/state/snapshot.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mxguard::state;
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  auto parsed = parse_snapshot(input);
  if (parsed) {
    auto again = parse_snapshot(write_snapshot(*parsed));
    if (!again || *again != *parsed) __builtin_trap();
  } else if (parsed.error().message.empty()) {
    __builtin_trap();
  }

  // The input as entries: split at its first NUL into a key and a value.
  const auto nul = input.find('\0');
  SnapshotEntry e;
  e.key = std::string(input.substr(0, nul));
  e.value = nul == std::string_view::npos ? std::string() : std::string(input.substr(nul + 1));
  if (size >= 4) std::memcpy(&e.expires_ms, data, 4);
  if (e.key.empty()) return 0;  // the format has no empty keys
  const std::vector<SnapshotEntry> entries = {e, {0, "k", e.value}};
  auto back = parse_snapshot(write_snapshot(entries));
  if (!back || *back != entries) __builtin_trap();
  return 0;
}
