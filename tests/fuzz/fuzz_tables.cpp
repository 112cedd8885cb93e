// libFuzzer target for the table loaders (cidr, regexp, pcre, text): the first byte picks the
// type, the rest is the file. Whatever loads is then looked up with a few keys in every lookup
// order. Bad lines must be load errors, never crashes.
// Run: build-fuzz/tests/fuzz/fuzz_tables tests/fuzz/corpus/tables
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "mxguard/tables/access_action.h"
#include "mxguard/tables/table.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mxguard;
  if (size == 0) return 0;
  static const std::string path = "/tmp/mxguard-fuzz-table-" + std::to_string(getpid());
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data + 1), static_cast<std::streamsize>(size - 1));
  }
  static const char* const kTypes[] = {"cidr:", "regexp:", "pcre:", "hash:"};
  const std::string spec = std::string(kTypes[data[0] % 4]) + path;
  auto table = tables::load_table(spec, data[0] & 4 ? &tables::validate_access_action : nullptr);
  if (!table) {
    (void)table.error().to_string();
    return 0;
  }
  const auto& t = **table;
  const auto addr = net::IpAddress::parse("192.0.2.77");
  for (const char* key : {"user+ext@sub.example.com", "<>", "example.com", "192.0.2.77"}) {
    if (auto r = t.find(key)) (void)tables::parse_access_action(*r);
    (void)tables::lookup_address(t, key);
    (void)tables::lookup_domain(t, key);
  }
  (void)tables::lookup_client(t, &*addr, "mail.example.com");
  return 0;
}
