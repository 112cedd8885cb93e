#include "mxguard/check_mode.h"

namespace mxguard {

std::string_view to_string(CheckMode m) {
  switch (m) {
    case CheckMode::Off:
      return "off";
    case CheckMode::On:
      return "on";
    case CheckMode::Auto:
      return "auto";
    case CheckMode::Report:
      return "report";
  }
  return "?";
}

std::string_view to_string(FailureAction a) {
  return a == FailureAction::Accept ? "accept" : "tempfail";
}

}  // namespace mxguard
