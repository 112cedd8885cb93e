// The libmilter adapter: registers the callbacks, turns each into a Session event for the
// pipeline, and turns the pipeline's Verdict into the MTA's reply. The only place, with
// main.cpp and daemon.cpp, that sees libmilter types.
// Threading: libmilter calls back on one thread per MTA connection; a Session lives behind
// smfi_setpriv and is touched by that thread only. The policy is shared and immutable.
#pragma once

#include <atomic>
#include <cstdint>

#include "mxguard/policy.h"
#include "mxguard/state/runtime.h"

namespace mxguard::milter {

struct Stats {
  std::atomic<std::uint64_t> connections{0};
  std::atomic<std::int64_t> active{0};        // MTA connections open
  std::atomic<std::int64_t> transactions{0};  // between MAIL and end of message
  std::atomic<std::uint64_t> messages{0};
  std::atomic<std::uint64_t> rejects{0};
  std::atomic<std::uint64_t> tempfails{0};
  std::atomic<std::uint64_t> internal_errors{0};
};

// The process-wide policy and counters the callbacks read.
PolicyHolder& policy_holder();
Stats& stats();

// The process-wide strikes and bans (owned by main; may stay unset: no bans then).
void set_state(state::StateRuntime* runtime);
std::shared_ptr<state::Bans> current_bans();
// The ledger of the mail we sent (null: none).
std::shared_ptr<state::Ledger> current_ledger();

// Registers the callbacks with libmilter (smfi_register). False on failure.
bool register_callbacks();

}  // namespace mxguard::milter
