// The right-hand side of a Postfix access table line, parsed (see access(5)).
// Who calls it: the access check at lookup time, and load_table's validator at load time, so a
// typo in an action is a load error (file:line), not a surprise in production.
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "mxguard/expected.h"

namespace mxguard::tables {

struct AccessAction {
  enum class Kind {
    Ok,       // OK, PERMIT, or a number-only "all numerical" result (Postfix: OK)
    Dunno,    // DUNNO: stop looking in this table, no decision
    Reject,   // REJECT [text], 5NN [text]
    Defer,    // DEFER [text], DEFER_IF_PERMIT/DEFER_IF_REJECT (kept as a deferral), 4NN [text]
    Discard,  // DISCARD [text]
    Warn,     // WARN text: log only
    Ignored,  // HOLD, FILTER, PREPEND, REDIRECT, BCC, INFO...: valid Postfix, no effect here
  };
  Kind kind = Kind::Dunno;
  int code = 0;          // explicit code for 4NN/5NN; 0: the check's default
  std::string enhanced;  // explicit "X.Y.Z" when the text starts with one; empty otherwise
  std::string text;      // the rest; empty: the check's default text
  std::string word;      // the action word as written, for logs ("REJECT", "550", "HOLD")
};

// Parses one result. Unknown words (not an access(5) action or restriction name) are errors.
Expected<AccessAction, std::string> parse_access_action(std::string_view result);

// Load-time validator for load_table(): nullopt when the result parses.
std::optional<std::string> validate_access_action(std::string_view result);

}  // namespace mxguard::tables
