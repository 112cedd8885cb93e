#include "checks/trap_mx.h"

#include <fmt/format.h>

#include <algorithm>

#include "mxguard/log.h"
#include "mxguard/metrics.h"
#include "mxguard/state/bans.h"
#include "mxguard/tables/access_action.h"

namespace mxguard::checks {

namespace {

bool at_trap(const Session& s, const TrapOptions& o) {
  return s.daemon_addr &&
         std::find(o.addresses.begin(), o.addresses.end(), *s.daemon_addr) != o.addresses.end();
}

// A sender or recipient the trap lets through: any OK (or PERMIT) result in the tables.
bool listed(const TrapOptions& o, std::string_view address) {
  for (const auto& t : o.allow_senders) {
    auto result = tables::lookup_address(*t, address.empty() ? "<>" : address);
    if (!result) continue;
    auto action = tables::parse_access_action(*result);
    if (action && action->kind == tables::AccessAction::Kind::Ok) return true;
  }
  return false;
}

Verdict trap_reply(const Session& s, CheckContext& ctx) {
  log(LogLevel::Notice, "{}: trap: {} connected to trap address {}", s.log_id(), s.client_label(),
      s.daemon_addr->to_string());
  if (s.client_addr && ctx.bans) {
    auto r = ctx.bans->record_strike(*s.client_addr, "trap " + s.daemon_addr->to_string(),
                                     ctx.clock->now());
    if (!r) metrics().count_store_error();
    if (!r)
      log(LogLevel::Warning, "{}: strike for {} not counted: {}", s.log_id(), s.client_label(),
          r.error().message);
  }
  return Verdict::tempfail(
      SmtpReply::fixed(421, "4.7.0", "Service not available here, try another mail exchanger"),
      "trap-mx", "trap");
}

}  // namespace

std::optional<Verdict> TrapMxCheck::evaluate(Stage stage, const Session& session,
                                             CheckContext& ctx) const {
  if (!at_trap(session, options_)) return std::nullopt;
  if (session.client_addr && ctx.bans && ctx.bans->allowed(*session.client_addr)) {
    if (stage == Stage::Connect)
      log(LogLevel::Info, "{}: trap: {} at trap address {} is allow-listed", session.log_id(),
          session.client_label(), session.daemon_addr->to_string());
    return std::nullopt;
  }
  const bool waits = !options_.allow_senders.empty();
  switch (stage) {
    case Stage::Connect:
      if (waits) return std::nullopt;  // decided once the sender and recipients are known
      return trap_reply(session, ctx);
    case Stage::Rcpt:
      if (listed(options_, session.tx.sender.raw) || listed(options_, session.tx.rcpt.raw))
        return std::nullopt;
      return trap_reply(session, ctx);
    default:
      return std::nullopt;
  }
}

}  // namespace mxguard::checks
