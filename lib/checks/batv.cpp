#include "mxguard/checks/batv.h"

#include <fmt/format.h>

#include <algorithm>

namespace mxguard::checks {

namespace {

bool in_domains(const std::vector<std::string>& list, const Address& address) {
  return std::find(list.begin(), list.end(), address.domain) != list.end();
}

}  // namespace

std::optional<Verdict> BatvCheck::evaluate(Stage stage, const Session& session,
                                           CheckContext&) const {
  if (!batv_.keys) return std::nullopt;
  const Transaction& tx = session.tx;

  if (stage == Stage::Rcpt) {
    if (tx.rcpt_tag.status == RecipientTagStatus::NotTagged) return std::nullopt;
    // Only our own addresses carry our tags; a tagged address elsewhere is not ours to judge.
    if (!site_.local_domains.empty() && !site_.is_local_domain(tx.rcpt.domain)) return std::nullopt;
    // Verified once, before the checks ran (content::prepare_stage).
    const RecipientTag& tag = tx.rcpt_tag;
    if (tag.status == RecipientTagStatus::Valid || tag.status == RecipientTagStatus::NotTagged)
      return std::nullopt;
    const char* why = tag.status == RecipientTagStatus::Expired ? "has expired" : "is not valid";
    auto reply = SmtpReply::make(
        550, "5.7.1",
        fmt::format("<{}>: Recipient address rejected: its BATV tag {}; we did not send the "
                    "message this answers",
                    tx.rcpt.raw, why));
    // A recipient that cannot be quoted (a control character) is refused all the same.
    if (!reply)
      reply =
          SmtpReply::fixed(550, "5.7.1", "Recipient address rejected: its BATV tag is not valid");
    return Verdict::reject(std::move(reply).value(), "batv", tag.reason);
  }

  if (stage == Stage::Data && tx.sender.null() && !batv_.enforce_domains.empty()) {
    for (const auto& rcpt : tx.recipients) {
      if (!in_domains(batv_.enforce_domains, rcpt)) continue;
      bool tagged = std::any_of(tx.batv_valid.begin(), tx.batv_valid.end(),
                                [&](const TaggedRecipient& t) { return t.tagged == rcpt.raw; });
      if (tagged) continue;
      auto reply = SmtpReply::make(
          550, "5.7.1",
          fmt::format("<{}>: bounces to this domain must carry our BATV tag; we did not send "
                      "the message this answers",
                      rcpt.raw));
      if (!reply)
        reply = SmtpReply::fixed(550, "5.7.1", "bounces to this domain must carry our BATV tag");
      return Verdict::reject(std::move(reply).value(), "batv", "enforce-untagged");
    }
  }
  return std::nullopt;
}

}  // namespace mxguard::checks
