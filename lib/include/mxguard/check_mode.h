// CheckMode: check.NAME = on | off | report. FailureAction: what an on-*-error option says to do
// when a lookup a check depends on cannot be made (DNS, the state store, mxguard itself).
// Thread-safety: plain values.
#pragma once

#include <string_view>

namespace mxguard {

enum class CheckMode { Off, On, Report };
std::string_view to_string(CheckMode m);

// Never a 5xx: a failure either answers 4xx (Tempfail) or lets the mail through (Accept).
enum class FailureAction { Tempfail, Accept };
std::string_view to_string(FailureAction a);

}  // namespace mxguard
