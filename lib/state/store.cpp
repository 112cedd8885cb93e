#include "mxguard/state/store.h"

#include <fmt/format.h>

namespace mxguard::state {

std::string_view to_string(StoreErrorKind k) {
  switch (k) {
    case StoreErrorKind::Unavailable:
      return "unavailable";
    case StoreErrorKind::Timeout:
      return "timeout";
    case StoreErrorKind::Protocol:
      return "protocol";
    case StoreErrorKind::Full:
      return "full";
    case StoreErrorKind::BadValue:
      return "bad value";
  }
  return "?";
}

std::string StoreError::to_string() const {
  return fmt::format("{}: {}", state::to_string(kind), message);
}

}  // namespace mxguard::state
