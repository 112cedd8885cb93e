// CheckId: the checks mxguard has, as typed ids (names and order: check_registry.h).
// CheckMode: check.NAME = on | off | report. FailureAction: what an on-*-error option says to do
// when a lookup a check depends on cannot be made (DNS, the state store, mxguard itself).
// Thread-safety: plain values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mxguard {

// In pipeline order (the registry's table lists them in the same order and a test holds it).
enum class CheckId : std::uint8_t {
  Access,
  Ban,
  TrapMx,
  ForgedLocalSender,
  NullMxSender,
  UnroutableSender,
  UnhandledDomain,
  NullMx,
  NoMailDomain,
  BogusMx,
  Batv,
  Backscatter,
};
inline constexpr std::size_t kCheckCount = 12;
constexpr std::size_t index(CheckId id) {
  return static_cast<std::size_t>(id);
}

// Auto: report-only until the proof it relies on has had time to build up (the ledger of the
// mail we sent has recorded for a whole ledger-lifetime), then on (issue 14, backscatter).
enum class CheckMode { Off, On, Report, Auto };
std::string_view to_string(CheckMode m);

// Never a 5xx: a failure either answers 4xx (Tempfail) or lets the mail through (Accept).
enum class FailureAction { Tempfail, Accept };
std::string_view to_string(FailureAction a);

}  // namespace mxguard
