// Helpers shared by the message, backscatter and offline-mode tests: read a corpus file, the
// rules shipped in rules/, the envelope sender a file stands for (its Return-Path).
#pragma once

#include <fstream>
#include <sstream>
#include <string>

#include "mxguard/message/classifier.h"
#include "mxguard/message/mime.h"

namespace mxguard::testing {

inline std::string corpus_dir() {
  return std::string(MXGUARD_SOURCE_DIR) + "/tests/data/messages";
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

inline const message::Rules& shipped_rules() {
  static const message::Rules rules = [] {
    auto r = message::load_rules(std::string(MXGUARD_SOURCE_DIR) + "/rules", true);
    if (!r) throw std::runtime_error(r.error().to_string());
    return std::move(r).value();
  }();
  return rules;
}

// The envelope sender the file was delivered with: its Return-Path ("<>" is the null sender).
inline message::Envelope envelope_of(const message::MessageReader& m) {
  return message::Envelope{message::extract_address(m.header("Return-Path"))};
}

}  // namespace mxguard::testing
