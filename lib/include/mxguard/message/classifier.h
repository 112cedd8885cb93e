// The bounce classifier: what kind of automatic mail a message is (RFC 3464 DSN, free-text
// bounce, RFC 3834 autoreply, challenge-response, virus-scanner notice, RFC 8098 MDN, or
// ordinary), and what it quotes of the message it answers (the original's Received chain,
// Message-ID, From and X-Mxguard-Tag).
// Who calls it: the backscatter check (at end of headers and end of message), the offline
// test mode, the benchmark, unit tests.
// Thread-safety: Rules are immutable after load and shared by all sessions; classify() is a
// pure function.
//
// RFC structure (multipart/report and its report-type, message/delivery-status fields,
// Auto-Submitted) is parsed here in C++. The heuristics — MTA-specific subjects, senders,
// header markers and body phrases — live in Postfix regexp tables that admins can edit (see
// rules/*.regexp); each table's result is a class word: bounce, autoreply, challenge, virus,
// mdn, or ordinary ("this is a known false positive: stop looking in this table"; in the header
// table, "this header marks mail people or lists send on purpose": a mailing list's List-Id
// outweighs every heuristic unless a bounce sender sent the message). A class word may be
// followed by "weak": words people also write ("Out of office"), or a header or sender that
// automatic mail often has (Precedence: junk, noreply@); a weak match counts only beside a
// strong sign, never with another weak one. Auto-Submitted: auto-replied makes an autoreply;
// auto-generated (a notification) keeps the heuristics from calling a message an autoreply.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mxguard/expected.h"
#include "mxguard/message/reader.h"
#include "mxguard/tables/table.h"

namespace mxguard::message {

enum class MessageClass { Ordinary, Dsn, Bounce, Autoreply, Challenge, VirusNotice, Mdn };
std::string_view to_string(MessageClass c);
// The word used in rule tables for a class ("bounce" for both Dsn and Bounce).
std::optional<MessageClass> parse_class_word(std::string_view word);

// Is this class mail that only makes sense as an answer to a message we sent?
inline bool is_backscatter_class(MessageClass c) {
  return c != MessageClass::Ordinary;
}

// The heuristic tables. Any of them may be absent; structure is still recognised.
struct Rules {
  std::shared_ptr<const tables::Table> subjects;  // key: the decoded Subject
  std::shared_ptr<const tables::Table> senders;   // key: an address (envelope sender, From)
  std::shared_ptr<const tables::Table> headers;   // key: "Name: value" of each header field
  std::shared_ptr<const tables::Table> body;      // key: each line of the first text parts
};

// Loads DIR/bounce-subjects.regexp, bounce-senders.regexp, autoreply.regexp and
// bounce-body.regexp. `required`: a missing file is an error (else it is skipped). Every result
// must be a class word, optionally followed by "weak" (checked at load, with file and line).
Expected<Rules, tables::LoadError> load_rules(std::string_view dir, bool required);
// The validator used for those tables (exposed for tests and custom table paths).
std::optional<std::string> validate_class_result(std::string_view result);

// One per-recipient block of a message/delivery-status part (RFC 3464 §2.3).
struct DsnRecipient {
  std::string final_recipient;     // the address, without the "rfc822;" type
  std::string original_recipient;  // likewise, may be empty
  std::string action;              // failed, delayed, delivered, relayed, expanded (lower case)
  std::string status;              // e.g. 5.1.1
  std::string diagnostic;          // Diagnostic-Code text, may be empty
};

// What the returned part tells of the original message.
struct ReturnedOriginal {
  std::string source;  // "message/rfc822", "text/rfc822-headers", "quoted text", or empty
  std::vector<std::string> received;  // unfolded Received values, top (newest) first
  std::string message_id;             // "<id@domain>", or empty
  std::string from;                   // the address in From, or empty
  std::vector<std::string> tags;      // X-Mxguard-Tag values
  bool found() const { return !source.empty(); }
};

struct Envelope {
  std::string sender;  // empty: the null sender
};

struct Classification {
  MessageClass cls = MessageClass::Ordinary;
  std::string reason;  // what decided it, e.g. "report-type=delivery-status", "subject"
  std::vector<DsnRecipient> dsn;
  ReturnedOriginal original;
  std::string reporting_mta;  // DSN Reporting-MTA, if any
  bool body_truncated = false;
};

// At end of headers: the class as far as headers tell, and whether the body can change that.
struct HeaderAssessment {
  MessageClass cls = MessageClass::Ordinary;
  std::string reason;
  // True: the headers settle it — an ordinary message from a non-null, non-bounce sender with
  // no report content type and no automatic-mail markers. The body need not be read.
  bool headers_suffice = false;
  // True: the class is known from explicit markers (report content type, Auto-Submitted,
  // header table); the body is still needed to find the returned original.
  bool class_final = false;
};

// A sender that bounces come from: the null sender, or a local part MAILER-DAEMON or
// postmaster (built in), or a match of the senders table that is neither "ordinary" nor weak.
bool is_bounce_sender(std::string_view sender, const Rules& rules);

HeaderAssessment assess_headers(const MessageReader& msg, const Envelope& env, const Rules& rules);
Classification classify(const MessageReader& msg, const Envelope& env, const Rules& rules);

}  // namespace mxguard::message
