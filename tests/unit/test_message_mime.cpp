#include <catch2/catch.hpp>

#include "mxguard/message/mime.h"
#include "mxguard/message/reader.h"

using namespace mxguard::message;

TEST_CASE("Content-Type: type, subtype and parameters, case and comments", "[message][mime]") {
  auto ct = parse_content_type(
      " Multipart/Report (a comment) ; Report-Type = delivery-status;\r\n\tboundary=\"b=1; x\"");
  CHECK(ct.present);
  CHECK(ct.is("multipart", "report"));
  CHECK(ct.param("report-type") == "delivery-status");
  CHECK(ct.param("boundary") == "b=1; x");
}

TEST_CASE("Content-Type: RFC 2231 continuations and charset'lang' values", "[message][mime]") {
  auto ct = parse_content_type(
      "multipart/report; report-type*=us-ascii'en'delivery%2Dstatus; "
      "boundary*0=\"abc-\"; boundary*1=def; title*0*=utf-8''caf%C3%A9; title*1=\" bar\"");
  CHECK(ct.param("report-type") == "delivery-status");
  CHECK(ct.param("boundary") == "abc-def");
  CHECK(ct.param("title") == "caf\xC3\xA9 bar");
}

TEST_CASE("Content-Type: junk gives the text/plain default, never a throw", "[message][mime]") {
  for (const char* junk : {"", "text", "/plain", ";;;", "text/", "((((", "\"unterminated",
                           "text/plain; a*99999999=x; b*=''%", "text/plain; =x; ==; a=\"\\",
                           // a comment ending in a backslash (found by fuzz_message)
                           "(\\", "(multipart/r\\", "text/(a\\"}) {
    auto ct = parse_content_type(junk);
    CHECK((ct.type == "text"));
  }
  auto huge = std::string("text/plain");
  for (int i = 0; i < 5000; ++i)
    huge += "; p" + std::to_string(i) + "=v";
  CHECK(parse_content_type(huge).params.size() <= 64);
}

TEST_CASE("RFC 2047 encoded words are decoded; adjacent words join", "[message][mime]") {
  CHECK(decode_words("=?utf-8?Q?Unzustellbar:_Angebot?=") == "Unzustellbar: Angebot");
  CHECK(decode_words("=?UTF-8?B?VW5kZWxpdmVyYWJsZTo=?= =?UTF-8?B?IGhp?=") == "Undeliverable: hi");
  CHECK(decode_words("plain =?x?Z?zz?= text") == "plain =?x?Z?zz?= text");
  CHECK(decode_words("=?broken") == "=?broken");
}

TEST_CASE("msg-id, its domain, and addresses", "[message][mime]") {
  CHECK(extract_msg_id(" <abc@Mail.Example.COM> (comment)") == "<abc@Mail.Example.COM>");
  CHECK(msg_id_domain("<abc@Mail.Example.COM>") == "mail.example.com");
  CHECK(msg_id_domain("<abc@[192.0.2.1]>").empty());
  CHECK(extract_msg_id("no id here").empty());
  CHECK(extract_address("\"Alice, A.\" <alice@example.com>") == "alice@example.com");
  CHECK(extract_address("bob@example.com (Bob)") == "bob@example.com");
  CHECK(extract_address("undisclosed-recipients:;").empty());
}

TEST_CASE("transfer decodings skip garbage and respect the limit", "[message][mime]") {
  CHECK(decode_base64("aGVs\r\nbG8=", 100) == "hello");
  CHECK(decode_base64("!!aGV*sbG8=garbage", 100).substr(0, 5) == "hello");
  CHECK(decode_base64("aGVsbG8=", 2) == "he");
  CHECK(decode_quoted_printable("caf=C3=A9 =\r\nnext=ZZ", 100) == "caf\xC3\xA9 next=ZZ");
}

TEST_CASE("the reader keeps at most max_body bytes and counts the rest", "[message][reader]") {
  MessageReader r(10);
  r.add_header("Subject", "x");
  CHECK(r.add_body("12345"));
  CHECK_FALSE(r.add_body("67890abc"));
  CHECK(r.body() == "1234567890");
  CHECK(r.body_size() == 13);
  CHECK(r.body_truncated());
}

TEST_CASE("the reader: body fed one byte at a time parses like one chunk", "[message][reader]") {
  std::string body =
      "--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: "
      "message/rfc822\r\n\r\nMessage-ID: <x@example.com>\r\n\r\nbody\r\n--b--\r\n";
  MessageReader whole, bytes;
  for (auto* r : {&whole, &bytes})
    r->add_header("Content-Type", "multipart/mixed;\r\n\tboundary=\"b\"");
  whole.add_body(body);
  for (char c : body)
    bytes.add_body(std::string_view(&c, 1));
  auto a = whole.structure();
  auto b = bytes.structure();
  REQUIRE(a.children.size() == 2);
  REQUIRE(b.children.size() == 2);
  CHECK(a.children[0].body == "hello");
  CHECK(b.children[0].body == "hello");
  REQUIRE(b.children[1].children.size() == 1);
  CHECK(b.children[1].children[0].header("Message-ID") == "<x@example.com>");
  CHECK(b.closed);
}

TEST_CASE("the reader: header and field bounds hold", "[message][reader]") {
  MessageReader r;
  for (int i = 0; i < 5000; ++i)
    r.add_header("X-Junk", std::string(100, 'a'));
  CHECK(r.headers().size() <= kMaxHeaders);
  CHECK(r.headers_truncated());
}

TEST_CASE("broken MIME never crashes and stays bounded", "[message][reader]") {
  SECTION("multipart without boundary") {
    MessageReader r;
    r.add_header("Content-Type", "multipart/mixed");
    r.add_body("--x\r\nhello\r\n--x--\r\n");
    auto p = r.structure();
    CHECK(p.children.empty());
  }
  SECTION("nesting 100 deep") {
    MessageReader r;
    r.add_header("Content-Type", "multipart/mixed; boundary=b0");
    std::string body;
    for (int i = 0; i < 100; ++i)
      body += "--b" + std::to_string(i) + "\r\nContent-Type: multipart/mixed; boundary=b" +
              std::to_string(i + 1) + "\r\n\r\n";
    body += "leaf\r\n";
    r.add_body(body);
    auto p = r.structure();
    int depth = 0;
    const Part* cur = &p;
    while (!cur->children.empty()) {
      cur = &cur->children.front();
      ++depth;
    }
    CHECK(depth <= kMaxDepth);
  }
  SECTION("message/rfc822 nested 100 deep") {
    MessageReader r;
    r.add_header("Content-Type", "message/rfc822");
    std::string body;
    for (int i = 0; i < 100; ++i)
      body += "Content-Type: message/rfc822\r\n\r\n";
    r.add_body(body);
    CHECK(r.structure().children.size() == 1);
  }
  SECTION("a 10 MB single line, NUL bytes, a part flood") {
    MessageReader r;
    r.add_header("Content-Type", "multipart/mixed; boundary=z");
    std::string chunk(64 * 1024, 'A');
    chunk[100] = '\0';
    for (int i = 0; i < 160; ++i)
      r.add_body(chunk);
    CHECK(r.body().size() == kDefaultMaxBody);
    CHECK(r.body_size() == 160u * 64 * 1024);
    CHECK(r.structure().children.empty());
    MessageReader flood;
    flood.add_header("Content-Type", "multipart/mixed; boundary=z");
    std::string parts;
    for (int i = 0; i < 20000; ++i)
      parts += "--z\r\n\r\n";
    flood.add_body(parts);
    CHECK(flood.structure().children.size() <= kMaxParts);
  }
}
