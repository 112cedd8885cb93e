#include <catch2/catch.hpp>

#include "mxguard/config.h"
#include "mxguard/pipeline.h"
#include "mxguard/policy.h"

using namespace mxguard;

namespace {

// A check that rejects everything at one stage and counts how often it was asked.
class RejectAll final : public Check {
 public:
  RejectAll(std::string name, Stage stage, unsigned exemptions, int* calls)
      : name_(std::move(name)), stage_(stage), exemptions_(exemptions), calls_(calls) {}
  std::string_view name() const override { return name_; }
  StageSet stages() const override { return {stage_}; }
  unsigned exemptions() const override { return exemptions_; }
  std::optional<Verdict> evaluate(Stage, const Session&, CheckContext&) const override {
    ++*calls_;
    return Verdict::reject(SmtpReply::fixed(550, "5.7.1", "no"), name_, "test");
  }

 private:
  std::string name_;
  Stage stage_;
  unsigned exemptions_;
  int* calls_;
};

class AllowAll final : public Check {
 public:
  std::string_view name() const override { return "allow"; }
  StageSet stages() const override { return {Stage::Rcpt}; }
  unsigned exemptions() const override { return kExemptNone; }
  std::optional<Verdict> evaluate(Stage, const Session&, CheckContext&) const override {
    return Verdict::accept("allow", "ok");
  }
};

struct Fixture {
  std::shared_ptr<Config> cfg = std::make_shared<Config>();
  std::shared_ptr<Policy> policy = std::make_shared<Policy>();
  Session session;
  Fixture() {
    cfg->exempt_recipients = {"postmaster"};
    cfg->exempt_senders = {"double-bounce"};
    policy->config = cfg;
    session.policy = policy;
    session.tx.has_sender = true;
    session.tx.sender = Address::parse("someone@example.org");
    session.tx.rcpt = Address::parse("user@example.com");
  }
  std::optional<Verdict> run(Stage s) {
    CheckContext ctx{*cfg};
    return policy->pipeline.run(s, session, ctx);
  }
};

}  // namespace

TEST_CASE("the first decisive verdict wins and later checks are not asked", "[pipeline]") {
  Fixture f;
  int first = 0, second = 0;
  f.policy->pipeline.add(std::make_unique<RejectAll>("one", Stage::Rcpt, kExemptAll, &first),
                         CheckMode::On);
  f.policy->pipeline.add(std::make_unique<RejectAll>("two", Stage::Rcpt, kExemptAll, &second),
                         CheckMode::On);
  auto v = f.run(Stage::Rcpt);
  REQUIRE(v);
  CHECK(v->check == "one");
  CHECK(first == 1);
  CHECK(second == 0);
  CHECK_FALSE(f.run(Stage::Mail));  // no check at MAIL
}

TEST_CASE("a check in report mode is asked but never enforced", "[pipeline]") {
  Fixture f;
  int calls = 0;
  f.policy->pipeline.add(std::make_unique<RejectAll>("r", Stage::Rcpt, kExemptAll, &calls),
                         CheckMode::Report);
  CHECK_FALSE(f.run(Stage::Rcpt));
  CHECK(calls == 1);
}

TEST_CASE("global report-only turns every reject into a log line", "[pipeline]") {
  Fixture f;
  int calls = 0;
  f.policy->pipeline.add(std::make_unique<RejectAll>("r", Stage::Rcpt, kExemptAll, &calls),
                         CheckMode::On);
  f.policy->pipeline.set_report_only(true);
  CHECK_FALSE(f.run(Stage::Rcpt));
  CHECK(calls == 1);
}

TEST_CASE("the first would-reject is remembered for report-header", "[pipeline]") {
  Fixture f;
  int calls = 0;
  f.policy->pipeline.add(
      std::make_unique<RejectAll>("at-connect", Stage::Connect, kExemptAll, &calls),
      CheckMode::Report);
  f.policy->pipeline.add(std::make_unique<RejectAll>("one", Stage::Rcpt, kExemptAll, &calls),
                         CheckMode::Report);
  f.policy->pipeline.add(std::make_unique<RejectAll>("two", Stage::Rcpt, kExemptAll, &calls),
                         CheckMode::Report);
  CHECK_FALSE(f.run(Stage::Connect));
  CHECK_FALSE(f.run(Stage::Rcpt));
  CHECK(f.session.would_reject == "at-connect");  // lasts for the connection
  CHECK(f.session.tx.would_reject == "one");      // the first of the transaction
  f.session.new_transaction();
  CHECK(f.session.tx.would_reject.empty());
}

TEST_CASE("an off check is never asked and its stages are not negotiated", "[pipeline]") {
  Fixture f;
  int calls = 0;
  f.policy->pipeline.add(std::make_unique<RejectAll>("r", Stage::Eom, kExemptAll, &calls),
                         CheckMode::Off);
  CHECK_FALSE(f.run(Stage::Eom));
  CHECK(calls == 0);
  CHECK_FALSE(f.policy->pipeline.stages().has(Stage::Eom));
}

TEST_CASE("exemptions are applied centrally", "[pipeline]") {
  Fixture f;
  int exempting = 0, strict = 0;
  f.policy->pipeline.add(
      std::make_unique<RejectAll>("exempting", Stage::Rcpt, kExemptAll, &exempting),
      CheckMode::Report);
  f.policy->pipeline.add(std::make_unique<RejectAll>("strict", Stage::Rcpt, kExemptNone, &strict),
                         CheckMode::Report);

  SECTION("authenticated client") {
    f.session.auth_authen = "alice";
  }
  SECTION("trusted network") {
    f.session.trusted_network = true;
  }
  SECTION("postmaster recipient, any case") {
    f.session.tx.rcpt = Address::parse("PostMaster@example.com");
  }
  SECTION("Postfix's verification sender") {
    f.session.tx.sender = Address::parse("double-bounce@mx.example");
  }
  f.run(Stage::Rcpt);
  CHECK(exempting == 0);
  CHECK(strict == 1);
}

TEST_CASE("an unexempt session is checked", "[pipeline]") {
  Fixture f;
  int calls = 0;
  f.policy->pipeline.add(std::make_unique<RejectAll>("c", Stage::Rcpt, kExemptAll, &calls),
                         CheckMode::On);
  f.session.tx.sender = Address::parse("double-bounce-not@example.org");
  CHECK(f.run(Stage::Rcpt));
  CHECK(calls == 1);
}

TEST_CASE("an OK exempts only its own recipient from later checks", "[pipeline]") {
  Fixture f;
  int calls = 0;
  f.policy->pipeline.add(std::make_unique<AllowAll>(), CheckMode::On);
  f.policy->pipeline.add(std::make_unique<RejectAll>("c", Stage::Rcpt, kExemptAll, &calls),
                         CheckMode::On);
  CHECK_FALSE(f.run(Stage::Rcpt));
  CHECK(calls == 0);
  CHECK(f.session.tx.rcpt_allowed);
}

TEST_CASE("decision lines read like Postfix's", "[pipeline]") {
  Fixture f;
  f.session.client_addr = net::IpAddress::parse("192.0.2.7");
  f.session.client_name = "unknown";
  f.session.helo = "bot.example";
  auto v =
      Verdict::reject(SmtpReply::fixed(550, "5.7.1", "<user@example.com>: no"), "access", "table");
  CHECK(format_decision(f.session, Stage::Rcpt, v) ==
        "NOQUEUE: reject: RCPT from unknown[192.0.2.7]: 550 5.7.1 <user@example.com>: no; "
        "from=<someone@example.org> to=<user@example.com> helo=<bot.example> check=access "
        "reason=table");
  v.report_only = true;
  f.session.tx.queue_id = "4XyZ1";
  CHECK(format_decision(f.session, Stage::Rcpt, v).rfind("4XyZ1: would reject: RCPT", 0) == 0);
}
