#include "mxguard/checks/backscatter.h"

#include <fmt/format.h>

#include "mxguard/batv/keys.h"
#include "mxguard/batv/tag.h"
#include "mxguard/log.h"
#include "mxguard/message/mime.h"
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

BackscatterFinding judge_backscatter(Stage stage, const Session& session,
                                     const BackscatterSettings& cfg, std::time_t now) {
  BackscatterFinding f;
  const Transaction& tx = session.tx;
  const message::Rules& rules = rules_of(cfg);
  if (!tx.reader || !message::is_bounce_sender(tx.sender.raw, rules)) {
    f.decided = true;
    return f;
  }
  f.applies = true;
  const message::Envelope env{tx.sender.raw};

  if (stage == Stage::Eoh) {
    if (tx.sender.null() && tx.recipients.size() > 1) {
      // A real DSN goes to the one envelope sender of the message it reports on.
      log(LogLevel::Notice, "{}: null-sender message to {} recipients from {}", session.log_id(),
          tx.recipients.size(), session.client_label());
      if (cfg.proof.reject_multi_rcpt) {
        f.decided = true;
        f.missing = "null sender with several recipients";
        f.verdict = Verdict::reject(
            SmtpReply::fixed(550, "5.7.1",
                             "a delivery notification goes to one recipient, not several"),
            "backscatter", "multi-recipient");
        return f;
      }
    }
    f.proof = envelope_proof(cfg, tx);
    message::HeaderAssessment a = message::assess_headers(*tx.reader, env, rules);
    f.cls = a.cls;
    f.class_reason = a.reason;
    if (!f.proof.empty() || a.headers_suffice) {
      f.decided = true;
      return f;
    }
    // Nothing in the body can prove anything: decide now and spare the body transfer.
    if (a.class_final && message::is_backscatter_class(a.cls) &&
        !body_proof_possible(Relays{cfg, session})) {
      f.decided = true;
      if (a.cls == MessageClass::Mdn && !cfg.proof.check_mdn) return f;
      f.missing = "no BATV tag on the recipient; no our-relays or batv-key-file to check";
      f.verdict = reject(a.cls);
    }
    return f;
  }
  if (stage != Stage::Eom) return f;

  f.decided = true;
  f.classification = message::classify(*tx.reader, env, rules);
  f.cls = f.classification.cls;
  f.class_reason = f.classification.reason;
  if (!message::is_backscatter_class(f.cls)) return f;
  if (f.cls == MessageClass::Mdn && !cfg.proof.check_mdn) return f;
  f.proof = envelope_proof(cfg, tx);
  if (!f.proof.empty()) return f;
  std::string missing;
  f.proof = original_proof(Relays{cfg, session}, f.classification.original, now, missing);
  if (!f.proof.empty()) return f;
  f.missing = "no valid BATV tag on the recipient; " + missing;
  f.verdict = reject(f.cls);
  return f;
}

std::optional<Verdict> BackscatterCheck::evaluate(Stage stage, const Session& session,
                                                  CheckContext& ctx) const {
  if (stage != Stage::Eoh && stage != Stage::Eom) return std::nullopt;
  BackscatterFinding f = judge_backscatter(stage, session, settings_, ctx.clock->time());
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
