// Policy: a Config and the Pipeline built from it. Sessions take the current policy at connect
// and keep it to the end, so a reload never changes the rules under a running transaction.
// Thread-safety: immutable; the current one is published through PolicyHolder.
#pragma once

#include <atomic>
#include <memory>

#include "mxguard/config.h"
#include "mxguard/pipeline.h"

namespace mxguard {

namespace dns {
class RouteAnalyzer;
}

struct Policy {
  std::shared_ptr<const Config> config;
  Pipeline pipeline;
  // Built from config->dns, so a reload that changes dns-server takes effect; each policy
  // has its own cache.
  std::shared_ptr<const dns::RouteAnalyzer> routes;
};

// Builds every check of the registry with its mode from the config, in pipeline order.
// Without: no route analyzer (the offline mode judges content, never DNS).
enum class PolicyDns { With, Without };
std::shared_ptr<const Policy> build_policy(std::shared_ptr<const Config> config,
                                           PolicyDns dns = PolicyDns::With);

class PolicyHolder {
 public:
  std::shared_ptr<const Policy> get() const { return std::atomic_load(&current_); }
  void set(std::shared_ptr<const Policy> p) { std::atomic_store(&current_, std::move(p)); }

 private:
  std::shared_ptr<const Policy> current_;
};

}  // namespace mxguard
