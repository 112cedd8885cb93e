// Daemon life: the milter socket (stale-socket removal, its directory, owner and mode),
// privileges, pidfile, detaching, and signals (SIGUSR1 reload, SIGUSR2 stats,
// SIGTERM/SIGHUP/SIGINT stop; see below).
// Threading: called from main() before smfi_main(), except SignalDispatcher's sigwait thread.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include <sys/types.h>

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
  std::string group;  // the name of gid
};
std::optional<Identity> lookup_identity(const std::string& user_group, std::string* error);
bool drop_privileges(const Identity& id, std::string* error);

// Who owns a unix socket: the user and group of -u, else the process's own.
Identity socket_owner(const std::optional<Identity>& user);

// Unix socket permissions, whatever the umask of whoever starts mxguard (an MTA that cannot
// write to the socket cannot connect, and every message would be deferred). libmilter binds
// the socket under the umask: open_socket() sets one that lets only the owner in, so nobody
// connects in the moment before secure_socket() gives the socket to its owner and sets its
// mode. A missing directory for the socket (its last component only) is made by
// make_socket_dir(), owned the same way, searchable by whoever the mode lets in (0660: 0750).
unsigned socket_dir_mode(unsigned socket_mode);
std::string socket_dir(const std::string& socket_path);
std::string octal(unsigned mode);  // "0660"
// `created`: whether the directory was made now. False + error when it cannot be.
bool make_socket_dir(const std::string& socket_path, unsigned socket_mode, const Identity& owner,
                     bool* created, std::string* error);
// smfi_opensocket() under umask 0177.
bool open_socket(const SocketSpec& socket);
bool secure_socket(const std::string& path, unsigned mode, const Identity& owner,
                   std::string* error);
// For -n and the start-up log: a directory on the way to the socket that the members of its
// group cannot search, when the mode gives the group access (empty: none).
std::string socket_reach_problem(const std::string& socket_path, unsigned socket_mode,
                                 const Identity& owner);

bool write_pidfile(const std::string& path, std::string* error);

// Signals. libmilter's own signal thread stops it at once on SIGTERM/SIGHUP, and Debian's
// libmilter (built with its worker pool) then drops every open session: mail in flight would
// get the MTA's temporary failure. So libmilter runs in a thread of its own, and mxguard takes
// the signals: SIGTERM/SIGHUP stop after the open transactions, SIGINT stops at once (both in
// the main thread), SIGUSR1 reloads and SIGUSR2 logs stats (in a sigwait thread of its own).
// Only then is libmilter told to stop (smfi_stop()).
//
// Every thread blocks them all; libmilter's signal thread waits for SIGTERM in sigwait() too,
// and the kernel gives a signal sent to the process to its main thread when that thread is
// waiting for it, otherwise to any other thread that is. So the main thread does nothing but
// wait for the stop signals, from before libmilter starts until one comes: a main thread that
// also reloaded lost a SIGTERM sent during a reload to libmilter. (A handler instead of
// sigwait() would not need the ordering, but ThreadSanitizer, which defers handlers, lost
// stop signals that way.)

// Blocks the signals above in the calling thread, so in every thread started after it.
void block_signals();

enum class StopKind { Orderly, Immediate };

class SignalDispatcher {
 public:
  // Starts the sigwait thread for SIGUSR1/SIGUSR2; after block_signals().
  SignalDispatcher(std::function<void()> on_reload, std::function<void()> on_stats);
  ~SignalDispatcher();  // waits for a reload under way
  SignalDispatcher(const SignalDispatcher&) = delete;
  SignalDispatcher& operator=(const SignalDispatcher&) = delete;

  // In the main thread: waits for a stop signal, then for a reload under way.
  StopKind wait();
  // Returns once wait() waits: libmilter's thread calls it before smfi_main(), so that its
  // signal thread never waits alone.
  void await_waiting() const;
  // Whether a thread other than mxguard's two waits in sigwait(): after smfi_main() returned by
  // itself, libmilter's signal thread still does when libmilter gave up, and has ended when
  // it took a stop signal (it may, just as libmilter starts). True when /proc cannot say.
  bool another_thread_in_sigwait() const;

 private:
  void work();
  void stop_worker();

  std::function<void()> on_reload_, on_stats_;
  std::atomic<bool> done_{false}, waiting_{false};
  std::atomic<pid_t> waiter_{0}, worker_tid_{0};  // the threads in wait() and work()
  std::thread worker_;
};

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
