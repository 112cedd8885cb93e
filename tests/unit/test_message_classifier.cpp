#include <catch2/catch.hpp>

#include <filesystem>
#include <thread>
#include <vector>

#include "message_corpus.h"

using namespace mxguard;
using namespace mxguard::message;
using mxguard::testing::corpus_dir;
using mxguard::testing::envelope_of;
using mxguard::testing::read_file;
using mxguard::testing::shipped_rules;

namespace {

Classification classify_file(const std::string& name) {
  auto msg = MessageReader::from_text(read_file(corpus_dir() + "/" + name));
  return classify(msg, envelope_of(msg), shipped_rules());
}

}  // namespace

TEST_CASE("the shipped rule tables load", "[message][classifier]") {
  const Rules& r = shipped_rules();
  CHECK(r.subjects);
  CHECK(r.senders);
  CHECK(r.headers);
  CHECK(r.body);
}

TEST_CASE("every corpus message gets the class its file name says", "[message][classifier]") {
  // File names start with the expected class word: dsn-, bounce-, autoreply-, challenge-,
  // virus-, mdn-, ordinary-.
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(corpus_dir())) {
    std::string name = entry.path().filename().string();
    if (entry.path().extension() != ".eml") continue;
    ++files;
    std::string word = name.substr(0, name.find('-'));
    auto expected = parse_class_word(word);
    REQUIRE(expected);
    Classification c = classify_file(name);
    INFO(name << ": got " << to_string(c.cls) << " (" << c.reason << ")");
    CHECK(c.cls == *expected);
  }
  CHECK(files >= 25);
}

TEST_CASE("a Postfix DSN: per-recipient action and the returned original", "[message][dsn]") {
  Classification c = classify_file("dsn-postfix.eml");
  CHECK(c.cls == MessageClass::Dsn);
  CHECK(c.reporting_mta == "mx1.remote.test");
  REQUIRE(c.dsn.size() == 1);
  CHECK(c.dsn[0].final_recipient == "bob@remote.test");
  CHECK(c.dsn[0].action == "failed");
  CHECK(c.dsn[0].status == "5.1.1");
  CHECK(c.original.source == "message/rfc822");
  CHECK(c.original.message_id == "<a1b2c3d4-5e6f@example.com>");
  CHECK(c.original.from == "alice@example.com");
  REQUIRE(c.original.received.size() == 2);
  CHECK(c.original.received[0].find("mx-out.example.com") != std::string::npos);
}

TEST_CASE("a delayed DSN reports the delayed action", "[message][dsn]") {
  Classification c = classify_file("dsn-delayed-sendmail.eml");
  REQUIRE(c.dsn.size() == 1);
  CHECK(c.dsn[0].action == "delayed");
  CHECK(c.original.source == "text/rfc822-headers");
  CHECK(c.original.message_id == "<delay-1@example.com>");
}

TEST_CASE("RFC 2231 report-type and split boundary are understood", "[message][dsn]") {
  Classification c = classify_file("dsn-office365-rfc2231.eml");
  CHECK(c.cls == MessageClass::Dsn);
  CHECK(c.original.message_id == "<o365-77@example.com>");
}

TEST_CASE("free-text bounces: the quoted original is found", "[message][bounce]") {
  struct Row {
    const char* file;
    const char* message_id;
    const char* source;
  };
  const Row rows[] = {
      {"bounce-exim.eml", "<5544aa-77@example.com>", "quoted text"},
      {"bounce-qmail.eml", "<qm-8877@example.com>", "quoted text"},
      {"bounce-yahoo.eml", "<yh-5678@example.com>", "quoted text"},
      {"bounce-mdaemon.eml", "<md-909@example.com>", "quoted text"},
      {"bounce-lotus.eml", "<lotus-42@example.com>", "message/rfc822"},
      {"bounce-exchange-legacy.eml", "<inv-2024-117@example.com>", "message/rfc822"},
  };
  for (const Row& r : rows) {
    INFO(r.file);
    Classification c = classify_file(r.file);
    CHECK(c.cls == MessageClass::Bounce);
    CHECK(c.original.message_id == r.message_id);
    CHECK(c.original.source == r.source);
    CHECK_FALSE(c.original.received.empty());
  }
}

TEST_CASE("headers suffice only for plainly ordinary mail", "[message][classifier]") {
  auto assess = [](const std::string& name) {
    auto msg = MessageReader::from_text(read_file(corpus_dir() + "/" + name));
    return assess_headers(msg, envelope_of(msg), shipped_rules());
  };
  CHECK(assess("ordinary-personal.eml").headers_suffice);
  CHECK(assess("ordinary-undeliverable-promises.eml").headers_suffice);
  CHECK_FALSE(assess("ordinary-null-sender-notification.eml").headers_suffice);
  auto dsn = assess("dsn-postfix.eml");
  CHECK(dsn.cls == MessageClass::Dsn);
  CHECK(dsn.class_final);
  CHECK_FALSE(dsn.headers_suffice);
  auto exim = assess("bounce-exim.eml");
  CHECK(exim.cls == MessageClass::Bounce);
  CHECK_FALSE(exim.headers_suffice);
}

TEST_CASE("an MDN and a bounce-sender address", "[message][classifier]") {
  CHECK(classify_file("mdn-read-receipt.eml").cls == MessageClass::Mdn);
  const Rules& r = shipped_rules();
  CHECK(is_bounce_sender("", r));
  CHECK(is_bounce_sender("MAILER-DAEMON@remote.test", r));
  CHECK(is_bounce_sender("postmaster@remote.test", r));
  CHECK_FALSE(is_bounce_sender("alice@example.com", r));
}

TEST_CASE("a rule table with a result that is not a class fails at load, naming the line",
          "[message][classifier]") {
  auto dir = std::filesystem::temp_directory_path() / "mxguard-rules-test";
  std::filesystem::create_directories(dir);
  {
    std::ofstream f(dir / "bounce-subjects.regexp");
    f << "# comment\n/^x/ bounce\n/^y/ REJECT\n";
  }
  auto r = load_rules(dir.string(), false);
  REQUIRE_FALSE(r);
  CHECK(r.error().line == 3);
  auto missing = load_rules((dir / "nope").string(), true);
  CHECK_FALSE(missing);
  std::filesystem::remove_all(dir);
}

TEST_CASE("encoded words are decoded to UTF-8 whatever their charset", "[message][mime]") {
  struct Row {
    const char* encoded;
    const char* utf8;
  };
  const Row rows[] = {
      {"=?iso-8859-1?q?R=E9ponse_automatique?=", "Réponse automatique"},
      {"=?ISO-8859-1?Q?Abwesenheitsnotiz:_B=FCro?=", "Abwesenheitsnotiz: Büro"},
      {"=?iso-8859-2?q?Odpowied=BC_automatyczna?=", "Odpowiedź automatyczna"},
      {"=?koi8-r?b?4dfUz8/U18XU?=", "Автоответ"},
      {"=?windows-1251?b?wOLy7u7y4uXy?=", "Автоответ"},
      {"=?iso-2022-jp?b?GyRCPCtGMDF+RXobKEI=?=", "自動応答"},
      {"=?gb2312?b?19S2r7vYuLQ=?=", "自动回复"},
      {"=?big5?b?ptuwyqZewtA=?=", "自動回覆"},
      {"=?utf-8*en?q?Automatic_reply?=", "Automatic reply"},
      // A character split over two words of one charset is joined before conversion.
      {"=?utf-8?b?6Ieq5Q==?= =?utf-8?b?i5Xlvw==?=\n =?utf-8?b?nOetlA==?=", "自動応答"},
      {"=?koi8-r?b?4dfUzw==?= =?koi8-r?b?z9TXxdQ=?= (x)", "Автоответ (x)"},
      // White space between an encoded word and plain text stays.
      {"=?iso-8859-1?q?R=E9ponse?= automatique", "Réponse automatique"},
      // Unknown charsets keep their bytes; broken words stay as they are.
      {"=?x-no-such-charset?q?caf=E9?=", "caf\xE9"},
      {"=?utf//TRANSLIT?q?a?=", "a"},
      {"=?iso-8859-1?x?abc?=", "=?iso-8859-1?x?abc?="},
  };
  for (const Row& r : rows) {
    INFO(r.encoded);
    CHECK(decode_words(r.encoded) == r.utf8);
  }
}

TEST_CASE("text is converted to UTF-8 within its limit, bad bytes replaced", "[message][mime]") {
  CHECK(to_utf8("caf\xE9", "ISO-8859-1", 100) == "café");
  CHECK(to_utf8("caf\xE9", "\"iso-8859-1\"", 100) == "café");
  CHECK(to_utf8("caf\xE9", "iso-8859-1", 4) == "caf");  // é would not fit whole
  CHECK(to_utf8("plain", "iso-2022-jp", 100) == "plain");
  CHECK(to_utf8("\x1b$B<+F0\x31~Ez\x1b(B", "ISO-2022-JP", 100) == "自動応答");
  CHECK(to_utf8("a\xFF\xFE"
                "b",
                "utf-8", 100) ==
        "a\xFF\xFE"
        "b");                                              // UTF-8 is not checked
  CHECK(to_utf8("\xA4\xA2\xFF", "euc-jp", 100) == "あ?");  // a byte EUC-JP refuses
  CHECK(to_utf8("\xD7\xD4\xB6", "gb2312", 100) == "自");   // a cut character ends it
  std::string big(100000, '\xE9');
  CHECK(to_utf8(big, "windows-1252", 1000).size() <= 1000);
  CHECK(to_utf8(big, "koi8-r", 1000).size() <= 1000);
}

TEST_CASE("a thread converts from at most eight charsets", "[message][mime]") {
  // A subject whose words alternate among many charsets would otherwise load and unload a
  // gconv module for each word. A new thread starts with no descriptors open.
  const char* charsets[] = {"iso-8859-2", "iso-8859-5", "koi8-r",     "koi8-u",    "windows-1250",
                            "cp1251",     "cp1253",     "iso-8859-7", "iso-8859-9"};
  std::vector<std::string> got;
  std::thread t([&] {
    CHECK(to_utf8("\xE9", "x-no-such-charset", 10) == "\xE9");  // unknown: no descriptor kept
    for (const char* c : charsets)
      got.push_back(to_utf8("a\xE9", c, 10));
  });
  t.join();
  REQUIRE(got.size() == 9);
  for (std::size_t i = 0; i < 8; ++i) {
    INFO(charsets[i]);
    CHECK(got[i].size() > 2);  // converted: a two- or three-byte UTF-8 character
  }
  CHECK(got[8] == "a\xE9");  // the ninth keeps its bytes
}

namespace {

// Rule tables written for a test, in a temporary directory removed afterwards.
class TestRules {
 public:
  TestRules() : dir_(std::filesystem::temp_directory_path() / "mxguard-classifier-rules") {
    std::filesystem::create_directories(dir_);
    write("bounce-subjects.regexp",
          "/^Automatic reply/ autoreply\n/^Out of office/ autoreply weak\n"
          "/^Undeliverable:/ bounce\n/^Please confirm/ challenge\n");
    write("autoreply.regexp",
          "/^Precedence: *(junk|bulk)/ autoreply weak\n/^List-(Id|Unsubscribe): / ordinary\n"
          "/^X-Autoreply: *yes/ autoreply\n");
    write("bounce-body.regexp",
          "/^This is an automatic reply/ autoreply\n/^I am out of the office/ autoreply weak\n"
          "/^Delivery to .* failed/ bounce\n/^This is a person writing/ ordinary\n");
    write("bounce-senders.regexp", "/^noreply@/ autoreply weak\n/^confirm@/ challenge\n");
    auto r = load_rules(dir_.string(), true);
    if (!r) throw std::runtime_error(r.error().to_string());
    rules_ = std::move(r).value();
  }
  ~TestRules() { std::filesystem::remove_all(dir_); }
  const Rules& rules() const { return rules_; }

 private:
  void write(const char* name, const char* text) { std::ofstream(dir_ / name) << text; }
  std::filesystem::path dir_;
  Rules rules_;
};

std::string compose(const std::string& sender, const std::string& subject,
                    const std::string& headers, const std::string& body) {
  return "Return-Path: <" + sender + ">\nFrom: " + (sender.empty() ? "x@remote.test" : sender) +
         "\nTo: alice@example.com\nSubject: " + subject + "\n" + headers + "\n" + body + "\n";
}

}  // namespace

TEST_CASE(
    "weak matches count only beside a strong sign; lists and auto-generated mail are not "
    "automatic replies",
    "[message][classifier]") {
  TestRules t;
  struct Row {
    const char* what;
    const char* sender;
    const char* subject;
    const char* headers;
    const char* body;
    MessageClass cls;
  };
  const Row rows[] = {
      {"strong subject, weak body", "dirk@remote.test", "Automatic reply: Lunch", "",
       "I am out of the office until Monday.", MessageClass::Autoreply},
      {"weak subject, weak body: a person may write both", "dirk@remote.test", "Out of office", "",
       "I am out of the office until Monday.", MessageClass::Ordinary},
      {"weak subject, strong body", "dirk@remote.test", "Out of office", "",
       "This is an automatic reply.", MessageClass::Autoreply},
      {"a strong phrase after a weak one", "dirk@remote.test", "Out of office", "",
       "I am out of the office until Monday.\nThis is an automatic reply.",
       MessageClass::Autoreply},
      {"strong subject, a weak header", "dirk@remote.test", "Automatic reply: Lunch",
       "Precedence: junk\n", "See you.", MessageClass::Autoreply},
      {"weak subject, a weak header", "dirk@remote.test", "Out of office", "Precedence: bulk\n",
       "See you.", MessageClass::Ordinary},
      {"strong subject, a weak sender", "noreply@remote.test", "Automatic reply: Lunch", "",
       "See you.", MessageClass::Autoreply},
      {"a weak header alone", "dirk@remote.test", "Lunch", "Precedence: junk\n",
       "I am out of the office until Monday.", MessageClass::Ordinary},
      {"weak subject from the null sender", "", "Out of office", "", "See you.",
       MessageClass::Autoreply},
      {"strong subject, strong body", "dirk@remote.test", "Automatic reply: Lunch", "",
       "This is an automatic reply.", MessageClass::Autoreply},
      {"a reply to an autoreply", "dirk@remote.test", "Re: Automatic reply: Lunch", "",
       "> This is an automatic reply.\nThanks, noted.", MessageClass::Ordinary},
      {"a list relays a member's autoreply", "list-bounces@lists.test", "Automatic reply: Lunch",
       "X-Autoreply: yes\nList-Id: <team.lists.test>\n", "This is an automatic reply.",
       MessageClass::Ordinary},
      {"list headers do not hide a bounce from the null sender", "", "Undeliverable: Lunch",
       "List-Unsubscribe: <mailto:u@lists.test>\n", "Delivery to bob@remote.test failed.",
       MessageClass::Bounce},
      {"auto-generated: a notification, not a reply", "ci@build.test", "Automatic reply: Lunch",
       "Auto-Submitted: auto-generated\n", "This is an automatic reply.", MessageClass::Ordinary},
      {"auto-generated from the null sender, an autoreply subject", "", "Out of office",
       "Auto-Submitted: auto-generated\n", "See you.", MessageClass::Ordinary},
      {"auto-generated bounces stay bounces", "", "Undeliverable: Lunch",
       "Auto-Submitted: auto-generated (failure)\n", "See you.", MessageClass::Bounce},
      {"auto-replied from a real sender", "dirk@remote.test", "Lunch",
       "Auto-Submitted: auto-replied\n", "See you.", MessageClass::Autoreply},
      {"an ordinary phrase ends the body evidence", "dirk@remote.test", "Automatic reply: Lunch",
       "", "This is a person writing.\nThis is an automatic reply.", MessageClass::Ordinary},
      {"a challenge sender", "confirm@cr.test", "Please confirm your message", "", "Click.",
       MessageClass::Challenge},
  };
  for (const Row& r : rows) {
    INFO(r.what);
    auto msg = MessageReader::from_text(compose(r.sender, r.subject, r.headers, r.body));
    Classification c = classify(msg, Envelope{r.sender}, t.rules());
    INFO("got " << to_string(c.cls) << " (" << c.reason << ")");
    CHECK(c.cls == r.cls);
    // The end-of-headers view never calls a message ordinary that the body makes automatic.
    HeaderAssessment a = assess_headers(msg, Envelope{r.sender}, t.rules());
    if (a.headers_suffice) CHECK(c.cls == MessageClass::Ordinary);
  }
  CHECK(is_bounce_sender("confirm@cr.test", t.rules()));
  CHECK_FALSE(is_bounce_sender("noreply@remote.test", t.rules()));  // a weak match: a hint only
}

TEST_CASE("a DSN from a challenge-response sender is a challenge", "[message][classifier]") {
  TestRules t;
  const std::string dsn =
      "Return-Path: <confirm@cr.test>\nFrom: confirm@cr.test\nTo: alice@example.com\n"
      "Subject: Re: Lunch\nContent-Type: multipart/report; report-type=delivery-status; "
      "boundary=b\n\n--b\nContent-Type: text/plain\n\nHeld.\n--b\n"
      "Content-Type: message/delivery-status\n\nReporting-MTA: dns; cr.test\n\n"
      "Final-Recipient: rfc822; bob@cr.test\nAction: failed\nStatus: 4.7.0\n--b--\n";
  auto msg = MessageReader::from_text(dsn);
  Classification c = classify(msg, Envelope{"confirm@cr.test"}, t.rules());
  CHECK(c.cls == MessageClass::Challenge);
  CHECK(c.reason == "sender");
  CHECK(c.dsn.size() == 1);
  CHECK(assess_headers(msg, Envelope{"confirm@cr.test"}, t.rules()).cls == MessageClass::Challenge);
}

TEST_CASE("a rule result is a class word, optionally followed by 'weak'", "[message][classifier]") {
  CHECK_FALSE(validate_class_result("autoreply"));
  CHECK_FALSE(validate_class_result("autoreply weak"));
  CHECK_FALSE(validate_class_result("bounce  WEAK"));
  CHECK(validate_class_result("autoreply strong"));
  CHECK(validate_class_result("REJECT"));
}

TEST_CASE("wider formats: the sign that recognises each notice", "[message][classifier]") {
  struct Row {
    const char* file;
    MessageClass cls;
    const char* reason;
  };
  const Row rows[] = {
      // Autoreplies without Auto-Submitted, subjects RFC 2047-encoded in their own charsets.
      {"autoreply-de-abwesenheitsnotiz.eml", MessageClass::Autoreply, "subject"},  // ISO-8859-1
      {"autoreply-fr-reponse-automatique.eml", MessageClass::Autoreply, "subject"},
      {"autoreply-es-respuesta-automatica.eml", MessageClass::Autoreply, "subject"},  // UTF-8
      {"autoreply-it-risposta-automatica.eml", MessageClass::Autoreply, "subject"},   // + junk
      {"autoreply-pt-resposta-automatica.eml", MessageClass::Autoreply, "subject"},
      {"autoreply-nl-automatisch-antwoord.eml", MessageClass::Autoreply, "subject"},
      {"autoreply-pl-odpowiedz-automatyczna.eml", MessageClass::Autoreply, "subject"},  // 8859-2
      {"autoreply-ru-avtootvet.eml", MessageClass::Autoreply, "subject"},               // KOI8-R
      {"autoreply-ja-jidou-outou.eml", MessageClass::Autoreply, "subject"},   // ISO-2022-JP
      {"autoreply-zh-zidong-huifu.eml", MessageClass::Autoreply, "subject"},  // GB2312
      {"autoreply-lotus-auto-out-of-office.eml", MessageClass::Autoreply, "subject"},
      {"autoreply-null-sender-thanks.eml", MessageClass::Autoreply, "subject"},
      {"autoreply-noreply-helpdesk.eml", MessageClass::Autoreply, "subject"},
      // Challenge-response.
      {"challenge-boxbe-style.eml", MessageClass::Challenge, "body"},
      {"challenge-bluebottle-style.eml", MessageClass::Challenge, "header X-Bluebottle-Request"},
      {"challenge-spamfilter-human.eml", MessageClass::Challenge, "body"},
      // Content filters and virus scanners known by a header or their wording.
      {"virus-content-filter-notice.eml", MessageClass::VirusNotice,
       "header X-Content-Filter-Notice"},
      {"virus-mailscanner-warning.eml", MessageClass::VirusNotice, "subject"},
      // Groupware, webmail and ISP notices.
      {"bounce-groupwise-status.eml", MessageClass::Bounce, "subject"},
      {"bounce-webmail-delivery-problem.eml", MessageClass::Bounce, "subject"},
      {"bounce-exchange-ndr-header.eml", MessageClass::Bounce,
       "header X-MS-Exchange-Message-Is-Ndr"},
      {"bounce-de-unzustellbar.eml", MessageClass::Bounce, "subject"},
      {"bounce-zh-xitong-tuixin.eml", MessageClass::Bounce, "subject"},
      {"mdn-groupwise-opened.eml", MessageClass::Mdn, "subject"},
  };
  for (const Row& r : rows) {
    INFO(r.file);
    Classification c = classify_file(r.file);
    CHECK(to_string(c.cls) == to_string(r.cls));
    CHECK(c.reason == r.reason);
  }
  // The German bounce quotes the original in its text, in ISO-8859-1.
  CHECK(classify_file("bounce-de-unzustellbar.eml").original.message_id == "<de-4471@example.com>");
}

TEST_CASE("mail that only looks automatic stays ordinary", "[message][classifier]") {
  for (const char* file : {
           "ordinary-reply-to-out-of-office.eml",  // "Re: Automatic reply: ..."
           "ordinary-aw-abwesenheitsnotiz.eml",    // "AW: Abwesenheitsnotiz: ..."
           "ordinary-person-out-of-office.eml",    // weak subject, weak phrase
           "ordinary-ja-fuzai-oshirase.eml",       // the same in Japanese
           "ordinary-list-relayed-autoreply.eml",  // a list relays a member's autoreply
           "ordinary-list-reply-out-of-office.eml",
           "ordinary-tracker-auto-generated.eml",  // Auto-Submitted: auto-generated
           "ordinary-ci-build-failed.eml",
           "ordinary-contact-form-thanks.eml",  // noreply@, Precedence: bulk, weak words only
           "ordinary-signup-confirm.eml",       // a sign-up confirmation is no challenge
           "ordinary-scanned-clean.eml",        // X-Virus-Scanned, X-Virus-Status: Clean
           "ordinary-vacation-deals.eml",
       }) {
    INFO(file);
    Classification c = classify_file(file);
    INFO("got " << to_string(c.cls) << " (" << c.reason << ")");
    CHECK(c.cls == MessageClass::Ordinary);
  }
  // Null-sender notices (calendars, HR tools) whose subjects begin with a weak word.
  struct Row {
    const char* subject;
    MessageClass cls;
  };
  const Row null_sender_rows[] = {
      {"Urlaubsantrag genehmigt", MessageClass::Ordinary},
      {"Vacationing in Rome: the photos", MessageClass::Ordinary},
      {"Holiday: Christmas Day", MessageClass::Ordinary},
      {"Absences this week", MessageClass::Ordinary},
      {"Urlaub: bis 3. Juni", MessageClass::Autoreply},
      {"Vacation (back on Monday)", MessageClass::Autoreply},
      {"=?utf-8?B?5LiN5Zyo77ya5YWt5pyI?=", MessageClass::Autoreply},  // "不在：六月"
  };
  for (const Row& r : null_sender_rows) {
    INFO(r.subject);
    auto m = MessageReader::from_text(compose("", r.subject, "", "Noted."));
    CHECK(to_string(classify(m, Envelope{""}, shipped_rules()).cls) == to_string(r.cls));
  }
  // List mail is settled at the end of headers: its body is not read.
  auto msg =
      MessageReader::from_text(read_file(corpus_dir() + "/ordinary-list-relayed-autoreply.eml"));
  HeaderAssessment a = assess_headers(msg, envelope_of(msg), shipped_rules());
  CHECK(a.cls == MessageClass::Ordinary);
  CHECK(a.headers_suffice);
}
