// backscatter: refuses a bounce, autoreply, challenge or virus notice that cannot show it
// answers mail we sent. It applies to the null sender and to bounce senders (MAILER-DAEMON@,
// postmaster@, the bounce-senders table), never at MAIL or RCPT: sender-verification probes
// (MAIL FROM:<>, RCPT, QUIT) must pass. Decided at end of headers when the headers suffice,
// else at end of message.
// Proof, any one of:
//   a  a recipient carried a valid BATV tag (recorded at RCPT, see content.h)
//   b  the returned original carries a valid X-Mxguard-Tag (batv/tag.h)
//   c  the returned original's Received chain names one of our-relays AND its Message-ID
//      domain is ours (local-domains or our-message-id-domains, or a subdomain of one)
//   d  the sender or a recipient is OK in a backscatter-allow table
// MDNs pass unless backscatter-check-mdn is set. A null-sender message to several recipients
// is logged, and refused with backscatter-reject-multi-recipient.
// Thread-safety: immutable.
#pragma once

#include <ctime>
#include <optional>
#include <string>

#include "mxguard/check.h"
#include "mxguard/checks/options.h"
#include "mxguard/message/classifier.h"
#include "mxguard/site.h"

namespace mxguard::batv {
class KeyRing;
}
namespace mxguard::state {
class Ledger;
}

namespace mxguard::checks {

// What the check reads: its own options and what it needs of BATV, the classifier and the site.
struct BackscatterSettings {
  BackscatterOptions proof;
  std::shared_ptr<const message::Rules> rules;  // null: no classifier tables
  std::shared_ptr<const batv::KeyRing> keys;    // null: no BATV
  int tag_max_age_days = 30;
  SiteOptions site;
};

// What the check found, for the verdict, the offline test mode and tests.
struct BackscatterFinding {
  bool applies = false;  // null or bounce sender
  bool decided = false;  // false: wait for the body
  message::MessageClass cls = message::MessageClass::Ordinary;
  std::string class_reason;
  std::string
      proof;  // "batv-recipient", "ledger", "mxguard-tag", "relay+message-id", "allow-table"
  std::string missing;       // why no proof was found, e.g. "no BATV tag; no X-Mxguard-Tag; ..."
  std::string ledger_error;  // the ledger could not answer (451 4.7.1)
  std::optional<Verdict> verdict;
  message::Classification classification;  // at end of message
};

// The judgement at Eoh or Eom; evaluate() returns its verdict. `now` for tag expiry.
// `ledger`: the ledger of our sent mail (null: none), the strongest proof; once it is warm
// (tx.ledger_warm) automatic replies from real senders are judged too.
BackscatterFinding judge_backscatter(Stage stage, const Session& session,
                                     const BackscatterSettings& settings, std::time_t now,
                                     state::Ledger* ledger = nullptr);

// Result validator for backscatter-allow tables: OK or DUNNO.
std::optional<std::string> validate_allow_result(std::string_view result);

class BackscatterCheck final : public Check {
 public:
  explicit BackscatterCheck(BackscatterSettings s) : settings_(std::move(s)) {}
  std::string_view name() const override { return "backscatter"; }
  // Header and Body are listed so the adapter negotiates them; the check judges at Eoh/Eom.
  StageSet stages() const override { return {Stage::Header, Stage::Eoh, Stage::Body, Stage::Eom}; }
  std::optional<Verdict> evaluate(Stage stage, const Session& session,
                                  CheckContext& ctx) const override;

 private:
  BackscatterSettings settings_;
};

}  // namespace mxguard::checks
