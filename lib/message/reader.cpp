#include "mxguard/message/reader.h"

#include <algorithm>

#include "mxguard/text.h"

namespace mxguard::message {

namespace {

// Fields of a MIME part beyond these are ignored: they cannot change what the part is.
constexpr std::size_t kMaxPartHeaders = 200;
constexpr std::size_t kMaxPartHeaderBytes = 64 * 1024;

bool is_field_name_char(char c) {
  // RFC 5322 ftext: printable US-ASCII except ':'.
  return c > 32 && c < 127 && c != ':';
}

// Splits one field line "Name: value" (value may be empty). False if it is not a field.
bool split_field(std::string_view line, std::string_view& name, std::string_view& value) {
  auto colon = line.find(':');
  if (colon == 0 || colon == std::string_view::npos) return false;
  std::string_view n = line.substr(0, colon);
  while (!n.empty() && (n.back() == ' ' || n.back() == '\t'))
    n.remove_suffix(1);  // "Subject : x" is obsolete syntax but real
  if (n.empty() || !std::all_of(n.begin(), n.end(), is_field_name_char)) return false;
  name = n;
  value = line.substr(colon + 1);
  return true;
}

}  // namespace

std::size_t read_header_block(std::string_view text, std::vector<Header>& out) {
  LineCursor cur(text);
  std::string_view line;
  std::size_t bytes = 0;
  bool skipping = false;  // a field over the limits: its continuation lines go too
  while (true) {
    std::size_t line_start = cur.position();
    if (!cur.next(line)) return text.size();
    if (line.empty()) return cur.position();
    if (line.front() == ' ' || line.front() == '\t') {
      if (!out.empty() && !skipping) {
        std::size_t n =
            std::min(line.size(), kMaxPartHeaderBytes - std::min(bytes, kMaxPartHeaderBytes));
        out.back().value.append(" ");
        out.back().value.append(line.substr(0, n));
        bytes += n;
      }
      continue;
    }
    std::string_view name, value;
    if (!split_field(line, name, value)) {
      // Not a field and not a blank line: the header block is broken. A part that starts with
      // body text (no fields) is treated as all body, as most MUAs do.
      return line_start;
    }
    if (out.size() >= kMaxPartHeaders || bytes + line.size() > kMaxPartHeaderBytes) {
      skipping = true;
      continue;
    }
    skipping = false;
    bytes += line.size();
    out.push_back(Header{std::string(name), std::string(value)});
  }
}

namespace {

std::string field(const std::vector<Header>& headers, std::string_view name) {
  for (const auto& h : headers)
    if (iequals(h.name, name)) return unfold(h.value);
  return {};
}

void fill_type(Part& p, const ContentType* default_type) {
  std::string ct = field(p.headers, "Content-Type");
  p.type = parse_content_type(ct);
  if (!p.type.present && default_type) p.type = *default_type;
  p.transfer_encoding = first_token(field(p.headers, "Content-Transfer-Encoding"));
}

// Is `line` a delimiter line for `boundary`? Sets `closing` for "--boundary--".
bool is_delimiter(std::string_view line, std::string_view boundary, bool& closing) {
  if (line.size() < boundary.size() + 2 || line[0] != '-' || line[1] != '-') return false;
  if (line.compare(2, boundary.size(), boundary) != 0) return false;
  std::string_view rest = line.substr(2 + boundary.size());
  closing = rest.size() >= 2 && rest[0] == '-' && rest[1] == '-';
  if (closing) rest.remove_prefix(2);
  // Transport padding only (RFC 2046 §5.1.1); anything else is a longer, different boundary.
  return std::all_of(rest.begin(), rest.end(), [](char c) { return c == ' ' || c == '\t'; });
}

void parse_children(Part& p, std::size_t& budget);

Part parse_part(std::string_view text, int depth, const ContentType* default_type,
                std::size_t& budget) {
  Part p;
  p.depth = depth;
  std::size_t body_at = read_header_block(text, p.headers);
  p.body = text.substr(body_at);
  fill_type(p, default_type);
  parse_children(p, budget);
  return p;
}

void parse_children(Part& p, std::size_t& budget) {
  if (p.depth >= kMaxDepth || budget == 0) return;
  if (p.type.multipart()) {
    std::string_view boundary = p.type.param("boundary");
    // RFC 2046: 1 to 70 characters. No boundary: the body stays one opaque part.
    if (boundary.empty() || boundary.size() > 200) return;
    ContentType digest_default;
    const ContentType* child_default = nullptr;
    if (p.type.subtype == "digest") {
      digest_default.type = "message";
      digest_default.subtype = "rfc822";
      digest_default.present = true;
      child_default = &digest_default;
    }
    LineCursor cur(p.body);
    std::string_view line;
    std::size_t part_start = std::string_view::npos;
    p.closed = false;
    while (true) {
      std::size_t line_start = cur.position();
      if (!cur.next(line)) break;
      bool closing = false;
      if (!is_delimiter(line, boundary, closing)) continue;
      if (part_start != std::string_view::npos) {
        // The CRLF before the delimiter belongs to the delimiter (RFC 2046 §5.1.1).
        std::size_t end = line_start;
        if (end > part_start && p.body[end - 1] == '\n') --end;
        if (end > part_start && p.body[end - 1] == '\r') --end;
        if (budget == 0) break;
        --budget;
        p.children.push_back(parse_part(p.body.substr(part_start, end - part_start), p.depth + 1,
                                        child_default, budget));
      }
      if (closing) {
        p.closed = true;
        part_start = std::string_view::npos;
        break;
      }
      part_start = cur.position();
    }
    // A truncated body (beyond the scan limit) or a missing closing delimiter: keep the last
    // part as far as it goes.
    if (part_start != std::string_view::npos && part_start < p.body.size() && budget > 0) {
      --budget;
      p.children.push_back(
          parse_part(p.body.substr(part_start), p.depth + 1, child_default, budget));
    }
    return;
  }
  if (p.type.type == "message" && (p.type.subtype == "rfc822" || p.type.subtype == "global") &&
      (p.transfer_encoding.empty() || p.transfer_encoding == "7bit" ||
       p.transfer_encoding == "8bit" || p.transfer_encoding == "binary")) {
    --budget;
    p.children.push_back(parse_part(p.body, p.depth + 1, nullptr, budget));
  }
}

}  // namespace

std::string Part::header(std::string_view name) const {
  return field(headers, name);
}

std::string Part::decoded_body(std::size_t limit) const {
  if (transfer_encoding == "base64") return decode_base64(body, limit);
  if (transfer_encoding == "quoted-printable") return decode_quoted_printable(body, limit);
  return std::string(body.substr(0, std::min(limit, body.size())));
}

Part parse_entity(std::string_view text, int depth) {
  std::size_t budget = kMaxParts;
  return parse_part(text, depth, nullptr, budget);
}

void MessageReader::add_header(std::string_view name, std::string_view value) {
  std::size_t n = name.size() + value.size();
  if (headers_.size() >= kMaxHeaders || header_bytes_ + n > kMaxHeaderBytes) {
    headers_truncated_ = true;
    return;
  }
  header_bytes_ += n;
  headers_.push_back(Header{std::string(name), std::string(value)});
}

std::string MessageReader::header(std::string_view name) const {
  return field(headers_, name);
}

bool MessageReader::add_body(std::string_view chunk) {
  headers_done_ = true;
  body_seen_ += chunk.size();
  if (body_.size() < max_body_) {
    std::size_t take = std::min(chunk.size(), max_body_ - body_.size());
    body_.append(chunk.substr(0, take));
  }
  return body_.size() < max_body_;
}

Part MessageReader::structure() const {
  Part top;
  top.headers = headers_;
  top.body = body_;
  fill_type(top, nullptr);
  std::size_t budget = kMaxParts;
  parse_children(top, budget);
  return top;
}

MessageReader MessageReader::from_text(std::string_view text, std::size_t max_body) {
  MessageReader r(max_body);
  std::vector<Header> fields;
  // The whole file's header block, without the per-part limits (the reader applies its own).
  LineCursor cur(text);
  std::string_view line;
  std::size_t body_at = text.size();
  while (true) {
    std::size_t line_start = cur.position();
    if (!cur.next(line)) break;
    if (line.empty()) {
      body_at = cur.position();
      break;
    }
    if ((line.front() == ' ' || line.front() == '\t') && !fields.empty()) {
      fields.back().value.append("\r\n");  // keep the folding, as libmilter does
      fields.back().value.append(line);
      continue;
    }
    std::string_view name, value;
    if (!split_field(line, name, value)) {
      // An mbox "From " line before the fields is skipped; other junk starts the body.
      if (fields.empty() && line.rfind("From ", 0) == 0) continue;
      body_at = line_start;
      break;
    }
    // libmilter strips the one space after the colon.
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    fields.push_back(Header{std::string(name), std::string(value)});
  }
  for (const auto& h : fields)
    r.add_header(h.name, h.value);
  r.end_of_headers();
  // The milter sees the body with CRLF line ends; a file usually has LF.
  std::string_view body = text.substr(std::min(body_at, text.size()));
  std::string chunk;
  LineCursor bc(body);
  while (bc.next(line)) {
    chunk.assign(line);
    chunk.append("\r\n");
    if (!r.add_body(chunk)) {
      // Count the rest without keeping it, as the milter path would after SMFIS_SKIP.
      r.body_seen_ += bc.rest().size();
      break;
    }
  }
  r.end_of_message();
  return r;
}

}  // namespace mxguard::message
