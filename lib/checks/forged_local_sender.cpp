#include "mxguard/checks/forged_local_sender.h"

#include <fmt/format.h>

namespace mxguard::checks {

std::optional<Verdict> ForgedLocalSenderCheck::evaluate(Stage, const Session& session,
                                                        CheckContext&) const {
  // Trusted and authenticated clients never get here: the pipeline exempts them.
  const std::string& sender = session.tx.sender;
  if (sender.empty()) return std::nullopt;
  std::string_view domain = domain_part(sender);
  if (domain.empty() || !site_.is_local_domain(domain)) return std::nullopt;
  auto reply = SmtpReply::make(
      550, "5.7.1",
      fmt::format("<{}>: Sender address rejected: mail from this domain must come through "
                  "its own servers",
                  sender));
  if (!reply) return std::nullopt;  // an address with control characters: not ours to judge
  return Verdict::reject(std::move(reply).value(), "forged-local-sender", "local-domain");
}

}  // namespace mxguard::checks
