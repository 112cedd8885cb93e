// RedisServer: a real redis-server on a free loopback port, for the RedisStore tests and the
// state benchmark. Started with fork/exec, no persistence; killed (and reaped) by the
// destructor, and by the kernel if the test process dies first (PR_SET_PDEATHSIG).
// SilentListener: a loopback port that takes connections and never answers (a hung Redis),
// which counts who connected and who sent a request.
// Thread-safety: use each from one thread.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace mxguard::testing {

inline int free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("cannot find a free loopback port");
  ::close(fd);
  return ntohs(a.sin_port);
}

inline bool port_accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

class RedisServer {
 public:
  explicit RedisServer(int port = free_loopback_port()) : port_(port) { start(); }
  // With more redis-server arguments, e.g. {"--requirepass", "pw"}.
  explicit RedisServer(std::vector<std::string> extra)
      : port_(free_loopback_port()), extra_(std::move(extra)) {
    start();
  }
  ~RedisServer() { stop(); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }

  void start() {
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      // Its start-up banner and warnings would drown the test output.
      int devnull = ::open("/dev/null", O_WRONLY);
      if (devnull >= 0) {
        ::dup2(devnull, 1);
        ::dup2(devnull, 2);
      }
      std::vector<std::string> args = {
          "redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",  "--save", "",
          "--appendonly", "no",     "--daemonize",         "no",     "--loglevel", "warning"};
      args.insert(args.end(), extra_.begin(), extra_.end());
      std::vector<char*> argv;
      for (auto& a : args)
        argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp("redis-server", argv.data());
      ::_exit(127);
    }
    for (int i = 0; i < 500; ++i) {
      if (port_accepts(port_)) return;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("redis-server exited at start (is it installed?)");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    stop();
    throw std::runtime_error("redis-server did not start listening");
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);  // in case a test paused it
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  // SIGSTOP: the port still accepts connections but nothing answers (a hung server).
  void pause() { ::kill(pid_, SIGSTOP); }
  void resume() { ::kill(pid_, SIGCONT); }

 private:
  int port_;
  std::vector<std::string> extra_;
  pid_t pid_ = -1;
};

// A hung Redis as its clients see it (a stopped redis-server looks the same): the kernel
// completes each connection and queues what the client sends, nothing is ever answered. The
// test counts afterwards, with take(), the connections made and those that carried a request.
class SilentListener {
 public:
  SilentListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);  // take() never waits
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(fd_, 128) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("cannot listen on a loopback port");
    port_ = ntohs(a.sin_port);
  }
  ~SilentListener() {
    for (int c : taken_)
      ::close(c);
    ::close(fd_);
  }
  SilentListener(const SilentListener&) = delete;
  SilentListener& operator=(const SilentListener&) = delete;

  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }

  struct Seen {
    int connections = 0;  // made since the last take()
    int requests = 0;     // of those, the ones the client wrote to before it gave up
  };
  // Takes the connections queued so far (only call once the clients' calls have returned: a
  // connection is queued when connect() returns, its request before the client waits).
  Seen take() {
    Seen seen;
    for (;;) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c < 0) break;
      taken_.push_back(c);
      seen.connections++;
      char buf[4096];
      if (::recv(c, buf, sizeof buf, MSG_DONTWAIT) > 0) seen.requests++;
    }
    return seen;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::vector<int> taken_;
};

}  // namespace mxguard::testing
