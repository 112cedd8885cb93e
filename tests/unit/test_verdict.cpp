#include <catch2/catch.hpp>

#include "mxguard/verdict.h"

using mxguard::SmtpReply;

TEST_CASE("SmtpReply accepts a 5xx code with a 5.x.x enhanced status", "[verdict]") {
  auto r = SmtpReply::make(550, "5.7.1", "go away");
  REQUIRE(r);
  CHECK(r->to_string() == "550 5.7.1 go away");
  CHECK(r->permanent());
}

TEST_CASE("SmtpReply refuses bad codes, mismatched classes and control characters", "[verdict]") {
  struct Case {
    int code;
    const char* enhanced;
    const char* text;
  };
  const Case bad[] = {
      {250, "2.0.0", "ok"},           {600, "5.0.0", "x"},       {550, "4.7.1", "class"},
      {450, "5.7.1", "class"},        {550, "5.7", "short"},     {550, "5.7.1000", "long"},
      {550, "5.7.1", "two\r\nlines"}, {550, "5.7.1", "nul\x01"}, {550, "x.7.1", "x"},
  };
  for (const auto& c : bad) {
    INFO(c.code << " " << c.enhanced);
    CHECK_FALSE(SmtpReply::make(c.code, c.enhanced, c.text));
  }
}
