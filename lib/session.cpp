#include "mxguard/session.h"

#include <fmt/format.h>

namespace mxguard {

std::string_view to_string(Stage s) {
  switch (s) {
    case Stage::Connect:
      return "CONNECT";
    case Stage::Helo:
      return "EHLO";
    case Stage::Mail:
      return "MAIL";
    case Stage::Rcpt:
      return "RCPT";
    case Stage::Data:
      return "DATA";
    case Stage::Header:
      return "HEADER";
    case Stage::Eoh:
      return "END-OF-HEADERS";
    case Stage::Body:
      return "BODY";
    case Stage::Eom:
      return "END-OF-MESSAGE";
  }
  return "?";
}

std::string Session::client_label() const {
  std::string name = client_name.empty() ? std::string("unknown") : client_name;
  if (!client_addr) return name + "[local]";
  return fmt::format("{}[{}]", name, client_addr->to_string());
}

std::string_view local_part(std::string_view address) {
  auto at = address.rfind('@');
  return at == std::string_view::npos ? address : address.substr(0, at);
}

std::string_view domain_part(std::string_view address) {
  auto at = address.rfind('@');
  return at == std::string_view::npos ? std::string_view() : address.substr(at + 1);
}

std::string strip_angle(std::string_view arg) {
  auto is_space = [](char c) { return c == ' ' || c == '\t'; };
  while (!arg.empty() && is_space(arg.front()))
    arg.remove_prefix(1);
  while (!arg.empty() && is_space(arg.back()))
    arg.remove_suffix(1);
  if (arg.size() >= 2 && arg.front() == '<' && arg.back() == '>') {
    arg.remove_prefix(1);
    arg.remove_suffix(1);
  }
  return std::string(arg);
}

}  // namespace mxguard
