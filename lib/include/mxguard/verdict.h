// SmtpReply and Verdict: what a check says when it objects, and what the adapter sends the MTA.
// Checks return std::optional<Verdict>: empty means "no objection" (Postfix's NULL reply).
// Thread-safety: plain value types.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "mxguard/expected.h"

namespace mxguard {

// A complete SMTP reply: "550 5.7.1 text". Built only through make(), which checks that the
// code is 4xx/5xx, the enhanced status has the same class digit, and the text is printable
// ASCII without CR/LF (so a table line can never inject a second reply line).
class SmtpReply {
 public:
  static Expected<SmtpReply, std::string> make(int code, std::string_view enhanced,
                                               std::string_view text);
  // For built-in replies whose parts are known good; aborts on a programming error.
  static SmtpReply fixed(int code, std::string_view enhanced, std::string_view text);

  int code() const { return code_; }
  const std::string& enhanced() const { return enhanced_; }
  const std::string& text() const { return text_; }
  bool permanent() const { return code_ >= 500; }
  std::string to_string() const;  // "550 5.7.1 text"

 private:
  SmtpReply(int code, std::string enhanced, std::string text)
      : code_(code), enhanced_(std::move(enhanced)), text_(std::move(text)) {}
  int code_ = 0;
  std::string enhanced_;
  std::string text_;
};

enum class Action { Continue, Accept, Reject, Tempfail, Discard };
std::string_view to_string(Action a);

struct Verdict {
  Action action = Action::Continue;
  std::optional<SmtpReply> reply;  // set for Reject and Tempfail
  std::string check;               // the check's name, e.g. "access"
  std::string reason;              // a short stable tag for logs and metrics, e.g. "table"
  bool report_only = false;        // set by the pipeline: logged as "would reject", not enforced

  static Verdict reject(SmtpReply r, std::string check, std::string reason);
  static Verdict tempfail(SmtpReply r, std::string check, std::string reason);
  static Verdict accept(std::string check, std::string reason);
  static Verdict discard(std::string check, std::string reason);
  bool decisive() const { return action != Action::Continue; }
};

}  // namespace mxguard
