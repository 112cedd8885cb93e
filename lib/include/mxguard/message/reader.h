// MessageReader: the message as the milter stages deliver it — header fields one by one, then
// body chunks split anywhere — kept within fixed bounds; and the top-level MIME structure
// parsed from what was kept.
// Who calls it: the session hooks (content.h) from the adapter's callbacks, the offline
// test mode (from a file), unit tests and the fuzz target.
// Thread-safety: one reader per transaction, touched by its connection's thread only.
//
// Bounds: at most max_body bytes of body are buffered (default 128 KiB; the rest is counted,
// not kept), at most kMaxHeaders header fields of at most kMaxHeaderBytes in all. The MIME
// parser descends at most kMaxDepth levels and makes at most kMaxParts parts, so a message
// nested 100 deep or cut into 100,000 parts costs the same as a small one.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "mxguard/message/mime.h"
#include "mxguard/session.h"

namespace mxguard::message {

constexpr std::size_t kDefaultMaxBody = 128 * 1024;
constexpr std::size_t kMaxHeaders = 1000;
constexpr std::size_t kMaxHeaderBytes = 256 * 1024;
constexpr int kMaxDepth = 8;
constexpr std::size_t kMaxParts = 256;

// One MIME entity. `body` points into the reader's buffer (or into `decoded_` storage of the
// tree); it is the raw, still transfer-encoded content.
struct Part {
  std::vector<Header> headers;  // the part's own fields (the top level: the message's)
  ContentType type;
  std::string transfer_encoding;  // lower-case; empty means 7bit
  std::string_view body;
  std::vector<Part> children;  // multipart parts, or the one message/rfc822 inner message
  int depth = 0;
  bool closed = true;  // multipart: the closing delimiter was seen (false: truncated/broken)

  // The value of the first field of that name (case-insensitive), unfolded; empty if none.
  std::string header(std::string_view name) const;
  // The body with its transfer encoding undone (bounded by `limit`).
  std::string decoded_body(std::size_t limit) const;
};

// Reads the field block at the start of `text` into `out` (bounded: 200 fields, 64 KiB).
// Returns the offset just past the empty line that ends it, or where the block breaks off.
std::size_t read_header_block(std::string_view text, std::vector<Header>& out);

// Parses "fields CRLF CRLF body" text, e.g. a message/rfc822 part or a whole file, into a
// Part whose body views `text`. Fields are bounded as in the reader.
Part parse_entity(std::string_view text, int depth);

class MessageReader {
 public:
  explicit MessageReader(std::size_t max_body = kDefaultMaxBody) : max_body_(max_body) {}

  // A header field as libmilter gives it: the name, and the value with its folding.
  void add_header(std::string_view name, std::string_view value);
  void end_of_headers() { headers_done_ = true; }
  // A body chunk (any size, any split). Returns false once nothing more will be kept, so the
  // caller may skip the rest of the body (SMFIS_SKIP).
  bool add_body(std::string_view chunk);
  void end_of_message() { headers_done_ = body_done_ = true; }

  const std::vector<Header>& headers() const { return headers_; }
  // The value of the first field of that name (unfolded), empty if none.
  std::string header(std::string_view name) const;
  bool headers_truncated() const { return headers_truncated_; }
  bool headers_done() const { return headers_done_; }
  bool body_done() const { return body_done_; }

  std::string_view body() const { return body_; }
  std::size_t body_size() const { return body_seen_; }  // all bytes seen, kept or not
  bool body_truncated() const { return body_seen_ > body_.size(); }
  std::size_t max_body() const { return max_body_; }

  // The MIME tree of the headers and the kept body (re-parsed on each call; cheap at 128 KiB).
  Part structure() const;

  // Reads a whole RFC 5322 message (LF or CRLF lines) as the milter would deliver it.
  static MessageReader from_text(std::string_view text, std::size_t max_body = kDefaultMaxBody);

 private:
  std::size_t max_body_;
  std::vector<Header> headers_;
  std::size_t header_bytes_ = 0;
  bool headers_truncated_ = false;
  bool headers_done_ = false;
  bool body_done_ = false;
  std::string body_;
  std::size_t body_seen_ = 0;
};

}  // namespace mxguard::message
