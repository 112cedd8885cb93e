#include "mxguard/policy.h"

#include "mxguard/check_registry.h"
#include "mxguard/dns/mail_route.h"
#include "mxguard/log.h"

namespace mxguard {

std::shared_ptr<const Policy> build_policy(std::shared_ptr<const Config> config, PolicyDns dns) {
  auto policy = std::make_shared<Policy>();
  policy->config = config;
  Pipeline& p = policy->pipeline;
  p.set_report_only(config->report_only);
  for (const CheckInfo& c : check_registry())
    p.add(c.make(*config), config->mode(c.id));
  // The config was validated, so this fails only on something like memory; the DNS checks
  // then see no analyzer and stay silent, which the log says.
  if (dns == PolicyDns::Without) return policy;
  if (auto routes = dns::make_route_analyzer(config->dns)) {
    policy->routes = *routes;
  } else {
    log(LogLevel::Error, "DNS checks disabled: {}", routes.error());
  }
  return policy;
}

}  // namespace mxguard
