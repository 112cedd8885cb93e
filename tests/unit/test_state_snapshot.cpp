// The state file's format on its own (state/snapshot.h): what MemoryStore writes reads back the
// same, the text is pinned byte for byte, and each kind of damage is refused with its reason.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "mxguard/state/snapshot.h"

using namespace mxguard::state;

namespace {

// Every key and value shape the escaping has to carry.
const std::vector<SnapshotEntry> kEntries = {
    {1700000000000, "ban:192.0.2.1", "v1 1800 3 x"}, {0, "odd%key\n", ""}, {0, "-", "-"},
    {42, "tab\there", "\x01\x7f\xc3\xa9 %41"},       {9, "%", "--"},
};

// kEntries' first three, as the format has written them since version 1 (checksum worked out
// independently of this code).
const std::string kGolden =
    "mxguard-state 1\n"
    "1700000000000 ban:192.0.2.1 v1%201800%203%20x\n"
    "0 odd%25key%0A -\n"
    "0 %2D %2D\n"
    "end 3 224cdbac9dc642f1\n";

std::string header() {
  return "mxguard-state 1\n";
}

// The end line of a file with no entries: a valid trailer for header() alone.
std::string empty_end() {
  const std::string text = write_snapshot({});
  return text.substr(header().size());
}

}  // namespace

TEST_CASE("snapshot: entries round-trip through write and parse", "[state][snapshot]") {
  const std::string text = write_snapshot(kEntries);
  auto parsed = parse_snapshot(text);
  REQUIRE(parsed);
  CHECK(*parsed == kEntries);
}

TEST_CASE("snapshot: the text is the version 1 format, byte for byte", "[state][snapshot]") {
  const std::vector<SnapshotEntry> first(kEntries.begin(), kEntries.begin() + 3);
  CHECK(write_snapshot(first) == kGolden);
  CHECK(write_snapshot({}) == header() + "end 0 50aaabf843b41398\n");
  auto parsed = parse_snapshot(kGolden);
  REQUIRE(parsed);
  CHECK(*parsed == first);
}

TEST_CASE("snapshot: a writer taken in pieces writes the same text", "[state][snapshot]") {
  SnapshotWriter w;
  std::string text;
  for (const auto& e : kEntries) {
    w.add(e.expires_ms, e.key, e.value);
    if (w.pending() > 20) text += w.take();
  }
  CHECK(w.entries() == kEntries.size());
  text += w.finish();
  CHECK(text == write_snapshot(kEntries));
}

TEST_CASE("snapshot: a last line without its newline still counts", "[state][snapshot]") {
  std::string text = kGolden;
  text.pop_back();
  auto parsed = parse_snapshot(text);
  REQUIRE(parsed);
  CHECK(parsed->size() == 3);
}

TEST_CASE("snapshot: each kind of damage is refused at its line, with its reason",
          "[state][snapshot]") {
  struct Case {
    const char* name;
    std::string text;
    std::size_t line;
    std::string message;
  };
  const std::string end = empty_end();
  const Case cases[] = {
      {"empty", "", 0, "the file is empty"},
      {"bad header", "hello world\n" + end, 1, "line 1: not an mxguard state file (bad header)"},
      {"header of another version", "mxguard-state 2\n" + end, 1,
       "line 1: not an mxguard state file (bad header)"},
      {"no end line", header() + "0 k v\n", 0, "no end line (the file is cut short)"},
      {"two fields", header() + "0 k\n" + end, 2, "line 2: expected 'expiry key value'"},
      {"four fields", header() + "0 k v w\n" + end, 2, "line 2: expected 'expiry key value'"},
      {"blank line", header() + "\n" + end, 2, "line 2: expected 'expiry key value'"},
      {"'end' alone", header() + "end\n", 2, "line 2: expected 'expiry key value'"},
      {"expiry not a number", header() + "soon k v\n" + end, 2, "line 2: bad entry"},
      {"negative expiry", header() + "-5 k v\n" + end, 2, "line 2: bad entry"},
      {"empty key", header() + "0 - v\n" + end, 2, "line 2: bad entry"},
      {"escape cut short", header() + "0 k%4 v\n" + end, 2, "line 2: bad entry"},
      {"escape not hex", header() + "0 k v%ZZ\n" + end, 2, "line 2: bad entry"},
      {"end line without checksum", header() + "end 0\n", 2, "line 2: bad end line"},
      {"end line count not a number", header() + "end x 0\n", 2, "line 2: bad end line"},
      {"end line checksum not hex", header() + "end 0 xyz\n", 2, "line 2: bad end line"},
      {"end line counts too many", header() + "end 1 50aaabf843b41398\n", 2,
       "line 2: end line counts 1 entries, the file has 0"},
      {"checksum mismatch", header() + "end 0 50aaabf843b41399\n", 2, "line 2: checksum mismatch"},
      {"edited entry", kGolden.substr(0, 20) + "2" + kGolden.substr(21), 5,
       "line 5: checksum mismatch"},
      {"data after the end line", kGolden + "1 a b\n", 6, "line 6: data after the end line"},
      {"blank line after the end line", kGolden + "\n", 6, "line 6: data after the end line"},
  };
  for (const auto& c : cases) {
    SECTION(c.name) {
      auto parsed = parse_snapshot(c.text);
      REQUIRE_FALSE(parsed);
      CHECK(parsed.error().line == c.line);
      CHECK(parsed.error().message == c.message);
    }
  }
}

TEST_CASE("snapshot: a reader ignores what follows the first problem", "[state][snapshot]") {
  SnapshotReader r;
  CHECK(r.add_line("mxguard-state 1"));
  CHECK_FALSE(r.add_line("0 k"));
  CHECK_FALSE(r.add_line("end 0 50aaabf843b41398"));
  auto parsed = std::move(r).finish();
  REQUIRE_FALSE(parsed);
  CHECK(parsed.error().message == "line 2: expected 'expiry key value'");
}
