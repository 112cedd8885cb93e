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

TEST_CASE("delay-reject is on unless turned off; a bad value names its place", "[config]") {
  auto dflt = load({});
  REQUIRE(dflt);
  CHECK((*dflt)->delay_reject);
  auto off = load({"--delay-reject=no"});
  REQUIRE(off);
  CHECK_FALSE((*off)->delay_reject);
  auto path = write_file("delay-reject.conf", "delay-reject = no\n");
  auto in_file = load({"-c", path});
  REQUIRE(in_file);
  CHECK_FALSE((*in_file)->delay_reject);
  auto bad_path = write_file("delay-reject-bad.conf", "\ndelay-reject = later\n");
  auto bad = load({"-c", bad_path});
  REQUIRE_FALSE(bad);
  CHECK(bad.error().where == bad_path + ":2");
  CHECK_THAT(bad.error().message, Catch::Contains("delay-reject"));
  CHECK_THAT(bad.error().message, Catch::Contains("expected yes or no"));
}

TEST_CASE("socket-mode takes permissions in octal; a bad one names its place", "[config]") {
  auto dflt = load({});
  REQUIRE(dflt);
  CHECK((*dflt)->socket_mode == 0660);
  for (const auto& [text, mode] : std::vector<std::pair<std::string, unsigned>>{
           {"0660", 0660}, {"660", 0660}, {"0600", 0600}, {"0666", 0666}, {"0770", 0770}}) {
    CAPTURE(text);
    auto cfg = load({"--socket-mode", text});
    REQUIRE(cfg);
    CHECK((*cfg)->socket_mode == mode);
  }
  for (const std::string bad : {"rw-rw----", "0968", "04755", "1777", "66", "06600", "", "0x1b6"}) {
    CAPTURE(bad);
    auto cfg = load({"--socket-mode=" + bad});
    REQUIRE_FALSE(cfg);
    CHECK(cfg.error().where == "command line");
    CHECK_THAT(cfg.error().message, Catch::Contains("socket-mode"));
  }
  auto path = write_file("socket-mode.conf", "# mode\n\nsocket-mode = 0844\n");
  auto in_file = load({"-c", path});
  REQUIRE_FALSE(in_file);
  CHECK(in_file.error().to_string() ==
        path + ":3: socket-mode: expected permissions in octal, such as 0660, got '0844'");
}

TEST_CASE("settings that only make sense together name the file and line", "[config]") {
  auto path = write_file("cross.conf",
                         "ledger = no\n"
                         "# enforce at once\n"
                         "check.backscatter = on\n");
  auto cfg = load({"-c", path});
  REQUIRE_FALSE(cfg);
  CHECK(cfg.error().where == path + ":3");
  CHECK_THAT(cfg.error().to_string(),
             Catch::StartsWith(path + ":3: check.backscatter = on: no way to recognise bounces"));
  auto batv = write_file("cross-batv.conf", "\n\ncheck.batv = on\n");
  auto b = load({"-c", batv});
  REQUIRE_FALSE(b);
  CHECK(b.error().to_string() == batv + ":3: check.batv: needs batv-key-file");
  auto flag = load({"--ledger=no", "--check.backscatter=on"});
  REQUIRE_FALSE(flag);
  CHECK(flag.error().where == "command line");
  auto ttl = write_file("cross-ttl.conf", "dns-cache-max-ttl = 1m\ndns-cache-min-ttl = 1h\n");
  auto t = load({"-c", ttl});
  REQUIRE_FALSE(t);
  CHECK(t.error().to_string() == ttl + ":2: dns-cache-min-ttl must not be above dns-cache-max-ttl");
  auto max_only = write_file("cross-ttl-max.conf", "\ndns-cache-max-ttl = 1s\n");
  auto m = load({"-c", max_only, "--dns-cache-min-ttl=0s"});
  REQUIRE(m);
  auto m2 = load({"-c", max_only});  // the default minimum (10s) is above 1s
  REQUIRE_FALSE(m2);
  CHECK(m2.error().where == max_only + ":2");
}

TEST_CASE("metrics-listen off loopback loads with a warning naming its place", "[config]") {
  for (const std::string quiet :
       {"127.0.0.1:9100", "127.0.0.53:9100", "[::1]:9100", "::1:9100", "[::ffff:127.0.0.1]:9100"}) {
    CAPTURE(quiet);
    auto cfg = load({"--metrics-listen", quiet});
    REQUIRE(cfg);
    CHECK((*cfg)->metrics_listen == quiet);
    CHECK((*cfg)->warnings.empty());
  }
  for (const std::string loud : {"0.0.0.0:9100", "[::]:9100", "192.0.2.10:9100",
                                 "[2001:db8::1]:9100", "[::ffff:192.0.2.1]:9100"}) {
    CAPTURE(loud);
    auto cfg = load({"--metrics-listen", loud});
    REQUIRE(cfg);
    REQUIRE((*cfg)->warnings.size() == 1);
    CHECK_THAT((*cfg)->warnings[0],
               Catch::StartsWith("command line: metrics-listen " + loud + ": not a loopback"));
  }
  auto path = write_file("metrics.conf", "# all interfaces\nmetrics-listen = 0.0.0.0:9100\n");
  auto cfg = load({"-c", path});
  REQUIRE(cfg);
  REQUIRE((*cfg)->warnings.size() == 1);
  CHECK_THAT((*cfg)->warnings[0], Catch::StartsWith(path + ":2: metrics-listen 0.0.0.0:9100"));
  for (const std::string bad :
       {"9100", "localhost:9100", "127.0.0.1:", "127.0.0.1:99999", "[::1:9100", "127.0.0.1:91x"}) {
    CAPTURE(bad);
    auto b = load({"--metrics-listen", bad});
    REQUIRE_FALSE(b);
    CHECK(b.error().where == "command line");
    CHECK_THAT(b.error().message, Catch::StartsWith("metrics-listen: "));
  }
}

TEST_CASE("without -c the default config file is read when it exists", "[config]") {
  const std::string rules = "--bogus-networks=" + test::source_path("rules/bogus-networks.cidr");
  auto dflt = write_file("default.conf", "local-domains = default.example\n");
  auto other = write_file("other.conf", "local-domains = other.example\n");
  auto from_default = load_config(CommandLine({rules}, dflt));
  REQUIRE(from_default);
  CHECK((*from_default)->config_file == dflt);
  CHECK((*from_default)->site.local_domains == std::vector<std::string>{"default.example"});
  for (const std::vector<std::string>& given :
       {std::vector<std::string>{"-c", other}, {"--config", other}, {"--config=" + other}}) {
    auto args = given;
    args.push_back(rules);
    auto named = load_config(CommandLine(args, dflt));
    REQUIRE(named);
    CHECK((*named)->config_file == other);
    CHECK((*named)->site.local_domains == std::vector<std::string>{"other.example"});
  }
  auto none = load_config(CommandLine({rules}, "/tmp/mxguard-unit-no-such-file.conf"));
  REQUIRE(none);
  CHECK((*none)->config_file.empty());
  auto empty = load_config(CommandLine({rules, "-c", "/dev/null"}, dflt));
  REQUIRE(empty);
  CHECK((*empty)->site.local_domains.empty());
  // One that is there but cannot be used is an error, not a silent fallback to the defaults.
  const std::string dir = "/tmp/mxguard-unit-config-dir";
  std::filesystem::create_directories(dir);
  auto unusable = load_config(CommandLine({rules}, dir));
  REQUIRE_FALSE(unusable);
  CHECK(unusable.error().to_string() ==
        dir +
            ": is a directory, not a config file (read by default; -c FILE names another, "
            "-c /dev/null none)");
  auto named_dir = load_config(CommandLine({rules, "-c", dir}));
  REQUIRE_FALSE(named_dir);
  CHECK(named_dir.error().to_string() == dir + ": is a directory, not a config file");
  // A default file with an error names itself, as any other.
  auto bad = write_file("default-bad.conf", "\nlocal-domains = a@b\n");
  auto broken = load_config(CommandLine({rules}, bad));
  REQUIRE_FALSE(broken);
  CHECK(broken.error().where == bad + ":2");
}

TEST_CASE("the operands of a command line: audit and its domains, -c before or after", "[config]") {
  using V = std::vector<std::string>;
  for (const V& args :
       {V{"-c", "/x.conf", "audit", "a.example"}, V{"audit", "-c", "/x.conf", "a.example"},
        V{"--config=/x.conf", "audit", "a.example"}, V{"--config", "/x.conf", "audit", "a.example"},
        V{"audit", "--config", "/x.conf", "a.example"},
        V{"-n", "audit", "--report-header", "a.example"}}) {
    CAPTURE(args);
    auto ops = command_line_operands(CommandLine(args));
    REQUIRE(ops);
    CHECK(*ops == V{"audit", "a.example"});
  }
  auto none = command_line_operands(CommandLine(V{"-f", "-c", "audit"}));
  REQUIRE(none);
  CHECK(none->empty());
  auto bad = command_line_operands(CommandLine(V{"--no-such-option", "audit"}));
  REQUIRE_FALSE(bad);
  CHECK(bad.error().where == "command line");
}
