#include "mxguard/address.h"

#include <fmt/format.h>

#include "mxguard/idna.h"
#include "mxguard/text.h"

namespace mxguard {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// "KDDDSSSSSS": ten characters.
bool tag_syntax(std::string_view t) {
  if (t.size() != 10) return false;
  for (std::size_t i = 0; i < 4; ++i)
    if (!is_digit(t[i])) return false;
  for (std::size_t i = 4; i < 10; ++i)
    if (!is_hex(t[i])) return false;
  return true;
}

}  // namespace

std::optional<BatvSplit> split_batv(std::string_view local) {
  constexpr std::string_view kPrvs = "prvs=";
  if (istarts_with(local, kPrvs)) {
    // prvs=KDDDSSSSSS=local
    std::string_view rest = local.substr(kPrvs.size());
    if (rest.size() < 12 || rest[10] != '=' || !tag_syntax(rest.substr(0, 10))) return std::nullopt;
    return BatvSplit{rest.substr(0, 10), rest.substr(11), BatvForm::Prefix};
  }
  // local+prvs=KDDDSSSSSS
  auto plus = local.rfind('+');
  if (plus == std::string_view::npos || plus == 0) return std::nullopt;
  std::string_view tail = local.substr(plus + 1);
  if (!istarts_with(tail, kPrvs) || !tag_syntax(tail.substr(kPrvs.size()))) return std::nullopt;
  return BatvSplit{tail.substr(kPrvs.size()), local.substr(0, plus), BatvForm::SubAddress};
}

Address Address::parse(std::string_view arg) {
  Address a;
  a.raw = strip_angle(arg);
  const std::string_view raw = a.raw;
  const std::size_t at = raw.rfind('@');
  const std::string_view given_local = raw.substr(0, at);
  const std::string_view given_domain =
      at == std::string_view::npos ? std::string_view() : raw.substr(at + 1);

  // A tag needs something on both sides of the '@', as batv::verify reads it.
  std::optional<BatvSplit> batv;
  if (at != std::string_view::npos && at != 0 && !given_domain.empty())
    batv = split_batv(given_local);
  if (batv) {
    a.local = batv->local;
    a.batv_tag = batv->tag;
    a.batv_form = batv->form;
  } else {
    a.local = given_local;
  }

  if (!given_domain.empty()) {
    if (auto d = domain_to_ascii(given_domain)) {
      a.domain = std::move(*d);
    } else {
      a.domain = ascii_lowercase(without_trailing_dots(given_domain));
      a.domain_invalid = true;
    }
  }
  return a;
}

std::string_view Address::given_local() const {
  return local_part(raw);
}

std::string_view Address::given_domain() const {
  return domain_part(raw);
}

std::string Address::plain() const {
  return tagged() ? fmt::format("{}@{}", local, given_domain()) : raw;
}

std::string strip_angle(std::string_view arg) {
  arg = trim(arg, " \t");
  if (arg.size() >= 2 && arg.front() == '<' && arg.back() == '>') {
    arg.remove_prefix(1);
    arg.remove_suffix(1);
  }
  return std::string(arg);
}

std::string_view local_part(std::string_view address) {
  auto at = address.rfind('@');
  return at == std::string_view::npos ? address : address.substr(0, at);
}

std::string_view domain_part(std::string_view address) {
  auto at = address.rfind('@');
  return at == std::string_view::npos ? std::string_view() : address.substr(at + 1);
}

}  // namespace mxguard
