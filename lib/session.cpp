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

}  // namespace mxguard
