#include "checks/ban.h"

#include <fmt/format.h>

#include "mxguard/log.h"
#include "mxguard/metrics.h"
#include "mxguard/state/bans.h"

namespace mxguard::checks {

std::optional<Verdict> BanCheck::evaluate(Stage, const Session& session, CheckContext& ctx) const {
  if (!session.client_addr || !ctx.bans) return std::nullopt;
  auto ban = ctx.bans->is_banned(*session.client_addr, ctx.clock->now());
  if (!ban) {
    metrics().count_store_error();
    if (!ctx.failure(name(), on_store_error_,
                     fmt::format("{}: ban lookup for {} failed: {}", session.log_id(),
                                 session.client_label(), ban.error().message)))
      return std::nullopt;
    return Verdict::tempfail(
        SmtpReply::fixed(451, "4.3.0", "Temporary local problem, please try again later"), "ban",
        "store-error");
  }
  if (!*ban) return std::nullopt;
  auto left = std::chrono::duration_cast<std::chrono::seconds>((*ban)->until - ctx.clock->now());
  // Worded so that no stock fail2ban filter takes it for an attack of its own.
  auto reply = SmtpReply::make(
      421, "4.7.0",
      fmt::format("Too many messages for domains that take no mail here; try again in {}s",
                  std::max<long long>(left.count(), 1)));
  return Verdict::tempfail(std::move(reply).value(), "ban", "banned");
}

}  // namespace mxguard::checks
