#include "mxguard/check_registry.h"

#include <array>

#include "checks/access.h"
#include "checks/ban.h"
#include "checks/bogus_mx.h"
#include "checks/forged_local_sender.h"
#include "checks/no_mail_domain.h"
#include "checks/null_mx.h"
#include "checks/null_mx_sender.h"
#include "checks/trap_mx.h"
#include "checks/unhandled_domain.h"
#include "checks/unroutable_sender.h"
#include "mxguard/checks/backscatter.h"
#include "mxguard/checks/batv.h"
#include "mxguard/config.h"

namespace mxguard {

namespace {

// Each check gets its own typed options, never the whole configuration.
checks::DnsCheckOptions dns_options(const Config& cfg) {
  return {cfg.site, cfg.dns.on_error, cfg.enabled(CheckId::UnroutableSender)};
}

template <class C>
std::unique_ptr<Check> make_dns(const Config& cfg) {
  return std::make_unique<C>(dns_options(cfg));
}

std::unique_ptr<Check> make_access(const Config& cfg) {
  return std::make_unique<checks::AccessCheck>(cfg.access);
}
std::unique_ptr<Check> make_ban(const Config& cfg) {
  return std::make_unique<checks::BanCheck>(cfg.state.on_error);
}
std::unique_ptr<Check> make_trap(const Config& cfg) {
  return std::make_unique<checks::TrapMxCheck>(cfg.trap);
}
std::unique_ptr<Check> make_forged(const Config& cfg) {
  return std::make_unique<checks::ForgedLocalSenderCheck>(cfg.site);
}
std::unique_ptr<Check> make_unhandled(const Config& cfg) {
  return std::make_unique<checks::UnhandledDomainCheck>(cfg.website, cfg.site);
}
std::unique_ptr<Check> make_batv(const Config& cfg) {
  return std::make_unique<checks::BatvCheck>(cfg.batv, cfg.site);
}
std::unique_ptr<Check> make_backscatter(const Config& cfg) {
  return std::make_unique<checks::BackscatterCheck>(backscatter_settings(cfg));
}

using M = CheckMode;
// Order matters: the admin's explicit tables first, then bans and traps, then the built-in
// heuristics. The DNS checks share one route analysis per recipient; unhandled-domain comes
// before null-mx so that a listed website domain is refused (and counted) as such. Content
// last: BATV tags at RCPT (and enforce mode at DATA), then bounces at EOH/EOM.
constexpr std::array<CheckInfo, kCheckCount> kChecks = {{
    {CheckId::Access, "access", M::On, &make_access},
    {CheckId::Ban, "ban", M::On, &make_ban},
    {CheckId::TrapMx, "trap-mx", M::On, &make_trap},
    {CheckId::ForgedLocalSender, "forged-local-sender", M::Off, &make_forged},
    {CheckId::NullMxSender, "null-mx-sender", M::On, &make_dns<checks::NullMxSenderCheck>},
    {CheckId::UnroutableSender, "unroutable-sender", M::Off,
     &make_dns<checks::UnroutableSenderCheck>},
    {CheckId::UnhandledDomain, "unhandled-domain", M::On, &make_unhandled},
    {CheckId::NullMx, "null-mx", M::On, &make_dns<checks::NullMxCheck>},
    {CheckId::NoMailDomain, "no-mail-domain", M::On, &make_dns<checks::NoMailDomainCheck>},
    {CheckId::BogusMx, "bogus-mx", M::On, &make_dns<checks::BogusMxCheck>},
    {CheckId::Batv, "batv", M::Off, &make_batv},
    {CheckId::Backscatter, "backscatter", M::Auto, &make_backscatter},
}};

constexpr bool in_id_order() {
  for (std::size_t i = 0; i < kChecks.size(); ++i)
    if (index(kChecks[i].id) != i) return false;
  return true;
}
static_assert(in_id_order(), "the registry lists the checks in CheckId order");

}  // namespace

checks::BackscatterSettings backscatter_settings(const Config& cfg) {
  return {cfg.backscatter, cfg.message.rules, cfg.batv.keys, cfg.batv.tag_max_age_days, cfg.site};
}

std::span<const CheckInfo> check_registry() {
  return kChecks;
}

const CheckInfo& check_info(CheckId id) {
  return kChecks[index(id)];
}

std::optional<CheckId> find_check(std::string_view name) {
  for (const auto& c : kChecks)
    if (c.name == name) return c.id;
  return std::nullopt;
}

std::string_view to_string(CheckId id) {
  return check_info(id).name;
}

}  // namespace mxguard
