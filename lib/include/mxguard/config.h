// Config: every option of mxguard, typed and validated, plus the tables it names, loaded.
// Flags and config-file keys are the same names (Boost.Program_options knows them all); the
// command line overrides the file. A config is built whole and then never changed: a reload
// builds a new one and swaps it in (see Policy).
// Who calls it: milter/main at start and at SIGUSR1; -n; tests.
// Thread-safety: immutable once built; shared through std::shared_ptr<const Config>.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mxguard/dns/options.h"
#include "mxguard/expected.h"
#include "mxguard/log.h"
#include "mxguard/net/ip.h"
#include "mxguard/pipeline.h"
#include "mxguard/state/options.h"
#include "mxguard/tables/table.h"

namespace mxguard {

namespace batv {
class KeyRing;
}
namespace message {
struct Rules;
}

// "file:line: problem", or "command line: problem". Exit status 78 (EX_CONFIG) at start-up.
struct ConfigError {
  std::string where;
  std::string message;
  std::string to_string() const { return where + ": " + message; }
};

enum class FailureAction { Tempfail, Accept };

struct Config {
  // Daemon life.
  std::string socket;
  std::string user;
  std::string pidfile;
  bool foreground = false;
  std::string config_file;
  LogLevel log_level = LogLevel::Info;
  bool log_stderr = false;
  bool syslog = true;
  bool report_only = false;
  bool report_header = false;  // mark report-only rejects with X-Mxguard: would-reject=CHECK
  std::string metrics_file;    // Prometheus text, rewritten every few seconds; empty: none
  std::string metrics_listen;  // "addr:port" of the /metrics listener; empty: none

  // Who we are and whom we trust.
  std::vector<std::string> local_domains;  // lower case, no trailing dot
  net::CidrSet trusted_networks;
  std::vector<std::string> exempt_recipients;  // local parts or full addresses
  std::vector<std::string> exempt_senders;
  FailureAction on_internal_error = FailureAction::Tempfail;
  FailureAction on_dns_error = FailureAction::Tempfail;

  // DNS: servers, timeouts, cache, the bogus-networks table (see dns/options.h).
  dns::DnsOptions dns;

  // access tables, in the order given.
  std::vector<std::shared_ptr<const tables::Table>> client_access;
  std::vector<std::shared_ptr<const tables::Table>> helo_access;
  std::vector<std::shared_ptr<const tables::Table>> sender_access;
  std::vector<std::shared_ptr<const tables::Table>> recipient_access;

  // Backscatter and BATV (checks/backscatter.h, checks/batv.h, batv/).
  std::vector<std::string> our_relay_names;  // our-relays: host names, lower case
  net::CidrSet our_relay_networks;           // our-relays: addresses and networks
  std::vector<std::string> our_message_id_domains;
  std::shared_ptr<const batv::KeyRing> batv_keys;  // null: no BATV
  bool batv_sign = true;
  bool batv_subaddress = false;  // local+prvs=...@domain instead of prvs=...=local@domain
  int batv_lifetime_days = 7;
  int tag_max_age_days = 30;
  std::vector<std::string> batv_exclude_senders;  // addresses, local parts, or @domain
  std::vector<std::string> batv_enforce_domains;
  std::size_t max_body_scan = 128 * 1024;
  std::vector<std::shared_ptr<const tables::Table>> backscatter_allow;
  std::shared_ptr<const message::Rules> message_rules;
  bool backscatter_check_mdn = false;
  bool backscatter_reject_multi_rcpt = false;

  // Strikes, bans and where they are kept (state, state-file, ban-*, allow-networks...).
  state::StateOptions state;

  // Website-only domains and trap MX (unhandled-domain, ban, trap-mx).
  std::vector<std::string> unhandled_domains;  // lower case, no trailing dot
  std::vector<net::IpAddress> self_addresses;  // our listening addresses, when the MTA omits them
  std::vector<net::IpAddress> trap_addresses;
  std::vector<std::shared_ptr<const tables::Table>> trap_allow_senders;
  FailureAction on_store_error = FailureAction::Accept;

  // check.NAME = on|off|report, for every known check.
  std::map<std::string, CheckMode, std::less<>> checks;

  bool is_local_domain(std::string_view domain) const;
  CheckMode mode(std::string_view check) const;
};

// The command line, parsed once at start-up; kept so that a reload re-applies it.
struct CommandLine {
  std::vector<std::string> args;  // argv[1..]
};

// What main() should do besides running the daemon.
struct Invocation {
  bool help = false;
  bool version = false;
  bool check_config = false;
  std::vector<std::string> test_files;  // -t
  std::optional<std::string> test_sender;
  std::optional<std::string> test_recipient;
  std::string help_text;
};

// Parses the command line, reads the config file it names (if any), loads every table.
Expected<std::shared_ptr<const Config>, ConfigError> load_config(const CommandLine& cl,
                                                                 Invocation* invocation = nullptr);

// The names of every option (for the man page test and --help).
std::vector<std::string> option_names();
// The names of every check, in pipeline order, and their default modes.
std::vector<std::pair<std::string, CheckMode>> known_checks();

}  // namespace mxguard
