// Pipeline: runs the enabled checks of a stage in order; the first decisive verdict wins.
// Exemptions, report-only (global and per check) and decision logging happen here, once, so no
// check has to remember them.
// Who calls it: the milter adapter at each callback, the offline test mode, unit tests.
// Thread-safety: immutable after construction; run() is called concurrently for different
// sessions.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mxguard/check.h"
#include "mxguard/check_mode.h"

namespace mxguard {

class Pipeline {
 public:
  void add(std::unique_ptr<Check> check, CheckMode mode);
  void set_report_only(bool on) { report_only_ = on; }

  // Runs the stage. Returns the verdict to send (Reject, Tempfail, Discard), or nothing to
  // continue. Report-only verdicts are logged as "would reject" and not returned. An access
  // OK is turned into an exemption of its scope (connection, message or recipient) and not
  // returned either.
  std::optional<Verdict> run(Stage stage, Session& session, CheckContext& ctx) const;

  // The stages at which some enabled check runs: the adapter negotiates the rest away.
  StageSet stages() const { return stages_; }
  // Name and mode of every check, in order (for -n and the man page test).
  std::vector<std::pair<std::string, CheckMode>> describe() const;

 private:
  struct Entry {
    std::unique_ptr<Check> check;
    CheckMode mode;
  };
  bool exempt(const Entry& e, Stage stage, const Session& session) const;
  std::vector<Entry> entries_;
  StageSet stages_;
  bool report_only_ = false;
};

// One log line per decision, Postfix style, queue id first:
// "NOQUEUE: reject: RCPT from host[addr]: 550 5.7.1 text; from=<s> to=<r> helo=<h>
//  check=NAME reason=TAG"
std::string format_decision(const Session& session, Stage stage, const Verdict& v);

}  // namespace mxguard
