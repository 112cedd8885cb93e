// Classifier throughput on the message corpus: MB/s and classifications/s, single thread.
// Prints figures; asserts nothing. Run: build/tests/bench/bench_classifier [seconds-per-row
// [ROOT]]; ROOT (default: the source tree) holds rules/ and tests/data/messages/, so a change of
// rules can be timed against the tables and messages from before it.
// Rows: the header-only assessment (end of headers) over the corpus and over its bounces with
// the trace headers (Received, DKIM, ...) a bounce from the Internet carries, then the full
// classification (end of message) over the whole corpus and over the 4-8 KB bounces padded as
// real bounces are (their returned original carries a body). MB/s counts the header bytes in
// the header rows, the whole message in the others.
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

// The trace and authentication fields a bounce carries on its way from the Internet (the
// corpus messages have none): five Received lines, DKIM, ARC-less Authentication-Results,
// Date and Message-ID, about 1.8 KB.
std::string with_trace_headers(const std::string& text) {
  std::string h;
  for (int i = 0; i < 5; ++i)
    h += "Received: from relay" + std::to_string(i) + ".mail.example.net (relay" +
         std::to_string(i) + ".mail.example.net [198.51.100." + std::to_string(10 + i) +
         "])\n\tby mx" + std::to_string(i) + ".example.com (Postfix) with ESMTPS id 4Vx" +
         std::to_string(1000 + i) + "Qz3kLz\n\tfor <trent@example.com>; Tue, 14 May 2024 11:40:0" +
         std::to_string(i) + " +0200 (CEST)\n";
  h += "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=mail.example.net; s=s2024;\n"
       "\tt=1715679600; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\n"
       "\th=From:To:Subject:Date:Message-ID;\n"
       "\tb=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSBidXQgaXQgaXMgYXMgbG9uZyBhcyBvbmUgaXMK\n"
       "\t aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8K\n"
       "\t c2lnbmF0dXJlIGJ5dGVzIHNpZ25hdHVyZSBieXRlcyBzaWduYXR1cmUgYnl0ZXMgc2lnbmF0dXJl\n";
  h += "Authentication-Results: mx0.example.com; dkim=pass header.d=mail.example.net;\n"
       "\tspf=pass smtp.helo=relay0.mail.example.net; dmarc=none\n";
  h += "Date: Tue, 14 May 2024 11:40:00 +0200\n";
  h += "Message-ID: <20240514094000.4Vx1000Qz3kLz@relay0.mail.example.net>\n";
  return h + text;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  std::string root = argc > 2 ? argv[2] : MXGUARD_SOURCE_DIR;
  auto rules = load_rules(root + "/rules", true);
  if (!rules) {
    std::fprintf(stderr, "%s\n", rules.error().to_string().c_str());
    return 1;
  }
  std::vector<MessageReader> all, bounces, traced_bounces;
  std::size_t all_bytes = 0, header_bytes = 0, bounce_bytes = 0, traced_header_bytes = 0;
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
      std::string traced = with_trace_headers(padded);
      traced_bounces.push_back(MessageReader::from_text(traced));
      traced_header_bytes += traced.find("\n\n");
    }
  }
  const Envelope null_sender{""};
  std::printf("corpus: %zu messages, %.1f KB; %zu bounces padded to 4-8 KB\n", all.size(),
              static_cast<double>(all_bytes) / 1024.0, bounces.size());
  row("assess_headers (end of headers)", all, header_bytes, seconds, [&](const MessageReader& m) {
    return static_cast<std::size_t>(assess_headers(m, null_sender, *rules).cls);
  });
  row("assess_headers, traced bounces", traced_bounces, traced_header_bytes, seconds,
      [&](const MessageReader& m) {
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
