// Log escaping benchmark: the cost per line of escape_log_text() (every log line passes through
// it in log_line()) for a typical decision line that needs nothing, the same line with UTF-8 in
// it, and one with control characters to escape. Prints ns per line; asserts nothing.
// Usage: bench_log [lines=2000000]
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "mxguard/log.h"

using namespace mxguard;
using Steady = std::chrono::steady_clock;

namespace {

double ns_per_line(std::string_view line, long n) {
  std::string out;
  std::size_t sink = 0;
  const auto t0 = Steady::now();
  for (long i = 0; i < n; ++i) {
    sink += escape_log_text(line, out) ? out.size() : line.size();
  }
  const double ns = std::chrono::duration<double, std::nano>(Steady::now() - t0).count();
  if (sink == 0) fmt::print("(nothing)\n");  // keeps the loop from being optimised away
  return ns / static_cast<double>(n);
}

// The reference: copying the line once, as formatting it already does.
double ns_per_copy(std::string_view line, long n) {
  std::size_t sink = 0;
  const auto t0 = Steady::now();
  for (long i = 0; i < n; ++i) {
    std::string copy(line);
    sink += copy.size() + static_cast<unsigned char>(copy[i % copy.size()]);
  }
  const double ns = std::chrono::duration<double, std::nano>(Steady::now() - t0).count();
  if (sink == 0) fmt::print("(nothing)\n");
  return ns / static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
  const long n = argc > 1 ? std::atol(argv[1]) : 2'000'000;
  const std::string clean =
      "4D20552C8FC: reject: RCPT from unknown[192.0.2.7]: 556 5.1.10 <info@product.example>: "
      "Recipient address rejected: product.example does not accept mail (it publishes a null "
      "MX); from=<sender@example.org> to=<info@product.example> helo=<bot.example> "
      "check=unhandled-domain reason=null-mx";
  std::string utf8 = clean;
  utf8.replace(utf8.find("sender"), 6, "s\xc3\xa9nder\xe2\x82\xac");
  std::string dirty = clean;
  dirty.replace(dirty.find("bot.example"), 11, "bot\r\nban 198.51.100.77 for 1800s: 3 strikes (x)");
  fmt::print("escape_log_text over {} lines of {} bytes:\n", n, clean.size());
  fmt::print("  clean ASCII line (fast path):      {:6.1f} ns/line\n", ns_per_line(clean, n));
  fmt::print("  line with UTF-8 (fast path):       {:6.1f} ns/line\n", ns_per_line(utf8, n));
  fmt::print("  line with CR/LF (escaped copy):    {:6.1f} ns/line\n", ns_per_line(dirty, n));
  fmt::print("  (reference: one copy of the line:  {:6.1f} ns/line)\n", ns_per_copy(clean, n));
  return 0;
}
