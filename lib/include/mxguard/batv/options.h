// BatvOptions: BATV signing and verification settings (batv-key-file, batv-sign, batv-form,
// batv-lifetime, batv-exclude-senders, batv-enforce-domains, tag-lifetime) and their loader.
// The key file is read at load time, so a bad key stops start-up (exit 78), not the first
// bounce.
// Who calls it: config.cpp; the batv check and message signing read the values.
// Thread-safety: plain values; the key ring is immutable and shared.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "mxguard/options/reader.h"

namespace mxguard::batv {

class KeyRing;

struct BatvOptions {
  std::shared_ptr<const KeyRing> keys;  // null: no BATV
  bool sign = true;
  bool subaddress = false;  // local+prvs=...@domain instead of prvs=...=local@domain
  int lifetime_days = 7;
  int tag_max_age_days = 30;                 // X-Mxguard-Tag
  std::vector<std::string> exclude_senders;  // addresses, local parts, or @domain
  std::vector<std::string> enforce_domains;
};

std::vector<options::Spec> batv_option_specs();
options::Problem load_batv_options(const options::Reader& r, BatvOptions& o);

}  // namespace mxguard::batv
