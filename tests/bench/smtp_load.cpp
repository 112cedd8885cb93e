// SMTP load generator for the end-to-end benchmark (tests/bench/e2e_bench.py): S sessions in
// parallel (one thread each, blocking sockets) send M messages of about --size bytes, one
// message per connection unless --per-connection says otherwise, and time each transaction.
//
//   smtp_load --port 2525 --sessions 50 --messages 2000 --size 4096
//             --from sender@good.mail.test --to 'r{n}@d{n}.wild.test' --first 1
//
// "{n}" in --from/--to becomes the message's number (--first, --first+1, ...), so a run can
// ask for a new recipient domain per message. Prints one JSON object: messages, seconds,
// final reply codes, and transaction latency (connect, or MAIL on a reused connection, to the
// final reply of the transaction) median/p99 in ms. No pipelining, like a plain MTA client.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string host = "127.0.0.1";
  int port = 25;
  int sessions = 1;
  long messages = 1;
  long first = 1;
  int per_connection = 1;
  std::size_t size = 4096;
  std::string from = "sender@example.org";
  std::string to = "rcpt@example.org";
  std::string helo = "load.test.example";
};

std::string expand(const std::string& pattern, long n) {
  std::string out;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern.compare(i, 3, "{n}") == 0) {
      out += std::to_string(n);
      i += 2;
    } else {
      out.push_back(pattern[i]);
    }
  }
  return out;
}

// One client connection with a small line reader.
class Conn {
 public:
  explicit Conn(const Options& o) {
    fd_ = socket(o.host.find(':') == std::string::npos ? AF_INET : AF_INET6, SOCK_STREAM, 0);
    if (fd_ < 0) return;
    timeval tv{120, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = -1;
    if (o.host.find(':') == std::string::npos) {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<std::uint16_t>(o.port));
      inet_pton(AF_INET, o.host.c_str(), &a.sin_addr);
      rc = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    } else {
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_port = htons(static_cast<std::uint16_t>(o.port));
      inet_pton(AF_INET6, o.host.c_str(), &a.sin6_addr);
      rc = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    }
    if (rc != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~Conn() {
    if (fd_ >= 0) close(fd_);
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  bool ok() const { return fd_ >= 0; }

  bool send_all(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // The code of the next complete reply (last line "ddd "), or 0 on a broken connection.
  int reply() {
    for (;;) {
      std::string line;
      if (!read_line(line)) return 0;
      if (line.size() < 3) return 0;
      if (line.size() == 3 || line[3] == ' ') return std::atoi(line.substr(0, 3).c_str());
    }
  }

  int command(const std::string& cmd) { return send_all(cmd) ? reply() : 0; }

 private:
  bool read_line(std::string& line) {
    for (;;) {
      auto nl = std::find(buf_.begin() + static_cast<long>(pos_), buf_.end(), '\n');
      if (nl != buf_.end()) {
        line.assign(buf_.begin() + static_cast<long>(pos_), nl);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        pos_ = static_cast<std::size_t>(nl - buf_.begin()) + 1;
        return true;
      }
      buf_.erase(0, pos_);
      pos_ = 0;
      char tmp[4096];
      ssize_t n = recv(fd_, tmp, sizeof tmp, 0);
      if (n <= 0) return false;
      buf_.append(tmp, static_cast<std::size_t>(n));
    }
  }

  int fd_ = -1;
  std::string buf_;
  std::size_t pos_ = 0;
};

std::string message_text(const Options& o, const std::string& from, const std::string& to, long n) {
  std::string m = "From: <" + from + ">\r\nTo: <" + to + ">\r\nSubject: load " + std::to_string(n) +
                  "\r\nMessage-ID: <load." + std::to_string(n) +
                  "@load.test.example>\r\nDate: Mon, 23 Nov 2026 12:00:00 +0000\r\n\r\n";
  const std::string line(74, 'x');
  while (m.size() + 78 < o.size)
    m += line + "\r\n";
  return m + ".\r\n";
}

struct Result {
  std::map<int, long> codes;
  std::vector<double> latencies_ms;
};

// Sends one transaction on c; returns the code that ended it (0: connection broken).
int transaction(Conn& c, const Options& o, long n) {
  std::string from = expand(o.from, n), to = expand(o.to, n);
  int code = c.command("MAIL FROM:<" + from + ">\r\n");
  if (code / 100 != 2) return code;
  code = c.command("RCPT TO:<" + to + ">\r\n");
  if (code / 100 != 2) return code;
  code = c.command("DATA\r\n");
  if (code != 354) return code;
  return c.send_all(message_text(o, from, to, n)) ? c.reply() : 0;
}

void worker(const Options& o, std::atomic<long>& next, Result& out) {
  for (;;) {
    long i = next.fetch_add(o.per_connection);
    if (i >= o.messages) return;
    long count = std::min<long>(o.per_connection, o.messages - i);
    auto t0 = Clock::now();
    Conn c(o);
    int code = c.ok() ? c.reply() : 0;
    if (code == 220) code = c.command("EHLO " + o.helo + "\r\n");
    if (code != 250) {  // refused at connect: every message of this connection fails so
      out.codes[code] += count;
      continue;
    }
    for (long k = 0; k < count; ++k) {
      if (k > 0) t0 = Clock::now();
      code = transaction(c, o, o.first + i + k);
      out.latencies_ms.push_back(
          std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      out.codes[code]++;
      if (code == 0) {  // broken: the rest of this connection's messages are lost too
        out.codes[0] += count - k - 1;
        break;
      }
      if (code / 100 != 2 && k + 1 < count && c.command("RSET\r\n") != 250) {
        out.codes[0] += count - k - 1;
        break;
      }
    }
    if (code != 0) c.command("QUIT\r\n");
  }
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto idx = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(idx, v.size() - 1)];
}

std::string fmt_code(bool first, int code, long n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s\"%d\": %ld", first ? "" : ", ", code, n);
  return buf;
}

int usage() {
  std::fprintf(stderr,
               "usage: smtp_load [--host A] --port P [--sessions S] [--messages M] [--size B]\n"
               "                 [--from ADDR] [--to ADDR] [--first N] [--per-connection K]\n"
               "       ({n} in --from/--to becomes the message number)\n");
  return 64;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    std::string v = argv[++i];
    if (a == "--host")
      o.host = v;
    else if (a == "--port")
      o.port = std::atoi(v.c_str());
    else if (a == "--sessions")
      o.sessions = std::max(1, std::atoi(v.c_str()));
    else if (a == "--messages")
      o.messages = std::atol(v.c_str());
    else if (a == "--size")
      o.size = static_cast<std::size_t>(std::atol(v.c_str()));
    else if (a == "--from")
      o.from = v;
    else if (a == "--to")
      o.to = v;
    else if (a == "--first")
      o.first = std::atol(v.c_str());
    else if (a == "--per-connection")
      o.per_connection = std::max(1, std::atoi(v.c_str()));
    else
      return usage();
  }
  if (o.port <= 0) return usage();

  std::atomic<long> next{0};
  std::vector<Result> results(static_cast<std::size_t>(o.sessions));
  auto t0 = Clock::now();
  {
    std::vector<std::thread> threads;
    for (auto& r : results)
      threads.emplace_back(worker, std::cref(o), std::ref(next), std::ref(r));
    for (auto& t : threads)
      t.join();
  }
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();

  Result all;
  for (auto& r : results) {
    for (auto [code, n] : r.codes)
      all.codes[code] += n;
    all.latencies_ms.insert(all.latencies_ms.end(), r.latencies_ms.begin(), r.latencies_ms.end());
  }
  std::string codes;
  for (auto [code, n] : all.codes)
    codes += fmt_code(codes.empty(), code, n);
  double p50 = percentile(all.latencies_ms, 0.50), p99 = percentile(all.latencies_ms, 0.99);
  std::printf(
      "{\"messages\": %ld, \"seconds\": %.4f, \"codes\": {%s}, \"median_ms\": %.3f, "
      "\"p99_ms\": %.3f}\n",
      o.messages, secs, codes.c_str(), p50, p99);
  return 0;
}
