#include "metrics_export.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "adapter.h"
#include "mxguard/dns/caching_resolver.h"
#include "mxguard/dns/mail_route.h"
#include "mxguard/log.h"
#include "mxguard/metrics.h"
#include "mxguard/state/bans.h"

namespace mxguard::milter {

namespace {

constexpr auto kFileInterval = std::chrono::seconds(5);

bool write_atomically(const std::string& path, const std::string& text, std::string* error) {
  // node_exporter may read at any moment: it must see the old file or the new one, whole.
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    *error = fmt::format("{}: {}", tmp, std::strerror(errno));
    return false;
  }
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  bool ok = done == text.size();
  ok = close(fd) == 0 && ok;
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    *error = fmt::format("{}: {}", path, std::strerror(errno));
    unlink(tmp.c_str());
    return false;
  }
  return true;
}

MHD_Result answer(void*, MHD_Connection* connection, const char* url, const char* method,
                  const char*, const char*, size_t*, void**) {
  const bool get = std::strcmp(method, "GET") == 0 || std::strcmp(method, "HEAD") == 0;
  const bool found = std::strcmp(url, "/metrics") == 0;
  std::string body = !get ? "method not allowed\n" : found ? metrics().render() : "not found\n";
  MHD_Response* r =
      MHD_create_response_from_buffer(body.size(), body.data(), MHD_RESPMEM_MUST_COPY);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, "Content-Type",
                          found && get ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain");
  MHD_Result ret = MHD_queue_response(connection,
                                      !get    ? MHD_HTTP_METHOD_NOT_ALLOWED
                                      : found ? MHD_HTTP_OK
                                              : MHD_HTTP_NOT_FOUND,
                                      r);
  MHD_destroy_response(r);
  return ret;
}

}  // namespace

void collect_stats(std::string& out) {
  const Stats& s = stats();
  auto metric = [&out](const char* name, const char* type, const char* help, auto value) {
    out += fmt::format("# HELP {0} {1}\n# TYPE {0} {2}\n{0} {3}\n", name, help, type, value);
  };
  metric("mxguard_connections_total", "counter", "MTA connections (one per SMTP session).",
         s.connections.load());
  metric("mxguard_connections_active", "gauge", "MTA connections open now.", s.active.load());
  metric("mxguard_transactions_in_flight", "gauge", "Transactions between MAIL and end of message.",
         s.transactions.load());
  metric("mxguard_messages_total", "counter", "Transactions begun (MAIL commands).",
         s.messages.load());
  metric("mxguard_rejects_total", "counter", "Replies of 5xx sent to the MTA.", s.rejects.load());
  metric("mxguard_tempfails_total", "counter", "Replies of 4xx sent to the MTA.",
         s.tempfails.load());
  metric("mxguard_internal_errors_total", "counter", "Failures inside mxguard itself.",
         s.internal_errors.load());
  if (auto bans = current_bans())
    metric("mxguard_bans_active", "gauge", "Bans in force that this process issued or enforced.",
           bans->active_known());
  if (auto ledger = current_ledger()) {
    const state::LedgerStats l = ledger->stats();
    if (l.entries)
      metric("mxguard_ledger_entries", "gauge",
             "Keys in the ledger of our sent mail (a recipient or a Message-ID each).", *l.entries);
    metric("mxguard_ledger_recorded_total", "counter",
           "Keys of our users' outgoing mail this process recorded in the ledger.", l.recorded);
    metric("mxguard_ledger_evictions_total", "counter",
           "Ledger keys dropped before their lifetime to stay within ledger-max-entries.",
           l.evictions);
  }
  // The cache belongs to the policy: these count from the last reload on.
  auto policy = policy_holder().get();
  auto* cache = policy && policy->routes
                    ? dynamic_cast<dns::CachingResolver*>(&policy->routes->resolver())
                    : nullptr;
  if (cache) {
    const dns::CacheStats c = cache->stats();
    metric("mxguard_dns_cache_hits_total", "counter",
           "DNS answers given from the cache (since the last reload).", c.hits);
    metric("mxguard_dns_cache_misses_total", "counter",
           "DNS questions sent to the servers (since the last reload).", c.misses);
    metric("mxguard_dns_errors_total", "counter",
           "DNS questions that failed: SERVFAIL, timeout, garbage (since the last reload).",
           c.errors);
    metric("mxguard_dns_cache_entries", "gauge", "DNS answers held in the cache.", c.entries);
  }
}

struct MetricsExporter::Impl {
  int listen_fd = -1;
  MHD_Daemon* http = nullptr;
  std::string file;
  std::thread writer;
  std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
};

MetricsExporter::MetricsExporter() : impl_(std::make_unique<Impl>()) {}

MetricsExporter::~MetricsExporter() {
  stop();
}

bool MetricsExporter::open_listener(const std::string& listen, std::string* error) {
  std::string host, port_s;
  if (!listen.empty() && listen.front() == '[') {
    auto close = listen.find("]:");
    if (close == std::string::npos) {
      *error = fmt::format("metrics-listen '{}': expected [address]:port", listen);
      return false;
    }
    host = listen.substr(1, close - 1);
    port_s = listen.substr(close + 2);
  } else {
    auto colon = listen.rfind(':');
    if (colon == std::string::npos) {
      *error = fmt::format("metrics-listen '{}': expected address:port", listen);
      return false;
    }
    host = listen.substr(0, colon);
    port_s = listen.substr(colon + 1);
  }
  char* end = nullptr;
  long port = std::strtol(port_s.c_str(), &end, 10);
  if (port_s.empty() || *end != '\0' || port < 1 || port > 65535) {
    *error = fmt::format("metrics-listen '{}': bad port '{}'", listen, port_s);
    return false;
  }
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, host.c_str(), &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<std::uint16_t>(port));
    len = sizeof *sin;
  } else if (inet_pton(AF_INET6, host.c_str(), &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(static_cast<std::uint16_t>(port));
    len = sizeof *sin6;
  } else {
    *error = fmt::format("metrics-listen '{}': '{}' is not an IP address", listen, host);
    return false;
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = fmt::format("metrics-listen: socket(): {}", std::strerror(errno));
    return false;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 16) != 0) {
    *error = fmt::format("metrics-listen {}: {}", listen, std::strerror(errno));
    close(fd);
    return false;
  }
  impl_->listen_fd = fd;
  return true;
}

bool MetricsExporter::start(const std::string& file, std::string* error) {
  if (impl_->listen_fd >= 0) {
    impl_->http = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, nullptr,
                                   nullptr, &answer, nullptr, MHD_OPTION_LISTEN_SOCKET,
                                   impl_->listen_fd, MHD_OPTION_CONNECTION_LIMIT, 16U,
                                   MHD_OPTION_CONNECTION_TIMEOUT, 10U, MHD_OPTION_END);
    if (!impl_->http) {
      *error = "metrics-listen: cannot start the HTTP server";
      return false;
    }
    impl_->listen_fd = -1;  // libmicrohttpd owns and closes it now
  }
  if (!file.empty()) {
    impl_->file = file;
    impl_->writer = std::thread([impl = impl_.get()] {
      std::string last_error;
      std::unique_lock lock(impl->mutex);
      // One warning per kind of failure, not one every interval.
      // Written at once, every interval, and a last time at stop.
      for (bool last = false;;) {
        std::string failure;
        if (!write_atomically(impl->file, metrics().render(), &failure)) {
          if (failure != last_error) log(LogLevel::Warning, "metrics-file: {}", failure);
        } else if (!last_error.empty()) {
          log(LogLevel::Notice, "metrics-file: {} written again", impl->file);
        }
        last_error = failure;
        if (last) break;
        last = impl->wake.wait_for(lock, kFileInterval, [impl] { return impl->stopping; });
      }
    });
  }
  return true;
}

void MetricsExporter::stop() {
  if (impl_->writer.joinable()) {
    {
      std::lock_guard lock(impl_->mutex);
      impl_->stopping = true;
    }
    impl_->wake.notify_all();
    impl_->writer.join();
  }
  if (impl_->http) {
    MHD_stop_daemon(impl_->http);
    impl_->http = nullptr;
  }
  if (impl_->listen_fd >= 0) {
    close(impl_->listen_fd);
    impl_->listen_fd = -1;
  }
}

}  // namespace mxguard::milter
