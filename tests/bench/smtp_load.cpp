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
//
//   smtp_load --port 2525 --sessions 50 --plan FILE
//
// With --plan (tests/bench/mix_bench.py writes it), each line of FILE is one session of one
// transaction, tab-separated: source address to bind, kind (a label for the tally), MAIL FROM,
// recipients (space-separated), and the path of a message file (CRLF, dot-stuffed, without
// the final "."). The files are read before the clock starts. The JSON then also tallies the
// final codes per kind and counts the recipients of accepted messages ("accepted_rcpts").
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
  std::string plan;  // --plan FILE: one session per line (see the top of this file)
};

// One session of a plan.
struct Planned {
  std::string source;
  std::string kind;
  std::string from;
  std::vector<std::string> rcpts;
  const std::string* message = nullptr;  // into the file cache
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t b = 0;
  for (;;) {
    std::size_t e = s.find(sep, b);
    out.push_back(s.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (e == std::string::npos) return out;
    b = e + 1;
  }
}

bool read_file(const std::string& path, std::string& out) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char buf[65536];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
    out.append(buf, n);
  std::fclose(f);
  return true;
}

// Reads the plan and every message file it names (each once).
bool load_plan(const std::string& path, std::vector<Planned>& plan,
               std::map<std::string, std::string>& files) {
  std::string text;
  if (!read_file(path, text)) return false;
  for (const std::string& line : split(text, '\n')) {
    if (line.empty()) continue;
    std::vector<std::string> f = split(line, '\t');
    if (f.size() != 5) return false;
    Planned p{f[0], f[1], f[2], {}, nullptr};
    for (const std::string& r : split(f[3], ' '))
      if (!r.empty()) p.rcpts.push_back(r);
    auto it = files.find(f[4]);
    if (it == files.end()) {
      std::string body;
      if (!read_file(f[4], body)) return false;
      it = files.emplace(f[4], body + ".\r\n").first;
    }
    p.message = &it->second;
    plan.push_back(std::move(p));
  }
  return true;
}

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
  explicit Conn(const Options& o, const std::string& source = {}) {
    fd_ = socket(o.host.find(':') == std::string::npos ? AF_INET : AF_INET6, SOCK_STREAM, 0);
    if (fd_ < 0) return;
    if (!source.empty() && o.host.find(':') == std::string::npos) {
      sockaddr_in b{};
      b.sin_family = AF_INET;
      inet_pton(AF_INET, source.c_str(), &b.sin_addr);
      if (bind(fd_, reinterpret_cast<sockaddr*>(&b), sizeof b) != 0) {
        close(fd_);
        fd_ = -1;
        return;
      }
    }
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
  std::map<std::string, std::map<int, long>> kinds;  // plan mode: final codes per kind
  long accepted_rcpts = 0;
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

// A planned transaction: every recipient, DATA when one was accepted. Returns the final code.
int planned_transaction(Conn& c, const Planned& p, long& accepted) {
  int code = c.command("MAIL FROM:<" + p.from + ">\r\n");
  if (code / 100 != 2) return code;
  long ok = 0;
  for (const std::string& r : p.rcpts) {
    code = c.command("RCPT TO:<" + r + ">\r\n");
    if (code == 0) return 0;
    if (code / 100 == 2) ++ok;
  }
  if (ok == 0) return code;
  code = c.command("DATA\r\n");
  if (code != 354) return code;
  code = c.send_all(*p.message) ? c.reply() : 0;
  if (code / 100 == 2) accepted = ok;
  return code;
}

void plan_worker(const Options& o, const std::vector<Planned>& plan, std::atomic<long>& next,
                 Result& out) {
  for (;;) {
    const long i = next.fetch_add(1);
    if (i >= static_cast<long>(plan.size())) return;
    const Planned& p = plan[static_cast<std::size_t>(i)];
    auto t0 = Clock::now();
    Conn c(o, p.source);
    int code = c.ok() ? c.reply() : 0;
    if (code == 220) code = c.command("EHLO " + o.helo + "\r\n");
    long accepted = 0;
    if (code == 250) code = planned_transaction(c, p, accepted);
    out.latencies_ms.push_back(
        std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    out.codes[code]++;
    out.kinds[p.kind][code]++;
    out.accepted_rcpts += accepted;
    if (code != 0) c.command("QUIT\r\n");
  }
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
               "       smtp_load [--host A] --port P [--sessions S] --plan FILE\n"
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
    else if (a == "--plan")
      o.plan = v;
    else
      return usage();
  }
  if (o.port <= 0) return usage();

  std::vector<Planned> plan;
  std::map<std::string, std::string> files;
  if (!o.plan.empty()) {
    if (!load_plan(o.plan, plan, files)) {
      std::fprintf(stderr, "smtp_load: cannot read the plan %s\n", o.plan.c_str());
      return 66;
    }
    o.messages = static_cast<long>(plan.size());
  }

  std::atomic<long> next{0};
  std::vector<Result> results(static_cast<std::size_t>(o.sessions));
  auto t0 = Clock::now();
  {
    std::vector<std::thread> threads;
    for (auto& r : results) {
      if (plan.empty())
        threads.emplace_back(worker, std::cref(o), std::ref(next), std::ref(r));
      else
        threads.emplace_back(plan_worker, std::cref(o), std::cref(plan), std::ref(next),
                             std::ref(r));
    }
    for (auto& t : threads)
      t.join();
  }
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();

  Result all;
  for (auto& r : results) {
    for (auto [code, n] : r.codes)
      all.codes[code] += n;
    all.latencies_ms.insert(all.latencies_ms.end(), r.latencies_ms.begin(), r.latencies_ms.end());
    for (const auto& [kind, codes] : r.kinds)
      for (auto [code, n] : codes)
        all.kinds[kind][code] += n;
    all.accepted_rcpts += r.accepted_rcpts;
  }
  std::string codes;
  for (auto [code, n] : all.codes)
    codes += fmt_code(codes.empty(), code, n);
  std::string kinds;
  for (const auto& [kind, per] : all.kinds) {
    std::string inner;
    for (auto [code, n] : per)
      inner += fmt_code(inner.empty(), code, n);
    kinds += (kinds.empty() ? "\"" : ", \"") + kind + "\": {" + inner + "}";
  }
  double p50 = percentile(all.latencies_ms, 0.50), p99 = percentile(all.latencies_ms, 0.99);
  std::printf(
      "{\"messages\": %ld, \"seconds\": %.4f, \"codes\": {%s}, \"median_ms\": %.3f, "
      "\"p99_ms\": %.3f, \"kinds\": {%s}, \"accepted_rcpts\": %ld}\n",
      o.messages, secs, codes.c_str(), p50, p99, kinds.c_str(), all.accepted_rcpts);
  return 0;
}
