// A delaying DNS proxy for the benchmarks (tests/bench/dns_concurrency.py, e2e_bench.py):
// every UDP query that reaches it is forwarded to the real server --delay-ms after it came,
// and the server's answer is passed back at once. One thread and two sockets; query ids are
// renumbered on the upstream socket so that answers find their client. It is the benchmark's
// DNS "network", sharing the machine's CPUs with Postfix and mxguard, so it is kept cheap
// (the Python form in tests/e2e/dns/dnstest.py costs ~170 us of CPU a query).
//
//   dns_delay --upstream 127.0.0.1:5353 --delay-ms 50
//
// Prints the port it listens on (127.0.0.1) on the first line of stdout. On stdin, a line
// "count" is answered with the number of queries received so far; end of input ends it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Query {
  Clock::time_point due;
  sockaddr_in client;
  std::vector<std::uint8_t> data;
};

struct Pending {
  std::uint8_t id[2];  // the client's id
  sockaddr_in client;
  Clock::time_point sent;
};

[[noreturn]] void die(const char* what) {
  std::perror(what);
  std::exit(1);
}

sockaddr_in parse_address(const std::string& text) {
  const auto colon = text.rfind(':');
  sockaddr_in a{};
  a.sin_family = AF_INET;
  if (colon == std::string::npos ||
      inet_pton(AF_INET, text.substr(0, colon).c_str(), &a.sin_addr) != 1) {
    std::fprintf(stderr, "dns_delay: bad address '%s' (want IPv4:port)\n", text.c_str());
    std::exit(64);
  }
  a.sin_port = htons(static_cast<std::uint16_t>(std::atoi(text.c_str() + colon + 1)));
  return a;
}

class Proxy {
 public:
  Proxy(const sockaddr_in& upstream, std::chrono::milliseconds delay) : delay_(delay) {
    client_fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    upstream_fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (client_fd_ < 0 || upstream_fd_ < 0) die("socket");
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(client_fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) die("bind");
    if (connect(upstream_fd_, reinterpret_cast<const sockaddr*>(&upstream), sizeof upstream) != 0)
      die("connect");
    socklen_t len = sizeof local;
    getsockname(client_fd_, reinterpret_cast<sockaddr*>(&local), &len);
    port_ = ntohs(local.sin_port);
  }

  int port() const { return port_; }

  // Until stdin ends.
  void run() {
    std::vector<std::uint8_t> buf(65536);
    auto last_purge = Clock::now();
    for (;;) {
      const auto now = Clock::now();
      forward_due(now);
      if (now - last_purge > std::chrono::seconds(1)) {
        purge(now);
        last_purge = now;
      }
      timespec wait{0, 200'000'000};
      if (!waiting_.empty()) {
        const auto ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(waiting_.front().due - now)
                .count();
        const long long left = ns > 0 ? ns : 0;
        if (left < 200'000'000) wait = timespec{0, static_cast<long>(left)};
      }
      pollfd fds[3] = {{client_fd_, POLLIN, 0}, {upstream_fd_, POLLIN, 0}, {0, POLLIN, 0}};
      if (ppoll(fds, 3, &wait, nullptr) < 0) die("ppoll");
      if (fds[0].revents & POLLIN) receive_query(buf);
      if (fds[1].revents & POLLIN) receive_answer(buf);
      if (fds[2].revents & (POLLIN | POLLHUP) && !command()) return;
    }
  }

 private:
  void receive_query(std::vector<std::uint8_t>& buf) {
    Query q;
    socklen_t len = sizeof q.client;
    const ssize_t n = recvfrom(client_fd_, buf.data(), buf.size(), 0,
                               reinterpret_cast<sockaddr*>(&q.client), &len);
    if (n < 12) return;
    ++queries_;
    q.due = Clock::now() + delay_;  // the delay is constant: arrival order is due order
    q.data.assign(buf.begin(), buf.begin() + n);
    waiting_.push_back(std::move(q));
  }

  void forward_due(Clock::time_point now) {
    while (!waiting_.empty() && waiting_.front().due <= now) {
      Query& q = waiting_.front();
      do {
        next_id_ = static_cast<std::uint16_t>(next_id_ + 1);
      } while (pending_.count(next_id_) != 0);
      Pending& p = pending_[next_id_];
      std::memcpy(p.id, q.data.data(), 2);
      p.client = q.client;
      p.sent = now;
      q.data[0] = static_cast<std::uint8_t>(next_id_ >> 8);
      q.data[1] = static_cast<std::uint8_t>(next_id_ & 0xff);
      if (send(upstream_fd_, q.data.data(), q.data.size(), 0) < 0) pending_.erase(next_id_);
      waiting_.pop_front();
    }
  }

  void receive_answer(std::vector<std::uint8_t>& buf) {
    const ssize_t n = recv(upstream_fd_, buf.data(), buf.size(), 0);
    if (n < 12) return;
    const auto id = static_cast<std::uint16_t>((buf[0] << 8) | buf[1]);
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    std::memcpy(buf.data(), it->second.id, 2);
    sendto(client_fd_, buf.data(), static_cast<std::size_t>(n), 0,
           reinterpret_cast<const sockaddr*>(&it->second.client), sizeof it->second.client);
    pending_.erase(it);
  }

  // Answers the real server never gave are forgotten after 5 s.
  void purge(Clock::time_point now) {
    for (auto it = pending_.begin(); it != pending_.end();)
      it = now - it->second.sent > std::chrono::seconds(5) ? pending_.erase(it) : std::next(it);
  }

  // One line from stdin; false at its end.
  bool command() {
    char line[64];
    const ssize_t n = read(0, line, sizeof line - 1);
    if (n <= 0) return false;
    line[n] = '\0';
    if (std::strncmp(line, "count", 5) == 0) {
      std::printf("%llu\n", static_cast<unsigned long long>(queries_));
      std::fflush(stdout);
    }
    return true;
  }

  std::chrono::milliseconds delay_;
  int client_fd_ = -1;
  int upstream_fd_ = -1;
  int port_ = 0;
  std::uint64_t queries_ = 0;
  std::uint16_t next_id_ = 0;
  std::deque<Query> waiting_;
  std::unordered_map<std::uint16_t, Pending> pending_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string upstream;
  long delay_ms = 50;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--upstream") {
      upstream = argv[i + 1];
    } else if (flag == "--delay-ms") {
      delay_ms = std::atol(argv[i + 1]);
    } else {
      std::fprintf(stderr, "dns_delay: unknown flag %s\n", flag.c_str());
      return 64;
    }
  }
  if (argc % 2 == 0 || upstream.empty() || delay_ms < 0) {
    std::fprintf(stderr, "usage: dns_delay --upstream IPv4:PORT [--delay-ms N]\n");
    return 64;
  }
  Proxy proxy(parse_address(upstream), std::chrono::milliseconds(delay_ms));
  std::printf("%d\n", proxy.port());
  std::fflush(stdout);
  proxy.run();
  return 0;
}
