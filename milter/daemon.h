// Daemon life: the milter socket (stale-socket removal), privileges, pidfile, detaching, and
// the signal thread (SIGUSR1 reload, SIGUSR2 stats). libmilter itself handles SIGHUP, SIGTERM
// (orderly stop) and SIGINT (abort) in its own signal thread.
// Threading: called from main() before smfi_main(), except the signal thread it starts.
#pragma once

#include <functional>
#include <optional>
#include <string>

namespace mxguard::milter {

// A parsed milter socket spec (libmilter syntax, plus "unix:" as a synonym of "local:").
struct SocketSpec {
  enum class Kind { Local, Inet, Inet6 } kind = Kind::Local;
  std::string path;  // Local
  std::string host;  // Inet/Inet6
  int port = 0;
  std::string libmilter;  // what smfi_setconn() takes
};
std::optional<SocketSpec> parse_socket(const std::string& spec, std::string* error);

// Removes a unix socket left behind by a dead mxguard. Refuses (false + error) when something
// is listening there or the path is not a socket.
bool remove_stale_socket(const std::string& path, std::string* error);

struct Identity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name;
};
std::optional<Identity> lookup_identity(const std::string& user_group, std::string* error);
bool drop_privileges(const Identity& id, std::string* error);

bool write_pidfile(const std::string& path, std::string* error);

// Signals. libmilter's own signal thread stops it at once on SIGTERM/SIGHUP, and Debian's
// libmilter (built with its worker pool) then drops every open session: mail in flight would
// get the MTA's temporary failure. So libmilter runs in a thread of its own, and the main
// thread, which the kernel prefers for signals sent to the process, takes them all:
// SIGUSR1 reload, SIGUSR2 stats, SIGTERM/SIGHUP stop after the open transactions, SIGINT stop
// at once. Only then is libmilter told to stop (smfi_stop()).

// Blocks the signals above in the calling thread, so in every thread started after it.
void block_signals();

enum class StopKind { Orderly, Immediate };
// Waits for signals in the calling (main) thread, calling the handlers, until a stop signal.
StopKind wait_for_signals(const std::function<void()>& on_reload,
                          const std::function<void()>& on_stats);

// Each MTA connection holds a descriptor, and each DNS lookup in flight one more: under the
// soft limit of 1024 that systemd and most shells set, about a thousand concurrent SMTP
// sessions exhaust it (lookups fail with 451 4.4.3, libmilter's accept() spins until a
// descriptor is free). Raises the soft limit towards the hard one, to at most `want`.
// Nothing in the process waits with select(), so descriptors above FD_SETSIZE are safe.
struct FdLimit {
  unsigned long before = 0, after = 0;
  int error = 0;  // errno of a failed setrlimit()
};
FdLimit raise_fd_limit(unsigned long want = 65536);

// Wakes libmilter's listener (it notices a stop only when its select() returns) by
// connecting to our own socket once; best effort.
void poke_listener(const SocketSpec& socket);

}  // namespace mxguard::milter
