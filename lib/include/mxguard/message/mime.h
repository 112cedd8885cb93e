// MIME and RFC 5322 field helpers: unfolding, Content-Type with parameters (RFC 2045, RFC 2231
// continuations and charset'lang' values), RFC 2047 encoded words, msg-id and address
// extraction, base64 and quoted-printable decoding.
// Who calls it: the message reader and classifier; unit tests and the fuzz target.
// Thread-safety: pure functions over their arguments.
//
// Every function here takes hostile input: bounded work per byte, bounded output, no throw on
// malformed text (a broken field yields an empty or partial result, never an error path that
// a bounce storm could turn into a crash).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mxguard::message {

// Removes CR and LF of folded lines (RFC 5322 §2.2.3) and trims white space at both ends.
// libmilter gives header values with their folding (CR LF or LF followed by white space).
std::string unfold(std::string_view value);

// Content-Type, lower-cased type/subtype and parameter names; parameter values as given
// (RFC 2231 continuations joined and %XX decoded; the charset is not converted).
struct ContentType {
  std::string type = "text";
  std::string subtype = "plain";
  std::vector<std::pair<std::string, std::string>> params;
  bool present = false;  // false: the RFC 2045 default text/plain

  std::string_view param(std::string_view name) const;  // empty if absent
  bool is(std::string_view t, std::string_view s) const { return type == t && subtype == s; }
  bool multipart() const { return type == "multipart"; }
};
ContentType parse_content_type(std::string_view value);

// The first token of a structured field value, lower-cased (Auto-Submitted, Action,
// Content-Transfer-Encoding): comments and anything after ';' dropped.
std::string first_token(std::string_view value);

// RFC 2047: decodes "=?charset?B|Q?text?=" words and converts them to UTF-8 (to_utf8); the
// white space between two adjacent encoded words is dropped. Unknown encodings are left as
// they are.
std::string decode_words(std::string_view value);

// Text in a MIME charset (an encoded word's, a text part's charset parameter) as UTF-8, at
// most `limit` bytes. UTF-8, US-ASCII and a missing charset are kept as they are; ISO-8859-1 is
// mapped here; other charsets go through iconv(3) (ISO-8859-*, windows-125*, KOI8-R,
// ISO-2022-JP, Shift_JIS, EUC-JP, GB2312/GBK/GB18030, Big5, ...). A byte the charset does
// not allow becomes '?'; a charset iconv does not know leaves the bytes as they are, and so
// does a ninth charset in one thread (descriptors are kept open per thread, at most eight).
// The rule tables are written in UTF-8, so a subject in any of these matches one pattern.
std::string to_utf8(std::string text, std::string_view charset, std::size_t limit);

// The msg-id "<left@right>" in a Message-ID value (first one), or empty.
std::string extract_msg_id(std::string_view value);
// The domain (right part) of a msg-id, lower-cased, without brackets; empty if none.
std::string msg_id_domain(std::string_view msg_id);
// The first addr-spec in an address field ("Name <a@b>", "a@b (Name)"), or empty.
std::string extract_address(std::string_view value);

// Transfer decodings. Invalid characters are skipped; output is at most `limit` bytes.
std::string decode_base64(std::string_view in, std::size_t limit);
std::string decode_quoted_printable(std::string_view in, std::size_t limit);

// Splits text into lines at LF, without the LF and a trailing CR.
class LineCursor {
 public:
  explicit LineCursor(std::string_view text) : text_(text) {}
  bool next(std::string_view& line);
  std::size_t position() const { return pos_; }
  std::string_view rest() const { return text_.substr(pos_); }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
};

}  // namespace mxguard::message
