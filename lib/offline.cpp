#include "mxguard/offline.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "mxguard/check.h"
#include "mxguard/clock.h"
#include "mxguard/content.h"
#include "mxguard/message/classifier.h"
#include "mxguard/message/reader.h"
#include "mxguard/policy.h"

namespace mxguard {

namespace {

Expected<std::string, std::string> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return unexpected(fmt::format("{}: {}", path, std::strerror(errno)));
  std::ostringstream os;
  os << f.rdbuf();
  return os.str();
}

// The configuration as -t reads it: every check that is not off enforces, and backscatter runs.
std::shared_ptr<const Config> offline_config(const Config& cfg) {
  auto local = std::make_shared<Config>(cfg);
  local->report_only = false;
  for (CheckMode& m : local->checks)
    if (m == CheckMode::Report || m == CheckMode::Auto) m = CheckMode::On;
  local->checks[index(CheckId::Backscatter)] = CheckMode::On;
  return local;
}

// One transaction through the pipeline, stage by stage as the adapter runs it.
class OfflineRun {
 public:
  OfflineRun(std::shared_ptr<const Policy> policy, std::time_t now)
      : policy_(std::move(policy)), clock_{Clock::time_point(std::chrono::seconds(now))} {
    session_.policy = policy_;
    session_.client_name = "offline";
  }
  Session& session() { return session_; }
  const ContentFinding& finding() const { return finding_; }

  std::optional<Verdict> stage(Stage st) {
    stage_ = st;
    CheckContext ctx{*policy_->config};
    ctx.clock = &clock_;
    ctx.finding = &finding_;
    return policy_->pipeline.run(st, session_, ctx);
  }
  Stage last_stage() const { return stage_; }

  // The verdict, or nothing when the message would be accepted.
  std::optional<Verdict> judge(const message::MessageReader& file) {
    Transaction& tx = session_.tx;
    if (auto v = stage(Stage::Mail)) return v;
    if (!tx.rcpt.raw.empty()) {
      if (auto v = stage(Stage::Rcpt)) return v;
      tx.recipients.push_back(tx.rcpt);
      content::on_recipient(session_);
    }
    if (auto v = stage(Stage::Data)) return v;
    // As the adapter: mail that no content check applies to is accepted at DATA.
    if (content::wants_content(session_) && !content::content_matters(session_)) return {};
    for (const auto& h : file.headers()) {
      content::feed_header(session_, h.name, h.value);
      tx.headers.push_back(Header{h.name, h.value});
    }
    content::feed_eoh(session_);
    if (auto v = stage(Stage::Eoh)) return v;
    content::feed_body(session_, file.body());
    content::feed_eom(session_);
    return stage(Stage::Eom);
  }

 private:
  std::shared_ptr<const Policy> policy_;
  ManualClock clock_;
  Session session_;
  ContentFinding finding_;
  Stage stage_ = Stage::Mail;
};

}  // namespace

Expected<OfflineResult, std::string> run_offline(const std::shared_ptr<const Config>& cfg,
                                                 const std::string& path, const OfflineInput& in,
                                                 std::time_t now) {
  auto text = read_file(path);
  if (!text) return unexpected(text.error());
  const message::MessageReader file =
      message::MessageReader::from_text(*text, cfg->message.max_body_scan);
  OfflineRun run(build_policy(offline_config(*cfg), PolicyDns::Without), now);
  Session& s = run.session();
  if (in.authenticated) s.auth_authen = "offline";
  s.tx.has_sender = true;
  s.tx.sender =
      Address::parse(in.sender ? *in.sender : message::extract_address(file.header("Return-Path")));
  s.tx.rcpt =
      Address::parse(in.recipient ? *in.recipient : message::extract_address(file.header("To")));
  const std::optional<Verdict> verdict = run.judge(file);

  OfflineResult r;
  r.file = path;
  r.sender = s.tx.sender.raw;
  r.recipient = s.tx.rcpt.raw;
  r.stage = std::string(to_string(run.last_stage()));
  const ContentFinding& f = run.finding();
  r.judged = f.judged;
  r.cls = f.cls;
  r.class_reason = f.class_reason;
  r.proof = f.proof;
  r.missing = f.missing;
  r.original = f.original;
  if (r.cls.empty()) {
    // The class is worth showing even when no content check looked (an ordinary sender).
    const message::Rules none;
    const auto& rules = cfg->message.rules ? *cfg->message.rules : none;
    const message::Classification c = message::classify(file, {s.tx.sender.raw}, rules);
    r.cls = std::string(message::to_string(c.cls));
    r.class_reason = c.reason;
  }
  r.verdict =
      verdict && verdict->reply
          ? fmt::format("{} {}", verdict->action == Action::Tempfail ? "tempfail" : "reject",
                        verdict->reply->to_string())
          : "pass";
  return r;
}

std::string format_offline(const OfflineResult& r) {
  std::string out = fmt::format("{}: class={}", r.file, r.cls);
  if (!r.class_reason.empty()) out += fmt::format(" ({})", r.class_reason);
  out += fmt::format(" from=<{}> to=<{}>", r.sender, r.recipient);
  if (!r.original.empty()) out += fmt::format(" original=[{}]", r.original);
  if (!r.judged) {
    out += " backscatter=not-applicable (sender is not a bounce sender)";
  } else {
    out += fmt::format(" proof={}", r.proof.empty() ? "none" : r.proof);
    if (!r.missing.empty()) out += fmt::format(" missing=[{}]", r.missing);
  }
  out += fmt::format(" verdict={} at {}", r.verdict, r.stage);
  return out;
}

}  // namespace mxguard
