#include "checks/forged_local_sender.h"

#include <fmt/format.h>

namespace mxguard::checks {

std::optional<Verdict> ForgedLocalSenderCheck::evaluate(Stage, const Session& session,
                                                        CheckContext&) const {
  // Trusted and authenticated clients never get here: the pipeline exempts them.
  const Address& sender = session.tx.sender;
  if (sender.domain.empty() || !site_.is_local_domain(sender.domain)) return std::nullopt;
  auto reply = SmtpReply::make(
      550, "5.7.1",
      fmt::format("<{}>: Sender address rejected: mail from this domain must come through "
                  "its own servers",
                  sender.raw));
  // An address that cannot be quoted (a control character) is refused all the same.
  if (!reply)
    reply = SmtpReply::fixed(550, "5.7.1",
                             "Sender address rejected: mail from this domain must come through "
                             "its own servers");
  return Verdict::reject(std::move(reply).value(), "forged-local-sender", "local-domain");
}

}  // namespace mxguard::checks
