#include "mxguard/checks/batv.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>

#include "mxguard/batv/prvs.h"
#include "mxguard/config.h"

namespace mxguard::checks {

namespace {

bool in_domains(const std::vector<std::string>& list, const Address& address) {
  return std::find(list.begin(), list.end(), address.domain) != list.end();
}

}  // namespace

std::optional<Verdict> BatvCheck::evaluate(Stage stage, const Session& session,
                                           CheckContext& ctx) const {
  const Config& cfg = ctx.config;
  if (!cfg.batv_keys) return std::nullopt;
  const Transaction& tx = session.tx;

  if (stage == Stage::Rcpt) {
    if (!tx.rcpt.tagged()) return std::nullopt;
    // Only our own addresses carry our tags; a tagged address elsewhere is not ours to judge.
    if (!cfg.local_domains.empty() && !cfg.is_local_domain(tx.rcpt.domain)) return std::nullopt;
    auto r = batv::verify(*cfg.batv_keys, tx.rcpt, std::time(nullptr), cfg.batv_lifetime_days);
    if (r.status == batv::PrvsStatus::Valid || r.status == batv::PrvsStatus::NotTagged)
      return std::nullopt;
    const char* why = r.status == batv::PrvsStatus::Expired ? "has expired" : "is not valid";
    auto reply = SmtpReply::make(
        550, "5.7.1",
        fmt::format("<{}>: Recipient address rejected: its BATV tag {}; we did not send the "
                    "message this answers",
                    tx.rcpt.raw, why));
    if (!reply) return std::nullopt;
    return Verdict::reject(std::move(reply).value(), "batv",
                           std::string(batv::to_string(r.status)));
  }

  if (stage == Stage::Data && tx.sender.null() && !cfg.batv_enforce_domains.empty()) {
    for (const auto& rcpt : tx.recipients) {
      if (!in_domains(cfg.batv_enforce_domains, rcpt)) continue;
      bool tagged = std::any_of(tx.batv_valid.begin(), tx.batv_valid.end(),
                                [&](const TaggedRecipient& t) { return t.tagged == rcpt.raw; });
      if (tagged) continue;
      auto reply = SmtpReply::make(
          550, "5.7.1",
          fmt::format("<{}>: bounces to this domain must carry our BATV tag; we did not send "
                      "the message this answers",
                      rcpt.raw));
      if (!reply) return std::nullopt;
      return Verdict::reject(std::move(reply).value(), "batv", "enforce-untagged");
    }
  }
  return std::nullopt;
}

}  // namespace mxguard::checks
