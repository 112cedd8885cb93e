#include "mxguard/policy.h"

#include "mxguard/checks/access.h"
#include "mxguard/checks/backscatter.h"
#include "mxguard/checks/ban.h"
#include "mxguard/checks/batv.h"
#include "mxguard/checks/bogus_mx.h"
#include "mxguard/checks/forged_local_sender.h"
#include "mxguard/checks/no_mail_domain.h"
#include "mxguard/checks/null_mx.h"
#include "mxguard/checks/null_mx_sender.h"
#include "mxguard/checks/trap_mx.h"
#include "mxguard/checks/unhandled_domain.h"
#include "mxguard/checks/unroutable_sender.h"
#include "mxguard/dns/mail_route.h"
#include "mxguard/log.h"

namespace mxguard {

std::shared_ptr<const Policy> build_policy(std::shared_ptr<const Config> config) {
  auto policy = std::make_shared<Policy>();
  policy->config = config;
  Pipeline& p = policy->pipeline;
  p.set_report_only(config->report_only);
  // Order matters: the admin's explicit tables first, then the built-in heuristics.
  p.add(std::make_unique<checks::AccessCheck>(), config->mode("access"));
  p.add(std::make_unique<checks::BanCheck>(), config->mode("ban"));
  p.add(std::make_unique<checks::TrapMxCheck>(), config->mode("trap-mx"));
  p.add(std::make_unique<checks::ForgedLocalSenderCheck>(), config->mode("forged-local-sender"));
  // DNS routing: one route analysis per recipient serves all three rcpt checks.
  p.add(std::make_unique<checks::NullMxSenderCheck>(), config->mode("null-mx-sender"));
  p.add(std::make_unique<checks::UnroutableSenderCheck>(), config->mode("unroutable-sender"));
  // Before null-mx: a listed website domain is refused (and counted) as such.
  p.add(std::make_unique<checks::UnhandledDomainCheck>(), config->mode("unhandled-domain"));
  p.add(std::make_unique<checks::NullMxCheck>(), config->mode("null-mx"));
  p.add(std::make_unique<checks::NoMailDomainCheck>(), config->mode("no-mail-domain"));
  p.add(std::make_unique<checks::BogusMxCheck>(), config->mode("bogus-mx"));
  // Content: BATV tags at RCPT (and enforce mode at DATA), then bounces at EOH/EOM.
  p.add(std::make_unique<checks::BatvCheck>(), config->mode("batv"));
  p.add(std::make_unique<checks::BackscatterCheck>(), config->mode("backscatter"));
  // The config was validated, so this fails only on something like memory; the DNS checks
  // then see no analyzer and stay silent, which the log says.
  if (auto routes = dns::make_route_analyzer(config->dns)) {
    policy->routes = *routes;
  } else {
    log(LogLevel::Error, "DNS checks disabled: {}", routes.error());
  }
  return policy;
}

}  // namespace mxguard
