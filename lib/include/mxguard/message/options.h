// MessageOptions: how much of a message mxguard reads and the classifier tables it reads it
// with (max-body-scan, message-rules), and their loader.
// Who calls it: config.cpp; the message feed and the backscatter check read the values.
// Thread-safety: plain values; the rules are immutable and shared.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "mxguard/options/reader.h"

namespace mxguard::message {

struct Rules;

struct MessageOptions {
  std::size_t max_body_scan = 128 * 1024;
  std::shared_ptr<const Rules> rules;  // null: no classifier tables loaded
};

std::vector<options::Spec> message_option_specs();

// The shipped rules directory is optional; one the admin names must be complete. The rules
// are loaded when named or when `rules_needed` (a check classifies messages).
options::Problem load_message_options(const options::Reader& r, bool rules_needed,
                                      MessageOptions& o);

}  // namespace mxguard::message
