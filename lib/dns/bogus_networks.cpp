#include "mxguard/dns/bogus_networks.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

namespace mxguard::dns {

std::string BogusMatch::describe(const net::IpAddress& addr) const {
  if (embedded)
    return fmt::format("{} {} (embedded in {})", reason, range.to_string(), addr.to_string());
  return fmt::format("{} {}", reason, range.to_string());
}

Expected<std::shared_ptr<const BogusNetworks>, tables::LoadError> BogusNetworks::load(
    const std::string& path) {
  std::ifstream in(path);
  if (!in) return unexpected(tables::LoadError{path, 0, "cannot read the file"});
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), path);
}

Expected<std::shared_ptr<const BogusNetworks>, tables::LoadError> BogusNetworks::parse(
    std::string_view text, const std::string& name) {
  auto out = std::make_shared<BogusNetworks>();
  out->source_ = name;
  // Postfix table syntax: '#' comments, blank lines, and a line starting with white space
  // continues the one before it.
  struct Logical {
    int line;
    std::string text;
  };
  std::vector<Logical> lines;
  int lineno = 0;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t nl = text.find('\n', pos);
    std::string_view l =
        text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    ++lineno;
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    std::size_t first = l.find_first_not_of(" \t");
    if (first == std::string_view::npos || l[first] == '#') continue;
    if (first > 0) {
      if (lines.empty())
        return unexpected(tables::LoadError{name, lineno, "continuation line without a start"});
      lines.back().text += ' ';
      lines.back().text += l.substr(first);
      continue;
    }
    lines.push_back(Logical{lineno, std::string(l)});
  }
  for (const auto& [line, t] : lines) {
    std::size_t sp = t.find_first_of(" \t");
    std::string_view key = std::string_view(t).substr(0, sp);
    std::string_view rest =
        sp == std::string::npos ? std::string_view() : std::string_view(t).substr(sp);
    while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t'))
      rest.remove_prefix(1);
    while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\t'))
      rest.remove_suffix(1);
    auto block = net::Cidr::parse_or_explain(key);
    if (!block)
      return unexpected(tables::LoadError{
          name, line, fmt::format("'{}' is not a network/prefix: {}", key, block.error())});
    if (rest.empty())
      return unexpected(
          tables::LoadError{name, line, fmt::format("'{}' has no reason text after it", key)});
    for (char c : rest)
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e)
        return unexpected(tables::LoadError{
            name, line, "the reason text goes into SMTP replies: printable ASCII only"});
    if (rest == "DUNNO" || rest == "dunno") {
      out->map_.add(*block, std::nullopt);
    } else {
      out->map_.add(*block, std::string(rest));
    }
  }
  return std::shared_ptr<const BogusNetworks>(std::move(out));
}

std::optional<BogusMatch> BogusNetworks::match(const net::IpAddress& addr) const {
  for (const auto& [block, reason] : map_.entries()) {
    if (!block.contains(addr)) continue;
    if (!reason) return std::nullopt;  // DUNNO: a reachable exception
    return BogusMatch{*reason, block, std::nullopt};
  }
  return std::nullopt;
}

std::optional<BogusMatch> BogusNetworks::classify(const net::IpAddress& addr) const {
  // The IPv4 address inside says more than the IPv6 wrapper: ::ffff:127.0.0.1 is loopback.
  if (auto v4 = addr.embedded_v4()) {
    if (auto m = match(*v4)) {
      m->embedded = *v4;
      return m;
    }
  }
  return match(addr);
}

}  // namespace mxguard::dns
