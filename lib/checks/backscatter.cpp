#include "mxguard/checks/backscatter.h"

#include <fmt/format.h>

#include <algorithm>

#include "mxguard/batv/keys.h"
#include "mxguard/batv/tag.h"
#include "mxguard/log.h"
#include "mxguard/message/mime.h"
#include "mxguard/message/reported.h"
#include "mxguard/state/ledger.h"
#include "mxguard/tables/table.h"

namespace mxguard::checks {

namespace {

using message::MessageClass;

const message::Rules& rules_of(const BackscatterSettings& cfg) {
  static const message::Rules none;
  return cfg.rules ? *cfg.rules : none;
}

bool ends_with_domain(std::string_view domain, std::string_view ours) {
  if (domain == ours) return true;
  return domain.size() > ours.size() && domain[domain.size() - ours.size() - 1] == '.' &&
         domain.substr(domain.size() - ours.size()) == ours;
}

bool our_message_id_domain(const BackscatterSettings& cfg, std::string_view domain) {
  if (domain.empty()) return false;
  for (const auto& d : cfg.site.local_domains)
    if (ends_with_domain(domain, d)) return true;
  for (const auto& d : cfg.proof.our_message_id_domains)
    if (ends_with_domain(domain, d)) return true;
  return false;
}

using StoreResultBool = state::StoreResult<bool>;

// Where the ledger proof looks, and when.
struct Proof {
  state::Ledger* ledger;
  state::TimePoint now;
};

// Our relays: those configured, and without configuration the MTA itself (macro j) and the
// address it accepted this connection on.
struct Relays {
  const BackscatterSettings& cfg;
  const Session& session;
  bool any() const {
    return !cfg.proof.our_relay_names.empty() || !cfg.proof.our_relay_networks.empty() ||
           !session.mta_hostname.empty() || session.daemon_addr.has_value();
  }
  bool named(std::string_view host) const {
    for (const auto& name : cfg.proof.our_relay_names)
      if (host == name) return true;
    return !session.mta_hostname.empty() && iequals(host, session.mta_hostname);
  }
  bool address(const net::IpAddress& a) const {
    return cfg.proof.our_relay_networks.contains(a) ||
           (session.daemon_addr && *session.daemon_addr == a);
  }
};

// Does a Received value name one of our relays? Tokens are host names and addresses as MTAs
// write them: "from a.example (a.example [192.0.2.1]) by b.example ...".
bool names_our_relay(const Relays& relays, std::string_view received) {
  std::size_t i = 0;
  auto token_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == ':' || c == '_';
  };
  while (i < received.size()) {
    while (i < received.size() && !token_char(received[i]))
      ++i;
    std::size_t start = i;
    while (i < received.size() && token_char(received[i]))
      ++i;
    if (i == start) continue;
    std::string tok = ascii_lowercase(received.substr(start, i - start));
    while (!tok.empty() && (tok.back() == '.' || tok.back() == ':'))
      tok.pop_back();
    if (tok.rfind("ipv6:", 0) == 0) tok.erase(0, 5);
    if (relays.named(tok)) return true;
    if (tok.find_first_of(".:") != std::string::npos) {
      if (auto a = net::IpAddress::parse(tok); a && relays.address(*a)) return true;
    }
  }
  return false;
}

bool allowed(const BackscatterSettings& cfg, const Transaction& tx) {
  for (const auto& t : cfg.proof.allow) {
    auto ok = [&](std::string_view addr) {
      auto r = tables::lookup_address(*t, addr.empty() ? "<>" : addr);
      return r && istarts_with(*r, "ok");
    };
    if (ok(tx.sender.raw)) return true;
    for (const auto& r : tx.recipients)
      if (ok(r.raw)) return true;
  }
  return false;
}

// Proofs that need only the envelope: a and d.
std::string envelope_proof(const BackscatterSettings& cfg, const Transaction& tx) {
  if (!tx.batv_valid.empty()) return "batv-recipient";
  if (allowed(cfg, tx)) return "allow-table";
  return {};
}

bool body_proof_possible(const Relays& relays) {
  return relays.cfg.keys || relays.any();
}

// Proofs from the returned original: b and c. Appends what was missing to `missing`.
std::string original_proof(const Relays& relays, const message::ReturnedOriginal& o,
                           std::time_t now, std::string& missing) {
  const BackscatterSettings& cfg = relays.cfg;
  if (!o.found()) {
    missing = "no returned message found";
    return {};
  }
  std::vector<std::string> why;
  if (cfg.keys) {
    if (o.tags.empty()) why.push_back("no X-Mxguard-Tag");
    for (const auto& tag : o.tags) {
      auto st = batv::verify_tag(*cfg.keys, tag, o.message_id, now,
                                 static_cast<std::time_t>(cfg.tag_max_age_days) * 86400);
      if (st == batv::TagStatus::Valid) return "mxguard-tag";
      why.push_back(fmt::format("X-Mxguard-Tag {}", batv::to_string(st)));
    }
  }
  if (relays.any()) {
    bool relay = false;
    for (const auto& r : o.received)
      if ((relay = names_our_relay(relays, r))) break;
    const std::string domain = message::msg_id_domain(o.message_id);
    const bool ours = our_message_id_domain(cfg, domain);
    if (relay && ours) return "relay+message-id";
    if (!relay) why.push_back("no Received from our relays");
    if (!ours)
      why.push_back(domain.empty() ? std::string("no Message-ID")
                                   : fmt::format("Message-ID domain {} is not ours", domain));
  }
  missing = fmt::format("{}", fmt::join(why, "; "));
  return {};
}

std::string_view what(MessageClass c) {
  switch (c) {
    case MessageClass::Autoreply:
      return "automatic reply";
    case MessageClass::Challenge:
      return "challenge";
    case MessageClass::VirusNotice:
      return "virus notice";
    case MessageClass::Mdn:
      return "receipt notification";
    default:
      return "bounce";
  }
}

Verdict reject(MessageClass c) {
  // Short and plain: the text reaches the bouncing MTA's admin and, often, a confused user.
  return Verdict::reject(
      SmtpReply::fixed(550, "5.7.1",
                       fmt::format("we did not send the message this {} answers", what(c))),
      "backscatter", std::string(message::to_string(c)));
}

// What -t shows: the class, the proof that held or what was missing, the returned original.
void record(const BackscatterFinding& f, ContentFinding& out) {
  out.judged = f.applies;
  if (!f.applies) return;
  const bool classified = !f.classification.reason.empty() || f.class_reason.empty();
  out.cls = std::string(message::to_string(classified ? f.classification.cls : f.cls));
  out.class_reason = classified ? f.classification.reason : f.class_reason;
  out.proof = f.proof;
  out.missing = f.missing;
  const message::ReturnedOriginal& o = f.classification.original;
  if (o.found())
    out.original = fmt::format("{} {} from={}", o.source, o.message_id.empty() ? "-" : o.message_id,
                               o.from.empty() ? "-" : o.from);
}

}  // namespace

std::optional<std::string> validate_allow_result(std::string_view result) {
  if (istarts_with(result, "ok") || istarts_with(result, "dunno")) return std::nullopt;
  return fmt::format("result '{}' is not OK or DUNNO", result);
}

namespace {

// Proof by the ledger: a recipient the notification reports, or a Message-ID it refers to,
// was sent by the notification's recipient (our user, BATV tag stripped) within the lifetime.
StoreResultBool ledger_proof(const Proof& p, const Transaction& tx,
                             const std::vector<std::string>& recipients,
                             const std::vector<std::string>& message_ids) {
  std::vector<state::LedgerKey> keys;
  for (const Address& ours : tx.recipients) {
    const std::string user = ours.plain();
    for (const auto& r : recipients)
      keys.push_back(p.ledger->keys().recipient_key(user, r));
    for (const auto& id : message_ids)
      keys.push_back(p.ledger->keys().message_id_key(user, id));
  }
  if (keys.empty()) return false;
  return p.ledger->contains(keys, p.now);
}

// "ledger" when the ledger proves it; empty when not; sets f.ledger_error when it cannot tell.
std::string try_ledger(const Proof& p, const Transaction& tx, BackscatterFinding& f,
                       const std::vector<std::string>& recipients,
                       const std::vector<std::string>& message_ids) {
  if (!p.ledger) return {};
  auto found = ledger_proof(p, tx, recipients, message_ids);
  if (!found) {
    f.ledger_error = found.error().to_string();
    return {};
  }
  return *found ? "ledger" : std::string();
}

// An automatic reply or a read receipt from someone our user wrote to answers our mail.
std::vector<std::string> answering_parties(const Transaction& tx, MessageClass cls) {
  if (cls != MessageClass::Autoreply && cls != MessageClass::Mdn) return {};
  return message::answering_parties(*tx.reader, tx.sender.raw);
}

Verdict ledger_unavailable() {
  // The bounce is retried later; never a 5xx for our own outage.
  return Verdict::tempfail(
      SmtpReply::fixed(451, "4.7.1",
                       "cannot check this notification against the mail we sent; try again later"),
      "backscatter", "ledger-unavailable");
}

// At end of headers: the proofs the headers can give. True when decided.
bool judge_headers(const Session& session, const BackscatterSettings& cfg, const Proof& p,
                   bool real_sender, BackscatterFinding& f) {
  const Transaction& tx = session.tx;
  const message::Rules& rules = rules_of(cfg);
  if (tx.sender.null() && tx.recipients.size() > 1) {
    // A real DSN goes to the one envelope sender of the message it reports on.
    log(LogLevel::Notice, "{}: null-sender message to {} recipients from {}", session.log_id(),
        tx.recipients.size(), session.client_label());
    if (cfg.proof.reject_multi_rcpt) {
      f.missing = "null sender with several recipients";
      f.verdict = Verdict::reject(
          SmtpReply::fixed(550, "5.7.1",
                           "a delivery notification goes to one recipient, not several"),
          "backscatter", "multi-recipient");
      return true;
    }
  }
  const message::HeaderAssessment a =
      message::assess_headers(*tx.reader, message::Envelope{tx.sender.raw}, rules);
  f.cls = a.cls;
  f.class_reason = a.reason;
  // From a real sender only an automatic reply is judged; any other mail is not ours to judge.
  if (real_sender && a.cls != MessageClass::Autoreply) {
    f.applies = false;
    return true;
  }
  f.proof = envelope_proof(cfg, tx);
  if (f.proof.empty())
    f.proof = try_ledger(p, tx, f, answering_parties(tx, a.cls),
                         message::referenced_message_ids(*tx.reader));
  if (!f.proof.empty() || (a.headers_suffice && !real_sender)) return true;
  // Nothing in the body can prove anything: decide now and spare the body transfer.
  if (a.class_final && message::is_backscatter_class(a.cls) && !p.ledger &&
      !body_proof_possible(Relays{cfg, session})) {
    if (a.cls == MessageClass::Mdn && !cfg.proof.check_mdn) return true;
    f.missing = "no BATV tag on the recipient; no our-relays or batv-key-file to check";
    f.verdict = reject(a.cls);
    return true;
  }
  return false;
}

}  // namespace

BackscatterFinding judge_backscatter(Stage stage, const Session& session,
                                     const BackscatterSettings& cfg, std::time_t now,
                                     state::Ledger* ledger) {
  BackscatterFinding f;
  const Transaction& tx = session.tx;
  const message::Rules& rules = rules_of(cfg);
  const bool bounce = message::is_bounce_sender(tx.sender.raw, rules);
  // Once the ledger is warm, an automatic reply from any sender must answer our mail too.
  const bool real_sender = !bounce && ledger && tx.ledger_warm;
  if (!tx.reader || (!bounce && !real_sender)) {
    f.decided = true;
    return f;
  }
  f.applies = true;
  const Proof p{ledger, std::chrono::system_clock::from_time_t(now)};
  if (stage == Stage::Eoh) {
    f.decided = judge_headers(session, cfg, p, real_sender, f);
    if (!f.ledger_error.empty() && !f.verdict) {
      f.decided = true;
      f.verdict = ledger_unavailable();
    }
    return f;
  }
  if (stage != Stage::Eom) return f;

  f.decided = true;
  f.classification = message::classify(*tx.reader, message::Envelope{tx.sender.raw}, rules);
  f.cls = f.classification.cls;
  f.class_reason = f.classification.reason;
  if (real_sender && f.cls != MessageClass::Autoreply) {
    f.applies = false;
    return f;
  }
  if (!message::is_backscatter_class(f.cls)) return f;
  if (f.cls == MessageClass::Mdn && !cfg.proof.check_mdn) return f;
  f.proof = envelope_proof(cfg, tx);
  if (!f.proof.empty()) return f;
  message::ReportedFields reported = message::reported_fields(*tx.reader, f.classification);
  for (std::string& who : answering_parties(tx, f.cls))
    if (std::find(reported.recipients.begin(), reported.recipients.end(), who) ==
        reported.recipients.end())
      reported.recipients.push_back(std::move(who));
  f.proof = try_ledger(p, tx, f, reported.recipients, reported.message_ids);
  if (!f.proof.empty()) return f;
  std::string missing;
  f.proof = original_proof(Relays{cfg, session}, f.classification.original, now, missing);
  if (!f.proof.empty()) return f;
  if (!f.ledger_error.empty()) {
    f.verdict = ledger_unavailable();
    return f;
  }
  f.missing = "no valid BATV tag on the recipient; " + missing;
  if (ledger) f.missing += "; nothing it reports is in the ledger of our sent mail";
  f.verdict = reject(f.cls);
  return f;
}

std::optional<Verdict> BackscatterCheck::evaluate(Stage stage, const Session& session,
                                                  CheckContext& ctx) const {
  if (stage != Stage::Eoh && stage != Stage::Eom) return std::nullopt;
  BackscatterFinding f =
      judge_backscatter(stage, session, settings_, ctx.clock->time(), ctx.ledger);
  if (!f.ledger_error.empty())
    ctx.failure(name(), FailureAction::Tempfail,
                fmt::format("{}: backscatter: the ledger cannot answer: {} (tempfail)",
                            session.log_id(), f.ledger_error));
  if (ctx.finding && (f.decided || f.verdict)) record(f, *ctx.finding);
  if (f.verdict) {
    log(LogLevel::Info, "{}: backscatter: class={} ({}) proof missing: {}", session.log_id(),
        message::to_string(f.cls), f.class_reason, f.missing);
  } else if (f.applies && f.decided && !f.proof.empty()) {
    log(LogLevel::Info, "{}: backscatter: class={} answers our mail: proof={}", session.log_id(),
        message::to_string(f.cls), f.proof);
  }
  return f.verdict;
}

}  // namespace mxguard::checks
