#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "mxguard/check_registry.h"
#include "mxguard/config.h"
#include "mxguard/policy.h"
#include "mxguard/text.h"
#include "source_tree.h"

using namespace mxguard;

namespace {

std::string write_file(const std::string& name, const std::string& text) {
  std::string path = "/tmp/mxguard-unit-" + name;
  std::ofstream(path) << text;
  return path;
}

Expected<std::shared_ptr<const Config>, ConfigError> load(std::vector<std::string> args) {
  return test::load_hermetic(std::move(args));
}

std::string write_key_file() {
  std::string path = write_file("registry-batv.keys", "1 0123456789abcdef0123456789abcdef\n");
  std::filesystem::permissions(
      path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  return path;
}

}  // namespace

TEST_CASE("config file keys and flags are the same options; the command line wins", "[config]") {
  auto path = write_file("a.conf",
                         "# comment\n"
                         "socket = unix:/tmp/a.sock\n"
                         "local-domains = Example.COM., example.net\n"
                         "trusted-networks = 192.0.2.0/24\n"
                         "report-only = yes\n"
                         "check.forged-local-sender = on\n");
  auto cfg = load({"-c", path, "-p", "inet:9999@127.0.0.1"});
  REQUIRE(cfg);
  const Config& c = **cfg;
  CHECK(c.socket == "inet:9999@127.0.0.1");
  CHECK(c.site.local_domains == std::vector<std::string>{"example.com", "example.net"});
  CHECK(c.site.is_local_domain("EXAMPLE.com."));
  CHECK(c.trusted_networks.contains(*net::IpAddress::parse("192.0.2.200")));
  CHECK_FALSE(c.trusted_networks.contains(*net::IpAddress::parse("192.0.3.1")));
  CHECK(c.report_only);
  CHECK(c.mode(CheckId::ForgedLocalSender) == CheckMode::On);
  CHECK(c.mode(CheckId::Access) == CheckMode::On);
  CHECK(c.exempt_recipients == std::vector<std::string>{"postmaster"});
}

TEST_CASE("a list option takes repeats, commas and file: sources", "[config]") {
  auto list = write_file("domains", "# ours\nb.example\n\nc.example\n");
  auto cfg = load({"--local-domains", "a.example", "--local-domains", "file:" + list});
  REQUIRE(cfg);
  CHECK((*cfg)->site.local_domains ==
        std::vector<std::string>{"a.example", "b.example", "c.example"});
}

TEST_CASE("config errors name the file and line", "[config]") {
  struct Case {
    const char* text;
    const char* where;
    const char* what;
  };
  const Case cases[] = {
      {"socket = unix:/x\nbogus-key = 1\n", ":2", "unknown option 'bogus-key'"},
      {"\n\nreport-only = perhaps\n", ":3", "expected yes or no"},
      {"trusted-networks = 10.0.0.0/33\n", ":1", "not an address or network"},
      {"check.access = loud\n", ":1", "expected on, off or report"},
      {"just words\n", ":1", "expected 'key = value'"},
      {"version = yes\n", ":1", "command-line option"},
  };
  for (const auto& c : cases) {
    auto path = write_file("bad.conf", c.text);
    auto cfg = load({"-c", path});
    INFO(c.text);
    REQUIRE_FALSE(cfg);
    CHECK(cfg.error().where == path + c.where);
    CHECK_THAT(cfg.error().message, Catch::Contains(c.what));
  }
}

TEST_CASE("a malformed table line is reported with the table's file and line", "[config]") {
  auto table = write_file("bad.cidr", "192.0.2.0/24 REJECT\n10.1.0.0/8 REJECT\n");
  auto cfg = load({"--client-access", "cidr:" + table});
  REQUIRE_FALSE(cfg);
  CHECK(cfg.error().where == table + ":2");
}

TEST_CASE("an unknown flag and a missing config file are errors", "[config]") {
  auto unknown = load({"--no-such-flag"});
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().where == "command line");
  auto missing = load({"-c", "/nonexistent/mxguard.conf"});
  REQUIRE_FALSE(missing);
  CHECK(missing.error().where == "/nonexistent/mxguard.conf");
}

TEST_CASE("every option has a lower-case name and every check a check. option", "[config]") {
  auto names = option_names();
  for (const auto& n : names)
    CHECK(n == ascii_lowercase(n));
  // The check. options follow the registry, in its order.
  std::vector<std::string> check_options;
  for (const auto& n : names)
    if (n.rfind("check.", 0) == 0) check_options.push_back(n.substr(6));
  std::vector<std::string> registry;
  for (const CheckInfo& c : check_registry())
    registry.emplace_back(c.name);
  CHECK(check_options == registry);
}

TEST_CASE("the registry, the pipeline and the config agree on the checks and their order",
          "[config][registry]") {
  auto cfg = load({"--check.batv=report", "--batv-key-file", write_key_file(), "--bogus-networks",
                   std::string(MXGUARD_SOURCE_DIR) + "/rules/bogus-networks.cidr"});
  REQUIRE(cfg);
  auto policy = build_policy(*cfg);
  auto described = policy->pipeline.describe();
  REQUIRE(described.size() == check_registry().size());
  std::size_t i = 0;
  for (const CheckInfo& c : check_registry()) {
    CAPTURE(c.name);
    CHECK(index(c.id) == i);
    CHECK(find_check(c.name) == c.id);
    CHECK(described[i].first == c.name);
    CHECK(c.make(**cfg)->name() == c.name);
    CHECK(described[i].second == (c.id == CheckId::Batv ? CheckMode::Report : c.default_mode));
    ++i;
  }
  CHECK_FALSE(find_check("bogus_mx"));
}

TEST_CASE("an unknown check.NAME is a configuration error naming its place", "[config]") {
  auto path = write_file("unknown-check.conf", "\ncheck.bogus_mx = on\n");
  auto in_file = load({"-c", path});
  REQUIRE_FALSE(in_file);
  CHECK(in_file.error().where == path + ":2");
  CHECK_THAT(in_file.error().message, Catch::Contains("unknown check 'bogus_mx'"));
  auto on_line = load({"--check.nul-mx=on"});
  REQUIRE_FALSE(on_line);
  CHECK(on_line.error().where == "command line");
  CHECK_THAT(on_line.error().message, Catch::Contains("unknown check 'nul-mx'"));
}
