// Log lines no client can shape: the one escaping in log_line(), and refusals whose text
// cannot quote what the client sent (a table REJECT still refuses).
#include <catch2/catch.hpp>

#include <fstream>

#include "capture_log.h"
#include "mxguard/config.h"
#include "mxguard/log.h"
#include "mxguard/pipeline.h"
#include "mxguard/policy.h"
#include "source_tree.h"

using namespace mxguard;

namespace {

using test::CaptureLog;

// Reads an escaped line back: "\\", "\n", "\r", "\t", "\xNN"; anything else is kept.
std::string unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out.push_back(s[i]);
      continue;
    }
    REQUIRE(i + 1 < s.size());
    const char c = s[++i];
    if (c == '\\') out.push_back('\\');
    if (c == 'n') out.push_back('\n');
    if (c == 'r') out.push_back('\r');
    if (c == 't') out.push_back('\t');
    if (c == 'x') {
      REQUIRE(i + 2 < s.size());
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    }
    CHECK(std::string_view("\\nrtx").find(c) != std::string_view::npos);
  }
  return out;
}

bool printable_ascii_or_utf8(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

}  // namespace

TEST_CASE("log text: printable ASCII and valid UTF-8 pass unchanged, without a copy", "[log]") {
  for (std::string_view s : {"", "NOQUEUE: reject: RCPT from x[192.0.2.1]: 550 5.1.2 <a@b>",
                             "helo=<m\xc3\xbcller.example> to=<\xe2\x82\xac@x> \xf0\x9f\x98\x80",
                             "~!@#$%^&*()_+{}|:\"<>?`-=[];',./"}) {
    CAPTURE(s);
    std::string out = "untouched";
    CHECK_FALSE(escape_log_text(s, out));
    CHECK(out == "untouched");
    CHECK(escaped_log_text(s) == s);
  }
}

TEST_CASE("log text: line ends, controls, DEL and bad UTF-8 are escaped", "[log]") {
  struct Case {
    std::string in, out;
  };
  const std::vector<Case> cases = {
      {"a\nban 198.51.100.77 for 1800s: 3 strikes (x)",
       "a\\nban 198.51.100.77 for 1800s: 3 strikes (x)"},
      {"cr\rlf\ntab\t", "cr\\rlf\\ntab\\t"},
      {std::string("nul\0x", 5), "nul\\x00x"},
      {"\x01\x1b[31m\x7f", "\\x01\\x1b[31m\\x7f"},
      // A client's own backslashes are doubled: "\n" typed by a client is not an LF.
      {"a\\nb\\x41", "a\\\\nb\\\\x41"},
      // Latin-1, a lone continuation byte, a truncated sequence, an overlong '/', a UTF-16
      // surrogate, a code point above U+10FFFF: not UTF-8.
      {"m\xfcller", "m\\xfcller"},
      {"\x80x", "\\x80x"},
      {"\xe2\x82", "\\xe2\\x82"},
      {"\xc0\xaf", "\\xc0\\xaf"},
      {"\xed\xa0\x80", "\\xed\\xa0\\x80"},
      {"\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"},
      // Valid UTF-8 that readers take for line ends: NEL (U+0085), U+2028, U+2029.
      {"a\xc2\x85"
       "b\xe2\x80\xa8"
       "c\xe2\x80\xa9",
       "a\\xc2\\x85b\\xe2\\x80\\xa8c\\xe2\\x80\\xa9"},
      // ... next to text that stays: U+00A0 and U+2027 are printable enough.
      {"\xc2\xa0\xe2\x80\xa7\n", "\xc2\xa0\xe2\x80\xa7\\n"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.in);
    const std::string out = escaped_log_text(c.in);
    CHECK(out == c.out);
    CHECK(printable_ascii_or_utf8(out));
    CHECK(unescape(out) == c.in);  // nothing lost, nothing ambiguous
  }
}

TEST_CASE("log text: every byte value round-trips and never yields a control", "[log]") {
  std::string all;
  for (int i = 0; i < 256; ++i)
    all.push_back(static_cast<char>(i));
  const std::string out = escaped_log_text(all);
  CHECK(printable_ascii_or_utf8(out));
  CHECK(out.find('\n') == std::string::npos);
  CHECK(unescape(out) == all);
}

TEST_CASE("log text: the word-at-a-time scan finds every byte at every position", "[log]") {
  const std::string clean = "abcdefghijklmnopqrstuvwxyz0123~ ";  // 32 bytes, four words
  CHECK(escaped_log_text(clean) == clean);
  for (int c = 0; c < 256; ++c) {
    for (std::size_t pos = 0; pos < clean.size(); ++pos) {
      std::string line = clean;
      line[pos] = static_cast<char>(c);
      const std::string out = escaped_log_text(line);
      const bool stays = c >= 0x20 && c < 0x7f && c != '\\';
      CAPTURE(c, pos);
      CHECK((out == line) == stays);
      CHECK(unescape(out) == line);
    }
  }
}

TEST_CASE("log_line escapes before any sink sees the line", "[log]") {
  CaptureLog log;
  log_line(LogLevel::Notice,
           "NOQUEUE: reject: HELO from x[192.0.2.1]: helo=<a\r\nban "
           "198.51.100.77 for 1800s: 3 strikes (x)>");
  mxguard::log(LogLevel::Notice, "from=<{}>", std::string_view("a\nb\xff", 4));
  REQUIRE(log.lines().size() == 2);
  CHECK(log.lines()[0] ==
        "NOQUEUE: reject: HELO from x[192.0.2.1]: helo=<a\\r\\nban 198.51.100.77 for 1800s: 3 "
        "strikes (x)>");
  CHECK(log.lines()[1] == "from=<a\\nb\\xff>");
}

TEST_CASE("a decision line with an LF in HELO, sender and recipient stays one line", "[log]") {
  CaptureLog log;
  Session s;
  s.helo = "x\nban 198.51.100.77 for 1800s: 3 strikes (x)";
  s.tx.has_sender = true;
  s.tx.sender = Address::parse("a\r@example.org");
  s.tx.rcpt = Address::parse("b\n@example.com");
  Verdict v = Verdict::reject(SmtpReply::fixed(550, "5.7.1", "no"), "access", "table");
  mxguard::log(LogLevel::Notice, "{}", format_decision(s, Stage::Rcpt, v));
  REQUIRE(log.lines().size() == 1);
  CHECK(log.lines()[0].find('\n') == std::string::npos);
  CHECK(log.lines()[0].find('\r') == std::string::npos);
  CHECK_THAT(log.lines()[0], Catch::Contains("from=<a\\r@example.org> to=<b\\n@example.com> "
                                             "helo=<x\\nban 198.51.100.77"));
}

namespace {

struct AccessFixture {
  std::shared_ptr<const Config> cfg;
  std::shared_ptr<const Policy> policy;
  Session session;
  explicit AccessFixture(const std::string& table) {
    const std::string path = "/tmp/mxguard-unit-log-escape-rcpt.regexp";
    std::ofstream(path) << table;
    auto c = test::load_hermetic({"--recipient-access=regexp:" + path});
    REQUIRE(c);
    cfg = *c;
    policy = build_policy(cfg);
    session.policy = policy;
    session.tx.has_sender = true;
    session.tx.sender = Address::parse("someone@example.org");
  }
  std::optional<Verdict> rcpt(std::string to) {
    session.tx.rcpt = Address::parse(to);
    CheckContext ctx{*cfg};
    return policy->pipeline.run(Stage::Rcpt, session, ctx);
  }
};

}  // namespace

TEST_CASE("a table REJECT whose reply cannot quote the recipient still refuses", "[log][access]") {
  CaptureLog log;
  AccessFixture f(
      "/^blocked/ REJECT go away\n/^defer/ DEFER later\n"
      "/^coded/ 551 5.7.1 not here\n/^plain/ REJECT\n");
  auto quoted = f.rcpt("blocked@example.com");
  REQUIRE(quoted);
  CHECK(quoted->reply->to_string() ==
        "554 5.7.1 <blocked@example.com>: Recipient address rejected: go away");

  // A CR or LF in the recipient cannot go into a reply line: refused all the same, with the
  // table's own text and without the address.
  for (std::string bad : {"blocked\r@example.com", "blocked\n@example.com",
                          "blocked\x01@example.com", "blocked\xff@example.com"}) {
    CAPTURE(bad);
    auto v = f.rcpt(bad);
    REQUIRE(v);
    CHECK(v->action == Action::Reject);
    CHECK(v->reply->to_string() == "554 5.7.1 Recipient address rejected: go away");
  }
  auto coded = f.rcpt("coded\n@example.com");
  REQUIRE(coded);
  CHECK(coded->reply->to_string() == "551 5.7.1 Recipient address rejected: not here");
  auto plain = f.rcpt("plain\r@example.com");
  REQUIRE(plain);
  CHECK(plain->reply->to_string() == "554 5.7.1 Recipient address rejected: Access denied");
  auto later = f.rcpt("defer\n@example.com");
  REQUIRE(later);
  CHECK(later->action == Action::Tempfail);
  CHECK(later->reply->code() == 450);
  CHECK_FALSE(f.rcpt("someone@example.com"));

  bool warned = false;
  for (const auto& l : log.lines()) {
    CHECK(l.find('\n') == std::string::npos);
    warned |= l.find("refused with a fixed text") != std::string::npos;
  }
  CHECK(warned);
}
