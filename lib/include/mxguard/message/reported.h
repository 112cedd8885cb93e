// What a notification reports that can prove it answers mail we sent (issue 14, the ledger):
// the recipients it reports on (DSN Final-Recipient and Original-Recipient, the To of the
// returned message, addresses a free-text bounce names) and the Message-IDs it refers to (the
// returned message's, and the notification's own In-Reply-To and References). The backscatter
// check looks each of them up in the ledger of the mail we sent.
// Who calls it: checks/backscatter at end of message; -t; tests.
// Thread-safety: pure.
#pragma once

#include <string>
#include <vector>

#include "mxguard/message/classifier.h"
#include "mxguard/message/reader.h"

namespace mxguard::message {

struct ReportedFields {
  std::vector<std::string> recipients;   // addresses, lower case, each once
  std::vector<std::string> message_ids;  // "<id@domain>", each once
  bool empty() const { return recipients.empty() && message_ids.empty(); }
};

// Bounded: at most kMaxReported of each, and only the first kMaxScan bytes of the body are
// searched for addresses.
inline constexpr std::size_t kMaxReported = 32;
inline constexpr std::size_t kMaxScan = 64 * 1024;

ReportedFields reported_fields(const MessageReader& msg, const Classification& c);

// Who sent an automatic reply or a read receipt: its envelope sender (when not null) and its
// From address, lower case, each once. A reply from someone our user wrote to answers our
// mail even when it names no Message-ID (many vacation responders set no In-Reply-To).
std::vector<std::string> answering_parties(const MessageReader& msg,
                                           std::string_view envelope_sender);

// Only the In-Reply-To and References of the message itself (what an autoreply or an MDN
// answers); no body needed.
std::vector<std::string> referenced_message_ids(const MessageReader& msg);

}  // namespace mxguard::message
