#include "mxguard/check_registry.h"

#include <array>

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
#include "mxguard/config.h"

namespace mxguard {

namespace {

template <class C>
std::unique_ptr<Check> make(const Config&) {
  return std::make_unique<C>();
}

using M = CheckMode;
// Order matters: the admin's explicit tables first, then bans and traps, then the built-in
// heuristics. The DNS checks share one route analysis per recipient; unhandled-domain comes
// before null-mx so that a listed website domain is refused (and counted) as such. Content
// last: BATV tags at RCPT (and enforce mode at DATA), then bounces at EOH/EOM.
constexpr std::array<CheckInfo, kCheckCount> kChecks = {{
    {CheckId::Access, "access", M::On, &make<checks::AccessCheck>},
    {CheckId::Ban, "ban", M::On, &make<checks::BanCheck>},
    {CheckId::TrapMx, "trap-mx", M::On, &make<checks::TrapMxCheck>},
    {CheckId::ForgedLocalSender, "forged-local-sender", M::Off,
     &make<checks::ForgedLocalSenderCheck>},
    {CheckId::NullMxSender, "null-mx-sender", M::On, &make<checks::NullMxSenderCheck>},
    {CheckId::UnroutableSender, "unroutable-sender", M::Off, &make<checks::UnroutableSenderCheck>},
    {CheckId::UnhandledDomain, "unhandled-domain", M::On, &make<checks::UnhandledDomainCheck>},
    {CheckId::NullMx, "null-mx", M::On, &make<checks::NullMxCheck>},
    {CheckId::NoMailDomain, "no-mail-domain", M::On, &make<checks::NoMailDomainCheck>},
    {CheckId::BogusMx, "bogus-mx", M::On, &make<checks::BogusMxCheck>},
    {CheckId::Batv, "batv", M::Off, &make<checks::BatvCheck>},
    {CheckId::Backscatter, "backscatter", M::Off, &make<checks::BackscatterCheck>},
}};

constexpr bool in_id_order() {
  for (std::size_t i = 0; i < kChecks.size(); ++i)
    if (index(kChecks[i].id) != i) return false;
  return true;
}
static_assert(in_id_order(), "the registry lists the checks in CheckId order");

}  // namespace

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
