// Offline test mode (mxguard -t FILE... [--test-sender ADDR] [--test-recipient ADDR]): runs the
// daemon's own pipeline and content feed over a message file, stage by stage, as if it had
// arrived over SMTP (without DNS and without the state store), so an admin can check a bounce
// they received before turning rejection on, and -t cannot disagree with the daemon.
// Who calls it: milter/main for -t; tests.
// Thread-safety: pure, apart from reading the file.
#pragma once

#include <ctime>
#include <optional>
#include <string>

#include "mxguard/config.h"
#include "mxguard/expected.h"

namespace mxguard {

struct OfflineInput {
  std::optional<std::string> sender;     // default: the file's Return-Path, else the null sender
  std::optional<std::string> recipient;  // default: the first To address
  bool authenticated = false;            // as if the client had logged in (shows signing)
};

struct OfflineResult {
  std::string file;
  std::string sender;
  std::string recipient;
  std::string cls;           // classifier word: dsn, bounce, autoreply, ... ordinary
  std::string class_reason;  // what decided the class
  bool judged = false;       // the backscatter check applied (null or bounce sender)
  std::string proof;         // the proof found, empty if none
  std::string missing;       // what was looked for and not found
  std::string original;      // "source message-id from" of the returned original, if found
  std::string verdict;       // "pass" or the reply, e.g. "reject 550 5.7.1 ..."
  std::string stage;         // where the verdict fell: END-OF-HEADERS or END-OF-MESSAGE
};

// Reads and judges one file with `cfg`. The backscatter check runs even when it is off, and
// report-only (global or per check) is read as on: -t shows what the checks would do.
Expected<OfflineResult, std::string> run_offline(const std::shared_ptr<const Config>& cfg,
                                                 const std::string& path, const OfflineInput& in,
                                                 std::time_t now);

// "file: class=bounce (subject) proof=none missing=... verdict=reject 550 5.7.1 ..." lines.
std::string format_offline(const OfflineResult& r);

}  // namespace mxguard
