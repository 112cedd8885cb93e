#include "mxguard/state/options.h"

#include <charconv>

namespace mxguard::state {

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text,
                                                        std::chrono::milliseconds bare_unit) {
  std::int64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || p == text.data() || n < 0 || n > 1'000'000'000) return std::nullopt;
  std::string_view unit(p, static_cast<std::size_t>(text.data() + text.size() - p));
  using std::chrono::milliseconds;
  if (unit.empty()) return milliseconds(n * bare_unit.count());
  if (unit == "ms") return milliseconds(n);
  if (unit == "s") return milliseconds(n * 1000);
  if (unit == "m") return milliseconds(n * 60'000);
  if (unit == "h") return milliseconds(n * 3'600'000);
  if (unit == "d") return milliseconds(n * 86'400'000);
  return std::nullopt;
}

}  // namespace mxguard::state
