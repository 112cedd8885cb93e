// LedgerImageWriter: the ledger file's bytes (format in mxguard/state/ledger.h) written piece by
// piece, so that MemoryLedger can write its tables straight into the file's buffer without a
// copy of every key first; write_ledger_image() is built on it too.
// Who calls it: lib/state/ledger_file.cpp, lib/state/memory_ledger.cpp.
// Thread-safety: a plain value; one writer per object.
#pragma once

#include <cstdint>
#include <string>

#include "mxguard/state/ledger.h"

namespace mxguard::state {

class LedgerImageWriter {
 public:
  // `keys`: how many keys will follow in all (to size the buffer once).
  LedgerImageWriter(std::uint64_t fingerprint, std::int64_t recording_since_ms,
                    std::int64_t last_record_ms, std::uint32_t generations, std::size_t keys);
  // Opens a generation of `keys` keys; exactly that many key() calls follow.
  void generation(std::int64_t newest_ms, std::uint32_t keys);
  void key(const LedgerKey& k);
  // The whole file, checksum included.
  std::string finish();

 private:
  std::string out_;
};

}  // namespace mxguard::state
