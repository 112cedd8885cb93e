// Postfix-style lookup tables, loaded once (at start and at reload) and read-only afterwards.
//   cidr:/path                 "network/prefix  result", first match in file order
//   regexp:/path, pcre:/path   "/pattern/flags  result", "!/pattern/", if/endif blocks,
//                              $1..$9 substitution; both run on PCRE2
//   hash:/path, btree:/path, lmdb:/path, texthash:/path, /path
//                              "key  result" text; for the indexed types the *source* text file
//                              at that path is read, so an admin's existing access files work
//                              unchanged without postmap
// Comment lines start with '#'; a line starting with white space continues the previous one.
// Thread-safety: immutable after load; lookups from any thread.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "mxguard/expected.h"
#include "mxguard/net/ip.h"

namespace mxguard::tables {

// A load error names the file and line, as "path:line: problem" (line 0: the file itself).
struct LoadError {
  std::string file;
  int line = 0;
  std::string message;
  std::string to_string() const;
};

enum class TableKind { Exact, Cidr, Pattern };

class Table {
 public:
  virtual ~Table() = default;
  virtual TableKind kind() const = 0;
  // The spec it was loaded from, e.g. "regexp:/etc/mxguard/rules/senders.regexp".
  virtual const std::string& spec() const = 0;
  // Exact tables: case-insensitive key match. Pattern tables: the first matching pattern,
  // with $n substituted. Cidr tables: the key parsed as an address (no match if it is not one).
  virtual std::optional<std::string> find(std::string_view key) const = 0;
  // Cidr tables match the address; exact tables look up its text form; pattern tables match
  // its text form.
  virtual std::optional<std::string> find_address(const net::IpAddress& addr) const = 0;
};

// Loads "type:/path" (or a bare path: a text table). `validate` is called for every result
// text at load time (for pattern tables: results without $n); returning an error message makes
// the load fail with that file and line. Unknown types and unreadable files are errors too.
using ResultValidator = std::optional<std::string> (*)(std::string_view result);
Expected<std::shared_ptr<const Table>, LoadError> load_table(std::string_view spec,
                                                             ResultValidator validate = nullptr);

// Postfix's lookup orders for access tables (see access(5)). Exact tables are queried with
// partial keys; cidr and pattern tables with the whole string only.
//  - address "user+ext@domain": user+ext@domain, user@domain (recipient_delimiter '+'),
//    domain, parent domains, user+ext@, user@. Each parent is tried as "example.com" (as
//    Postfix's default parent_domain_matches_subdomains does for smtpd_access_maps) and then
//    as ".example.com" (the other setting's form), so admins' files of either style work.
//    The null sender "<>" is looked up as the key "<>" (configurable in Postfix, fixed here).
//  - host name / helo: the name, then its parent domains (both forms, as above).
//  - client: host name and parents (unless "unknown"), then the address, then for IPv4 the
//    address with octets stripped from the right (1.2.3, 1.2, 1), for IPv6 with 16-bit groups
//    stripped (as Postfix does); cidr tables get the address. An IPv4-mapped client address
//    is looked up as IPv4, as Postfix's SMTP server converts it.
std::optional<std::string> lookup_address(const Table& t, std::string_view address);
std::optional<std::string> lookup_domain(const Table& t, std::string_view host);
std::optional<std::string> lookup_client(const Table& t, const net::IpAddress* addr,
                                         std::string_view hostname);

}  // namespace mxguard::tables
