// Check: one small class per thing mxguard rejects (one file each under lib/checks/).
// A check has a name (used in config as check.NAME, in logs and metrics), the stages it runs
// at, the central exemptions it honours, and evaluate(), which returns nothing ("no
// objection") or a complete Verdict. Checks do no I/O except through CheckContext.
// Thread-safety: checks are immutable after construction and shared by all sessions.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "mxguard/check_mode.h"
#include "mxguard/clock.h"
#include "mxguard/session.h"
#include "mxguard/verdict.h"

namespace mxguard {

struct Config;
namespace state {
class Bans;
class StateStore;
class Ledger;
}  // namespace state
namespace dns {
class RouteAnalyzer;
struct MailRoute;
}  // namespace dns

// What a check learnt about a message's content, for the offline mode (-t) and tests.
struct ContentFinding {
  bool judged = false;  // the check applied (null or bounce sender)
  std::string cls;      // message class, e.g. "dsn"
  std::string class_reason;
  std::string proof;     // which proof held, e.g. "batv-recipient"; empty: none
  std::string missing;   // why no proof was found
  std::string original;  // what the returned message showed, "source msgid from=addr"
};

// What a check may reach beyond the session: the only door to the world. Made by the adapter
// (or the offline mode) for one stage run.
struct CheckContext {
  const Config& config;
  const Clock* clock = &system_clock();
  // Strikes and bans (null: no state). Process-wide, owned by StateRuntime; the adapter holds a
  // reference for the duration of the callback (see state/runtime.h).
  state::Bans* bans = nullptr;
  state::StateStore* store = nullptr;
  // The ledger of the mail we sent (null: none), for the backscatter proof.
  state::Ledger* ledger = nullptr;
  // DNS mail-route analysis (null: no DNS checks).
  const dns::RouteAnalyzer* routes = nullptr;
  // The route analysed during this stage run, shared by the DNS checks so that a recipient
  // costs one analysis (see checks/route_lookup.h).
  std::shared_ptr<const dns::MailRoute> route{};
  std::string route_domain{};
  // Whether checks in mode auto enforce yet (the ledger is warm); until then they report.
  bool auto_enforces = false;
  // Where the content checks leave what they found (the offline mode); null: nowhere.
  ContentFinding* finding = nullptr;

  // Applies a failure policy (on-dns-error, on-store-error, on-internal-error): counts it in
  // mxguard_failure_policy_total{check,policy} and logs `what` as a warning at most once a
  // minute per check and policy (at debug level the others). Returns whether to answer 4xx.
  bool failure(std::string_view check, FailureAction action, std::string_view what) const;
};

// The exemptions that the pipeline applies centrally, before a check is asked.
enum Exemption : unsigned {
  kExemptNone = 0,
  kExemptTrustedClient = 1u << 0,  // authenticated client or trusted network
  kExemptAllowed = 1u << 1,        // an access table said OK for this scope
  kExemptPostmaster = 1u << 2,     // recipient postmaster@ etc., sender double-bounce@ etc.
  kExemptAll = kExemptTrustedClient | kExemptAllowed | kExemptPostmaster,
};

class Check {
 public:
  virtual ~Check() = default;
  virtual std::string_view name() const = 0;
  virtual StageSet stages() const = 0;
  virtual unsigned exemptions() const { return kExemptAll; }
  // Whether the check wants to see, at Stage::Rcpt, recipients the MTA already refused itself
  // (Postfix SMFIP_RCPT_REJ). Its verdict on them is ignored: the MTA has answered already.
  virtual bool sees_mta_rejections() const { return false; }
  virtual std::optional<Verdict> evaluate(Stage stage, const Session& session,
                                          CheckContext& ctx) const = 0;
};

}  // namespace mxguard
