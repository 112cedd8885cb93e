#include "mxguard/metrics.h"

#include <fmt/format.h>

#include <mutex>

namespace mxguard {

namespace {

// Label values are check names and fixed words, but escape anyway: a broken exposition file
// makes node_exporter drop every metric of the file.
std::string label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace

void Metrics::Pairs::add(std::string_view a, std::string_view b) {
  {
    std::shared_lock lock(mutex_);
    auto it = counts_.find(Key(a, b));
    if (it != counts_.end()) {
      it->second->fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  std::unique_lock lock(mutex_);
  auto& slot = counts_[Key(a, b)];
  if (!slot) slot = std::make_unique<std::atomic<std::uint64_t>>(0);
  slot->fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t Metrics::Pairs::get(std::string_view a, std::string_view b) const {
  std::shared_lock lock(mutex_);
  auto it = counts_.find(Key(a, b));
  return it == counts_.end() ? 0 : it->second->load(std::memory_order_relaxed);
}

void Metrics::Pairs::render(std::string& out, std::string_view name, std::string_view la,
                            std::string_view lb) const {
  std::shared_lock lock(mutex_);
  for (const auto& [key, value] : counts_)
    out += fmt::format("{}{{{}=\"{}\",{}=\"{}\"}} {}\n", name, la, label(key.first), lb,
                       label(key.second), value->load());
}

void Metrics::count_verdict(std::string_view check, std::string_view action) {
  verdicts_.add(check, action);
}

std::uint64_t Metrics::verdicts(std::string_view check, std::string_view action) const {
  return verdicts_.get(check, action);
}

void Metrics::count_failure_policy(std::string_view check, std::string_view policy) {
  failure_policies_.add(check, policy);
}

std::uint64_t Metrics::failure_policies(std::string_view check, std::string_view policy) const {
  return failure_policies_.get(check, policy);
}

void Metrics::observe_dns_query(double seconds) {
  for (std::size_t i = 0; i < kDnsBucketCount; ++i)
    if (seconds <= kDnsBuckets[i]) dns_buckets_[i].fetch_add(1, std::memory_order_relaxed);
  dns_count_.fetch_add(1, std::memory_order_relaxed);
  dns_sum_us_.fetch_add(static_cast<std::uint64_t>(seconds * 1e6), std::memory_order_relaxed);
}

void Metrics::set_collector(std::function<void(std::string&)> collector) {
  std::unique_lock lock(mutex_);
  collector_ = std::move(collector);
}

std::string Metrics::render() const {
  std::string out =
      "# HELP mxguard_verdicts_total Decisions of each check: reject, would-reject (report "
      "only), tempfail, discard, accept (an OK that exempts the rest).\n"
      "# TYPE mxguard_verdicts_total counter\n";
  verdicts_.render(out, "mxguard_verdicts_total", "check", "action");
  out +=
      "# HELP mxguard_failure_policy_total Failure policies applied (on-dns-error, "
      "on-store-error, on-internal-error): the check and what was done, tempfail or accept.\n"
      "# TYPE mxguard_failure_policy_total counter\n";
  failure_policies_.render(out, "mxguard_failure_policy_total", "check", "policy");
  std::function<void(std::string&)> collector;
  {
    std::shared_lock lock(mutex_);
    collector = collector_;
  }
  out += fmt::format(
      "# HELP mxguard_state_store_errors_total State-store calls that failed.\n"
      "# TYPE mxguard_state_store_errors_total counter\n"
      "mxguard_state_store_errors_total {}\n",
      store_errors());
  out +=
      "# HELP mxguard_dns_query_seconds Time of DNS queries sent to the servers (cache "
      "misses).\n# TYPE mxguard_dns_query_seconds histogram\n";
  for (std::size_t i = 0; i < kDnsBucketCount; ++i)
    out += fmt::format("mxguard_dns_query_seconds_bucket{{le=\"{}\"}} {}\n", kDnsBuckets[i],
                       dns_buckets_[i].load(std::memory_order_relaxed));
  const auto count = dns_count_.load(std::memory_order_relaxed);
  out += fmt::format("mxguard_dns_query_seconds_bucket{{le=\"+Inf\"}} {}\n", count);
  out += fmt::format("mxguard_dns_query_seconds_sum {:.6f}\n",
                     static_cast<double>(dns_sum_us_.load(std::memory_order_relaxed)) / 1e6);
  out += fmt::format("mxguard_dns_query_seconds_count {}\n", count);
  if (collector) collector(out);
  return out;
}

Metrics& metrics() {
  static Metrics m;
  return m;
}

}  // namespace mxguard
