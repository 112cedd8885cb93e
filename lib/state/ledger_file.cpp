// The ledger file's bytes (the format is in ledger.h): write_ledger_image and
// parse_ledger_image, a pure pair with no I/O, so that the unit tests and the fuzz target can
// reach every branch. Binary rather than text: 2,000,000 keys take 32 MB, not 70.
// The parser trusts nothing: every count is checked against the bytes left before anything is
// reserved, and the checksum must cover the whole file.
#include <fmt/format.h>

#include <cstring>

#include "state/ledger_file.h"

namespace mxguard::state {

namespace {

constexpr std::string_view kMagic = "mxguard-ledger 1\n";
constexpr std::size_t kKeyBytes = sizeof(LedgerKey::bytes);

struct Fnv {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  void add(std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 0x100000001b3ULL;
    }
  }
};

void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

class Cursor {
 public:
  explicit Cursor(std::string_view b) : b_(b) {}
  std::size_t left() const { return b_.size() - pos_; }
  std::size_t pos() const { return pos_; }
  bool u64(std::uint64_t& v) {
    if (left() < 8) return false;
    v = 0;
    for (int i = 7; i >= 0; --i)
      v = v << 8 | static_cast<unsigned char>(b_[pos_ + static_cast<std::size_t>(i)]);
    pos_ += 8;
    return true;
  }
  bool i64(std::int64_t& v) {
    std::uint64_t u = 0;
    if (!u64(u)) return false;
    v = static_cast<std::int64_t>(u);
    return true;
  }
  bool u32(std::uint32_t& v) {
    if (left() < 4) return false;
    v = 0;
    for (int i = 3; i >= 0; --i)
      v = v << 8 | static_cast<unsigned char>(b_[pos_ + static_cast<std::size_t>(i)]);
    pos_ += 4;
    return true;
  }
  std::string_view take(std::size_t n) {
    std::string_view s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }

 private:
  std::string_view b_;
  std::size_t pos_ = 0;
};

}  // namespace

LedgerImageWriter::LedgerImageWriter(std::uint64_t fingerprint, std::int64_t recording_since_ms,
                                     std::int64_t last_record_ms, std::uint32_t generations,
                                     std::size_t keys) {
  out_.reserve(kMagic.size() + 28 + generations * 12 + keys * kKeyBytes + 8);
  out_.append(kMagic);
  put_u64(out_, fingerprint);
  put_u64(out_, static_cast<std::uint64_t>(recording_since_ms));
  put_u64(out_, static_cast<std::uint64_t>(last_record_ms));
  put_u32(out_, generations);
}

void LedgerImageWriter::generation(std::int64_t newest_ms, std::uint32_t keys) {
  put_u64(out_, static_cast<std::uint64_t>(newest_ms));
  put_u32(out_, keys);
}

void LedgerImageWriter::key(const LedgerKey& k) {
  out_.append(reinterpret_cast<const char*>(k.bytes.data()), kKeyBytes);
}

std::string LedgerImageWriter::finish() {
  Fnv sum;
  sum.add(out_);
  put_u64(out_, sum.h);
  return std::move(out_);
}

std::string write_ledger_image(const LedgerImage& image) {
  std::size_t keys = 0;
  for (const auto& g : image.generations)
    keys += g.keys.size();
  LedgerImageWriter w(image.fingerprint, image.recording_since_ms, image.last_record_ms,
                      static_cast<std::uint32_t>(image.generations.size()), keys);
  for (const auto& g : image.generations) {
    w.generation(g.newest_ms, static_cast<std::uint32_t>(g.keys.size()));
    for (const auto& k : g.keys)
      w.key(k);
  }
  return w.finish();
}

Expected<LedgerImage, std::string> parse_ledger_image(std::string_view bytes) {
  auto fail = [](std::string why) -> Expected<LedgerImage, std::string> {
    return unexpected(std::move(why));
  };
  if (bytes.empty()) return fail("the file is empty");
  if (bytes.substr(0, kMagic.size()) != kMagic)
    return fail("not an mxguard ledger file (bad header)");
  if (bytes.size() < kMagic.size() + 8) return fail("the file is cut short");
  const std::string_view body = bytes.substr(0, bytes.size() - 8);
  Cursor c(bytes);
  (void)c.take(kMagic.size());
  LedgerImage image;
  std::uint64_t since = 0, last = 0;
  std::uint32_t generations = 0;
  if (!c.u64(image.fingerprint) || !c.u64(since) || !c.u64(last) || !c.u32(generations) ||
      c.pos() > body.size())
    return fail("the file is cut short");
  image.recording_since_ms = static_cast<std::int64_t>(since);
  image.last_record_ms = static_cast<std::int64_t>(last);
  if (image.recording_since_ms < -1 || image.last_record_ms < -1)
    return fail("bad recording times");
  // Each generation takes at least 12 bytes: a count larger than the bytes left is a lie.
  if (generations > (body.size() - c.pos()) / 12) return fail("bad generation count");
  image.generations.reserve(generations);
  for (std::uint32_t i = 0; i < generations; ++i) {
    LedgerImage::Generation g;
    std::uint32_t n = 0;
    if (body.size() - c.pos() < 12 || !c.i64(g.newest_ms) || !c.u32(n))
      return fail(fmt::format("generation {} is cut short", i + 1));
    if (g.newest_ms < 0) return fail(fmt::format("generation {}: bad time", i + 1));
    if (n > (body.size() - c.pos()) / kKeyBytes)
      return fail(fmt::format("generation {}: {} keys, more than the file holds", i + 1, n));
    g.keys.resize(n);
    std::string_view raw = c.take(static_cast<std::size_t>(n) * kKeyBytes);
    for (std::uint32_t k = 0; k < n; ++k)
      std::memcpy(g.keys[k].bytes.data(), raw.data() + static_cast<std::size_t>(k) * kKeyBytes,
                  kKeyBytes);
    image.generations.push_back(std::move(g));
  }
  if (c.pos() != body.size()) return fail("data after the last generation");
  std::uint64_t want = 0;
  (void)c.u64(want);
  Fnv sum;
  sum.add(body);
  if (want != sum.h) return fail("checksum mismatch");
  return image;
}

}  // namespace mxguard::state
