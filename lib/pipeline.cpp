#include "mxguard/pipeline.h"

#include <fmt/format.h>

#include "mxguard/config.h"
#include "mxguard/content.h"
#include "mxguard/log.h"
#include "mxguard/metrics.h"
#include "mxguard/policy.h"

namespace mxguard {

void Pipeline::add(std::unique_ptr<Check> check, CheckMode mode) {
  if (mode != CheckMode::Off) stages_ |= check->stages();
  entries_.push_back(Entry{std::move(check), mode});
}

std::vector<std::pair<std::string, CheckMode>> Pipeline::describe() const {
  std::vector<std::pair<std::string, CheckMode>> out;
  for (const auto& e : entries_)
    out.emplace_back(std::string(e.check->name()), e.mode);
  return out;
}

namespace {

// An entry with '@' names the whole address, one without a local part in any domain; both as
// given (a BATV-tagged postmaster is not the postmaster), case ignored.
bool address_listed(const std::vector<std::string>& list, const Address& address) {
  if (list.empty()) return false;
  for (const auto& entry : list) {
    if (entry.find('@') != std::string::npos ? iequals(entry, address.raw)
                                             : iequals(entry, address.given_local()))
      return true;
  }
  return false;
}

}  // namespace

bool Pipeline::exempt(const Entry& e, Stage stage, const Session& session) const {
  const unsigned ex = e.check->exemptions();
  const Transaction& tx = session.tx;
  if ((ex & kExemptTrustedClient) && (session.authenticated() || session.trusted_network))
    return true;
  if ((ex & kExemptAllowed) &&
      (session.allowed || tx.allowed || (stage == Stage::Rcpt && tx.rcpt_allowed)))
    return true;
  if (ex & kExemptPostmaster) {
    const Config& cfg = *session.policy->config;
    if (stage >= Stage::Mail && tx.has_sender && address_listed(cfg.exempt_senders, tx.sender))
      return true;
    if (stage == Stage::Rcpt) return address_listed(cfg.exempt_recipients, tx.rcpt);
    if (stage > Stage::Rcpt) {
      // A message-level reject would refuse every recipient, the exempt one too.
      for (const auto& r : tx.recipients)
        if (address_listed(cfg.exempt_recipients, r)) return true;
    }
  }
  return false;
}

std::optional<Verdict> Pipeline::run(Stage stage, Session& session, CheckContext& ctx) const {
  if (stage == Stage::Rcpt) session.tx.rcpt_allowed = false;
  // What every check of the stage may read, worked out once (the recipient's BATV tag).
  content::prepare_stage(stage, session, ctx);
  const bool refused_by_mta = stage == Stage::Rcpt && session.tx.rcpt_rejected_by_mta;
  for (const auto& e : entries_) {
    if (e.mode == CheckMode::Off || !e.check->stages().has(stage)) continue;
    if (refused_by_mta) {
      // Only counting checks look at recipients the MTA refused; nothing is answered.
      if (e.check->sees_mta_rejections() && !exempt(e, stage, session))
        (void)e.check->evaluate(stage, session, ctx);
      continue;
    }
    if (exempt(e, stage, session)) continue;
    std::optional<Verdict> v = e.check->evaluate(stage, session, ctx);
    if (!v || !v->decisive()) continue;
    if (v->action == Action::Accept) {
      // An explicit OK exempts its scope from the checks after it; the MTA is told nothing,
      // since SMFIS_ACCEPT at RCPT would wave through every later recipient unchecked.
      switch (stage) {
        case Stage::Connect:
        case Stage::Helo:
          session.allowed = true;
          break;
        case Stage::Rcpt:
          session.tx.rcpt_allowed = true;
          break;
        default:
          session.tx.allowed = true;
          break;
      }
      metrics().count_verdict(v->check, "accept");
      log(LogLevel::Debug, "{}: allow: {} from {}: check={} reason={}", session.log_id(),
          to_string(stage), session.client_label(), v->check, v->reason);
      continue;
    }
    if (report_only_ || e.mode == CheckMode::Report ||
        (e.mode == CheckMode::Auto && !ctx.auto_enforces)) {
      v->report_only = true;
      // Remembered for report-header: the first would-reject names the check.
      std::string& first = stage < Stage::Mail ? session.would_reject : session.tx.would_reject;
      if (first.empty()) first = v->check;
      metrics().count_verdict(v->check, "would-reject");
      log(LogLevel::Notice, "{}", format_decision(session, stage, *v));
      continue;
    }
    metrics().count_verdict(v->check, v->action == Action::Tempfail  ? "tempfail"
                                      : v->action == Action::Discard ? "discard"
                                                                     : "reject");
    log(LogLevel::Notice, "{}", format_decision(session, stage, *v));
    return v;
  }
  return std::nullopt;
}

std::string format_decision(const Session& session, Stage stage, const Verdict& v) {
  std::string word;
  if (v.report_only) word = "would ";
  word += v.action == Action::Discard ? "discard" : "reject";
  std::string reply = v.reply ? v.reply->to_string() : std::string(to_string(v.action));
  std::string line = fmt::format("{}: {}: {} from {}: {};", session.log_id(), word,
                                 to_string(stage), session.client_label(), reply);
  if (stage >= Stage::Mail) line += fmt::format(" from=<{}>", session.tx.sender.raw);
  if (stage == Stage::Rcpt) {
    line += fmt::format(" to=<{}>", session.tx.rcpt.raw);
  } else if (stage > Stage::Rcpt && !session.tx.recipients.empty()) {
    line += fmt::format(" to=<{}> nrcpt={}", session.tx.recipients.front().raw,
                        session.tx.recipients.size());
  }
  if (!session.helo.empty()) line += fmt::format(" helo=<{}>", session.helo);
  line += fmt::format(" check={} reason={}", v.check, v.reason);
  return line;
}

}  // namespace mxguard
