#include "mxguard/message/offline.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "mxguard/checks/backscatter.h"
#include "mxguard/message/feed.h"
#include "mxguard/message/reader.h"
#include "mxguard/policy.h"

namespace mxguard::message {

Expected<OfflineResult, std::string> run_offline(const std::shared_ptr<const Config>& cfg,
                                                 const std::string& path, const OfflineInput& in,
                                                 std::time_t now) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return unexpected(fmt::format("{}: {}", path, std::strerror(errno)));
  std::ostringstream os;
  os << f.rdbuf();
  std::string text = os.str();
  MessageReader file = MessageReader::from_text(text, cfg->max_body_scan);

  // The checks read the config through the session's policy; a bare policy is enough here.
  // Modes are forced on so that -t shows what the check would do before it is enabled.
  auto local = std::make_shared<Config>(*cfg);
  local->checks["backscatter"] = CheckMode::On;
  auto policy = std::make_shared<Policy>();
  policy->config = local;

  Session s;
  s.policy = policy;
  s.client_name = "offline";
  if (in.authenticated) s.auth_authen = "offline";
  s.tx.has_sender = true;
  s.tx.sender =
      Address::parse(in.sender ? *in.sender : extract_address(file.header("Return-Path")));
  s.tx.rcpt = Address::parse(in.recipient ? *in.recipient : extract_address(file.header("To")));
  if (!s.tx.rcpt.null()) {
    s.tx.recipients.push_back(s.tx.rcpt);
    on_recipient(s, now);
  }
  for (const auto& h : file.headers())
    feed_header(s, h.name, h.value);
  feed_eoh(s);
  feed_body(s, file.body());
  feed_eom(s);

  OfflineResult r;
  r.file = path;
  r.sender = s.tx.sender.raw;
  r.recipient = s.tx.rcpt.raw;
  checks::BackscatterFinding found = checks::judge_backscatter(Stage::Eoh, s, *local, now);
  r.stage = std::string(to_string(Stage::Eoh));
  if (!found.verdict && (!found.decided || found.applies)) {
    found = checks::judge_backscatter(Stage::Eom, s, *local, now);
    r.stage = std::string(to_string(Stage::Eom));
  }
  // The class is worth showing even when the check does not apply (ordinary sender).
  Classification c = found.decided && found.classification.reason.empty() && !found.applies
                         ? classify(*s.tx.reader, Envelope{s.tx.sender.raw},
                                    local->message_rules ? *local->message_rules : Rules{})
                         : found.classification;
  if (found.applies && found.classification.reason.empty() && !found.class_reason.empty()) {
    c.cls = found.cls;
    c.reason = found.class_reason;
  }
  r.cls = std::string(to_string(c.cls));
  r.class_reason = c.reason;
  r.judged = found.applies;
  r.proof = found.proof;
  r.missing = found.missing;
  if (c.original.found())
    r.original = fmt::format("{} {} from={}", c.original.source,
                             c.original.message_id.empty() ? "-" : c.original.message_id,
                             c.original.from.empty() ? "-" : c.original.from);
  r.verdict = found.verdict ? fmt::format("reject {}", found.verdict->reply->to_string()) : "pass";
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

}  // namespace mxguard::message
