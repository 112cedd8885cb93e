// Classifier throughput on the message corpus: MB/s and classifications/s, single thread.
// Prints figures; asserts nothing. Run: build/tests/bench/bench_classifier [seconds-per-row]
// Rows: the header-only assessment (end of headers), the full classification (end of message)
// over the whole corpus, and over the 4-8 KB bounces padded as real bounces are (their returned
// original carries a body).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "mxguard/message/classifier.h"

using namespace mxguard::message;
using Clock = std::chrono::steady_clock;

namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

// Grows a bounce to `target` bytes by lengthening the returned original's body, as a bounce
// of a real 5 KB message would be.
std::string pad(std::string text, std::size_t target) {
  std::string line = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\n";
  auto end = text.rfind("\n--");
  std::string filler;
  while (text.size() + filler.size() < target)
    filler += line;
  if (end == std::string::npos) return text + filler;
  return text.insert(end + 1, filler);
}

template <class F>
void row(const char* name, const std::vector<MessageReader>& msgs, std::size_t bytes_per_round,
         double seconds, F&& f) {
  std::size_t rounds = 0, sink = 0;
  auto start = Clock::now();
  double elapsed = 0;
  do {
    for (const auto& m : msgs)
      sink += f(m);
    ++rounds;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  } while (elapsed < seconds);
  double n = static_cast<double>(rounds * msgs.size());
  std::printf("%-34s %10.0f msgs/s %9.1f MB/s  (%zu msgs x %zu rounds, avg %.1f KB)%s\n", name,
              n / elapsed, static_cast<double>(rounds * bytes_per_round) / elapsed / 1e6,
              msgs.size(), rounds,
              static_cast<double>(bytes_per_round) / static_cast<double>(msgs.size()) / 1024.0,
              sink == 42 ? " " : "");
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  std::string root = MXGUARD_SOURCE_DIR;
  auto rules = load_rules(root + "/rules", true);
  if (!rules) {
    std::fprintf(stderr, "%s\n", rules.error().to_string().c_str());
    return 1;
  }
  std::vector<MessageReader> all, bounces;
  std::size_t all_bytes = 0, header_bytes = 0, bounce_bytes = 0;
  for (const auto& e : std::filesystem::directory_iterator(root + "/tests/data/messages")) {
    std::string text = slurp(e.path());
    all.push_back(MessageReader::from_text(text));
    all_bytes += text.size();
    header_bytes += text.find("\n\n") == std::string::npos ? text.size() : text.find("\n\n");
    std::string name = e.path().filename().string();
    if (name.rfind("dsn-", 0) == 0 || name.rfind("bounce-", 0) == 0) {
      std::string padded = pad(text, 4096 + (bounces.size() % 5) * 1024);
      bounces.push_back(MessageReader::from_text(padded));
      bounce_bytes += padded.size();
    }
  }
  const Envelope null_sender{""};
  std::printf("corpus: %zu messages, %.1f KB; %zu bounces padded to 4-8 KB\n", all.size(),
              static_cast<double>(all_bytes) / 1024.0, bounces.size());
  row("assess_headers (end of headers)", all, header_bytes, seconds, [&](const MessageReader& m) {
    return static_cast<std::size_t>(assess_headers(m, null_sender, *rules).cls);
  });
  row("classify, whole corpus", all, all_bytes, seconds, [&](const MessageReader& m) {
    return static_cast<std::size_t>(classify(m, null_sender, *rules).cls);
  });
  row("classify, 4-8 KB bounces", bounces, bounce_bytes, seconds, [&](const MessageReader& m) {
    return static_cast<std::size_t>(classify(m, null_sender, *rules).cls);
  });
  return 0;
}
