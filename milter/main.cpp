// mxguard: entry point. Reads options (exit 78 on any configuration error, naming file and
// line), opens the milter socket, drops privileges, and hands over to libmilter.
#include <fcntl.h>
#include <libmilter/mfapi.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <thread>

#include <fmt/format.h>

#include "adapter.h"
#include "audit.h"
#include "daemon.h"
#include "metrics_export.h"
#include "mxguard/config.h"
#include "mxguard/content.h"
#include "mxguard/dns/fcrdns.h"
#include "mxguard/dns/mail_route.h"
#include "mxguard/log.h"
#include "mxguard/metrics.h"
#include "mxguard/offline.h"
#include "mxguard/policy.h"
#include "mxguard/state/bans.h"
#include "mxguard/state/runtime.h"
#include "notify.h"

using namespace mxguard;

namespace {

constexpr const char* kDefaultConfig = "/etc/mxguard/mxguard.conf";

// What check.backscatter does now, and for auto how long until it enforces (issue 14).
void print_backscatter_mode(const Config& cfg) {
  const CheckMode mode = cfg.mode(CheckId::Backscatter);
  if (mode != CheckMode::Auto) {
    fmt::print("  backscatter: {}\n", to_string(mode));
    return;
  }
  const auto now = std::chrono::system_clock::now();
  auto store = state::StateRuntime::make_store(cfg.state, system_clock());
  if (cfg.batv.keys && cfg.batv.sign &&
      content::signing_warm(*store, cfg.state.ledger.lifetime, now)) {
    fmt::print(
        "  backscatter: auto, enforcing: BATV signing has run for a whole "
        "ledger-lifetime\n");
    return;
  }
  // Read only: -n, often run as root beside the running daemon, must neither create the key
  // file (root's file would lock the daemon's user out of it) nor write the ledger file.
  struct stat key_st;
  if (cfg.state.ledger.enabled && ::stat(cfg.state.ledger.key_file.c_str(), &key_st) != 0 &&
      errno == ENOENT) {
    fmt::print(
        "  backscatter: auto, reports only: nothing recorded yet (the ledger key file {} is "
        "made at the daemon's first start)\n",
        cfg.state.ledger.key_file);
    return;
  }
  auto ledger = cfg.state.ledger.enabled
                    ? state::StateRuntime::make_ledger(cfg.state, store, now, false)
                    : nullptr;
  if (!ledger) {
    fmt::print(
        "  backscatter: auto, reports only: no ledger (ledger = no, or its key file "
        "cannot be read), so nothing proves a bounce ours\n");
    return;
  }
  const auto w = content::ledger_warmth_now(*ledger, cfg.state.ledger.lifetime, now);
  if (w.warm) {
    fmt::print(
        "  backscatter: auto, enforcing: the ledger has recorded our outgoing mail for a "
        "whole ledger-lifetime\n");
  } else {
    fmt::print("  backscatter: auto, reports only: {}\n", w.why);
  }
}

// The mode and owner the socket will get, and a directory mxguard would make for it.
void print_socket(const Config& cfg, const milter::SocketSpec& socket,
                  const std::optional<milter::Identity>& identity) {
  if (socket.kind != milter::SocketSpec::Kind::Local) {
    fmt::print("  socket permissions: none (TCP: any local user can connect)\n");
    return;
  }
  const milter::Identity owner = milter::socket_owner(identity);
  fmt::print("  socket permissions: {} {}:{}\n", milter::octal(cfg.socket_mode), owner.name,
             owner.group);
  const std::string dir = milter::socket_dir(socket.path);
  struct stat st;
  if (stat(dir.c_str(), &st) != 0)
    fmt::print("  socket directory: {} (made at start: {} {}:{})\n", dir,
               milter::octal(milter::socket_dir_mode(cfg.socket_mode)), owner.name, owner.group);
  if (auto problem = milter::socket_reach_problem(socket.path, cfg.socket_mode, owner);
      !problem.empty())
    fmt::print("  warning: {}\n", problem);
}

void print_check_config(const Config& cfg, const Policy& policy, const milter::SocketSpec& socket,
                        const std::optional<milter::Identity>& identity) {
  fmt::print("mxguard {}: configuration OK\n", MXGUARD_VERSION);
  fmt::print("  config: {}\n",
             cfg.config_file.empty() ? "none (built-in defaults)" : cfg.config_file);
  fmt::print("  socket: {}\n", cfg.socket);
  print_socket(cfg, socket, identity);
  for (const auto& w : cfg.warnings)
    fmt::print("  warning: {}\n", w);
  fmt::print("  report-only: {}\n", cfg.report_only ? "yes" : "no");
  fmt::print("  state: {}\n", state::describe_state(cfg.state));
  for (const auto& [name, mode] : policy.pipeline.describe())
    fmt::print("  check.{} = {}\n", name, to_string(mode));
  auto tables = [](std::string_view what, const auto& list) {
    for (const auto& t : list)
      fmt::print("  {}: {}\n", what, t->spec());
  };
  tables("client-access", cfg.access.client);
  tables("helo-access", cfg.access.helo);
  tables("sender-access", cfg.access.sender);
  tables("recipient-access", cfg.access.recipient);
  print_backscatter_mode(cfg);
}

// Real providers are never banned: a client whose forward-confirmed PTR name ends in one of
// provider-suffixes is exempt (asked only when a strike would ban, see state/bans.h). Set again
// after each reload, since a reload may build a new Bans engine.
void install_provider_hook(state::StateRuntime& state_runtime) {
  state_runtime.bans()->set_exempt_hook(
      [](const net::IpAddress& client) -> std::optional<std::string> {
        auto policy = milter::policy_holder().get();
        if (!policy || !policy->routes) return std::nullopt;
        const auto& suffixes = policy->config->state.bans.provider_suffixes;
        if (suffixes.empty()) return std::nullopt;
        auto names = dns::confirmed_names(policy->routes->resolver(), client);
        log(LogLevel::Debug, "fcrdns {}: {} confirmed name(s)", client.to_string(), names.size());
        for (const std::string& name : names)
          if (state::matches_provider_suffix(name, suffixes)) return "fcrdns " + name;
        return std::nullopt;
      });
}

void reload(const CommandLine& cl, state::StateRuntime& state_runtime) {
  milter::notify_reloading();
  auto cfg = load_config(cl);
  if (!cfg) {
    log(LogLevel::Error, "reload failed: {}; keeping the current configuration",
        cfg.error().to_string());
    milter::notify_ready();
    return;
  }
  set_log_level((*cfg)->log_level);
  for (const auto& w : (*cfg)->warnings)
    log(LogLevel::Warning, "{}", w);
  milter::policy_holder().set(build_policy(*cfg));
  state_runtime.reload((*cfg)->state);
  install_provider_hook(state_runtime);
  log(LogLevel::Notice, "reloaded configuration");
  milter::notify_ready();
}

void log_stats() {
  const auto& s = milter::stats();
  log(LogLevel::Notice,
      "stats: connections={} active={} messages={} rejects={} tempfails={} internal_errors={}",
      s.connections.load(), s.active.load(), s.messages.load(), s.rejects.load(),
      s.tempfails.load(), s.internal_errors.load());
}

// The write end of the pipe a detached daemon tells its starting parent through.
int g_ready_fd = -1;

// Forks into the background. The parent waits until the daemon is ready (release_parent())
// and exits 0, or until it dies first and exits with its status: an init script that returns
// finds the socket and the pidfile in place, and a start-up failure reaches it.
bool detach(std::string* error) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    *error = "pipe failed";
    return false;
  }
  pid_t pid = fork();
  if (pid < 0) {
    *error = "fork failed";
    return false;
  }
  if (pid > 0) {
    close(fds[1]);
    char byte = 0;
    ssize_t n;
    do {
      n = read(fds[0], &byte, 1);
    } while (n < 0 && errno == EINTR);
    if (n == 1) _exit(EX_OK);
    int status = 0;
    if (waitpid(pid, &status, 0) == pid && WIFEXITED(status)) _exit(WEXITSTATUS(status));
    _exit(EX_SOFTWARE);
  }
  close(fds[0]);
  g_ready_fd = fds[1];
  setsid();
  int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (fd >= 0) {
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    if (fd > 2) close(fd);
  }
  return true;
}

// Lets the parent of a detached daemon exit: the socket is open, the pidfile written.
void release_parent() {
  if (g_ready_fd < 0) return;
  char byte = 1;
  if (write(g_ready_fd, &byte, 1) != 1) log(LogLevel::Warning, "cannot signal the parent");
  close(g_ready_fd);
  g_ready_fd = -1;
}

}  // namespace

int main(int argc, char** argv) {
  // Before any thread exists, so that every thread inherits the mask (see daemon.h).
  milter::block_signals();
  CommandLine cl;
  for (int i = 1; i < argc; ++i)
    cl.args.emplace_back(argv[i]);
  // Without -c, the daemon, -n, -t and audit all read the same file, so that -n checks what
  // the daemon would run. MXGUARD_CONFIG names another one (empty: none), for tests.
  const char* default_config = std::getenv("MXGUARD_CONFIG");
  cl.default_config = default_config ? default_config : kDefaultConfig;
  auto operands = command_line_operands(cl);
  if (!operands) {
    fmt::print(stderr, "mxguard: {}\n", operands.error().to_string());
    return EX_CONFIG;
  }
  // "mxguard [OPTIONS] audit [OPTIONS] DOMAIN...": explain mail routes and exit (see audit.h).
  if (!operands->empty() && operands->front() == "audit") {
    const int status = milter::run_audit(cl);
    // A lookup given up at the deadline may wait for its own timeouts yet: rather than make the
    // command wait for it too, or tear down ldns and OpenSSL under it, end without exit handlers.
    if (!dns::join_lookup_threads(std::chrono::milliseconds(0))) {
      std::fflush(nullptr);
      std::_Exit(status);
    }
    return status;
  }
  Invocation inv;
  auto loaded = load_config(cl, &inv);
  if (!loaded) {
    fmt::print(stderr, "mxguard: {}\n", loaded.error().to_string());
    return EX_CONFIG;
  }
  if (inv.help) {
    fmt::print("usage: mxguard [options]\n\n{}", inv.help_text);
    return EX_OK;
  }
  if (inv.version) {
    unsigned major = 0, minor = 0, patch = 0;
    smfi_version(&major, &minor, &patch);
    fmt::print("mxguard {} (libmilter {}.{}.{})\n", MXGUARD_VERSION, major, minor, patch);
    return EX_OK;
  }
  std::shared_ptr<const Config> cfg = *loaded;

  std::string error;
  auto socket = milter::parse_socket(cfg->socket, &error);
  if (!socket) {
    fmt::print(stderr, "mxguard: {}\n", error);
    return EX_CONFIG;
  }
  std::optional<milter::Identity> identity;
  if (!cfg->user.empty()) {
    identity = milter::lookup_identity(cfg->user, &error);
    if (!identity) {
      fmt::print(stderr, "mxguard: {}\n", error);
      return EX_CONFIG;
    }
  }
  auto policy = build_policy(cfg);
  if (inv.check_config) {
    print_check_config(*cfg, *policy, *socket, identity);
    return EX_OK;
  }
  if (!inv.test_files.empty()) {
    // Offline test mode, like opendkim -t: what would the message checks say of these files?
    int status = EX_OK;
    for (const auto& file : inv.test_files) {
      auto r =
          run_offline(cfg, file, {inv.test_sender, inv.test_recipient, false}, std::time(nullptr));
      if (r) {
        fmt::print("{}\n", format_offline(*r));
      } else {
        fmt::print(stderr, "mxguard: {}: {}\n", file, r.error());
        status = EX_NOINPUT;
      }
    }
    return status;
  }

  set_log_level(cfg->log_level);
  // Under systemd with syslog on, stderr is the journal too: one copy of each line is enough.
  static StandardSink sink(cfg->foreground && !(cfg->syslog && milter::stderr_is_journal()),
                           cfg->syslog);
  set_log_sink(&sink);
  for (const auto& w : cfg->warnings)
    log(LogLevel::Warning, "{}", w);
  milter::policy_holder().set(policy);
  if (auto fds = milter::raise_fd_limit(); fds.error != 0)
    log(LogLevel::Warning, "cannot raise the open files limit from {}: {}", fds.before,
        std::strerror(fds.error));
  else if (fds.after != fds.before)
    log(LogLevel::Info, "open files limit raised from {} to {}", fds.before, fds.after);

  if (!milter::register_callbacks()) {
    log(LogLevel::Error, "smfi_register failed");
    return EX_SOFTWARE;
  }
  const bool local = socket->kind == milter::SocketSpec::Kind::Local;
  const milter::Identity owner = milter::socket_owner(identity);
  if (local) {
    bool created = false;
    if (!milter::make_socket_dir(socket->path, cfg->socket_mode, owner, &created, &error)) {
      log(LogLevel::Error, "{}", error);
      return EX_OSERR;
    }
    if (created)
      log(LogLevel::Info, "made the socket's directory {} ({} {}:{})",
          milter::socket_dir(socket->path),
          milter::octal(milter::socket_dir_mode(cfg->socket_mode)), owner.name, owner.group);
  }
  if (local && !milter::remove_stale_socket(socket->path, &error)) {
    log(LogLevel::Error, "{}", error);
    return EX_UNAVAILABLE;
  }
  if (!milter::open_socket(*socket)) {
    log(LogLevel::Error, "cannot listen on {} (in use, or no permission?)", cfg->socket);
    return EX_UNAVAILABLE;
  }
  if (local && !milter::secure_socket(socket->path, cfg->socket_mode, owner, &error)) {
    log(LogLevel::Error, "{}", error);
    return EX_OSERR;
  }
  if (local) {
    if (auto problem = milter::socket_reach_problem(socket->path, cfg->socket_mode, owner);
        !problem.empty())
      log(LogLevel::Warning, "{}", problem);
  }
  // The metrics port is bound before detaching, so that "in use" reaches the starting shell.
  static milter::MetricsExporter exporter;
  if (!cfg->metrics_listen.empty() && !exporter.open_listener(cfg->metrics_listen, &error)) {
    log(LogLevel::Error, "{}", error);
    return EX_CONFIG;
  }
  if (!cfg->foreground && !detach(&error)) {
    log(LogLevel::Error, "{}", error);
    return EX_OSERR;
  }
  if (!cfg->pidfile.empty() && !milter::write_pidfile(cfg->pidfile, &error)) {
    log(LogLevel::Error, "{}", error);
    return EX_CANTCREAT;
  }
  if (identity && !milter::drop_privileges(*identity, &error)) {
    log(LogLevel::Error, "{}", error);
    return EX_NOPERM;
  }

  // Strikes and bans live as long as the process; a reload adjusts them (state/runtime.h).
  state::StateRuntime state_runtime(cfg->state);
  state_runtime.start_maintenance();
  install_provider_hook(state_runtime);
  milter::set_state(&state_runtime);

  // After block_signals(): the exporter's threads must not take SIGTERM or SIGUSR1.
  metrics().set_collector(milter::collect_stats);
  if (!exporter.start(cfg->metrics_file, &error)) {
    log(LogLevel::Error, "{}", error);
    return EX_CONFIG;
  }
  if (local)
    log(LogLevel::Notice, "mxguard {} listening on {} ({} {}:{})", MXGUARD_VERSION, cfg->socket,
        milter::octal(cfg->socket_mode), owner.name, owner.group);
  else
    log(LogLevel::Notice, "mxguard {} listening on {}", MXGUARD_VERSION, cfg->socket);
  milter::SignalDispatcher signals([&cl, &state_runtime] { reload(cl, state_runtime); }, log_stats);
  milter::notify_ready();  // the socket is open and privileges are dropped
  release_parent();
  std::atomic<int> rc{MI_SUCCESS};
  std::atomic<bool> stop_requested{false};
  std::atomic<bool> returned{false};
  std::atomic<bool> took_stop{false};
  const pthread_t main_thread = pthread_self();
  std::thread libmilter([&rc, &stop_requested, &returned, &took_stop, &signals, main_thread] {
    signals.await_waiting();  // before smfi_main() starts libmilter's signal thread
    rc = smfi_main();
    if (!stop_requested && rc != MI_SUCCESS && !signals.another_thread_in_sigwait())
      took_stop = true;  // not a failure: its signal thread took a stop signal and ended
    returned = true;
    // libmilter stopped by itself (it gave up, or its signal thread took a SIGTERM meant for
    // us): wake the main thread. Sent to that thread, since libmilter's also waits for SIGTERM.
    if (!stop_requested) pthread_kill(main_thread, SIGTERM);
  });
  const milter::StopKind stop = signals.wait();
  // libmilter stopped before any stop signal reached us: it gave up (or its signal thread took
  // the only one, which the ordering in daemon.h makes all but impossible).
  const bool by_itself = returned;

  milter::notify_stopping();
  // Let the MTA finish the transactions under way before libmilter drops its sessions. Idle
  // connections are not waited for: the MTA reconnects, or uses its default action.
  if (stop == milter::StopKind::Orderly) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    if (auto open = milter::stats().transactions.load(); open > 0)
      log(LogLevel::Notice, "stopping: waiting for {} open transaction(s)", open);
    while (milter::stats().transactions.load() > 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Otherwise whatever smfi_main() returns is the stop we asked for: it may not have been
  // listening yet when a stop signal came right after start-up, or a second SIGTERM during the
  // wait above may have reached its signal thread.
  const bool gave_up = by_itself && rc != MI_SUCCESS && !took_stop;
  stop_requested = true;
  if (gave_up)
    log(LogLevel::Error, "libmilter gave up (see its messages in the mail log)");
  else if (by_itself)
    log(LogLevel::Warning, "libmilter took the stop signal itself; open sessions were dropped");
  // Once smfi_main() has returned, libmilter's mutexes are destroyed: smfi_stop() would lock
  // them. (Not a SIGTERM to libmilter's own signal thread instead: that thread then ends while
  // libmilter's exit handler destroys the mutex it still holds.)
  if (!returned) {
    // smfi_stop() raises libmilter's stop flag, then waits for the listener's lock, which the
    // listener holds while it sits in select() for up to 5 s: a connection to our own socket
    // wakes it. Made from beside, since smfi_stop() does not return before.
    std::atomic<bool> stopped{false};
    std::thread poker([&stopped, &socket] {
      while (!stopped) {
        milter::poke_listener(*socket);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    });
    smfi_stop();
    stopped = true;
    poker.join();
  }
  libmilter.join();
  milter::set_state(nullptr);
  state_runtime.stop();  // the last snapshot of the state file
  exporter.stop();
  log(LogLevel::Notice, "mxguard stopped");
  if (!cfg->pidfile.empty()) unlink(cfg->pidfile.c_str());
  if (socket->kind == milter::SocketSpec::Kind::Local) unlink(socket->path.c_str());
  const int status = gave_up ? EX_SOFTWARE : EX_OK;
  // As for audit: a lookup given up at its deadline is not worth waiting for its timeouts.
  if (!dns::join_lookup_threads(std::chrono::seconds(2))) {
    std::fflush(nullptr);
    std::_Exit(status);
  }
  return status;
}
