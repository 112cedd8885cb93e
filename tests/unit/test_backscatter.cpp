#include <sys/stat.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "message_corpus.h"
#include "mxguard/batv/prvs.h"
#include "mxguard/batv/tag.h"
#include "mxguard/check_registry.h"
#include "mxguard/checks/backscatter.h"
#include "mxguard/checks/batv.h"
#include "mxguard/config.h"
#include "mxguard/content.h"
#include "mxguard/policy.h"
#include "mxguard/state/memory_store.h"
#include "source_tree.h"

using namespace mxguard;
using mxguard::testing::corpus_dir;
using mxguard::testing::read_file;
using mxguard::testing::shipped_rules;

namespace {

constexpr std::time_t kNow = 1715688000;

// RCPT as the pipeline and the adapter handle it: the tag verified once, then kept.
void accept_recipient(Session& s) {
  const ManualClock clock{Clock::time_point(std::chrono::seconds(kNow))};
  CheckContext ctx{*s.policy->config};
  ctx.clock = &clock;
  content::prepare_stage(Stage::Rcpt, s, ctx);
  content::on_recipient(s);
}

struct Fixture {
  std::shared_ptr<Config> cfg = std::make_shared<Config>();
  std::shared_ptr<Policy> policy = std::make_shared<Policy>();
  Session s;
  std::shared_ptr<const batv::KeyRing> keys = std::make_shared<const batv::KeyRing>(
      batv::KeyRing::from_keys({{1, "backscatter-test-key-0123456789"}}, 1));

  Fixture() {
    cfg->site.local_domains = {"example.com"};
    cfg->message.rules = std::make_shared<const message::Rules>(shipped_rules());
    cfg->checks[index(CheckId::Backscatter)] = CheckMode::On;
    cfg->checks[index(CheckId::Batv)] = CheckMode::On;
    policy->config = cfg;
    s.policy = policy;
    s.tx.has_sender = true;
  }
  void relays() { cfg->backscatter.our_relay_names = {"mx-out.example.com"}; }
  // The message as the milter would deliver it: headers, then body in small chunks.
  void deliver(const std::string& text, std::string sender, std::vector<std::string> rcpts) {
    s.tx.sender = Address::parse(sender);
    for (auto& r : rcpts) {
      s.tx.rcpt = Address::parse(r);
      s.tx.recipients.push_back(s.tx.rcpt);
      accept_recipient(s);
    }
    auto m = message::MessageReader::from_text(text);
    for (const auto& h : m.headers())
      content::feed_header(s, h.name, h.value);
    content::feed_eoh(s);
    std::string_view body = m.body();
    for (std::size_t i = 0; i < body.size(); i += 1000)
      content::feed_body(s, body.substr(i, 1000));
    content::feed_eom(s);
  }
  void deliver_file(const std::string& name, std::string sender,
                    std::vector<std::string> rcpts = {"victor@example.com"}) {
    deliver(read_file(corpus_dir() + "/" + name), std::move(sender), std::move(rcpts));
  }
  checks::BackscatterFinding judge(Stage st) {
    return checks::judge_backscatter(st, s, backscatter_settings(*cfg), kNow);
  }
};

std::string with_tag(const std::string& text, const std::string& msg_id, const std::string& tag) {
  // Puts an X-Mxguard-Tag into the returned original, right before its Message-ID line.
  std::string needle = "Message-ID: " + msg_id;
  auto at = text.find(needle);
  REQUIRE(at != std::string::npos);
  std::string out = text;
  out.insert(at, "X-Mxguard-Tag: " + tag + "\n");
  return out;
}

}  // namespace

TEST_CASE("a forged bounce of spam we never sent gets 550 5.7.1 at end of message",
          "[backscatter]") {
  Fixture f;
  f.relays();
  f.deliver_file("dsn-forged-spam-backscatter.eml", "");
  auto eoh = f.judge(Stage::Eoh);
  CHECK(eoh.applies);
  CHECK_FALSE(eoh.verdict);  // the body may still hold proof
  auto eom = f.judge(Stage::Eom);
  REQUIRE(eom.verdict);
  CHECK(eom.verdict->action == Action::Reject);
  CHECK(eom.verdict->reply->to_string() ==
        "550 5.7.1 we did not send the message this bounce answers");
  CHECK(eom.verdict->check == "backscatter");
  CHECK(eom.missing.find("no Received from our relays") != std::string::npos);
}

TEST_CASE("a bounce quoting our relay and our Message-ID passes (proof c)", "[backscatter]") {
  for (const char* file :
       {"dsn-postfix.eml", "dsn-sendmail.eml", "bounce-exim.eml", "bounce-qmail.eml",
        "dsn-exchange.eml", "dsn-gmail.eml", "bounce-yahoo.eml", "bounce-lotus.eml",
        "bounce-mdaemon.eml", "dsn-courier.eml", "bounce-exchange-legacy.eml"}) {
    INFO(file);
    Fixture f;
    f.relays();
    f.deliver_file(file, "");
    auto eom = f.judge(Stage::Eom);
    CHECK(eom.applies);
    CHECK_FALSE(eom.verdict);
    CHECK(eom.proof == "relay+message-id");
  }
}

TEST_CASE("the MTA's own host name is our relay without configuration", "[backscatter]") {
  // No our-relays: the returned message passed mx-out.example.com, which is the MTA mxguard
  // serves (macro j), and its Message-ID domain is ours.
  Fixture f;
  f.s.mta_hostname = "MX-OUT.example.com";
  f.deliver_file("dsn-postfix.eml", "");
  auto eom = f.judge(Stage::Eom);
  CHECK(eom.applies);
  CHECK_FALSE(eom.verdict);
  CHECK(eom.proof == "relay+message-id");
  Fixture other;
  other.s.mta_hostname = "mx-in.example.com";
  other.deliver_file("dsn-postfix.eml", "");
  CHECK(other.judge(Stage::Eom).verdict);  // another host's name proves nothing
}

TEST_CASE("our relay by address and a Message-ID subdomain count too", "[backscatter]") {
  Fixture f;
  f.cfg->backscatter.our_relay_networks.add(*net::Cidr::parse("198.51.100.0/24"));
  f.deliver_file("dsn-sendmail.eml", "");  // Message-ID <...@mail.example.com>
  CHECK(f.judge(Stage::Eom).proof == "relay+message-id");
}

TEST_CASE("relay without our Message-ID domain is not proof", "[backscatter]") {
  Fixture f;
  f.relays();
  f.cfg->site.local_domains = {"other.test"};
  f.deliver_file("dsn-postfix.eml", "");
  auto eom = f.judge(Stage::Eom);
  REQUIRE(eom.verdict);
  CHECK(eom.missing.find("Message-ID domain example.com is not ours") != std::string::npos);
  f.cfg->backscatter.our_message_id_domains = {"example.com"};
  CHECK_FALSE(f.judge(Stage::Eom).verdict);
}

TEST_CASE("a valid X-Mxguard-Tag in the returned original is proof (b)", "[backscatter]") {
  Fixture f;
  f.cfg->batv.keys = f.keys;
  std::string id = "<8F3A1B2C9D.4E5F6A7B@dsl-203-0-113-99.botnet.test>";
  std::string text = read_file(corpus_dir() + "/dsn-forged-spam-backscatter.eml");
  SECTION("valid") {
    f.deliver(with_tag(text, id, batv::make_tag(*f.keys, id, kNow - 3600)), "",
              {"victor@example.com"});
    auto eom = f.judge(Stage::Eom);
    CHECK_FALSE(eom.verdict);
    CHECK(eom.proof == "mxguard-tag");
  }
  SECTION("copied from another message") {
    f.deliver(with_tag(text, id, batv::make_tag(*f.keys, "<other@example.com>", kNow)), "",
              {"victor@example.com"});
    auto eom = f.judge(Stage::Eom);
    REQUIRE(eom.verdict);
    CHECK(eom.missing.find("X-Mxguard-Tag bad-signature") != std::string::npos);
  }
  SECTION("too old") {
    f.deliver(with_tag(text, id, batv::make_tag(*f.keys, id, kNow - 40 * 86400)), "",
              {"victor@example.com"});
    CHECK(f.judge(Stage::Eom).verdict);
  }
}

TEST_CASE("a valid BATV tag on the recipient is proof (a), decided at end of headers",
          "[backscatter][batv]") {
  Fixture f;
  f.cfg->batv.keys = f.keys;
  std::string tagged = *batv::sign(*f.keys, "victor@example.com", kNow);
  f.deliver_file("dsn-forged-spam-backscatter.eml", "", {tagged});
  REQUIRE(f.s.tx.batv_valid.size() == 1);
  CHECK(f.s.tx.batv_valid[0].plain == "victor@example.com");
  CHECK(f.s.tx.skip_body);  // the body cannot change the outcome
  auto eoh = f.judge(Stage::Eoh);
  CHECK(eoh.decided);
  CHECK(eoh.proof == "batv-recipient");
  CHECK_FALSE(eoh.verdict);
  // ...and the tag comes off at end of message.
  auto changes = content::plan_changes(f.s, kNow);
  REQUIRE(changes.rewrite_rcpts.size() == 1);
  CHECK(changes.rewrite_rcpts[0].tagged == tagged);
  CHECK(changes.rewrite_rcpts[0].plain == "victor@example.com");
  CHECK_FALSE(changes.new_sender);
}

TEST_CASE("an allow table is proof (d)", "[backscatter]") {
  auto path = std::filesystem::temp_directory_path() / "mxguard-backscatter-allow";
  {
    std::ofstream t(path);
    t << "victor@example.com OK\n";
  }
  Fixture f;
  auto table = tables::load_table(path.string(), &checks::validate_allow_result);
  REQUIRE(table);
  f.cfg->backscatter.allow.push_back(*table);
  f.deliver_file("dsn-forged-spam-backscatter.eml", "");
  CHECK(f.judge(Stage::Eoh).proof == "allow-table");
  std::filesystem::remove(path);
}

TEST_CASE("autoreplies, challenges and virus notices without proof are refused", "[backscatter]") {
  struct Row {
    const char* file;
    const char* text;
  };
  const Row rows[] = {
      {"autoreply-rfc3834.eml", "we did not send the message this automatic reply answers"},
      {"challenge-tmda.eml", "we did not send the message this challenge answers"},
      {"virus-notice-plain.eml", "we did not send the message this virus notice answers"},
      {"virus-amavis.eml", "we did not send the message this virus notice answers"},
  };
  for (const Row& r : rows) {
    INFO(r.file);
    Fixture f;  // no relays configured: the challenge quotes a real message of ours
    f.deliver_file(r.file, "");
    auto eom = f.judge(Stage::Eom);
    REQUIRE(eom.verdict);
    CHECK(eom.verdict->reply->text() == r.text);
  }
}

TEST_CASE("MDNs pass by default; backscatter-check-mdn judges them", "[backscatter]") {
  Fixture f;
  f.relays();
  f.deliver_file("mdn-read-receipt.eml", "");
  CHECK_FALSE(f.judge(Stage::Eom).verdict);
  f.cfg->backscatter.check_mdn = true;
  CHECK(f.judge(Stage::Eom).verdict);
}

TEST_CASE("ordinary mail passes, frightening subjects included", "[backscatter]") {
  for (const char* file :
       {"ordinary-newsletter-delivery-failed.eml", "ordinary-undeliverable-promises.eml",
        "ordinary-out-of-office-furniture.eml", "ordinary-personal.eml"}) {
    INFO(file);
    Fixture f;
    f.relays();
    auto m = message::MessageReader::from_text(read_file(corpus_dir() + "/" + file));
    f.deliver_file(file, mxguard::testing::envelope_of(m).sender);
    auto eoh = f.judge(Stage::Eoh);
    CHECK(eoh.decided);
    CHECK_FALSE(eoh.applies);
    CHECK(f.s.tx.skip_body);
    CHECK_FALSE(f.judge(Stage::Eom).verdict);
  }
  Fixture f;
  f.relays();
  f.deliver_file("ordinary-null-sender-notification.eml", "");
  CHECK_FALSE(f.judge(Stage::Eom).verdict);
}

TEST_CASE("bounces from MAILER-DAEMON@ and postmaster@ senders are judged too", "[backscatter]") {
  Fixture f;
  f.relays();
  f.deliver_file("dsn-forged-spam-backscatter.eml", "MAILER-DAEMON@mx.victim.test");
  CHECK(f.judge(Stage::Eom).verdict);
  Fixture g;
  g.relays();
  g.deliver_file("dsn-forged-spam-backscatter.eml", "postmaster@mx.victim.test");
  CHECK(g.judge(Stage::Eom).verdict);
}

TEST_CASE("without a body proof to look for, a marked bounce is refused at end of headers",
          "[backscatter]") {
  Fixture f;
  auto path = std::filesystem::temp_directory_path() / "mxguard-backscatter-allow2";
  {
    std::ofstream t(path);
    t << "someone@example.com OK\n";
  }
  f.cfg->backscatter.allow.push_back(*tables::load_table(path.string()));
  f.deliver_file("bounce-exim.eml", "");
  auto eoh = f.judge(Stage::Eoh);
  REQUIRE(eoh.verdict);
  CHECK(eoh.verdict->reply->code() == 550);
  std::filesystem::remove(path);
}

TEST_CASE("null sender to several recipients: logged; refused when asked", "[backscatter]") {
  Fixture f;
  f.relays();
  f.deliver_file("dsn-postfix.eml", "", {"a@example.com", "b@example.com"});
  CHECK_FALSE(f.judge(Stage::Eoh).verdict);
  f.cfg->backscatter.reject_multi_rcpt = true;
  auto v = f.judge(Stage::Eoh).verdict;
  REQUIRE(v);
  CHECK(v->reason == "multi-recipient");
}

TEST_CASE("a sender-verification probe passes RCPT: nothing is judged before DATA",
          "[backscatter][batv]") {
  Fixture f;
  f.relays();
  f.cfg->batv.keys = f.keys;
  f.policy->pipeline.add(std::make_unique<checks::BatvCheck>(f.cfg->batv, f.cfg->site),
                         CheckMode::On);
  f.policy->pipeline.add(std::make_unique<checks::BackscatterCheck>(backscatter_settings(*f.cfg)),
                         CheckMode::On);
  f.s.tx.sender = Address::parse("");
  CHECK_FALSE(f.policy->pipeline.stages().has(Stage::Mail));
  f.s.tx.rcpt = Address::parse("victor@example.com");
  CheckContext ctx{*f.cfg};
  CHECK_FALSE(f.policy->pipeline.run(Stage::Mail, f.s, ctx));
  CHECK_FALSE(f.policy->pipeline.run(Stage::Rcpt, f.s, ctx));
}

TEST_CASE("batv check: bad and expired tags get 550 5.7.1 at RCPT; enforce mode at DATA",
          "[batv]") {
  Fixture f;
  f.cfg->batv.keys = f.keys;
  checks::BatvCheck check(f.cfg->batv, f.cfg->site);
  CheckContext ctx{*f.cfg};
  auto now = std::time(nullptr);
  // As the pipeline runs RCPT: the tag is verified once, then the check judges it.
  auto at_rcpt = [&](const std::string& rcpt) {
    f.s.tx.rcpt = Address::parse(rcpt);
    content::prepare_stage(Stage::Rcpt, f.s, ctx);
    return check.evaluate(Stage::Rcpt, f.s, ctx);
  };
  CHECK_FALSE(at_rcpt(*batv::sign(*f.keys, "victor@example.com", now)));
  auto expired = at_rcpt(*batv::sign(*f.keys, "victor@example.com", now - 10 * 86400));
  REQUIRE(expired);
  CHECK(expired->reason == "expired");
  CHECK(expired->reply->to_string().rfind("550 5.7.1 <prvs=", 0) == 0);
  auto bad = at_rcpt("prvs=1123abcdef=victor@example.com");
  REQUIRE(bad);
  CHECK(bad->reason == "bad-signature");
  // not our domain: not ours to judge
  CHECK_FALSE(at_rcpt("prvs=1123abcdef=victor@elsewhere.test"));

  f.cfg->batv.enforce_domains = {"example.com"};
  check = checks::BatvCheck(f.cfg->batv, f.cfg->site);
  f.s.tx.sender = Address::parse("");
  f.s.tx.recipients = {Address::parse("victor@example.com")};
  auto enforce = check.evaluate(Stage::Data, f.s, ctx);
  REQUIRE(enforce);
  CHECK(enforce->reason == "enforce-untagged");
  f.s.tx.sender = Address::parse("someone@remote.test");
  CHECK_FALSE(check.evaluate(Stage::Data, f.s, ctx));
}

TEST_CASE("outgoing mail from an authenticated local sender is signed and tagged",
          "[batv][changes]") {
  Fixture f;
  f.cfg->batv.keys = f.keys;
  f.s.auth_authen = "alice";
  f.deliver("Message-ID: <out-1@example.com>\nSubject: hi\n\nhello\n", "alice@example.com",
            {"bob@remote.test"});
  auto c = content::plan_changes(f.s, kNow);
  REQUIRE(c.new_sender);
  CHECK(batv::verify(*f.keys, *c.new_sender, kNow).status == batv::PrvsStatus::Valid);
  REQUIRE(c.add_headers.size() == 1);
  CHECK(c.add_headers[0].name == "X-Mxguard-Tag");
  CHECK(batv::verify_tag(*f.keys, c.add_headers[0].value, "<out-1@example.com>", kNow) ==
        batv::TagStatus::Valid);

  f.cfg->batv.exclude_senders = {"@example.com"};
  auto excluded = content::plan_changes(f.s, kNow);
  CHECK_FALSE(excluded.new_sender);
  CHECK(excluded.add_headers.size() == 1);

  Fixture g;  // not authenticated, not trusted: nothing to sign
  g.cfg->batv.keys = g.keys;
  g.deliver("Subject: x\n\nbody\n", "alice@example.com", {"bob@remote.test"});
  CHECK(content::plan_changes(g.s, kNow).empty());
}

TEST_CASE("content matters after DATA only to bounces, tagged recipients, signing and reports",
          "[backscatter][changes]") {
  // The adapter accepts at DATA what this says needs nothing more (SMFIS_ACCEPT).
  auto envelope = [](Fixture& f, std::string sender, std::string rcpt) {
    f.s.tx.sender = Address::parse(sender);
    f.s.tx.rcpt = Address::parse(rcpt);
    f.s.tx.recipients.push_back(f.s.tx.rcpt);
    accept_recipient(f.s);
  };
  Fixture plain;
  envelope(plain, "someone@remote.test", "victor@example.com");
  CHECK(content::wants_content(plain.s));
  CHECK_FALSE(content::content_matters(plain.s));

  Fixture bounce;  // null sender and MAILER-DAEMON@ are judged at end of message
  envelope(bounce, "", "victor@example.com");
  CHECK(content::content_matters(bounce.s));
  Fixture daemon;
  envelope(daemon, "MAILER-DAEMON@remote.test", "victor@example.com");
  CHECK(content::content_matters(daemon.s));
  daemon.cfg->checks[index(CheckId::Backscatter)] = CheckMode::Off;
  CHECK_FALSE(content::content_matters(daemon.s));

  Fixture tagged;  // a valid tag is removed at end of message, whoever sends
  tagged.cfg->batv.keys = tagged.keys;
  envelope(tagged, "someone@remote.test",
           batv::sign(*tagged.keys, "victor@example.com", kNow).value());
  CHECK(content::content_matters(tagged.s));

  Fixture out;  // an authenticated local sender is signed; an unauthenticated one is not
  out.cfg->batv.keys = out.keys;
  out.cfg->batv.sign = true;
  envelope(out, "alice@example.com", "bob@remote.test");
  CHECK_FALSE(content::content_matters(out.s));
  out.s.auth_authen = "alice";
  CHECK(content::content_matters(out.s));

  Fixture report;  // report-only: the header saying what would have been rejected
  envelope(report, "someone@remote.test", "victor@example.com");
  report.cfg->report_header = true;
  CHECK_FALSE(content::content_matters(report.s));
  report.s.tx.would_reject = "access";
  CHECK(content::content_matters(report.s));
}

TEST_CASE("config: backscatter needs a proof source; bad key file stops start-up",
          "[backscatter][config]") {
  auto c = test::load_hermetic({"--check.backscatter=on", "--ledger=no"});
  REQUIRE_FALSE(c);
  CHECK(c.error().message.find("no way to recognise bounces") != std::string::npos);

  auto good = test::load_hermetic({"--check.backscatter=on", "--our-relays",
                                   "mx-out.example.com,198.51.100.7", "--max-body-scan", "64k"});
  REQUIRE(good);
  CHECK((*good)->backscatter.our_relay_names == std::vector<std::string>{"mx-out.example.com"});
  CHECK((*good)->message.max_body_scan == 64 * 1024);
  CHECK((*good)->message.rules);

  auto path = std::filesystem::temp_directory_path() / "mxguard-loose-keys";
  {
    std::ofstream k(path);
    k << "1 a-secret-that-is-long-enough\n";
  }
  ::chmod(path.c_str(), 0644);
  auto b = test::load_hermetic({"--batv-key-file", path.string()});
  REQUIRE_FALSE(b);
  CHECK(b.error().where == path.string());
  std::filesystem::remove(path);
}

TEST_CASE("auto also enforces once BATV signing has run for a whole lifetime",
          "[backscatter][batv][auto]") {
  ManualClock clock;
  state::MemoryStore store(state::MemoryStoreOptions{}, clock);  // its expiry on the same clock
  const auto lifetime = std::chrono::milliseconds(std::chrono::hours(24 * 14));
  CHECK_FALSE(content::signing_warm(store, lifetime, clock.now()));
  content::note_signing(store, lifetime, clock.now());
  clock.advance(std::chrono::hours(24 * 14) - std::chrono::minutes(1));
  CHECK_FALSE(content::signing_warm(store, lifetime, clock.now()));
  content::note_signing(store, lifetime, clock.now());  // still signing
  clock.advance(std::chrono::minutes(1));
  CHECK(content::signing_warm(store, lifetime, clock.now()));
  // A whole lifetime without signing starts the count again.
  clock.advance(std::chrono::hours(24 * 15));
  content::note_signing(store, lifetime, clock.now());
  CHECK_FALSE(content::signing_warm(store, lifetime, clock.now()));
}
