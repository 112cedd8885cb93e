// The DNS checks through the real pipeline and a fake resolver: replies, the per-recipient
// route shared by the checks, local domains, the null sender, exemptions, on-dns-error.
#include <catch2/catch.hpp>

#include "fake_resolver.h"
#include "mxguard/checks/route_lookup.h"
#include "mxguard/clock.h"
#include "mxguard/config.h"
#include "mxguard/dns/mail_route.h"
#include "mxguard/log.h"
#include "mxguard/metrics.h"
#include "mxguard/policy.h"
#include "source_tree.h"

using namespace mxguard;
using mxguard::test::FakeResolver;

namespace {

struct Fixture {
  std::shared_ptr<FakeResolver> fake = std::make_shared<FakeResolver>();
  std::shared_ptr<const Config> cfg;
  std::shared_ptr<const Policy> policy;
  std::shared_ptr<dns::RouteAnalyzer> routes;
  Session session;

  explicit Fixture(std::vector<std::string> args = {}) {
    args.push_back("--local-domains=ours.test");
    auto c = test::load_hermetic(args);
    REQUIRE(c);
    cfg = *c;
    policy = build_policy(cfg);
    routes = std::make_shared<dns::RouteAnalyzer>(fake, cfg->dns.bogus_networks);
    session.policy = policy;
    session.tx.has_sender = true;
    session.tx.sender = Address::parse("someone@sender.test");
    fake->mx("sender.test", {{10, "mx.good.test"}});
    fake->mx("good.test", {{10, "mx.good.test"}}).addr("mx.good.test", "93.184.216.34");
    fake->mx("nullmx.test", {{0, "."}});
    fake->mx("loop.test", {{10, "mx.loop.test"}}).addr("mx.loop.test", "127.0.0.1");
    fake->exists("implicit.test").addr("implicit.test", "10.0.0.1");
    fake->exists("noaddr.test");
    fake->mx("mixed.test", {{10, "mx.loop.test"}, {20, "mx.good.test"}});
    fake->fail("servfail.test", dns::RrType::Mx);
  }
  std::optional<Verdict> rcpt(const std::string& to) {
    session.tx.rcpt = Address::parse(to);
    CheckContext ctx{*cfg};
    ctx.routes = routes.get();
    return policy->pipeline.run(Stage::Rcpt, session, ctx);
  }
  std::optional<Verdict> mail(const std::string& from) {
    session.tx.sender = Address::parse(from);
    CheckContext ctx{*cfg};
    ctx.routes = routes.get();
    return policy->pipeline.run(Stage::Mail, session, ctx);
  }
};

}  // namespace

TEST_CASE("recipient domains are judged by their mail route", "[dns][checks]") {
  struct Row {
    const char* rcpt;
    int code;  // 0: no objection
    const char* enhanced;
    const char* text;
    const char* check;
  };
  const Row rows[] = {
      {"user@good.test", 0, "", "", ""},
      {"user@mixed.test", 0, "", "", ""},
      {"user@nullmx.test", 556, "5.1.10", "<user@nullmx.test>: Recipient address has null MX",
       "null-mx"},
      {"user@loop.test", 550, "5.1.2",
       "<user@loop.test>: Recipient address rejected: Domain MX in loopback network 127.0.0.0/8",
       "bogus-mx"},
      {"user@implicit.test", 550, "5.1.2",
       "<user@implicit.test>: Recipient address rejected: Domain address in private network "
       "10.0.0.0/8",
       "bogus-mx"},
      {"user@nx.test", 550, "5.1.2", "<user@nx.test>: Recipient address rejected: Domain not found",
       "no-mail-domain"},
      {"user@noaddr.test", 550, "5.1.2",
       "<user@noaddr.test>: Recipient address rejected: Domain has no mail exchanger with an "
       "address",
       "no-mail-domain"},
      {"user@servfail.test", 451, "4.4.3",
       "<user@servfail.test>: Temporary DNS failure looking up servfail.test; try again later",
       "null-mx"},
      {"user@ours.test", 0, "", "", ""},        // local: never looked up
      {"postmaster@loop.test", 0, "", "", ""},  // exempt recipient
  };
  Fixture f;
  for (const auto& row : rows) {
    CAPTURE(row.rcpt);
    auto v = f.rcpt(row.rcpt);
    if (!row.code) {
      CHECK_FALSE(v);
      continue;
    }
    REQUIRE(v);
    REQUIRE(v->reply);
    CHECK(v->reply->code() == row.code);
    CHECK(v->reply->enhanced() == row.enhanced);
    CHECK(v->reply->text() == row.text);
    CHECK(v->check == row.check);
  }
}

TEST_CASE("one recipient costs one route analysis for all rcpt checks", "[dns][checks]") {
  Fixture f;
  f.rcpt("user@good.test");  // MX + A + AAAA of the one exchanger
  CHECK(f.fake->queries == 3);
  f.rcpt("user@ours.test");
  CHECK(f.fake->queries == 3);
}

TEST_CASE("DNS checks apply to authenticated and trusted clients", "[dns][checks]") {
  Fixture f;
  f.session.auth_authen = "webform";
  f.session.trusted_network = true;
  auto v = f.rcpt("user@loop.test");
  REQUIRE(v);
  CHECK(v->check == "bogus-mx");
}

TEST_CASE("on-dns-error = accept lets undecidable recipients through", "[dns][checks]") {
  Fixture f({"--on-dns-error=accept"});
  CHECK_FALSE(f.rcpt("user@servfail.test"));
  CHECK_FALSE(f.rcpt("user@" + std::string(70, 'a') + ".test"));
}

TEST_CASE("a malformed recipient domain tempfails by default, never 5xx", "[dns][checks]") {
  Fixture f;
  auto v = f.rcpt("user@" + std::string(70, 'a') + ".test");
  REQUIRE(v);
  CHECK(v->action == Action::Tempfail);
  CHECK(f.fake->queries == 0);
}

TEST_CASE("a recipient domain is looked up as its A-label and answered as given",
          "[dns][checks][address]") {
  Fixture f;
  f.fake->mx("xn--bcher-kva.test", {{0, "."}});
  auto v = f.rcpt(
      "<user@B\xc3\xbc"
      "cher.TEST.>");  // Bücher.TEST.
  REQUIRE(v);
  CHECK(v->check == "null-mx");
  // UTF-8 cannot go into a reply: the text without the address; the log line keeps it as given.
  CHECK(v->reply->text() == "Recipient address has null MX");
  CHECK(format_decision(f.session, Stage::Rcpt, *v)
            .find(" to=<user@B\xc3\xbc"
                  "cher.TEST.> ") != std::string::npos);
  CHECK_FALSE(f.rcpt("user@OURS.test."));  // local: never looked up
}

TEST_CASE("what cannot be an A-label reaches the route analysis as given",
          "[dns][checks][address]") {
  Fixture f;
  CheckContext ctx{*f.cfg};
  ctx.routes = f.routes.get();
  auto route = [&](const char* rcpt) {
    ctx.route.reset();
    return checks::route_for(ctx, f.cfg->site, Address::parse(rcpt));
  };
  const dns::MailRoute* r = route("user@\xff\xfe.TEST.");
  REQUIRE(r);
  CHECK(r->kind == dns::RouteKind::Invalid);
  CHECK(r->domain == "\xff\xfe.TEST.");
  CHECK(r->detail == f.routes->analyse("\xff\xfe.TEST.", dns::RouteDepth::Full).detail);
  r = route("user@.");
  REQUIRE(r);
  CHECK(r->kind == dns::RouteKind::Invalid);
  CHECK(r->domain == ".");
  r = route("user@[IPv6:2001:DB8::1]");
  REQUIRE(r);
  CHECK(r->kind != dns::RouteKind::Invalid);
  CHECK(r->domain == "[IPv6:2001:DB8::1]");
  CHECK_FALSE(route("postmaster"));
  CHECK_FALSE(route("user@"));
}

TEST_CASE("sender domains with null MX are refused at MAIL; the null sender is not",
          "[dns][checks]") {
  Fixture f;
  auto v = f.mail("news@nullmx.test");
  REQUIRE(v);
  CHECK(v->reply->to_string() == "550 5.7.27 <news@nullmx.test>: Sender address has null MX");
  CHECK_FALSE(f.mail(""));
  CHECK_FALSE(f.mail("me@good.test"));
  CHECK_FALSE(f.mail("me@loop.test"));  // unroutable-sender is off by default
  CHECK_FALSE(f.mail("me@ours.test"));
}

TEST_CASE("unroutable-sender, when on, refuses senders mail cannot return to", "[dns][checks]") {
  Fixture f({"--check.unroutable-sender=on"});
  auto v = f.mail("me@loop.test");
  REQUIRE(v);
  CHECK(v->reply->to_string() ==
        "550 5.1.8 <me@loop.test>: Sender address rejected: Domain MX in loopback network "
        "127.0.0.0/8");
  v = f.mail("me@nx.test");
  REQUIRE(v);
  CHECK(v->reply->code() == 550);
  CHECK(v->reply->enhanced() == "5.1.8");
  CHECK_FALSE(f.mail("me@good.test"));
}

TEST_CASE("DNS options are validated with the place of a bad value", "[dns][config]") {
  struct Row {
    const char* arg;
    bool ok;
  };
  const Row rows[] = {
      {"--dns-server=127.0.0.1:5353", true},
      {"--dns-server=[::1]:53", true},
      {"--dns-server=ns.example", false},
      {"--dns-server=127.0.0.1:99999", false},
      {"--dns-timeout=500ms", true},
      {"--dns-timeout=0", false},
      {"--dns-timeout=fast", false},
      {"--dns-retries=2", true},
      {"--dns-retries=-1", false},
      {"--on-dns-error=accept", true},
      {"--on-dns-error=reject", false},
      {"--dns-cache-size=0", true},
      {"--dns-cache-max-ttl=1h", true},
      {"--dns-deadline=5s", true},
      {"--bogus-networks=/nonexistent", false},
  };
  for (const auto& row : rows) {
    CAPTURE(row.arg);
    auto c = test::load_hermetic({row.arg});
    CHECK(bool(c) == row.ok);
    if (!c) CHECK(c.error().where == "command line");
  }
}

TEST_CASE("a malformed bogus-networks line fails the config naming file and line",
          "[dns][config]") {
  const std::string path = "/tmp/mxguard-unit-bogus.cidr";
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    REQUIRE(f);
    std::fputs("# ok\n127.0.0.0/8 loopback\n300.0.0.0/8 nonsense\n", f);
    std::fclose(f);
  }
  auto c = test::load_hermetic({"--bogus-networks=" + path});
  REQUIRE_FALSE(c);
  CHECK(c.error().where == path + ":3");
  std::remove(path.c_str());
}

TEST_CASE("every use of on-dns-error is counted by check and policy", "[dns][checks][metrics]") {
  // The counters are process-wide: compare before and after.
  const auto tempfails = [] { return metrics().failure_policies("null-mx", "tempfail"); };
  const auto accepts = [] { return metrics().failure_policies("null-mx", "accept"); };
  Fixture f;
  const auto t0 = tempfails(), a0 = accepts();
  for (int i = 0; i < 3; ++i) {
    auto v = f.rcpt("user@servfail.test");
    REQUIRE(v);
    CHECK(v->reply->code() == 451);
  }
  CHECK(tempfails() == t0 + 3);  // counted every time, though logged once a minute
  CHECK(accepts() == a0);
  CHECK_FALSE(f.rcpt("user@good.test"));
  CHECK(tempfails() == t0 + 3);  // an answer is no failure

  Fixture lenient({"--on-dns-error=accept"});
  CHECK_FALSE(lenient.rcpt("user@servfail.test"));
  CHECK(accepts() == a0 + 1);
  CHECK(tempfails() == t0 + 3);
}

TEST_CASE("a failure policy's log line comes once a minute per check and policy, by the clock",
          "[checks][log]") {
  LogLimiter limiter(std::chrono::seconds(60));
  ManualClock clock;
  CHECK(limiter.admit("null-mx/tempfail", clock.now()) == 0u);
  CHECK_FALSE(limiter.admit("null-mx/tempfail", clock.now()));
  CHECK(limiter.admit("bogus-mx/tempfail", clock.now()) == 0u);  // its own key
  clock.advance(std::chrono::seconds(59));
  CHECK_FALSE(limiter.admit("null-mx/tempfail", clock.now()));
  clock.advance(std::chrono::seconds(1));
  CHECK(limiter.admit("null-mx/tempfail", clock.now()) == 2u);  // two were held back
  CHECK_FALSE(limiter.admit("null-mx/tempfail", clock.now()));
}
