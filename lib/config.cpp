// The whole-daemon configuration: the one list of options (the daemon's own and every
// module's), gathered from the command line and the config file (options/sources.h); then each
// module loads its own options from them (options/reader.h) and the few settings that only
// make sense together are checked here.
#include "mxguard/config.h"

#include "mxguard/check_registry.h"

#include <fmt/format.h>

#include <fmt/ranges.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "options/sources.h"

namespace mxguard {

namespace {

using options::Kind;
using options::RawMap;
using options::RawValue;
using options::Spec;

// The daemon's own options and who we are; the modules' lists follow in all_specs().
std::vector<Spec> general_specs() {
  return {
      {"help,h", Kind::Flag, "print this help and exit"},
      {"version,V", Kind::Flag, "print the version and exit"},
      {"config,c", Kind::Value,
       "read options from this file (key = value lines); without it, "
       "/etc/mxguard/mxguard.conf when that exists (-c /dev/null: none)"},
      {"check-config,n", Kind::Flag, "check the configuration and tables, then exit"},
      {"test,t", Kind::Files, "run the message checks on these message files offline, then exit"},
      {"test-sender", Kind::Value,
       "with -t: the envelope sender (default: the file's Return-Path)"},
      {"test-recipient", Kind::Value, "with -t: the recipient (default: the first To address)"},
      {"socket,p", Kind::Value,
       "milter socket: unix:/path, local:/path, inet:port@host, inet6:port@host"},
      {"socket-mode", Kind::Value,
       "permissions of a unix socket, octal (default 0660: its user and group)"},
      {"user,u", Kind::Value,
       "run as user[:group] after binding the socket; a unix socket is theirs"},
      {"pidfile,P", Kind::Value, "write the process id to this file"},
      {"foreground,f", Kind::Flag, "stay in the foreground and log to stderr too"},
      {"log-level", Kind::Value, "error, warning, notice, info or debug"},
      {"syslog", Kind::Value, "log to syslog, mail facility (yes/no)"},
      {"report-only", Kind::Flag, "log what would be rejected, reject nothing"},
      {"delay-reject", Kind::Value,
       "refuse a client refused at connect at its RCPTs instead, as Postfix's "
       "smtpd_delay_reject (yes/no; default yes: connect needs no reply)"},
      {"report-header", Kind::Flag,
       "add X-Mxguard: would-reject=CHECK to mail a report-only check would reject"},
      {"metrics-file", Kind::Value, "write Prometheus metrics to this file every 5 s"},
      {"metrics-listen", Kind::Value, "serve Prometheus metrics on ADDR:PORT, path /metrics"},
      {"local-domains", Kind::List, "domains we receive mail for"},
      {"trusted-networks", Kind::List, "client networks whose mail is ours (CIDR)"},
      {"exempt-recipients", Kind::List, "recipients never rejected (local parts or addresses)"},
      {"exempt-senders", Kind::List, "senders never rejected (local parts or addresses)"},
      {"self", Kind::List,
       "our listening addresses, for MTAs that do not pass {daemon_addr} or {if_addr}"},
      {"on-internal-error", Kind::Value, "tempfail or accept when mxguard itself fails"},
  };
}

// The one list of options, in --help order.
// The one list of options: the daemon's own, every module's, then check.NAME for every check of
// the registry, in pipeline order.
const options::Catalogue& catalogue() {
  static const options::Catalogue kCatalogue = [] {
    options::Catalogue c;
    c.specs = general_specs();
    for (auto more :
         {checks::access_option_specs(), checks::backscatter_option_specs(),
          batv::batv_option_specs(), message::message_option_specs(), dns::dns_option_specs(),
          state::state_option_specs(), checks::website_option_specs()})
      c.specs.insert(c.specs.end(), more.begin(), more.end());
    static std::vector<std::pair<std::string, std::string>> texts;
    for (const CheckInfo& check : check_registry())
      texts.emplace_back(fmt::format("check.{}", check.name),
                         fmt::format("on, off or report{} (default {})",
                                     check.id == CheckId::Backscatter ? " or auto" : "",
                                     to_string(check.default_mode)));
    for (const auto& [name, help] : texts)
      c.specs.push_back({name.c_str(), Kind::Value, help.c_str()});
    c.command_line_only = {"config", "check-config", "version",       "help",
                           "test",   "test-sender",  "test-recipient"};
    c.explain_unknown = [](std::string_view key) -> std::optional<std::string> {
      if (!key.starts_with("check.")) return std::nullopt;
      std::vector<std::string_view> names;
      for (const CheckInfo& check : check_registry())
        names.push_back(check.name);
      return fmt::format("unknown check '{}' (the checks: {})", key.substr(6),
                         fmt::join(names, ", "));
    };
    return c;
  }();
  return kCatalogue;
}

// "0660", "660", "0750": permission bits only (no set-id or sticky bits), in octal.
std::optional<unsigned> parse_mode(std::string_view text) {
  if (text.size() < 3 || text.size() > 4) return std::nullopt;
  if (text.size() == 4 && text[0] != '0') return std::nullopt;
  unsigned mode = 0;
  for (char c : text) {
    if (c < '0' || c > '7') return std::nullopt;
    mode = mode * 8 + static_cast<unsigned>(c - '0');
  }
  return mode;
}

// metrics-listen: "address:port" or "[v6]:port"; anything but a loopback address is allowed
// (refusing would turn an upgrade into a daemon that does not start, so deferred mail) but
// warned about: the metrics name domains and clients, and nothing guards the port.
options::Problem load_metrics_listen(const options::Reader& r, Config& cfg) {
  const RawValue* v = r.last("metrics-listen");
  if (!v || v->value.empty()) return std::nullopt;
  const std::string& text = v->value;
  const std::size_t colon = text.rfind(':');
  const bool bracketed = !text.empty() && text.front() == '[';
  if (colon == std::string::npos || (bracketed && (colon == 0 || text[colon - 1] != ']')))
    return ConfigError{v->where, fmt::format("metrics-listen: expected address:port or "
                                             "[address]:port, got '{}'",
                                             text)};
  const std::string_view host = std::string_view(text).substr(0, colon);
  const std::string port = text.substr(colon + 1);
  auto addr = net::IpAddress::parse(host);
  if (!addr)
    return ConfigError{v->where, fmt::format("metrics-listen: '{}' is not an IP address", host)};
  char* end = nullptr;
  const long n = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || n < 1 || n > 65535)
    return ConfigError{v->where, fmt::format("metrics-listen: bad port '{}'", port)};
  cfg.metrics_listen = text;
  if (!addr->is_loopback())
    cfg.warnings.push_back(fmt::format(
        "{}: metrics-listen {}: not a loopback address, so whoever reaches the port reads "
        "the metrics (domains, checks, clients banned); keep it on 127.0.0.1 or [::1] "
        "(node_exporter's textfile collector needs no port: metrics-file), or firewall it",
        v->where, text));
  return std::nullopt;
}

options::Problem load_general(const options::Reader& r, Config& cfg) {
  cfg.config_file = r.string("config", "");
  cfg.socket = r.string("socket", "local:/run/mxguard/mxguard.sock");
  cfg.user = r.string("user", "");
  cfg.pidfile = r.string("pidfile", "");
  cfg.metrics_file = r.string("metrics-file", "");
  if (auto e = load_metrics_listen(r, cfg)) return e;
  if (const RawValue* v = r.last("socket-mode")) {
    auto mode = parse_mode(v->value);
    if (!mode)
      return ConfigError{v->where, fmt::format("socket-mode: expected permissions in octal, "
                                               "such as 0660, got '{}'",
                                               v->value)};
    cfg.socket_mode = *mode;
  }
  cfg.exempt_recipients = {"postmaster"};
  cfg.exempt_senders = {"double-bounce"};
  if (r.has("exempt-recipients")) cfg.exempt_recipients.clear();
  if (r.has("exempt-senders")) cfg.exempt_senders.clear();
  for (auto e : {r.flag("foreground", cfg.foreground), r.flag("syslog", cfg.syslog),
                 r.flag("report-only", cfg.report_only), r.flag("report-header", cfg.report_header),
                 r.flag("delay-reject", cfg.delay_reject),
                 r.on_error("on-internal-error", cfg.on_internal_error),
                 r.domains("local-domains", "@/[]", cfg.site.local_domains),
                 r.networks("trusted-networks", cfg.trusted_networks),
                 r.addresses("exempt-recipients", cfg.exempt_recipients),
                 r.addresses("exempt-senders", cfg.exempt_senders),
                 r.ip_addresses("self", cfg.site.self_addresses)})
    if (e) return e;
  cfg.log_stderr = cfg.foreground;
  if (const RawValue* v = r.last("log-level")) {
    auto lvl = parse_log_level(v->value);
    if (!lvl)
      return ConfigError{v->where, fmt::format("log-level: expected error, warning, notice, "
                                               "info or debug, got '{}'",
                                               v->value)};
    cfg.log_level = *lvl;
  }
  for (const CheckInfo& c : check_registry()) {
    CheckMode& mode = cfg.checks[index(c.id)];
    mode = c.default_mode;
    const std::string key = fmt::format("check.{}", c.name);
    // auto waits for the ledger's proof; no other check has anything to wait for.
    if (auto e = r.check_mode(key, c.id == CheckId::Backscatter, mode)) return e;
  }
  return std::nullopt;
}

// Settings that only make sense together. The error names the place of the check's own
// setting, the one the admin wrote last ("file:line" or "command line").
options::Problem cross_check(const options::Reader& r, const Config& cfg) {
  auto place = [&r](std::string_view key) {
    const RawValue* v = r.last(key);
    return v ? v->where : std::string("built-in default");
  };
  // Only `on` refuses at once; auto and report never refuse before a proof source exists.
  if (cfg.mode(CheckId::Backscatter) == CheckMode::On && !cfg.batv.keys &&
      !cfg.state.ledger.enabled && !cfg.backscatter.has_proof_source())
    return ConfigError{place("check.backscatter"),
                       "check.backscatter = on: no way to recognise bounces of our own mail: "
                       "keep ledger = yes, or set batv-key-file, our-relays or "
                       "backscatter-allow (else every bounce would be refused)"};
  if (cfg.enabled(CheckId::Batv) && !cfg.batv.keys)
    return ConfigError{place("check.batv"), "check.batv: needs batv-key-file"};
  return std::nullopt;
}

Expected<std::shared_ptr<const Config>, ConfigError> build(const options::Reader& r) {
  auto cfg = std::make_shared<Config>();
  if (auto e = load_general(r, *cfg)) return unexpected(*e);
  // The bogus-networks table and the classifier rules are loaded only when a check needs them.
  const bool bogus_needed =
      cfg->enabled(CheckId::BogusMx) || cfg->enabled(CheckId::UnroutableSender);
  const bool rules_needed = cfg->enabled(CheckId::Backscatter);
  for (auto e :
       {checks::load_website_options(r, cfg->website), checks::load_trap_options(r, cfg->trap),
        checks::load_access_options(r, cfg->access), state::load_state_options(r, cfg->state),
        checks::load_backscatter_options(r, cfg->backscatter),
        batv::load_batv_options(r, cfg->batv),
        message::load_message_options(r, rules_needed, cfg->message), cross_check(r, *cfg),
        dns::load_dns_options(r, bogus_needed, cfg->dns)})
    if (e) return unexpected(*e);
  return std::shared_ptr<const Config>(std::move(cfg));
}

void describe_invocation(const RawMap& raw, Invocation& inv) {
  inv.help = raw.count("help") > 0;
  inv.version = raw.count("version") > 0;
  inv.check_config = raw.count("check-config") > 0;
  if (auto it = raw.find("test"); it != raw.end())
    for (const auto& v : it->second)
      inv.test_files.push_back(v.value);
  if (auto it = raw.find("test-sender"); it != raw.end()) inv.test_sender = it->second.back().value;
  if (auto it = raw.find("test-recipient"); it != raw.end())
    inv.test_recipient = it->second.back().value;
  inv.help_text = options::help_text(catalogue());
}

}  // namespace

Expected<std::vector<std::string>, ConfigError> command_line_operands(const CommandLine& cl) {
  std::vector<std::string> operands;
  auto cmd = options::read_command_line(catalogue(), cl.args, &operands);
  if (!cmd) return unexpected(cmd.error());
  return operands;
}

std::vector<std::string> option_names() {
  return options::option_names(catalogue());
}

Expected<std::shared_ptr<const Config>, ConfigError> load_config(const CommandLine& cl,
                                                                 Invocation* invocation) {
  auto cmd = options::read_command_line(
      catalogue(), cl.args,
      invocation && invocation->operands_allowed ? &invocation->operands : nullptr);
  if (!cmd) return unexpected(cmd.error());
  RawMap merged = std::move(cmd).value();
  if (invocation) {
    describe_invocation(merged, *invocation);
    if (invocation->help || invocation->version) return std::make_shared<const Config>();
  }
  // No -c: the default file, when there is one (opendkim reads its Debian file the same way).
  // One that cannot even be looked at (a directory without search permission) is there too:
  // silently running on other options than the daemon's would mislead more than an error.
  bool from_default = false;
  if (!merged.count("config") && !cl.default_config.empty()) {
    std::error_code ec;
    if (std::filesystem::status(cl.default_config, ec).type() !=
        std::filesystem::file_type::not_found) {
      merged["config"].push_back({cl.default_config, "default"});
      from_default = true;
    }
  }
  if (auto it = merged.find("config"); it != merged.end()) {
    auto file = options::read_config_file(catalogue(), it->second.back().value);
    if (!file && from_default && file.error().where == cl.default_config)
      return unexpected(ConfigError{file.error().where,
                                    file.error().message +
                                        " (read by default; -c FILE names another, -c /dev/null "
                                        "none)"});
    if (!file) return unexpected(file.error());
    // The command line wins: a key given there replaces the file's values for that key.
    for (auto& [key, values] : *file)
      merged.try_emplace(key, std::move(values));
  }
  return build(options::Reader(std::move(merged)));
}

}  // namespace mxguard
