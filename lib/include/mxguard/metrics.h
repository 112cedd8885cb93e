// Metrics: process-wide counters in Prometheus text format (exposition format 0.0.4), for the
// node_exporter textfile collector (--metrics-file) and the /metrics listener
// (--metrics-listen). The core counts verdicts per check and action (Pipeline::run); the
// daemon adds its own lines (connections, transactions in flight) through a collector.
// Who calls it: Pipeline::run on every decisive verdict; milter/metrics_export renders it.
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

  // Appends more exposition lines (with their # HELP / # TYPE) at every render().
  void set_collector(std::function<void(std::string&)> collector);

  std::string render() const;

 private:
  using Key = std::pair<std::string, std::string>;
  mutable std::shared_mutex mutex_;
  std::map<Key, std::unique_ptr<std::atomic<std::uint64_t>>, std::less<>> verdicts_;
  std::function<void(std::string&)> collector_;
};

// The process's registry.
Metrics& metrics();

}  // namespace mxguard
