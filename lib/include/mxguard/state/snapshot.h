// The state file's format, as a pure pair: SnapshotReader/parse_snapshot turn text into entries,
// SnapshotWriter/write_snapshot turn entries into text. No file I/O and no locking here: the
// store reads and writes the file and applies what was parsed. The file is line-oriented text
// so that an admin can read it:
//   mxguard-state 1
//   <expiry, ms since the epoch, 0 = never> <key> <value>      (one line per entry)
//   end <entries> <FNV-1a 64 of every line before this one, hex>
// Keys and values are %XX-escaped outside printable ASCII (and '%'; '-' alone stands for the
// empty string), so a line always splits into exactly three fields. The trailer catches a file
// cut short by a crash or edited by hand: anything that does not verify is refused whole, at
// its first problem (the checksum covers every line, so no bad line is a skippable entry).
// Who calls it: MemoryStore (load_snapshot, save_snapshot), the unit tests, fuzz_snapshot.
// Thread-safety: plain values; a reader or writer is used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mxguard/expected.h"

namespace mxguard::state {

struct SnapshotEntry {
  std::int64_t expires_ms = 0;  // ms since the epoch; 0: never
  std::string key;              // never empty in a parsed file
  std::string value;
  bool operator==(const SnapshotEntry&) const = default;
};

// Why a text is not a state file: its first problem.
struct SnapshotError {
  std::size_t line = 0;  // 1-based; 0 when the file as a whole is wrong (empty, cut short)
  std::string message;   // for the log: "line 3: bad entry", "the file is empty"
};

using SnapshotParse = Expected<std::vector<SnapshotEntry>, SnapshotError>;

// Parses a state file a line at a time, so that a large file need not be held in memory twice.
class SnapshotReader {
 public:
  // One line, without its '\n'. False once the text is refused: later lines change nothing.
  bool add_line(std::string_view line);
  // The entries in file order, or the first problem (also "empty" and "no end line").
  SnapshotParse finish() &&;

 private:
  bool fail(std::string message);
  bool header_line(std::string_view line);
  bool end_line(std::string_view rest);
  bool entry_line(std::string_view line);

  std::vector<SnapshotEntry> entries_;
  std::optional<SnapshotError> error_;
  std::uint64_t sum_ = 14695981039346656037ull;  // FNV-1a 64 of the lines before the end line
  std::size_t lineno_ = 0;
  bool ended_ = false;
};

// A whole text: lines end at '\n' (a last line without one counts, as with std::getline).
SnapshotParse parse_snapshot(std::string_view text);

// Writes a state file's text in pieces: add() entries, take() the text so far whenever it is
// worth writing out, finish() for the rest and the end line.
class SnapshotWriter {
 public:
  SnapshotWriter();  // the header line is the first text
  void add(std::int64_t expires_ms, std::string_view key, std::string_view value);
  std::size_t pending() const { return text_.size(); }  // bytes not taken yet
  std::size_t entries() const { return entries_; }
  std::string take();    // the text added since the last take()
  std::string finish();  // take() and the end line; nothing may be added after it

 private:
  std::string text_;
  std::uint64_t sum_ = 14695981039346656037ull;
  std::size_t entries_ = 0;
};

// A whole file's text for `entries`, in their order.
std::string write_snapshot(const std::vector<SnapshotEntry>& entries);

}  // namespace mxguard::state
