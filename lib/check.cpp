#include "mxguard/check.h"

#include "mxguard/log.h"
#include "mxguard/metrics.h"

namespace mxguard {

bool CheckContext::failure(std::string_view check, FailureAction action,
                           std::string_view what) const {
  // One line a minute for each check and policy: a DNS or Redis outage applies the policy to
  // every message, and the counter says how often.
  static LogLimiter limiter(std::chrono::seconds(60));
  const std::string_view policy = to_string(action);
  metrics().count_failure_policy(check, policy);
  const std::string key = fmt::format("{}/{}", check, policy);
  if (auto held = limiter.admit(key, clock->now())) {
    if (*held > 0) {
      log(LogLevel::Warning, "{} ({} more like it in the last minute: see debug)", what, *held);
    } else {
      log(LogLevel::Warning, "{}", what);
    }
  } else {
    log(LogLevel::Debug, "{}", what);
  }
  return action == FailureAction::Tempfail;
}

}  // namespace mxguard
