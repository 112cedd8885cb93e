#include "mxguard/batv/options.h"

#include "mxguard/batv/keys.h"

namespace mxguard::batv {

std::vector<options::Spec> batv_option_specs() {
  using options::Kind;
  return {
      {"batv-key-file", Kind::Value, "BATV keys, 'K secret' per line, mode 600"},
      {"batv-sign", Kind::Value, "sign envelope senders of outgoing mail (yes/no, default yes)"},
      {"batv-form", Kind::Value,
       "prvs (prvs=KDDDSSSSSS=local@domain) or subaddress (local+prvs=...)"},
      {"batv-lifetime", Kind::Value, "days a BATV tag stays valid (default 7)"},
      {"batv-exclude-senders", Kind::List, "senders never signed: addresses, local parts, @domain"},
      {"batv-enforce-domains", Kind::List, "domains whose bounces must carry a valid BATV tag"},
      {"tag-lifetime", Kind::Value, "days an X-Mxguard-Tag stays valid (default 30)"},
  };
}

options::Problem load_batv_options(const options::Reader& r, BatvOptions& o) {
  std::size_t form = o.subaddress ? 1 : 0;
  // Days, and below 1000: the prvs day stamp wraps every 1000 days.
  for (auto e : {r.domains("batv-enforce-domains", "@/[]", o.enforce_domains),
                 r.addresses("batv-exclude-senders", o.exclude_senders),
                 r.number("batv-lifetime", 1, 90, o.lifetime_days),
                 r.number("tag-lifetime", 1, 365, o.tag_max_age_days), r.flag("batv-sign", o.sign),
                 r.choice("batv-form", {"prvs", "subaddress"}, form)})
    if (e) return e;
  o.subaddress = form == 1;
  if (const options::RawValue* v = r.last("batv-key-file")) {
    auto keys = KeyRing::load(v->value);
    if (!keys) return keys.error();
    o.keys = *keys;
  }
  return std::nullopt;
}

}  // namespace mxguard::batv
