#include "mxguard/policy.h"

#include "mxguard/checks/access.h"
#include "mxguard/checks/backscatter.h"
#include "mxguard/checks/batv.h"
#include "mxguard/checks/forged_local_sender.h"

namespace mxguard {

std::shared_ptr<const Policy> build_policy(std::shared_ptr<const Config> config) {
  auto policy = std::make_shared<Policy>();
  policy->config = config;
  Pipeline& p = policy->pipeline;
  p.set_report_only(config->report_only);
  // Order matters: the admin's explicit tables first, then the built-in heuristics.
  p.add(std::make_unique<checks::AccessCheck>(), config->mode("access"));
  p.add(std::make_unique<checks::ForgedLocalSenderCheck>(), config->mode("forged-local-sender"));
  // Content: BATV tags at RCPT (and enforce mode at DATA), then bounces at EOH/EOM.
  p.add(std::make_unique<checks::BatvCheck>(), config->mode("batv"));
  p.add(std::make_unique<checks::BackscatterCheck>(), config->mode("backscatter"));
  return policy;
}

}  // namespace mxguard
