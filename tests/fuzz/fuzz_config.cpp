// libFuzzer target for the configuration file parser: any file must load or give an error that
// names a place; never a crash. Tables the file names are not fuzzed here (fuzz_tables is).
// Run: build-fuzz/tests/fuzz/fuzz_config tests/fuzz/corpus/config
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "mxguard/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mxguard;
  static const std::string path = "/tmp/mxguard-fuzz-config-" + std::to_string(getpid());
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  // The shipped table for bogus-mx (on by default) is named: its default place under
  // /etc/mxguard may hold none (and is not the fuzzer's to read), and most files would then
  // stop at that error.
  auto cfg = load_config(CommandLine{
      {"--bogus-networks=" MXGUARD_SOURCE_DIR "/rules/bogus-networks.cidr", "-c", path}});
  if (!cfg && cfg.error().where.empty()) __builtin_trap();
  return 0;
}
