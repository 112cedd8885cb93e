// Postfix-style tables: loading (cidr, regexp, pcre, text), load errors with file:line, and the
// access(5) lookup orders.
#include <catch2/catch.hpp>

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "mxguard/net/ip.h"
#include "mxguard/tables/access_action.h"
#include "mxguard/tables/table.h"

using namespace std::string_literals;
using mxguard::net::IpAddress;
using mxguard::tables::load_table;
using mxguard::tables::LoadError;
using mxguard::tables::lookup_address;
using mxguard::tables::lookup_client;
using mxguard::tables::lookup_domain;
using mxguard::tables::Table;
using mxguard::tables::TableKind;
using mxguard::tables::validate_access_action;

namespace {

std::string data_file(std::string_view name) {
  return fmt::format("{}/tests/data/tables/{}", MXGUARD_SOURCE_DIR, name);
}

// A table file written for one test and removed after it.
class TempFile {
 public:
  explicit TempFile(std::string_view content) {
    static std::atomic<int> counter{0};
    path_ = (std::filesystem::temp_directory_path() /
             fmt::format("mxguard-tables-{}-{}", ::getpid(), counter++))
                .string();
    std::FILE* f = std::fopen(path_.c_str(), "wb");
    REQUIRE(f != nullptr);
    std::fwrite(content.data(), 1, content.size(), f);
    std::fclose(f);
  }
  ~TempFile() { std::remove(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::shared_ptr<const Table> load_ok(const std::string& spec,
                                     mxguard::tables::ResultValidator validate = nullptr) {
  auto table = load_table(spec, validate);
  if (!table) FAIL("load failed: " << table.error().to_string());
  REQUIRE(table.value() != nullptr);
  return table.value();
}

LoadError load_error(const std::string& spec, mxguard::tables::ResultValidator validate = nullptr) {
  auto table = load_table(spec, validate);
  if (table) FAIL("load of " << spec << " should have failed");
  return table.error();
}

std::string or_none(const std::optional<std::string>& s) {
  return s ? *s : "(none)";
}

IpAddress ip(const char* text) {
  auto addr = IpAddress::parse(text);
  REQUIRE(addr);
  return *addr;
}

}  // namespace

// --- loading -------------------------------------------------------------------------------

TEST_CASE("table specs pick the loader; indexed types read their source text", "[tables]") {
  auto [prefix, kind] = GENERATE(table<std::string, TableKind>({
      {"", TableKind::Exact},
      {"hash:", TableKind::Exact},
      {"btree:", TableKind::Exact},
      {"lmdb:", TableKind::Exact},
      {"texthash:", TableKind::Exact},
  }));
  std::string spec = prefix + data_file("lookup-order.access");
  CAPTURE(spec);
  auto t = load_ok(spec);
  CHECK(t->kind() == kind);
  CHECK(t->spec() == spec);
  CHECK(or_none(t->find("user@")) == "OK localpart");

  CHECK(load_ok("cidr:" + data_file("clients.cidr"))->kind() == TableKind::Cidr);
  CHECK(load_ok("regexp:" + data_file("senders.regexp"))->kind() == TableKind::Pattern);
  CHECK(load_ok("pcre:" + data_file("senders.pcre"))->kind() == TableKind::Pattern);
}

TEST_CASE("unknown table types and unreadable files are errors on line 0", "[tables]") {
  auto e = load_error("mysql:/etc/postfix/mysql.cf");
  CHECK(e.line == 0);
  CHECK(e.file == "/etc/postfix/mysql.cf");
  CHECK(e.to_string() == "/etc/postfix/mysql.cf:0: unsupported table type 'mysql'");

  auto missing = load_error("hash:/nonexistent/mxguard/access");
  CHECK(missing.line == 0);
  CHECK(missing.to_string() == "/nonexistent/mxguard/access:0: No such file or directory");

  auto dir = load_error("cidr:" + std::filesystem::temp_directory_path().string());
  CHECK(dir.line == 0);
  CHECK_THAT(dir.message, Catch::Contains("directory"));

  CHECK(load_error("hash:").message == "no file name in table spec");
}

TEST_CASE("text tables fold keys to lower case and keep the first of duplicate keys", "[tables]") {
  auto t = load_ok(data_file("lookup-order.access"));
  CHECK(or_none(t->find("user@example.com")) == "OK address without extension");
  CHECK(or_none(t->find("USER@EXAMPLE.com")) == "OK address without extension");
  CHECK(or_none(t->find("example.com")) == "OK parent domain");  // not "REJECT duplicate"
  CHECK_FALSE(t->find("nobody@example.com"));
}

TEST_CASE("comments, blank lines and continuation lines follow Postfix's reader", "[tables]") {
  TempFile f(
      "# a comment\n"
      "\n"
      "   \t\n"
      "one.example   REJECT first part\n"
      "    # an indented comment does not end or extend the entry\n"
      "\tsecond part\n"
      "two.example   OK\r\n"
      "three.example DUNNO");
  auto t = load_ok("hash:" + f.path());
  CHECK(or_none(t->find("one.example")) == "REJECT first part\tsecond part");
  CHECK(or_none(t->find("two.example")) == "OK");
  CHECK(or_none(t->find("three.example")) == "DUNNO");
  CHECK_FALSE(t->find("# a comment"));
}

TEST_CASE("malformed lines are load errors naming file and line", "[tables]") {
  auto [type, content, line, message] = GENERATE(table<std::string, std::string, int, std::string>({
      {"hash", "ok.example OK\nlonely-key\n", 2, "'lonely-key' has no value"},
      {"hash", "  starts with a continuation\n", 1, "continuation line"},
      {"hash", "a OK\nb\0c OK\n"s, 2, "NUL byte"},
      {"cidr", "10.0.0.0/8 OK\n10.1.0.0/8 REJECT\n", 2, "host bits set"},
      {"cidr", "# header\n\n192.168.1.1/24 REJECT\n", 3, "the network is 192.168.1.0/24"},
      {"cidr", "10.0.0.0/33 REJECT\n", 1, "bad prefix length"},
      {"cidr", "010.0.0.0/8 REJECT\n", 1, "not an IP address"},
      {"cidr", "example.com REJECT\n", 1, "not an IP address"},
      {"cidr", "10.0.0.0/8\n", 1, "has no result"},
      {"cidr", "10.0.0.0/8 OK\nendif\n", 2, "endif without matching if"},
      {"cidr", "if 10.0.0.0/8\n10.1.0.0/16 OK\n", 1, "if without matching endif"},
      {"cidr", "if 10.0.0.0/8 OK\nendif\n", 1, "text after if pattern"},
      {"cidr", "if 10.0.0.0/8\nendif junk\n", 2, "text after endif"},
      {"regexp", "/a/ OK\n/unclosed OK\n", 2, "missing closing '/'"},
      {"regexp", "/a(/ OK\n", 1, "bad pattern at offset"},
      {"regexp", "/a/q OK\n", 1, "unknown regexp flag 'q'"},
      {"regexp", "/a/s OK\n", 1, "unknown regexp flag 's'"},
      {"regexp", "/a/x OK\n", 1, "basic regular expression"},
      {"regexp", "/a/\n", 1, "has no result"},
      {"regexp", "// OK\n", 1, "empty pattern"},
      {"regexp", "abc OK\n", 1, "expected a pattern"},
      {"regexp", "/(a)/ REJECT $2\n", 1, "'$2' refers to a group"},
      {"regexp", "/a/ REJECT $1\n", 1, "'$1' refers to a group"},
      {"regexp", "/(a)/ REJECT $0\n", 1, "'$0' refers to a group"},
      {"regexp", "/(a)/ REJECT $1x\n", 1, "'$1x' is not a group number"},
      {"regexp", "/(a)/ REJECT ${1\n", 1, "missing '}'"},
      {"regexp", "/(a)/ REJECT 100$ off\n", 1, "'$' must be followed"},
      {"regexp", "!/(a)/ REJECT $1\n", 1, "negated pattern"},
      {"regexp", "if /a/\n/b/ OK\nendif\nendif\n", 4, "endif without matching if"},
      {"regexp", "/x/ OK\nif /a/\nif /b/\n/c/ OK\nendif\n", 2, "if without matching endif"},
      {"regexp", "if /a/ OK\nendif\n", 1, "text after if pattern"},
      {"pcre", "/a/Z OK\n", 1, "unknown pcre flag 'Z'"},
      {"pcre", "/a\\/ OK\n", 1, "missing closing '/'"},
      {"pcre", "/\\q/ OK\n", 1, "bad pattern"},
  }));
  CAPTURE(type, content);
  TempFile f(content);
  auto e = load_error(type + ":" + f.path());
  CHECK(e.file == f.path());
  CHECK(e.line == line);
  CHECK_THAT(e.message, Catch::Contains(message));
  CHECK(e.to_string() == fmt::format("{}:{}: {}", f.path(), line, e.message));
}

TEST_CASE("the validator checks every fixed result at load and names the line", "[tables]") {
  auto [type, content, line] = GENERATE(table<std::string, std::string, int>({
      {"hash", "a.example OK\nb.example REJCT go away\n", 2},
      {"cidr", "10.0.0.0/8 OK\n\n192.0.2.0/24 550 4.7.1 mismatch\n", 3},
      {"regexp", "/^a/ OK\n/^(b)/ REJECT $1\n/^c/ PERMITTED\n", 3},
      {"pcre", "/^a/ REJECT $$ signs are fine\n/^b/ 250 ok\n", 2},
  }));
  CAPTURE(type, content);
  TempFile f(content);
  auto e = load_error(type + ":" + f.path(), validate_access_action);
  CHECK(e.line == line);
  CHECK(e.file == f.path());
  // Without the validator the same file loads: the errors are the validator's.
  CHECK(load_table(type + ":" + f.path()));
}

TEST_CASE("results with $n are left to lookup time; the admin's sample files validate",
          "[tables]") {
  TempFile f("/^(.+)@/ REJECT $1 is not welcome\n/^x(y)?/ $1\n");
  CHECK(load_table("regexp:" + f.path(), validate_access_action));
  for (const char* spec :
       {"hash:lookup-order.access", "hash:clients.access", "hash:null-sender.access",
        "cidr:clients.cidr", "regexp:senders.regexp", "pcre:senders.pcre"}) {
    std::string s(spec);
    std::size_t colon = s.find(':');
    std::string full = s.substr(0, colon + 1) + data_file(s.substr(colon + 1));
    CAPTURE(full);
    auto t = load_table(full, validate_access_action);
    if (!t) FAIL(t.error().to_string());
  }
}

// --- cidr ----------------------------------------------------------------------------------

TEST_CASE("cidr tables return the first match in file order, IPv4 and IPv6", "[tables][cidr]") {
  auto t = load_ok("cidr:" + data_file("clients.cidr"));
  auto [addr, expected] = GENERATE(table<std::string, std::string>({
      {"192.168.1.1", "OK"},
      {"192.168.1.2", "REJECT Your network is not allowed to send mail here"},
      {"[192.168.200.1]", "REJECT Your network is not allowed to send mail here"},
      {"2001:db8::1", "OK"},
      {"2001:0db8:0:0::1", "OK"},
      {"2001:db8:ffff::1", "REJECT Your network is not allowed to send mail here"},
      {"8.8.8.8", "DUNNO"},  // !10.0.0.0/8
      {"10.1.2.3", "550 5.7.1 lower half"},
      {"10.200.0.1", "550 5.7.1 upper half"},
      {"10.9.1.1", "(none)"},  // excluded by "if !10.9.0.0/16"
      // A negated IPv4 rule says nothing about IPv6 (Postfix matches per family).
      {"2001:db9::1", "(none)"},
      {"::ffff:8.8.8.8", "(none)"},
      {"not-an-address", "(none)"},
      {"", "(none)"},
  }));
  CAPTURE(addr);
  CHECK(or_none(t->find(addr)) == expected);
  if (auto parsed = IpAddress::parse(addr)) CHECK(or_none(t->find_address(*parsed)) == expected);
}

// --- regexp and pcre -----------------------------------------------------------------------

TEST_CASE("regexp tables: case-insensitive by default, $n substitution, if/endif, negation",
          "[tables][regexp]") {
  auto t = load_ok("regexp:" + data_file("senders.regexp"));
  auto [key, expected] = GENERATE(table<std::string, std::string>({
      {"noreply@shop.example", "DUNNO"},
      {"NoReply@Shop.Example", "DUNNO"},
      {"webmaster@x.example", "550 5.7.1 Role addresses do not send mail here"},
      {"12345678@x.example", "550 5.7.1 Sender address looks generated"},
      {"12345@x.example", "(none)"},
      {"bulk@lists.example", "REJECT mail from    bulk at lists.example is not wanted"},
      {"Case@Sensitive.example", "OK exact case only"},
      {"case@sensitive.example", "(none)"},
      {"http://spam.example", "REJECT URL-looking sender"},
      {"a/b@x.example", "REJECT escaped delimiter"},
      {"mallory@example.com", "REJECT unknown example.com sender"},
      {"alice@example.com", "(none)"},
      {"price@shop.example", "REJECT costs $5 at shop.example"},
      {"someone@else.example", "(none)"},
  }));
  CAPTURE(key);
  CHECK(or_none(t->find(key)) == expected);
}

TEST_CASE("regexp tables treat newline as an ordinary character unless 'm' is given",
          "[tables][regexp]") {
  TempFile f("/^a.b$/ REJECT dot\n/^second$/m REJECT multiline\n/^x$/ REJECT dollar\n");
  auto t = load_ok("regexp:" + f.path());
  CHECK(or_none(t->find("a\nb")) == "REJECT dot");
  CHECK(or_none(t->find("first\nsecond")) == "REJECT multiline");
  CHECK(or_none(t->find("x\n")) == "(none)");  // POSIX '$' is the very end
}

TEST_CASE("alternative delimiters and nested if blocks work as in regexp_table(5)",
          "[tables][regexp]") {
  TempFile f(
      "if !|^postmaster@|\n"
      "if %@example\\.net$%\n"
      "!,^(info|sales)@, REJECT only info and sales at example.net\n"
      "endif\n"
      "ENDIF\n"
      "{^postmaster@(.*)${ OK postmaster at $(1)\n");
  auto t = load_ok("regexp:" + f.path());
  CHECK(or_none(t->find("bob@example.net")) == "REJECT only info and sales at example.net");
  CHECK(or_none(t->find("info@example.net")) == "(none)");
  CHECK(or_none(t->find("bob@example.org")) == "(none)");
  CHECK(or_none(t->find("postmaster@example.net")) == "OK postmaster at example.net");
}

TEST_CASE("pcre tables honour pcre_table(5) flags", "[tables][pcre]") {
  auto t = load_ok("pcre:" + data_file("senders.pcre"));
  auto [key, expected] = GENERATE(table<std::string, std::string>({
      {"spam   here", "REJECT extended spam"},  // x: white space in the pattern is ignored
      {"bbb", "REJECT anchored"},
      {"abbb", "(none)"},                          // A: must match at the start
      {"<one> and <two>", "REJECT ungreedy one"},  // U: shortest first
      {"line1\nline2", "REJECT dotall"},
      {"first\nsecond", "REJECT multiline"},
      {"UPPER", "REJECT case sensitive"},
      {"upper", "(none)"},
  }));
  CAPTURE(key);
  CHECK(or_none(t->find(key)) == expected);
}

TEST_CASE("an optional group that did not take part substitutes as empty", "[tables][pcre]") {
  TempFile f("/^x(y)?(z)$/ [$1][$2]\n");
  auto t = load_ok("pcre:" + f.path());
  CHECK(or_none(t->find("xz")) == "[][z]");
  CHECK(or_none(t->find("xyz")) == "[y][z]");
}

TEST_CASE("a catastrophic pattern hits the match limit and counts as no match", "[tables][pcre]") {
  TempFile f("/^(a+)+$/ REJECT slow\n/./ OK fallback\n");
  auto t = load_ok("pcre:" + f.path());
  CHECK(or_none(t->find(std::string(40, 'a') + "!")) == "OK fallback");
}

TEST_CASE("pattern tables are safe to query from many threads at once", "[tables][pcre]") {
  auto t = load_ok("regexp:" + data_file("senders.regexp"));
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int n = 0; n < 4; ++n)
    threads.emplace_back([&t, &wrong] {
      for (int i = 0; i < 500; ++i) {
        if (t->find("bulk@x.example").value_or("") !=
            "REJECT mail from    bulk at x.example is "
            "not wanted")
          ++wrong;
        if (t->find("alice@example.com")) ++wrong;
      }
    });
  for (auto& th : threads)
    th.join();
  CHECK(wrong == 0);
}

// --- access(5) lookup orders ---------------------------------------------------------------

TEST_CASE("addresses are looked up as user+ext@domain, user@domain, domains, user+ext@, user@",
          "[tables][lookup]") {
  auto t = load_ok("hash:" + data_file("lookup-order.access"));
  auto [address, expected] = GENERATE(table<std::string, std::string>({
      {"user+ext@example.com", "OK full address"},
      {"user+other@example.com", "OK address without extension"},
      {"user@example.com", "OK address without extension"},
      {"USER@Example.Com", "OK address without extension"},
      {"<user@example.com>", "OK address without extension"},
      {"someone@sub.example.com", "OK domain"},
      {"someone@a.b.sub.example.com", "OK domain"},
      {"user+ext@sub.example.com", "OK domain"},  // the domain comes before user+ext@
      {"someone@example.com", "OK parent domain"},
      {"someone@x.example.com", "OK parent domain"},  // "example.com" matches subdomains
      {"someone@mail.example.org", "OK dot-parent domain"},
      {"someone@example.org", "(none)"},  // ".example.org" is for subdomains only
      {"user+ext@elsewhere.net", "OK localpart with extension"},
      {"user+zzz@elsewhere.net", "OK localpart"},
      {"user@elsewhere.net", "OK localpart"},
      {"user", "OK localpart"},
      {"nobody@elsewhere.net", "(none)"},
      {"nobody@notexample.com", "(none)"},
      {"<>", "(none)"},
  }));
  CAPTURE(address);
  CHECK(or_none(lookup_address(*t, address)) == expected);
}

TEST_CASE("the null sender is looked up as <>", "[tables][lookup]") {
  auto t = load_ok("hash:" + data_file("null-sender.access"));
  CHECK(or_none(lookup_address(*t, "<>")) == "REJECT bounces are not accepted from this client");
  CHECK(or_none(lookup_address(*t, "")) == "REJECT bounces are not accepted from this client");
  TempFile f("/^<>$/ REJECT null sender\n");
  CHECK(or_none(lookup_address(*load_ok("regexp:" + f.path()), "")) == "REJECT null sender");
}

TEST_CASE("host names are looked up with their parent domains", "[tables][lookup]") {
  auto t = load_ok("hash:" + data_file("lookup-order.access"));
  auto [host, expected] = GENERATE(table<std::string, std::string>({
      {"sub.example.com", "OK domain"},
      {"MX1.Sub.Example.Com", "OK domain"},
      {"example.com", "OK parent domain"},
      {"www.example.com", "OK parent domain"},
      {"example.org", "(none)"},
      {"a.example.org", "OK dot-parent domain"},
      {"", "(none)"},
  }));
  CAPTURE(host);
  CHECK(or_none(lookup_domain(*t, host)) == expected);
}

TEST_CASE("clients: host name and parents, then the address and its shorter networks",
          "[tables][lookup]") {
  auto t = load_ok("hash:" + data_file("clients.access"));
  auto [addr, name, expected] = GENERATE(table<std::string, std::string, std::string>({
      {"1.2.3.4", "mail.example.com", "OK host"},
      {"5.6.7.8", "smtp.example.net", "OK parent of host"},
      {"1.2.3.4", "unknown", "OK address"},
      {"1.2.3.4", "other.example.org", "OK address"},
      {"10.1.2.99", "", "OK net 10.1.2"},
      {"10.1.3.99", "", "(none)"},
      {"192.168.5.5", "", "OK net 192.168"},
      {"::ffff:10.1.2.3", "", "OK net 10.1.2"},  // IPv4-mapped: looked up as IPv4
      {"2001:db8:1:2::5", "", "OK v6 net"},
      {"2001:db8:1:2:3:4:5:6", "", "OK v6 net"},
      {"2001:db8:1:3::5", "", "(none)"},
      {"8.8.8.8", "unknown", "(none)"},
  }));
  CAPTURE(addr, name);
  IpAddress a = ip(addr.c_str());
  CHECK(or_none(lookup_client(*t, &a, name)) == expected);
}

TEST_CASE("a client without an address is looked up by name only", "[tables][lookup]") {
  auto t = load_ok("hash:" + data_file("clients.access"));
  CHECK(or_none(lookup_client(*t, nullptr, "mail.example.com")) == "OK host");
  CHECK(or_none(lookup_client(*t, nullptr, "unknown")) == "(none)");
}

TEST_CASE("cidr tables see only the client address, IPv4-mapped clients as IPv4",
          "[tables][lookup][cidr]") {
  auto t = load_ok("cidr:" + data_file("clients.cidr"));
  IpAddress mapped = ip("::ffff:192.168.1.1");
  CHECK(or_none(lookup_client(*t, &mapped, "192.168.9.9")) == "OK");
  IpAddress inside = ip("192.168.7.7");
  CHECK(or_none(lookup_client(*t, &inside, "mail.example.com")) ==
        "REJECT Your network is not allowed to send mail here");
  CHECK(or_none(lookup_client(*t, nullptr, "192.168.1.1")) == "(none)");
}

TEST_CASE("pattern tables get whole strings only: no parents, no partial addresses",
          "[tables][lookup][regexp]") {
  TempFile f(
      "/^example\\.com$/ REJECT domain\n"
      "/^user@$/ REJECT localpart\n"
      "/^user@example\\.com$/ REJECT without extension\n"
      "/^10\\.1\\.2$/ REJECT network\n"
      "/^10\\.1\\.2\\.3$/ REJECT address\n"
      "/^mail\\.example\\.net$/ REJECT host\n");
  auto t = load_ok("regexp:" + f.path());
  CHECK(or_none(lookup_address(*t, "someone@example.com")) == "(none)");
  CHECK(or_none(lookup_address(*t, "user@elsewhere.example")) == "(none)");
  CHECK(or_none(lookup_address(*t, "user+ext@example.com")) == "(none)");
  CHECK(or_none(lookup_address(*t, "user@example.com")) == "REJECT without extension");
  CHECK(or_none(lookup_domain(*t, "www.example.com")) == "(none)");
  CHECK(or_none(lookup_domain(*t, "example.com")) == "REJECT domain");
  IpAddress a = ip("10.1.2.3");
  IpAddress b = ip("10.1.2.4");
  CHECK(or_none(lookup_client(*t, &a, "mail.example.net")) == "REJECT host");
  CHECK(or_none(lookup_client(*t, &a, "other.example.net")) == "REJECT address");
  CHECK(or_none(lookup_client(*t, &b, "other.example.net")) == "(none)");
}

TEST_CASE("DUNNO stops the partial-key search at the first key that has it", "[tables][lookup]") {
  TempFile f("example.com REJECT\nmail.example.com DUNNO\n");
  auto t = load_ok("hash:" + f.path());
  CHECK(or_none(lookup_domain(*t, "mail.example.com")) == "DUNNO");
  CHECK(or_none(lookup_domain(*t, "www.example.com")) == "REJECT");
}
