// Metrics: process-wide counters in Prometheus text format (exposition format 0.0.4), for the
// node_exporter textfile collector (--metrics-file) and the /metrics listener
// (--metrics-listen). The core counts verdicts per check and action (Pipeline::run); the
// daemon adds its own lines (connections, transactions in flight) through a collector.
// Who calls it: Pipeline::run, CheckContext, the state store and the DNS cache count;
// milter/metrics_export renders it.
// Threading: counting is lock-free after a counter's first use (a shared lock to find it);
// render() may run concurrently with counting.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>

namespace mxguard {

class Metrics {
 public:
  // action: "reject", "would-reject", "tempfail", "discard" or "accept".
  void count_verdict(std::string_view check, std::string_view action);
  std::uint64_t verdicts(std::string_view check, std::string_view action) const;

  // A failure policy applied (on-dns-error, on-store-error, on-internal-error): which check,
  // and what it did ("tempfail" or "accept").
  void count_failure_policy(std::string_view check, std::string_view policy);
  std::uint64_t failure_policies(std::string_view check, std::string_view policy) const;

  // State-store calls that failed (strikes not counted, bans not known); never a 5xx.
  void count_store_error() { store_errors_.fetch_add(1, std::memory_order_relaxed); }
  std::uint64_t store_errors() const { return store_errors_.load(std::memory_order_relaxed); }

  // Time one DNS query took at the network (cache misses only), for a histogram.
  void observe_dns_query(double seconds);
  static constexpr double kDnsBuckets[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                           0.25,  0.5,   1.0,  2.5,   5.0,  10.0};
  static constexpr std::size_t kDnsBucketCount = sizeof(kDnsBuckets) / sizeof(kDnsBuckets[0]);

  // Appends more exposition lines (with their # HELP / # TYPE) at every render().
  void set_collector(std::function<void(std::string&)> collector);

  std::string render() const;

 private:
  // Counters with two labels, made on first use.
  class Pairs {
   public:
    void add(std::string_view a, std::string_view b);
    std::uint64_t get(std::string_view a, std::string_view b) const;
    // "name{la="a",lb="b"} n" lines.
    void render(std::string& out, std::string_view name, std::string_view la,
                std::string_view lb) const;

   private:
    using Key = std::pair<std::string, std::string>;
    mutable std::shared_mutex mutex_;
    std::map<Key, std::unique_ptr<std::atomic<std::uint64_t>>, std::less<>> counts_;
  };
  mutable std::shared_mutex mutex_;  // the collector
  Pairs verdicts_;
  Pairs failure_policies_;
  std::function<void(std::string&)> collector_;
  std::atomic<std::uint64_t> store_errors_{0};
  // Cumulative bucket counts as Prometheus wants them, plus +Inf (= count) and the sum in µs.
  std::atomic<std::uint64_t> dns_buckets_[kDnsBucketCount]{};
  std::atomic<std::uint64_t> dns_count_{0};
  std::atomic<std::uint64_t> dns_sum_us_{0};
};

// The process's registry.
Metrics& metrics();

}  // namespace mxguard
