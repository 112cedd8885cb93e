#include "mxguard/message/classifier.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>

#include "mxguard/address.h"
#include "mxguard/text.h"

namespace mxguard::message {

namespace {

// How much of the text parts the phrase table and the quoted-header scan read. Bounce texts
// put their tell-tale phrases in the first lines; the quoted original follows within a few KB.
constexpr std::size_t kMaxTextParts = 4;
constexpr std::size_t kMaxPhraseLines = 120;
constexpr std::size_t kMaxLineForTable = 512;
constexpr std::size_t kMaxHeaderKey = 1000;
constexpr std::size_t kMaxDsnRecipients = 100;
constexpr std::size_t kMaxReceived = 64;
constexpr std::size_t kMaxTags = 8;

struct ClassWord {
  std::string_view word;
  MessageClass cls;
};
constexpr std::array<ClassWord, 8> kWords = {{
    {"ordinary", MessageClass::Ordinary},
    {"dsn", MessageClass::Dsn},
    {"bounce", MessageClass::Bounce},
    {"autoreply", MessageClass::Autoreply},
    {"challenge", MessageClass::Challenge},
    {"virus", MessageClass::VirusNotice},
    {"mdn", MessageClass::Mdn},
    {"auto-reply", MessageClass::Autoreply},
}};

// When several heuristics agree that a message is automatic, the most specific kind wins: a
// virus notice or a challenge usually also looks like a bounce or an autoreply.
int priority(MessageClass c) {
  switch (c) {
    case MessageClass::VirusNotice:
      return 6;
    case MessageClass::Challenge:
      return 5;
    case MessageClass::Dsn:
      return 4;
    case MessageClass::Bounce:
      return 3;
    case MessageClass::Mdn:
      return 2;
    case MessageClass::Autoreply:
      return 1;
    case MessageClass::Ordinary:
      return 0;
  }
  return 0;
}

std::string_view first_word(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  auto end = s.find_first_of(" \t");
  return s.substr(0, end);
}

// What a table says of a key: the class, and whether the match is only a hint ("CLASS weak").
struct Hit {
  MessageClass cls = MessageClass::Ordinary;
  bool weak = false;
};

std::string_view second_word(std::string_view s) {
  std::string_view first = first_word(s);
  std::size_t at = s.find(first) + first.size();
  return first_word(s.substr(at));
}

// A table lookup whose result is a class word. "ordinary" comes back as Ordinary, which the
// callers read as "stop: known not to be automatic".
std::optional<Hit> table_hit(const std::shared_ptr<const tables::Table>& t, std::string_view key) {
  if (!t) return std::nullopt;
  auto r = t->find(key);
  if (!r) return std::nullopt;
  auto c = parse_class_word(first_word(*r));
  if (!c) return std::nullopt;
  return Hit{*c, iequals(second_word(*r), "weak")};
}

constexpr unsigned bit(MessageClass c) {
  return 1u << static_cast<unsigned>(c);
}

// The senders table's answer for an address, the built-in bounce senders first.
std::optional<Hit> sender_hit(std::string_view sender, const Rules& rules) {
  if (sender.empty()) return Hit{MessageClass::Bounce, false};
  std::string local = ascii_lowercase(local_part(sender));
  if (local == "mailer-daemon" || local == "postmaster") return Hit{MessageClass::Bounce, false};
  return table_hit(rules.senders, ascii_lowercase(sender));
}

// Fields that are on every message and never mark automatic mail: not worth a table lookup
// (Received and DKIM-Signature alone are most of a header's bytes).
bool never_a_marker(std::string_view name) {
  static constexpr std::string_view kSkip[] = {"Received",
                                               "DKIM-Signature",
                                               "ARC-Seal",
                                               "ARC-Message-Signature",
                                               "ARC-Authentication-Results",
                                               "Authentication-Results",
                                               "Received-SPF",
                                               "Message-ID",
                                               "Date",
                                               "To",
                                               "Cc",
                                               "References",
                                               "In-Reply-To",
                                               "MIME-Version",
                                               "Return-Path",
                                               "Subject",
                                               "Content-Type",
                                               "Content-Transfer-Encoding",
                                               "X-Google-DKIM-Signature"};
  for (std::string_view k : kSkip)
    if (iequals(name, k)) return true;
  return false;
}

// The first CR or LF (find_first_of with a set calls memchr once per character).
std::size_t find_crlf(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i)
    if (s[i] == '\r' || s[i] == '\n') return i;
  return std::string_view::npos;
}

// Appends unfold(value) cut to `limit` bytes, without building the unfolded copy: unfold()
// trims white space (CR and LF included) and then drops every CR and LF.
void append_unfolded(std::string& out, std::string_view value, std::size_t limit) {
  value = trim(value);
  std::size_t room = limit;
  while (!value.empty() && room > 0) {
    std::size_t cut = find_crlf(value);
    std::string_view run = value.substr(0, std::min(cut, room));
    out.append(run);
    room -= run.size();
    if (cut == std::string_view::npos) break;
    value.remove_prefix(cut + 1);
  }
}

struct Evidence {
  bool report_dsn = false;
  bool report_mdn = false;
  bool report_other = false;
  bool failed_recipients = false;
  bool auto_replied = false;    // Auto-Submitted: auto-replied (RFC 3834 §5)
  bool auto_generated = false;  // any other value but "no": a notification, not a reply
  std::optional<MessageClass> header_table;
  std::string header_reason;
  unsigned hints = 0;  // bit(class) of each weak header or sender match
  // The first header the table calls "ordinary" (a mailing list's): no heuristic outweighs it.
  std::string not_automatic;
  std::optional<Hit> subject;
  bool bounce_sender = false;  // envelope sender
  bool from_bounce = false;    // From header
  // The class a senders-table match gives the envelope sender or From other than bounce
  // (challenge, virus): it names what a report from that sender is about.
  std::optional<MessageClass> sender_class;
};

Evidence header_evidence(const MessageReader& msg, const Envelope& env, const Rules& rules) {
  Evidence ev;
  ContentType ct = parse_content_type(msg.header("Content-Type"));
  if (ct.is("multipart", "report")) {
    std::string rt = ascii_lowercase(ct.param("report-type"));
    if (rt == "delivery-status" || rt == "global-delivery-status") {
      ev.report_dsn = true;
    } else if (rt == "disposition-notification" || rt == "global-disposition-notification") {
      ev.report_mdn = true;
    } else {
      ev.report_other = true;
    }
  }
  std::string key;  // "Name: value" for the header table, reused across fields
  for (const auto& h : msg.headers()) {
    if (iequals(h.name, "X-Failed-Recipients")) ev.failed_recipients = true;
    if (iequals(h.name, "Auto-Submitted")) {
      // RFC 3834 §5: "no" is the only value that means a human sent it; only "auto-replied"
      // says the message answers one (auto-generated, auto-notified: a notification).
      std::string v = first_token(h.value);
      if (v == "auto-replied") {
        ev.auto_replied = true;
      } else if (!v.empty() && v != "no") {
        ev.auto_generated = true;
      }
    }
    if (rules.headers && !never_a_marker(h.name)) {
      key.assign(h.name);
      key.append(": ");
      append_unfolded(key, h.value, kMaxHeaderKey);
      if (auto hit = table_hit(rules.headers, key)) {
        if (hit->cls == MessageClass::Ordinary) {
          if (ev.not_automatic.empty()) ev.not_automatic = h.name;
        } else if (hit->weak) {
          ev.hints |= bit(hit->cls);
        } else if (!ev.header_table) {
          ev.header_table = hit->cls;
          ev.header_reason = h.name;
        }
      }
    }
  }
  // Subjects are short; a longer value is cut before decoding (the table sees kMaxHeaderKey).
  std::string subject = msg.header("Subject");
  if (subject.size() > 4 * kMaxHeaderKey) subject.resize(4 * kMaxHeaderKey);
  subject = decode_words(subject);
  if (subject.size() > kMaxHeaderKey) subject.resize(kMaxHeaderKey);
  if (auto hit = table_hit(rules.subjects, subject); hit && hit->cls != MessageClass::Ordinary)
    ev.subject = hit;
  auto note_sender = [&](std::string_view address, bool& bounce) {
    auto hit = sender_hit(address, rules);
    if (!hit || hit->cls == MessageClass::Ordinary) return;
    if (hit->weak) {
      ev.hints |= bit(hit->cls);
      return;
    }
    bounce = true;
    if (hit->cls != MessageClass::Bounce && !ev.sender_class) ev.sender_class = hit->cls;
  };
  note_sender(env.sender, ev.bounce_sender);
  std::string from = extract_address(msg.header("From"));
  if (!from.empty()) note_sender(from, ev.from_bounce);
  return ev;
}

struct Candidate {
  MessageClass cls = MessageClass::Ordinary;
  std::string reason;
  void offer(MessageClass c, std::string_view why) {
    if (priority(c) > priority(cls)) {
      cls = c;
      reason = std::string(why);
    }
  }
};

// The decision from heuristics, for messages without a report structure. A subject or body
// phrase alone does not make a bounce — ordinary mail may say "delivery failed" — it needs a
// second sign: a bounce sender, an automatic-mail header, or the other phrase table agreeing.
// A weak match ("CLASS weak": words people also write, such as "Out of office") counts only
// beside a bounce sender, an automatic-mail header or a strong match; a weak header or sender
// match (Precedence: junk, noreply@) supports a strong subject (or body phrase) of its class.
Candidate decide(const Evidence& ev, std::optional<Hit> body) {
  Candidate c;
  const bool bounceish = ev.bounce_sender || ev.from_bounce;
  // A mailing list's header outweighs every heuristic unless a bounce sender sent the message:
  // lists relay their members' autoreplies, and no list sends from the null sender.
  if (!ev.not_automatic.empty() && !bounceish) return c;
  const bool automatic =
      bounceish || ev.auto_replied || ev.header_table.has_value() || ev.failed_recipients;
  // Auto-Submitted: auto-generated says "a notification, not a reply" (trackers, CI,
  // monitoring): the heuristics do not call it an autoreply.
  auto allowed = [&](MessageClass k) {
    return k != MessageClass::Autoreply || !ev.auto_generated || ev.auto_replied;
  };
  if (ev.failed_recipients) c.offer(MessageClass::Bounce, "X-Failed-Recipients");
  if (ev.header_table) c.offer(*ev.header_table, "header " + ev.header_reason);
  if (ev.subject && allowed(ev.subject->cls)) {
    const Hit& s = *ev.subject;
    if (automatic || (body && !(body->weak && s.weak)) || (!s.weak && (ev.hints & bit(s.cls))))
      c.offer(s.cls, "subject");
  }
  if (body && allowed(body->cls)) {
    if (automatic || (ev.subject && !(ev.subject->weak && body->weak)) ||
        (!body->weak && (ev.hints & bit(body->cls))))
      c.offer(body->cls, "body");
  }
  if (ev.auto_replied) c.offer(MessageClass::Autoreply, "Auto-Submitted");
  return c;
}

// What a report (a DSN) is about when its sender, subject or a header says more than "bounce":
// scanners (amavis) and challenge-response systems (Boxbe) send their notices as DSNs.
std::optional<Candidate> report_about(const Evidence& ev) {
  for (MessageClass k : {MessageClass::VirusNotice, MessageClass::Challenge}) {
    if (ev.header_table == k) return Candidate{k, "header " + ev.header_reason};
    if (ev.subject && ev.subject->cls == k) return Candidate{k, "subject"};
    if (ev.sender_class == k) return Candidate{k, "sender"};
  }
  return std::nullopt;
}

// Text of the parts a reader sees, for the phrase table and the quoted-header scan. The
// returned original (message/rfc822) is not entered: its words are the original's, not the
// bounce's.
void collect(const Part& p, std::vector<const Part*>& texts, const Part*& dsn, const Part*& mdn,
             const Part*& rfc822, const Part*& rfc822_headers) {
  if (p.type.multipart()) {
    for (const auto& c : p.children)
      collect(c, texts, dsn, mdn, rfc822, rfc822_headers);
    return;
  }
  if (p.type.type == "message") {
    const std::string& s = p.type.subtype;
    if ((s == "delivery-status" || s == "global-delivery-status") && !dsn) dsn = &p;
    if ((s == "disposition-notification" || s == "global-disposition-notification") && !mdn)
      mdn = &p;
    if ((s == "rfc822" || s == "global") && !rfc822 && !p.children.empty())
      rfc822 = &p.children.front();
    if ((s == "rfc822-headers" || s == "global-headers") && !rfc822_headers) rfc822_headers = &p;
    return;
  }
  if (p.type.type == "text") {
    if (p.type.subtype == "rfc822-headers") {
      if (!rfc822_headers) rfc822_headers = &p;
      return;
    }
    if (texts.size() < kMaxTextParts) texts.push_back(&p);
  }
}

std::string address_of_typed(std::string_view v) {
  // "rfc822; user@example.com" (RFC 3464 §2.3.2): the address type is dropped.
  auto semi = v.find(';');
  std::string a = unfold(semi == std::string_view::npos ? v : v.substr(semi + 1));
  return strip_angle(a);
}

void parse_delivery_status(std::string_view text, Classification& out) {
  std::size_t pos = 0;
  bool first = true;
  while (pos < text.size() && out.dsn.size() < kMaxDsnRecipients) {
    // Skip blank lines between blocks.
    while (pos < text.size() && (text[pos] == '\r' || text[pos] == '\n'))
      ++pos;
    if (pos >= text.size()) break;
    std::vector<Header> block;
    std::size_t used = read_header_block(text.substr(pos), block);
    if (used == 0) break;  // not a field: the rest is not delivery-status syntax
    pos += used;
    if (block.empty()) continue;
    auto get = [&](std::string_view n) {
      for (const auto& h : block)
        if (iequals(h.name, n)) return unfold(h.value);
      return std::string();
    };
    if (first) {
      first = false;
      std::string mta = get("Reporting-MTA");
      if (!mta.empty()) {
        out.reporting_mta = address_of_typed(mta);
        continue;
      }
      if (get("Final-Recipient").empty()) continue;
    }
    DsnRecipient r;
    r.final_recipient = address_of_typed(get("Final-Recipient"));
    r.original_recipient = address_of_typed(get("Original-Recipient"));
    r.action = first_token(get("Action"));
    r.status = first_token(get("Status"));
    r.diagnostic = get("Diagnostic-Code");
    if (r.final_recipient.empty() && r.action.empty()) continue;
    out.dsn.push_back(std::move(r));
  }
}

void originals_from_fields(const std::vector<Header>& fields, ReturnedOriginal& o) {
  for (const auto& h : fields) {
    if (iequals(h.name, "Received")) {
      if (o.received.size() < kMaxReceived) o.received.push_back(unfold(h.value));
    } else if (iequals(h.name, "Message-ID")) {
      if (o.message_id.empty()) o.message_id = extract_msg_id(h.value);
    } else if (iequals(h.name, "From")) {
      if (o.from.empty()) o.from = extract_address(unfold(h.value));
    } else if (iequals(h.name, "X-Mxguard-Tag")) {
      if (o.tags.size() < kMaxTags) o.tags.push_back(unfold(h.value));
    }
  }
}

// Free-text bounces quote the original's header block inside their text, often indented or
// behind "> ". The first run of field lines that holds a Received or Message-ID is taken.
void scan_quoted(std::string_view text, ReturnedOriginal& o) {
  LineCursor cur(text);
  std::string_view line;
  std::vector<Header> block;
  bool block_wanted = false;
  auto finish = [&]() {
    if (block_wanted && !o.found()) {
      originals_from_fields(block, o);
      o.source = "quoted text";
    }
    block.clear();
    block_wanted = false;
  };
  while (cur.next(line)) {
    std::string_view l = line;
    while (!l.empty() && l.front() == '>') {
      l.remove_prefix(1);
      if (!l.empty() && l.front() == ' ') l.remove_prefix(1);
    }
    if (!block.empty() && !l.empty() && (l.front() == ' ' || l.front() == '\t')) {
      if (block.back().value.size() < 4096) {
        block.back().value.push_back(' ');
        block.back().value.append(l.substr(0, 4096));
      }
      continue;
    }
    // Quoting MTAs indent the whole block; a field may start after white space.
    std::string_view t = l;
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t'))
      t.remove_prefix(1);
    auto colon = t.find(':');
    bool field = colon != std::string_view::npos && colon > 0 && colon < 80 &&
                 t.substr(0, colon).find_first_of(" \t") == std::string_view::npos;
    if (!field) {
      finish();
      if (o.found()) return;
      continue;
    }
    std::string_view name = t.substr(0, colon);
    if (iequals(name, "Received") || iequals(name, "Message-ID")) block_wanted = true;
    if (block.size() < 200)
      block.push_back(Header{std::string(name), std::string(t.substr(colon + 1))});
  }
  finish();
}

}  // namespace

std::string_view to_string(MessageClass c) {
  switch (c) {
    case MessageClass::Ordinary:
      return "ordinary";
    case MessageClass::Dsn:
      return "dsn";
    case MessageClass::Bounce:
      return "bounce";
    case MessageClass::Autoreply:
      return "autoreply";
    case MessageClass::Challenge:
      return "challenge";
    case MessageClass::VirusNotice:
      return "virus";
    case MessageClass::Mdn:
      return "mdn";
  }
  return "?";
}

std::optional<MessageClass> parse_class_word(std::string_view word) {
  for (const auto& w : kWords)
    if (iequals(w.word, word)) return w.cls;
  return std::nullopt;
}

std::optional<std::string> validate_class_result(std::string_view result) {
  std::string_view w = first_word(result);
  if (!parse_class_word(w))
    return fmt::format(
        "result '{}' is not a class word (bounce, autoreply, challenge, virus, mdn, ordinary)", w);
  std::string_view second = second_word(result);
  if (!second.empty() && !iequals(second, "weak"))
    return fmt::format("'{}' after the class word: only 'weak' may follow it", second);
  return std::nullopt;
}

Expected<Rules, tables::LoadError> load_rules(std::string_view dir, bool required) {
  Rules rules;
  struct Slot {
    const char* file;
    std::shared_ptr<const tables::Table>* table;
  };
  const Slot slots[] = {
      {"bounce-subjects.regexp", &rules.subjects},
      {"bounce-senders.regexp", &rules.senders},
      {"autoreply.regexp", &rules.headers},
      {"bounce-body.regexp", &rules.body},
  };
  for (const Slot& s : slots) {
    std::string path = fmt::format("{}/{}", dir, s.file);
    struct stat st;
    if (!required && ::stat(path.c_str(), &st) != 0) continue;
    auto t = tables::load_table("regexp:" + path, &validate_class_result);
    if (!t) return unexpected(std::move(t).error());
    *s.table = std::move(t).value();
  }
  return rules;
}

bool is_bounce_sender(std::string_view sender, const Rules& rules) {
  auto hit = sender_hit(sender, rules);
  return hit && !hit->weak && hit->cls != MessageClass::Ordinary;
}

HeaderAssessment assess_headers(const MessageReader& msg, const Envelope& env, const Rules& rules) {
  HeaderAssessment a;
  Evidence ev = header_evidence(msg, env, rules);
  if (ev.report_dsn) {
    a.cls = MessageClass::Dsn;
    a.reason = "report-type=delivery-status";
    if (auto about = report_about(ev)) {
      a.cls = about->cls;
      a.reason = about->reason;
    }
    a.class_final = true;
    return a;
  }
  if (ev.report_mdn) {
    a.cls = MessageClass::Mdn;
    a.reason = "report-type=disposition-notification";
    a.class_final = true;
    return a;
  }
  Candidate c = decide(ev, std::nullopt);
  a.cls = c.cls;
  a.reason = c.reason;
  a.class_final = ev.failed_recipients || ev.header_table || ev.auto_replied;
  const bool bounceish = ev.bounce_sender || ev.from_bounce;
  const bool list = !ev.not_automatic.empty();
  a.headers_suffice =
      !bounceish && !ev.report_other && c.cls == MessageClass::Ordinary && (!ev.subject || list);
  return a;
}

Classification classify(const MessageReader& msg, const Envelope& env, const Rules& rules) {
  Classification out;
  out.body_truncated = msg.body_truncated();
  Evidence ev = header_evidence(msg, env, rules);
  Part top = msg.structure();
  std::vector<const Part*> texts;
  const Part* dsn = nullptr;
  const Part* mdn = nullptr;
  const Part* rfc822 = nullptr;
  const Part* rfc822_headers = nullptr;
  collect(top, texts, dsn, mdn, rfc822, rfc822_headers);

  // Decoded text of the first text parts, shared by the phrase table and the quote scan.
  std::vector<std::string> decoded;
  decoded.reserve(texts.size());
  // Converted to UTF-8, as the tables are written: a Japanese autoreply in ISO-2022-JP or a
  // Russian one in KOI8-R matches the same phrase as one in UTF-8.
  for (const Part* p : texts)
    decoded.push_back(
        to_utf8(p->decoded_body(msg.max_body()), p->type.param("charset"), msg.max_body()));

  if (ev.report_dsn || dsn) {
    out.cls = MessageClass::Dsn;
    out.reason = ev.report_dsn ? "report-type=delivery-status" : "message/delivery-status part";
    if (dsn) parse_delivery_status(dsn->decoded_body(msg.max_body()), out);
    if (auto about = report_about(ev)) {
      out.cls = about->cls;
      out.reason = about->reason;
    }
  } else if (ev.report_mdn || mdn) {
    out.cls = MessageClass::Mdn;
    out.reason = ev.report_mdn ? "report-type=disposition-notification"
                               : "message/disposition-notification part";
  } else {
    // The first strong phrase decides; a weak one is kept while the scan looks for a strong
    // one. "ordinary" ends the scan: the text is known not to be automatic.
    std::optional<Hit> body;
    if (rules.body) {
      std::size_t lines = 0;
      std::string key;
      bool done = false;
      for (const auto& text : decoded) {
        LineCursor cur(text);
        std::string_view line;
        while (!done && lines < kMaxPhraseLines && cur.next(line)) {
          ++lines;
          while (!line.empty() &&
                 (line.front() == ' ' || line.front() == '\t' || line.front() == '>'))
            line.remove_prefix(1);
          if (line.empty()) continue;
          key.assign(line.substr(0, kMaxLineForTable));
          auto hit = table_hit(rules.body, key);
          if (!hit) continue;
          if (hit->cls == MessageClass::Ordinary) {
            body.reset();
            done = true;
          } else if (!hit->weak) {
            body = hit;
            done = true;
          } else if (!body) {
            body = hit;
          }
        }
        if (done) break;
      }
    }
    Candidate c = decide(ev, body);
    out.cls = c.cls;
    out.reason = c.reason;
  }
  if (out.cls == MessageClass::Ordinary) return out;

  if (rfc822) {
    out.original.source = "message/rfc822";
    originals_from_fields(rfc822->headers, out.original);
  } else if (rfc822_headers) {
    std::string text = rfc822_headers->decoded_body(msg.max_body());
    std::vector<Header> fields;
    read_header_block(text, fields);
    out.original.source = "text/rfc822-headers";
    originals_from_fields(fields, out.original);
  } else {
    for (const auto& text : decoded) {
      scan_quoted(text, out.original);
      if (out.original.found()) break;
    }
  }
  return out;
}

}  // namespace mxguard::message
