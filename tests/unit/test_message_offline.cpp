#include <catch2/catch.hpp>

#include "message_corpus.h"
#include "mxguard/offline.h"

using namespace mxguard;
using mxguard::testing::corpus_dir;
using mxguard::testing::shipped_rules;

namespace {

std::shared_ptr<const Config> config() {
  auto cfg = std::make_shared<Config>();
  cfg->site.local_domains = {"example.com"};
  cfg->backscatter.our_relay_names = {"mx-out.example.com"};
  cfg->message.rules = std::make_shared<const message::Rules>(shipped_rules());
  return cfg;
}

}  // namespace

TEST_CASE("offline mode: class, proof and verdict per file", "[message][offline]") {
  auto cfg = config();
  auto forged = run_offline(cfg, corpus_dir() + "/dsn-forged-spam-backscatter.eml", {}, 1715688000);
  REQUIRE(forged);
  CHECK(forged->cls == "dsn");
  CHECK(forged->judged);
  CHECK(forged->proof.empty());
  CHECK(forged->verdict == "reject 550 5.7.1 we did not send the message this bounce answers");
  CHECK(format_offline(*forged).find("proof=none") != std::string::npos);

  auto ours = run_offline(cfg, corpus_dir() + "/bounce-exim.eml", {}, 1715688000);
  REQUIRE(ours);
  CHECK(ours->cls == "bounce");
  CHECK(ours->proof == "relay+message-id");
  CHECK(ours->verdict == "pass");
  CHECK(ours->original.find("<5544aa-77@example.com>") != std::string::npos);

  auto ordinary =
      run_offline(cfg, corpus_dir() + "/ordinary-newsletter-delivery-failed.eml", {}, 1715688000);
  REQUIRE(ordinary);
  CHECK(ordinary->cls == "ordinary");
  CHECK_FALSE(ordinary->judged);
  CHECK(ordinary->verdict == "pass");

  OfflineInput as_null;
  as_null.sender = "<>";
  auto null_sender = run_offline(cfg, corpus_dir() + "/ordinary-newsletter-delivery-failed.eml",
                                 as_null, 1715688000);
  REQUIRE(null_sender);
  CHECK(null_sender->judged);
  CHECK(null_sender->verdict == "pass");

  CHECK_FALSE(run_offline(cfg, "/nonexistent.eml", {}, 0));
}
