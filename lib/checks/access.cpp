#include "checks/access.h"

#include <fmt/format.h>

#include "mxguard/log.h"
#include "mxguard/tables/access_action.h"

namespace mxguard::checks {

AccessCheck::AccessCheck(AccessOptions o) : options_(std::move(o)) {
  if (!options_.client.empty()) stages_ |= StageSet{Stage::Connect};
  if (!options_.helo.empty()) stages_ |= StageSet{Stage::Helo};
  if (!options_.sender.empty()) stages_ |= StageSet{Stage::Mail};
  if (!options_.recipient.empty()) stages_ |= StageSet{Stage::Rcpt};
}

namespace {

using tables::TableList;

struct Subject {
  const TableList* tables = nullptr;
  std::string name;        // what Postfix puts in <>: the address, helo name or host[addr]
  std::string_view label;  // "Client host", "Helo command", "Sender address", "Recipient address"
};

// The stage's tables, and with `named` what the reply and log lines call the subject.
Subject subject_of(Stage stage, const Session& s, const AccessOptions& o, bool named) {
  switch (stage) {
    case Stage::Connect:
      return {&o.client, named ? s.client_label() : std::string(), "Client host"};
    case Stage::Helo:
      return {&o.helo, named ? s.helo : std::string(), "Helo command"};
    case Stage::Mail:
      return {&o.sender, named ? s.tx.sender.raw : std::string(), "Sender address"};
    case Stage::Rcpt:
      return {&o.recipient, named ? s.tx.rcpt.raw : std::string(), "Recipient address"};
    default:
      return {};
  }
}

std::optional<std::string> lookup(Stage stage, const tables::Table& t, const Session& s) {
  switch (stage) {
    case Stage::Connect:
      return tables::lookup_client(t, s.client_addr ? &*s.client_addr : nullptr, s.client_name);
    case Stage::Helo:
      return s.helo.empty() ? std::nullopt : tables::lookup_domain(t, s.helo);
    case Stage::Mail:
      // Postfix looks the null sender up as "<>" (smtpd_null_access_lookup_key).
      return tables::lookup_address(t, s.tx.sender.null() ? "<>" : s.tx.sender.raw);
    case Stage::Rcpt:
      return tables::lookup_address(t, s.tx.rcpt.raw);
    default:
      return std::nullopt;
  }
}

std::optional<Verdict> to_verdict(const tables::AccessAction& a, const Subject& subj,
                                  const Session& s, const tables::Table& t) {
  using Kind = tables::AccessAction::Kind;
  switch (a.kind) {
    case Kind::Ok:
      return Verdict::accept("access", "ok");
    case Kind::Dunno:
    case Kind::Ignored:
      return std::nullopt;
    case Kind::Warn:
      log(LogLevel::Warning, "{}: warn: {} from {}: {}: {} ({})", s.log_id(), subj.label,
          s.client_label(), subj.name, a.text, t.spec());
      return std::nullopt;
    case Kind::Discard:
      return Verdict::discard("access", "table");
    case Kind::Reject:
    case Kind::Defer: {
      const bool reject = a.kind == Kind::Reject;
      // Postfix's defaults: access_map_reject_code 554, access_map_defer_code 450.
      int code = a.code ? a.code : (reject ? 554 : 450);
      std::string enhanced = a.enhanced.empty() ? fmt::format("{}.7.1", code / 100) : a.enhanced;
      std::string text = fmt::format("<{}>: {} rejected: {}", subj.name, subj.label,
                                     a.text.empty() ? "Access denied" : a.text);
      auto reply = SmtpReply::make(code, enhanced, text);
      if (!reply) {
        // The subject (a recipient with a CR in it) or a $n substitution cannot be quoted in a
        // reply. The table still refuses: with its code and a fixed text, never an accept.
        log(LogLevel::Warning,
            "{}: {}: result '{}' gives a bad reply ({}); refused with a fixed text", s.log_id(),
            t.spec(), a.word, reply.error());
        // The table's own text without the subject first; then Postfix's default text.
        reply = SmtpReply::make(
            code, enhanced,
            fmt::format("{} rejected: {}", subj.label, a.text.empty() ? "Access denied" : a.text));
        if (!reply)
          reply = SmtpReply::make(code, enhanced,
                                  fmt::format("{} rejected: Access denied", subj.label));
        if (!reply)
          reply = code >= 500 ? SmtpReply::fixed(554, "5.7.1", "Access denied")
                              : SmtpReply::fixed(450, "4.7.1", "Access denied");
      }
      return code >= 500 ? Verdict::reject(std::move(reply).value(), "access", "table")
                         : Verdict::tempfail(std::move(reply).value(), "access", "table");
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<Verdict> AccessCheck::evaluate(Stage stage, const Session& session,
                                             CheckContext&) const {
  const TableList* tables = subject_of(stage, session, options_, false).tables;
  if (!tables) return std::nullopt;
  std::optional<Subject> found;  // named only once a table has a result (the usual: none)
  for (const auto& table : *tables) {
    std::optional<std::string> result = lookup(stage, *table, session);
    if (!result) continue;
    if (!found) found = subject_of(stage, session, options_, true);
    const Subject& subj = *found;
    auto action = tables::parse_access_action(*result);
    if (!action) {
      log(LogLevel::Warning, "{}: {}: bad result '{}' for {}: {}; ignored", session.log_id(),
          table->spec(), *result, subj.name, action.error());
      continue;
    }
    if (auto v = to_verdict(*action, subj, session, *table)) return v;
    if (action->kind == tables::AccessAction::Kind::Dunno) continue;
  }
  return std::nullopt;
}

}  // namespace mxguard::checks
