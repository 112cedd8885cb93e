#include "mxguard/message/options.h"

#include "mxguard/message/classifier.h"
#include "mxguard/tables/options.h"

namespace mxguard::message {

std::vector<options::Spec> message_option_specs() {
  using options::Kind;
  return {
      {"max-body-scan", Kind::Value, "body bytes read for bounce classification (default 128k)"},
      {"message-rules", Kind::Value, "directory of the bounce classifier tables"},
  };
}

options::Problem load_message_options(const options::Reader& r, bool rules_needed,
                                      MessageOptions& o) {
  if (auto e = r.size("max-body-scan", 1024, 64LL * 1024 * 1024, o.max_body_scan)) return e;
  const options::RawValue* v = r.last("message-rules");
  if (!v && !rules_needed) return std::nullopt;
  const std::string dir = v ? v->value : std::string("/etc/mxguard/rules");
  auto rules = load_rules(dir, v != nullptr);
  if (!rules)
    return tables::to_config_error(rules.error(), v ? v->where : "message-rules", "message-rules");
  o.rules = std::make_shared<const Rules>(std::move(rules).value());
  return std::nullopt;
}

}  // namespace mxguard::message
