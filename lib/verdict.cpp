#include "mxguard/verdict.h"

#include <fmt/format.h>

#include <cstdlib>

namespace mxguard {

namespace {

bool valid_enhanced(std::string_view e, char cls) {
  // class.subject.detail: class one digit, subject and detail 1-3 digits each.
  if (e.size() < 5 || e[0] != cls || e[1] != '.') return false;
  std::size_t pos = 2;
  for (int part = 0; part < 2; ++part) {
    std::size_t digits = 0;
    while (pos < e.size() && e[pos] >= '0' && e[pos] <= '9')
      ++pos, ++digits;
    if (digits < 1 || digits > 3) return false;
    if (part == 0) {
      if (pos >= e.size() || e[pos] != '.') return false;
      ++pos;
    }
  }
  return pos == e.size();
}

}  // namespace

Expected<SmtpReply, std::string> SmtpReply::make(int code, std::string_view enhanced,
                                                 std::string_view text) {
  if (code < 400 || code > 599)
    return unexpected(fmt::format("reply code {} is not 4xx or 5xx", code));
  char cls = static_cast<char>('0' + code / 100);
  if (!valid_enhanced(enhanced, cls))
    return unexpected(
        fmt::format("enhanced status '{}' does not fit reply code {}", enhanced, code));
  for (unsigned char c : text) {
    if (c < 0x20 || c > 0x7e)
      return unexpected(std::string("reply text has a control or non-ASCII character"));
  }
  return SmtpReply(code, std::string(enhanced), std::string(text));
}

SmtpReply SmtpReply::fixed(int code, std::string_view enhanced, std::string_view text) {
  auto r = make(code, enhanced, text);
  if (!r) {
    fmt::print(stderr, "mxguard: internal error: bad built-in reply: {}\n", r.error());
    std::abort();
  }
  return std::move(r).value();
}

std::string SmtpReply::to_string() const {
  return fmt::format("{} {} {}", code_, enhanced_, text_);
}

std::string_view to_string(Action a) {
  switch (a) {
    case Action::Continue:
      return "continue";
    case Action::Accept:
      return "accept";
    case Action::Reject:
      return "reject";
    case Action::Tempfail:
      return "tempfail";
    case Action::Discard:
      return "discard";
  }
  return "?";
}

Verdict Verdict::reject(SmtpReply r, std::string check, std::string reason) {
  return Verdict{Action::Reject, std::move(r), std::move(check), std::move(reason), false};
}
Verdict Verdict::tempfail(SmtpReply r, std::string check, std::string reason) {
  return Verdict{Action::Tempfail, std::move(r), std::move(check), std::move(reason), false};
}
Verdict Verdict::accept(std::string check, std::string reason) {
  return Verdict{Action::Accept, std::nullopt, std::move(check), std::move(reason), false};
}
Verdict Verdict::discard(std::string check, std::string reason) {
  return Verdict{Action::Discard, std::nullopt, std::move(check), std::move(reason), false};
}

}  // namespace mxguard
