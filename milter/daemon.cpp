#include "daemon.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <libmilter/mfapi.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <utility>

#include <fmt/format.h>

namespace mxguard::milter {

std::optional<SocketSpec> parse_socket(const std::string& spec, std::string* error) {
  SocketSpec s;
  auto colon = spec.find(':');
  std::string proto = colon == std::string::npos ? "" : spec.substr(0, colon);
  std::string rest = colon == std::string::npos ? spec : spec.substr(colon + 1);
  if (proto.empty() && !spec.empty() && spec[0] == '/') {
    proto = "local";
    rest = spec;
  }
  if (proto == "unix" || proto == "local") {
    if (rest.empty() || rest[0] != '/') {
      *error = fmt::format("socket '{}': a unix socket needs an absolute path", spec);
      return std::nullopt;
    }
    if (rest.size() >= sizeof(sockaddr_un{}.sun_path)) {
      *error = fmt::format("socket '{}': path too long", spec);
      return std::nullopt;
    }
    s.kind = SocketSpec::Kind::Local;
    s.path = rest;
    s.libmilter = "local:" + rest;
    return s;
  }
  if (proto == "inet" || proto == "inet6") {
    // libmilter: port@host. Postfix writes host:port; accept that too for inet.
    std::string port_s, host;
    if (auto at = rest.find('@'); at != std::string::npos) {
      port_s = rest.substr(0, at);
      host = rest.substr(at + 1);
    } else if (auto c = rest.rfind(':'); proto == "inet" && c != std::string::npos) {
      host = rest.substr(0, c);
      port_s = rest.substr(c + 1);
    } else {
      port_s = rest;
    }
    char* end = nullptr;
    long port = std::strtol(port_s.c_str(), &end, 10);
    if (port_s.empty() || *end != '\0' || port < 1 || port > 65535) {
      *error = fmt::format("socket '{}': bad port '{}'", spec, port_s);
      return std::nullopt;
    }
    s.kind = proto == "inet" ? SocketSpec::Kind::Inet : SocketSpec::Kind::Inet6;
    s.port = static_cast<int>(port);
    s.host = host;
    s.libmilter = host.empty() ? fmt::format("{}:{}", proto, port)
                               : fmt::format("{}:{}@{}", proto, port, host);
    return s;
  }
  *error = fmt::format(
      "socket '{}': expected unix:/path, local:/path, inet:port@host or inet6:port@host", spec);
  return std::nullopt;
}

bool remove_stale_socket(const std::string& path, std::string* error) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return true;
    *error = fmt::format("{}: {}", path, std::strerror(errno));
    return false;
  }
  if (!S_ISSOCK(st.st_mode)) {
    *error = fmt::format("{}: exists and is not a socket; not removing it", path);
    return false;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = fmt::format("socket(): {}", std::strerror(errno));
    return false;
  }
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun);
  int err = errno;
  close(fd);
  if (rc == 0) {
    *error = fmt::format("{}: socket in use: another milter is listening there", path);
    return false;
  }
  if (err != ECONNREFUSED) {
    *error = fmt::format("{}: cannot tell whether it is in use: {}", path, std::strerror(err));
    return false;
  }
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    *error = fmt::format("{}: cannot remove stale socket: {}", path, std::strerror(errno));
    return false;
  }
  return true;
}

std::optional<Identity> lookup_identity(const std::string& user_group, std::string* error) {
  std::string user = user_group, group;
  if (auto c = user_group.find(':'); c != std::string::npos) {
    user = user_group.substr(0, c);
    group = user_group.substr(c + 1);
  }
  const passwd* pw = getpwnam(user.c_str());
  if (!pw) {
    *error = fmt::format("user '{}': no such user", user);
    return std::nullopt;
  }
  Identity id{pw->pw_uid, pw->pw_gid, user, group};
  if (!group.empty()) {
    const struct group* gr = getgrnam(group.c_str());
    if (!gr) {
      *error = fmt::format("user '{}': no such group '{}'", user_group, group);
      return std::nullopt;
    }
    id.gid = gr->gr_gid;
  } else if (const struct group* gr = getgrgid(id.gid)) {
    id.group = gr->gr_name;
  } else {
    id.group = std::to_string(id.gid);
  }
  return id;
}

Identity socket_owner(const std::optional<Identity>& user) {
  if (user) return *user;
  Identity self{geteuid(), getegid(), std::to_string(geteuid()), std::to_string(getegid())};
  if (const passwd* pw = getpwuid(self.uid)) self.name = pw->pw_name;
  if (const struct group* gr = getgrgid(self.gid)) self.group = gr->gr_name;
  return self;
}

unsigned socket_dir_mode(unsigned socket_mode) {
  unsigned dir = 0700;
  if (socket_mode & 0070) dir |= 0050;
  if (socket_mode & 0007) dir |= 0005;
  return dir;
}

std::string octal(unsigned mode) {
  return fmt::format("{:04o}", mode);
}

std::string socket_dir(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

namespace {

// chown() only where it changes something: a daemon not started as root may still own its
// socket (no -u, or -u itself).
bool give(const std::string& path, const Identity& owner, std::string* error) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    *error = fmt::format("{}: {}", path, std::strerror(errno));
    return false;
  }
  if (st.st_uid == owner.uid && st.st_gid == owner.gid) return true;
  if (lchown(path.c_str(), owner.uid, owner.gid) != 0) {
    *error = fmt::format("cannot give {} to {}:{}: {}", path, owner.name, owner.group,
                         std::strerror(errno));
    return false;
  }
  return true;
}
}  // namespace

bool make_socket_dir(const std::string& socket_path, unsigned socket_mode, const Identity& owner,
                     bool* created, std::string* error) {
  *created = false;
  const std::string dir = socket_dir(socket_path);
  struct stat st;
  if (stat(dir.c_str(), &st) == 0) return true;  // the admin's own: left as it is
  if (errno != ENOENT) {
    *error = fmt::format("{}: {}", dir, std::strerror(errno));
    return false;
  }
  // 0700 until it has its owner, whatever the umask.
  if (mkdir(dir.c_str(), 0700) != 0) {
    *error = fmt::format("cannot make the socket's directory {}: {}", dir, std::strerror(errno));
    return false;
  }
  *created = true;
  if (!give(dir, owner, error)) return false;
  if (chmod(dir.c_str(), socket_dir_mode(socket_mode)) != 0) {
    *error = fmt::format("{}: {}", dir, std::strerror(errno));
    return false;
  }
  return true;
}

bool open_socket(const SocketSpec& socket) {
  const mode_t old = umask(0177);
  const bool ok = smfi_setconn(const_cast<char*>(socket.libmilter.c_str())) == MI_SUCCESS &&
                  smfi_opensocket(false) == MI_SUCCESS;
  umask(old);
  return ok;
}

bool secure_socket(const std::string& path, unsigned mode, const Identity& owner,
                   std::string* error) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) {
    *error = fmt::format("{}: not the socket just made", path);
    return false;
  }
  if (!give(path, owner, error)) return false;
  if (chmod(path.c_str(), mode) != 0) {
    *error = fmt::format("cannot set the mode of {}: {}", path, std::strerror(errno));
    return false;
  }
  return true;
}

std::string socket_reach_problem(const std::string& socket_path, unsigned socket_mode,
                                 const Identity& owner) {
  if (!(socket_mode & 0020)) return {};
  std::string dir = socket_dir(socket_path);
  for (;;) {
    struct stat st;
    if (stat(dir.c_str(), &st) == 0) {
      const bool searchable =
          (st.st_mode & S_IXOTH) || (st.st_gid == owner.gid && (st.st_mode & S_IXGRP));
      if (!searchable) {
        const passwd* pw = getpwuid(st.st_uid);
        const struct group* gr = getgrgid(st.st_gid);
        return fmt::format(
            "group {} cannot search {} ({} {}:{}), so its members cannot reach the socket",
            owner.group, dir, octal(st.st_mode & 07777),
            pw ? pw->pw_name : std::to_string(st.st_uid),
            gr ? gr->gr_name : std::to_string(st.st_gid));
      }
    }
    if (dir == "/") return {};
    dir = socket_dir(dir);
  }
}

bool drop_privileges(const Identity& id, std::string* error) {
  if (getuid() != 0 && geteuid() != 0) {
    if (geteuid() == id.uid) return true;
    *error = "not running as root: cannot change user";
    return false;
  }
  // The supplementary groups are the user's own group and those that list the user; the gid
  // becomes id.gid. initgroups() with id.gid instead would lose the user's own group when
  // id.gid is another one: as mxguard:postfix, group mxguard, which nothing lists as a member
  // and which alone may read /etc/mxguard (root:mxguard 0750), so no reload could read it.
  const passwd* pw = getpwnam(id.name.c_str());
  const gid_t own_group = pw ? pw->pw_gid : id.gid;
  if (initgroups(id.name.c_str(), own_group) != 0 || setgid(id.gid) != 0 || setuid(id.uid) != 0) {
    *error = fmt::format("cannot become {}: {}", id.name, std::strerror(errno));
    return false;
  }
  if (id.uid != 0 && setuid(0) == 0) {
    *error = "privileges could be regained after dropping them";
    return false;
  }
  return true;
}

bool write_pidfile(const std::string& path, std::string* error) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    *error = fmt::format("{}: {}", tmp, std::strerror(errno));
    return false;
  }
  std::string s = fmt::format("{}\n", getpid());
  bool ok = write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size());
  ok = close(fd) == 0 && ok;
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    *error = fmt::format("{}: {}", path, std::strerror(errno));
    unlink(tmp.c_str());
    return false;
  }
  return true;
}

namespace {
sigset_t signal_set(std::initializer_list<int> signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : signals)
    sigaddset(&set, sig);
  return set;
}
const sigset_t kStopSignals = signal_set({SIGHUP, SIGTERM, SIGINT});
const sigset_t kWorkSignals = signal_set({SIGUSR1, SIGUSR2});
}  // namespace

void block_signals() {
  sigset_t set = signal_set({SIGHUP, SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGPIPE});
  // SIGPIPE: a dropped MTA connection is an error return, not a death.
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

SignalDispatcher::SignalDispatcher(std::function<void()> on_reload, std::function<void()> on_stats)
    : on_reload_(std::move(on_reload)), on_stats_(std::move(on_stats)) {
  worker_ = std::thread([this] { work(); });
}

SignalDispatcher::~SignalDispatcher() {
  stop_worker();
}

void SignalDispatcher::work() {
  worker_tid_ = static_cast<pid_t>(syscall(SYS_gettid));
  for (;;) {
    int sig = 0;
    if (sigwait(&kWorkSignals, &sig) != 0) continue;
    if (done_) return;
    if (sig == SIGUSR1)
      on_reload_();
    else
      on_stats_();
  }
}

void SignalDispatcher::stop_worker() {
  if (!worker_.joinable()) return;
  done_ = true;
  pthread_kill(worker_.native_handle(), SIGUSR2);  // wakes its sigwait(), or ends the next one
  worker_.join();
}

namespace {
// Whether thread `tid` of this process is blocked in sigwait() now; nullopt when /proc cannot
// say. (Readable by the process's own threads whatever its privileges.)
std::optional<bool> in_sigwait(pid_t tid) {
  const std::string path = fmt::format("/proc/self/task/{}/syscall", tid);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[32] = {};
  const ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return std::nullopt;
  return std::strtol(buf, nullptr, 10) == SYS_rt_sigtimedwait && buf[0] != 'r';  // "running"
}
}  // namespace

bool SignalDispatcher::another_thread_in_sigwait() const {
  DIR* dir = opendir("/proc/self/task");
  if (!dir) return true;
  bool found = false;
  while (dirent* entry = readdir(dir)) {
    const auto tid = static_cast<pid_t>(std::strtol(entry->d_name, nullptr, 10));
    if (tid <= 0 || tid == waiter_ || tid == worker_tid_) continue;
    if (in_sigwait(tid).value_or(true)) {
      found = true;
      break;
    }
  }
  closedir(dir);
  return found;
}

void SignalDispatcher::await_waiting() const {
  while (!waiting_)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  // waiting_ is set just before the call: wait for the call itself (a moment, or not at all),
  // then until no stop signal is pending. One that came a moment ago waits for the main
  // thread to be scheduled and take it; a signal thread that called sigwait() meanwhile would
  // take it first.
  for (int i = 0; i < 1000; ++i) {
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    const bool stop_pending = sigismember(&pending, SIGTERM) == 1 ||
                              sigismember(&pending, SIGHUP) == 1 ||
                              sigismember(&pending, SIGINT) == 1;
    const auto waiting = in_sigwait(waiter_);
    if (!stop_pending && (!waiting || *waiting)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

StopKind SignalDispatcher::wait() {
  int sig = 0;
  waiter_ = static_cast<pid_t>(syscall(SYS_gettid));
  waiting_ = true;
  while (sigwait(&kStopSignals, &sig) != 0) {
  }
  stop_worker();  // a reload under way finishes first: what stops next uses its state
  return sig == SIGINT ? StopKind::Immediate : StopKind::Orderly;
}

FdLimit raise_fd_limit(unsigned long want) {
  FdLimit out;
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    out.error = errno;
    return out;
  }
  out.before = out.after = static_cast<unsigned long>(rl.rlim_cur);
  const rlim_t target = std::min<rlim_t>(rl.rlim_max, want);
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < target) {
    rl.rlim_cur = target;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
      out.after = static_cast<unsigned long>(target);
    else
      out.error = errno;
  }
  return out;
}

void poke_listener(const SocketSpec& socket) {
  if (socket.kind == SocketSpec::Kind::Local) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::memcpy(sun.sun_path, socket.path.c_str(), socket.path.size() + 1);
    (void)connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun);
    close(fd);
    return;
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_family = socket.kind == SocketSpec::Kind::Inet6 ? AF_INET6 : AF_INET;
  std::string host = socket.host.empty()
                         ? (socket.kind == SocketSpec::Kind::Inet6 ? "::1" : "127.0.0.1")
                         : socket.host;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(socket.port).c_str(), &hints, &res) != 0) return;
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    (void)connect(fd, res->ai_addr, res->ai_addrlen);
    close(fd);
  }
  freeaddrinfo(res);
}

}  // namespace mxguard::milter
