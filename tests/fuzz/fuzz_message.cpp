// libFuzzer target for the message reader and classifier: the input is a whole message (header
// block, blank line, body). It is read twice — from text, and fed field by field and in body
// chunks whose sizes come from the input itself — and both are classified with the shipped
// rules. Crashes, sanitizer reports and runaway memory are the findings; results are ignored.
// Build: cmake -DMXGUARD_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang
// Run:   build/tests/fuzz/fuzz_message tests/fuzz/corpus/message -max_len=300000
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "mxguard/message/classifier.h"
#include "mxguard/message/reader.h"

namespace {

const mxguard::message::Rules& rules() {
  static const mxguard::message::Rules r = [] {
    auto loaded = mxguard::message::load_rules(MXGUARD_SOURCE_DIR "/rules", false);
    return loaded ? std::move(loaded).value() : mxguard::message::Rules{};
  }();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mxguard::message;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  // A small body limit makes the truncation paths reachable with small inputs.
  const std::size_t limit = size > 0 ? 256 + data[0] * 64u : kDefaultMaxBody;
  MessageReader whole = MessageReader::from_text(text, limit);
  Envelope null_sender{""};
  (void)assess_headers(whole, null_sender, rules());
  (void)classify(whole, null_sender, rules());

  MessageReader fed(limit);
  for (const auto& h : whole.headers())
    fed.add_header(h.name, h.value);
  fed.end_of_headers();
  std::string_view body = whole.body();
  std::size_t i = 0, k = 0;
  while (i < body.size()) {
    std::size_t n = 1 + (size > 0 ? data[k++ % size] : 0);
    fed.add_body(body.substr(i, n));
    i += n;
  }
  fed.end_of_message();
  (void)classify(fed, Envelope{"mailer-daemon@example.test"}, rules());
  return 0;
}
