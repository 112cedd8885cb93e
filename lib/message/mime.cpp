#include "mxguard/message/mime.h"

#include <iconv.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <map>
#include <vector>

#include "mxguard/text.h"

namespace mxguard::message {

namespace {

// Caps on what one field may produce; a Content-Type with 10,000 parameters is an attack.
constexpr std::size_t kMaxParams = 64;
constexpr int kMaxContinuation = 100;
// A charset name longer than this is no charset (the longest registered ones have 45 bytes).
constexpr std::size_t kMaxCharsetName = 64;
// What the encoded words of one field may decode to.
constexpr std::size_t kMaxWordsOutput = 64 * 1024;
// Charsets one thread converts from (iconv descriptors it keeps open).
constexpr std::size_t kMaxCharsetsPerThread = 8;

// The first CR or LF (find_first_of with a set calls memchr once per character).
std::size_t find_crlf(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i)
    if (s[i] == '\r' || s[i] == '\n') return i;
  return std::string_view::npos;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 2045 tspecials end a token.
bool is_tspecial(char c) {
  return std::string_view("()<>@,;:\\\"/[]?=").find(c) != std::string_view::npos;
}

// Skips white space and (nested) comments. Unbalanced comments run to the end.
void skip_cfws(std::string_view s, std::size_t& i) {
  while (i < s.size()) {
    if (is_ascii_space(s[i])) {
      ++i;
    } else if (s[i] == '(') {
      int depth = 0;
      while (i < s.size()) {
        if (s[i] == '\\') {
          i = std::min(i + 2, s.size());  // a quoted-pair; a trailing backslash ends the text
          continue;
        }
        if (s[i] == '(') ++depth;
        if (s[i] == ')' && --depth == 0) {
          ++i;
          break;
        }
        ++i;
      }
    } else {
      break;
    }
  }
}

std::string read_token(std::string_view s, std::size_t& i) {
  std::size_t start = i;
  while (i < s.size() && !is_ascii_space(s[i]) && !is_tspecial(s[i]) &&
         static_cast<unsigned char>(s[i]) >= 0x20)
    ++i;
  return std::string(s.substr(start, i - start));
}

std::string read_quoted(std::string_view s, std::size_t& i) {
  std::string out;
  ++i;  // opening quote
  while (i < s.size() && s[i] != '"') {
    if (s[i] == '\\' && i + 1 < s.size()) ++i;
    out.push_back(s[i]);
    ++i;
  }
  if (i < s.size()) ++i;  // closing quote
  return out;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hex_value(s[i + 1]);
      int lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

// RFC 2231 §4: charset'language'value; the prefix is dropped, the value %-decoded.
std::string decode_extended(std::string_view v, bool first_segment) {
  if (first_segment) {
    auto q1 = v.find('\'');
    if (q1 != std::string_view::npos) {
      auto q2 = v.find('\'', q1 + 1);
      if (q2 != std::string_view::npos) v = v.substr(q2 + 1);
    }
  }
  return percent_decode(v);
}

}  // namespace

// Trimming first gives the same text as dropping CR/LF first (trim drops them too), and lets
// the common unfolded value be copied once.
std::string unfold(std::string_view value) {
  value = trim(value);
  std::size_t cut = find_crlf(value);
  if (cut == std::string_view::npos) return std::string(value);
  std::string out;
  out.reserve(value.size());
  while (cut != std::string_view::npos) {
    out.append(value.substr(0, cut));
    value.remove_prefix(cut + 1);
    cut = find_crlf(value);
  }
  out.append(value);
  return out;
}

std::string_view ContentType::param(std::string_view name) const {
  for (const auto& [k, v] : params)
    if (k == name) return v;
  return {};
}

namespace {

// A parameter's values by name: segment number -> (value, extended); segment -1 is the plain
// "name=" form.
using Segments = std::map<int, std::pair<std::string, bool>>;
using RawParams = std::map<std::string, Segments>;

// RFC 2231: name*, name*N, name*N*. Cuts `name` down to its base and says which segment it is
// (-1: the plain form) and whether its value is extended; false for a name to ignore.
bool split_param_name(std::string& name, int& segment, bool& extended) {
  extended = false;
  segment = -1;
  auto star = name.find('*');
  if (star == std::string::npos) return true;
  std::string_view suffix = std::string_view(name).substr(star + 1);
  std::string base = name.substr(0, star);
  if (!suffix.empty() && suffix.back() == '*') {
    extended = true;
    suffix.remove_suffix(1);
  } else if (suffix.empty()) {
    extended = true;  // "name*=" is a single extended value
  }
  if (!suffix.empty()) {
    if (suffix.size() > 3 ||
        !std::all_of(suffix.begin(), suffix.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return false;
    segment = std::stoi(std::string(suffix));
    if (segment > kMaxContinuation) return false;
    if (suffix.back() == '*') extended = true;
  } else {
    segment = 0;
  }
  name = std::move(base);
  return true;
}

// One "name=value" after a ';' (value[i] is just past it), added to `raw` unless it is to be
// ignored.
void read_param(std::string_view value, std::size_t& i, RawParams& raw) {
  skip_cfws(value, i);
  std::string name = ascii_lowercase(read_token(value, i));
  skip_cfws(value, i);
  if (name.empty() || i >= value.size() || value[i] != '=') return;
  ++i;
  skip_cfws(value, i);
  std::string v;
  if (i < value.size() && value[i] == '"') {
    v = read_quoted(value, i);
  } else {
    v = read_token(value, i);
  }
  int segment = -1;
  bool extended = false;
  if (!split_param_name(name, segment, extended)) return;
  raw[name].emplace(segment, std::make_pair(std::move(v), extended));
}

// A parameter's value from its segments.
std::string join_segments(const Segments& segs) {
  if (auto plain = segs.find(-1); plain != segs.end() && segs.size() == 1)
    return plain->second.first;
  // Segments in order from 0; a gap ends the value (RFC 2231 §3).
  std::string joined;
  int expect = 0;
  for (const auto& [n, seg] : segs) {
    if (n < 0) continue;
    if (n != expect) break;
    joined += seg.second ? decode_extended(seg.first, n == 0) : seg.first;
    ++expect;
  }
  if (joined.empty()) {
    if (auto only = segs.find(-1); only != segs.end()) joined = only->second.first;
  }
  return joined;
}

}  // namespace

ContentType parse_content_type(std::string_view value) {
  ContentType ct;
  std::size_t i = 0;
  skip_cfws(value, i);
  std::string type = read_token(value, i);
  skip_cfws(value, i);
  if (type.empty() || i >= value.size() || value[i] != '/') return ct;  // RFC 2045 §5.2
  ++i;
  skip_cfws(value, i);
  std::string subtype = read_token(value, i);
  if (subtype.empty()) return ct;
  ct.type = ascii_lowercase(type);
  ct.subtype = ascii_lowercase(subtype);
  ct.present = true;

  RawParams raw;
  while (i < value.size() && raw.size() < kMaxParams) {
    skip_cfws(value, i);
    if (i >= value.size()) break;
    if (value[i] != ';') {
      ++i;  // junk between parameters: skip a byte and resynchronise
      continue;
    }
    ++i;
    read_param(value, i, raw);
  }
  for (const auto& [name, segs] : raw)
    ct.params.emplace_back(name, join_segments(segs));
  return ct;
}

std::string first_token(std::string_view value) {
  std::size_t i = 0;
  skip_cfws(value, i);
  std::size_t start = i;
  while (i < value.size() && value[i] != ';' && value[i] != '(' && !is_ascii_space(value[i]))
    ++i;
  return ascii_lowercase(value.substr(start, i - start));
}

namespace {

// The charset name of an encoded word or a charset parameter, lower-cased, without the RFC 2231
// language ("utf-8*en") and quotes; empty when it is no name at all.
std::string charset_name(std::string_view charset) {
  charset = trim(charset);
  if (charset.size() >= 2 && charset.front() == '"' && charset.back() == '"')
    charset = charset.substr(1, charset.size() - 2);
  charset = charset.substr(0, charset.find('*'));
  if (charset.empty() || charset.size() > kMaxCharsetName) return {};
  for (char c : charset)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
          c == ':'))
      return {};
  return ascii_lowercase(charset);
}

// Charsets whose ASCII bytes are ASCII: text without 8-bit bytes needs no conversion. The
// 7-bit encodings (ISO-2022-*, UTF-7, HZ) write their letters with ASCII bytes.
bool ascii_compatible(std::string_view name) {
  return !(name.rfind("iso-2022", 0) == 0 || name.rfind("iso2022", 0) == 0 ||
           name.rfind("utf-7", 0) == 0 || name.rfind("utf7", 0) == 0 || name.rfind("hz", 0) == 0 ||
           name.rfind("utf-16", 0) == 0 || name.rfind("utf-32", 0) == 0 ||
           name.rfind("ucs", 0) == 0);
}

bool is_latin1(std::string_view name) {
  return name == "iso-8859-1" || name == "iso8859-1" || name == "iso_8859-1" || name == "latin1" ||
         name == "l1" || name == "iso-ir-100" || name == "cp819";
}

const iconv_t kNoIconv = reinterpret_cast<iconv_t>(-1);

// iconv descriptors by charset, kept for the thread's life. Opening the first descriptor of a
// charset loads its gconv module and closing the last unloads it (about 100 us each way), so a
// subject whose words alternate between charsets would pay that for every word. A thread
// converts from at most kMaxCharsetsPerThread charsets; text in any other keeps its bytes.
class IconvCache {
 public:
  IconvCache() = default;
  IconvCache(const IconvCache&) = delete;
  IconvCache& operator=(const IconvCache&) = delete;
  ~IconvCache() {
    for (const Entry& e : entries_)
      iconv_close(e.cd);
  }
  // The descriptor for `name` in its initial shift state, or kNoIconv.
  iconv_t get(const std::string& name) {
    for (const Entry& e : entries_) {
      if (e.name != name) continue;
      iconv(e.cd, nullptr, nullptr, nullptr, nullptr);
      return e.cd;
    }
    if (entries_.size() >= kMaxCharsetsPerThread) return kNoIconv;
    iconv_t cd = iconv_open("UTF-8", name.c_str());  // an unknown name costs no module load
    if (cd != kNoIconv) entries_.push_back(Entry{name, cd});
    return cd;
  }

 private:
  struct Entry {
    std::string name;
    iconv_t cd;
  };
  std::vector<Entry> entries_;
};

std::string through_iconv(std::string_view text, const std::string& name, std::size_t limit) {
  thread_local IconvCache cache;
  iconv_t cd = cache.get(name);
  if (cd == kNoIconv) return std::string(text.substr(0, limit));
  std::string out;
  out.reserve(std::min(limit, text.size() + text.size() / 2));
  char* in = const_cast<char*>(text.data());  // iconv(3) does not write through it
  std::size_t in_left = text.size();
  char buf[1024];
  bool flushed = false;
  while (out.size() < limit && !flushed) {
    char* o = buf;
    std::size_t o_left = sizeof buf;
    std::size_t r;
    if (in_left > 0) {
      r = iconv(cd, &in, &in_left, &o, &o_left);
    } else {
      r = iconv(cd, nullptr, nullptr, &o, &o_left);  // back to the initial shift state
      flushed = true;
    }
    const int err = errno;
    out.append(buf, static_cast<std::size_t>(o - buf));
    if (r != static_cast<std::size_t>(-1)) continue;
    if (err == E2BIG && o != buf) continue;
    if (err == EILSEQ && in_left > 0) {
      out.push_back('?');  // a byte the charset does not allow: skipped, the rest still read
      ++in;
      --in_left;
      continue;
    }
    break;  // EINVAL: a sequence cut off at the end
  }
  if (out.size() > limit) out.resize(limit);
  return out;
}

}  // namespace

std::string to_utf8(std::string text, std::string_view charset, std::size_t limit) {
  const std::string name = charset_name(charset);
  if (name.empty() || name == "utf-8" || name == "utf8" || name == "us-ascii" || name == "ascii" ||
      name == "unknown-8bit" || name == "x-unknown" ||
      (ascii_compatible(name) &&
       std::none_of(text.begin(), text.end(), [](char c) { return (c & 0x80) != 0; }))) {
    if (text.size() > limit) text.resize(limit);
    return text;
  }
  // Four bytes of any charset give at least one byte of UTF-8 (shift sequences aside).
  std::string_view in = text;
  if (limit < in.size() / 4) in = in.substr(0, limit * 4);
  if (!is_latin1(name)) return through_iconv(in, name, limit);
  std::string out;
  out.reserve(std::min(limit, in.size() * 2));
  for (char c : in) {
    if (out.size() + 2 > limit) break;
    auto b = static_cast<unsigned char>(c);
    if (b < 0x80) {
      out.push_back(c);
    } else {
      out.push_back(static_cast<char>(0xC0 | (b >> 6)));
      out.push_back(static_cast<char>(0x80 | (b & 0x3F)));
    }
  }
  return out;
}

std::string decode_words(std::string_view value) {
  if (value.find("=?") == std::string_view::npos) return std::string(value);
  std::string out;
  out.reserve(value.size());
  // Adjacent words of one charset are converted together: mailers split a multi-byte
  // character over two words although RFC 2047 says they must not.
  std::string run;
  std::string run_charset;
  std::string space;  // white space after an encoded word, written only if no word follows
  bool after_word = false;
  auto flush = [&]() {
    if (run.empty()) return;
    out += to_utf8(std::move(run), run_charset, kMaxWordsOutput);
    run.clear();
  };
  std::size_t i = 0;
  while (i < value.size()) {
    if (value.compare(i, 2, "=?") == 0) {
      // =?charset?enc?text?=
      std::size_t q1 = value.find('?', i + 2);
      std::size_t q2 = q1 == std::string_view::npos ? q1 : value.find('?', q1 + 1);
      std::size_t end = q2 == std::string_view::npos ? q2 : value.find("?=", q2 + 1);
      char enc = q2 == q1 + 2 ? ascii_lower(value[q1 + 1]) : '\0';
      if (end != std::string_view::npos && (enc == 'b' || enc == 'q')) {
        std::string_view text = value.substr(q2 + 1, end - q2 - 1);
        std::string decoded;
        if (enc == 'b') {
          decoded = decode_base64(text, text.size());
        } else {
          for (std::size_t k = 0; k < text.size(); ++k) {
            if (text[k] == '_') {
              decoded.push_back(' ');
            } else if (text[k] == '=' && k + 2 < text.size()) {
              int hi = hex_value(text[k + 1]);
              int lo = hex_value(text[k + 2]);
              if (hi >= 0 && lo >= 0) {
                decoded.push_back(static_cast<char>(hi * 16 + lo));
                k += 2;
              } else {
                decoded.push_back('=');
              }
            } else {
              decoded.push_back(text[k]);
            }
          }
        }
        std::string charset = charset_name(value.substr(i + 2, q1 - i - 2));
        if (!run.empty() && charset != run_charset) flush();
        space.clear();  // RFC 2047 §6.2: white space between adjacent encoded words is not shown
        run_charset = std::move(charset);
        run += decoded;
        i = end + 2;
        after_word = true;
        continue;
      }
    }
    if (after_word) {
      if (is_ascii_space(value[i])) {
        space.push_back(value[i++]);
        continue;
      }
      flush();
      out += space;
      space.clear();
      after_word = false;
    }
    out.push_back(value[i++]);
  }
  flush();
  out += space;
  return out;
}

std::string extract_msg_id(std::string_view value) {
  auto lt = value.find('<');
  if (lt == std::string_view::npos) {
    // Some MTAs write the id without brackets; take the first word with an '@'.
    std::string_view t = trim(value);
    auto sp = t.find_first_of(" \t");
    t = t.substr(0, sp);
    if (t.find('@') == std::string_view::npos) return {};
    return "<" + std::string(t) + ">";
  }
  auto gt = value.find('>', lt);
  if (gt == std::string_view::npos) return {};
  std::string_view id = value.substr(lt, gt - lt + 1);
  if (id.find('@') == std::string_view::npos) return {};
  std::string out;
  for (char c : id)
    if (!is_ascii_space(c)) out.push_back(c);
  return out;
}

std::string msg_id_domain(std::string_view msg_id) {
  auto at = msg_id.rfind('@');
  if (at == std::string_view::npos) return {};
  std::string_view d = msg_id.substr(at + 1);
  if (!d.empty() && d.back() == '>') d.remove_suffix(1);
  if (!d.empty() && d.front() == '[') return {};  // a domain literal is nobody's domain
  return ascii_lowercase(trim(d));
}

std::string extract_address(std::string_view value) {
  std::string_view v = value;
  auto lt = v.find('<');
  if (lt != std::string_view::npos) {
    auto gt = v.find('>', lt);
    if (gt != std::string_view::npos) {
      std::string_view inner = trim(v.substr(lt + 1, gt - lt - 1));
      if (inner.find('@') != std::string_view::npos || inner.empty()) return std::string(inner);
    }
  }
  // No angle brackets: the word holding the '@'.
  auto at = v.find('@');
  if (at == std::string_view::npos) return {};
  std::size_t start = at, end = at;
  auto word = [](char c) {
    return !is_ascii_space(c) && c != '<' && c != '>' && c != '(' && c != ')' && c != ',' &&
           c != ';' && c != '"';
  };
  while (start > 0 && word(v[start - 1]))
    --start;
  while (end < v.size() && word(v[end]))
    ++end;
  return std::string(v.substr(start, end - start));
}

std::string decode_base64(std::string_view in, std::size_t limit) {
  std::string out;
  out.reserve(std::min(limit, in.size() * 3 / 4 + 3));
  unsigned acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '+') {
      v = 62;
    } else if (c == '/') {
      v = 63;
    } else if (c == '=') {
      acc = 0;  // padding ends a quantum; garbage after it restarts cleanly
      bits = 0;
      continue;
    } else {
      continue;
    }
    acc = ((acc << 6) | static_cast<unsigned>(v)) & 0xFFFFFFu;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (out.size() >= limit) break;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

std::string decode_quoted_printable(std::string_view in, std::size_t limit) {
  std::string out;
  out.reserve(std::min(limit, in.size()));
  for (std::size_t i = 0; i < in.size() && out.size() < limit; ++i) {
    char c = in[i];
    if (c != '=') {
      out.push_back(c);
      continue;
    }
    // Soft line break: "=" then optional white space then (CR)LF.
    std::size_t j = i + 1;
    while (j < in.size() && (in[j] == ' ' || in[j] == '\t'))
      ++j;
    if (j < in.size() && (in[j] == '\r' || in[j] == '\n')) {
      if (in[j] == '\r' && j + 1 < in.size() && in[j + 1] == '\n') ++j;
      i = j;
      continue;
    }
    int hi = i + 1 < in.size() ? hex_value(in[i + 1]) : -1;
    int lo = i + 2 < in.size() ? hex_value(in[i + 2]) : -1;
    if (hi >= 0 && lo >= 0) {
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back('=');
    }
  }
  return out;
}

bool LineCursor::next(std::string_view& line) {
  if (pos_ >= text_.size()) return false;
  std::size_t eol = text_.find('\n', pos_);
  std::size_t end = eol == std::string_view::npos ? text_.size() : eol;
  line = text_.substr(pos_, end - pos_);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  pos_ = eol == std::string_view::npos ? text_.size() : eol + 1;
  return true;
}

}  // namespace mxguard::message
