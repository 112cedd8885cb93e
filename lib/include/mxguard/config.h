// Config: every option of mxguard, typed and validated, plus the tables it names, loaded.
// Flags and config-file keys are the same names (Boost.Program_options knows them all); the
// command line overrides the file. A config is built whole and then never changed: a reload
// builds a new one and swaps it in (see Policy).
// Who calls it: milter/main at start and at SIGUSR1; -n; tests.
// Thread-safety: immutable once built; shared through std::shared_ptr<const Config>.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mxguard/batv/options.h"
#include "mxguard/check_mode.h"
#include "mxguard/checks/options.h"
#include "mxguard/config_error.h"
#include "mxguard/dns/options.h"
#include "mxguard/expected.h"
#include "mxguard/log.h"
#include "mxguard/message/options.h"
#include "mxguard/net/ip.h"
#include "mxguard/site.h"
#include "mxguard/state/options.h"

namespace mxguard {

struct Config {
  // Daemon life.
  std::string socket;
  unsigned socket_mode = 0660;  // permission bits of a unix socket (socket-mode)
  std::string user;
  std::string pidfile;
  bool foreground = false;
  std::string config_file;
  LogLevel log_level = LogLevel::Info;
  bool log_stderr = false;
  bool syslog = true;
  bool report_only = false;
  // A client refused at connect (ban, trap-mx, client-access) is told so at each RCPT, as
  // Postfix's smtpd_delay_reject does: connect then needs no reply, one round trip less in
  // every session. no: refused at connect (the MTA answers the greeting 554 or 421).
  bool delay_reject = true;
  bool report_header = false;  // mark report-only rejects with X-Mxguard: would-reject=CHECK
  std::string metrics_file;    // Prometheus text, rewritten every few seconds; empty: none
  std::string metrics_listen;  // "addr:port" of the /metrics listener; empty: none

  // Who we are and whom we trust.
  SiteOptions site;  // local-domains, self
  net::CidrSet trusted_networks;
  std::vector<std::string> exempt_recipients;  // local parts or full addresses
  std::vector<std::string> exempt_senders;
  FailureAction on_internal_error = FailureAction::Tempfail;

  // Each module's own options, loaded by the module (see its options.h).
  dns::DnsOptions dns;
  state::StateOptions state;
  batv::BatvOptions batv;
  message::MessageOptions message;
  checks::AccessOptions access;
  checks::BackscatterOptions backscatter;
  checks::TrapOptions trap;
  checks::WebsiteOptions website;

  // check.NAME = on|off|report, for every check of the registry, by CheckId.
  std::array<CheckMode, kCheckCount> checks{};

  // Settings that are allowed but unwise, each "place: problem" (metrics-listen on a public
  // address): -n prints them, the daemon logs them at start and at each reload.
  std::vector<std::string> warnings;

  CheckMode mode(CheckId check) const { return checks[index(check)]; }
  bool enabled(CheckId check) const { return mode(check) != CheckMode::Off; }
};

// The command line, parsed once at start-up; kept so that a reload re-applies it.
struct CommandLine {
  CommandLine() = default;
  explicit CommandLine(std::vector<std::string> a, std::string default_file = {})
      : args(std::move(a)), default_config(std::move(default_file)) {}

  std::vector<std::string> args;  // argv[1..]
  // The config file read when the command line names none (no -c), if it exists; empty: none.
  // main() sets it (/etc/mxguard/mxguard.conf); tests and library callers leave it empty.
  std::string default_config;
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
  // Words that are not options ("mxguard audit DOMAIN..."): collected when operands_allowed,
  // else each is an error.
  bool operands_allowed = false;
  std::vector<std::string> operands;
};

// Parses the command line, reads the config file it names (if any), loads every table.
Expected<std::shared_ptr<const Config>, ConfigError> load_config(const CommandLine& cl,
                                                                 Invocation* invocation = nullptr);

// The words of the command line that are neither options nor their values, in order
// ("mxguard -c FILE audit DOMAIN": audit, DOMAIN); a ConfigError for a bad option.
Expected<std::vector<std::string>, ConfigError> command_line_operands(const CommandLine& cl);

// The names of every option (for the man page test and --help).
std::vector<std::string> option_names();

}  // namespace mxguard
