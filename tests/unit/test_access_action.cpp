// parse_access_action(): every access(5) result form, and the typos it must refuse.
#include <catch2/catch.hpp>

#include <string>

#include "mxguard/tables/access_action.h"

using mxguard::tables::AccessAction;
using mxguard::tables::parse_access_action;
using mxguard::tables::validate_access_action;
using Kind = AccessAction::Kind;

namespace {

struct Expect {
  std::string result;
  Kind kind;
  int code;
  std::string enhanced;
  std::string text;
  std::string word;
};

}  // namespace

TEST_CASE("access(5) actions parse to their kind, code, enhanced status and text", "[access]") {
  auto e = GENERATE(values<Expect>({
      {"OK", Kind::Ok, 0, "", "", "OK"},
      {"ok", Kind::Ok, 0, "", "", "ok"},
      {"OK  known customer", Kind::Ok, 0, "", "known customer", "OK"},
      {"permit", Kind::Ok, 0, "", "", "permit"},
      {"DUNNO", Kind::Dunno, 0, "", "", "DUNNO"},
      {"REJECT", Kind::Reject, 0, "", "", "REJECT"},
      {"reject", Kind::Reject, 0, "", "", "reject"},
      {"REJECT Go away", Kind::Reject, 0, "", "Go away", "REJECT"},
      {"REJECT 5.7.27 Sender domain takes no mail", Kind::Reject, 0, "5.7.27",
       "Sender domain takes no mail", "REJECT"},
      {"DEFER", Kind::Defer, 0, "", "", "DEFER"},
      {"DEFER try later", Kind::Defer, 0, "", "try later", "DEFER"},
      {"DEFER 4.7.0 busy", Kind::Defer, 0, "4.7.0", "busy", "DEFER"},
      {"DEFER_IF_REJECT maybe", Kind::Defer, 0, "", "maybe", "DEFER_IF_REJECT"},
      {"defer_if_permit", Kind::Defer, 0, "", "", "defer_if_permit"},
      {"550 5.7.1 Role addresses do not send mail here", Kind::Reject, 550, "5.7.1",
       "Role addresses do not send mail here", "550"},
      {"554 no thanks", Kind::Reject, 554, "", "no thanks", "554"},
      {"521 5.7.0", Kind::Reject, 521, "5.7.0", "", "521"},
      {"450 4.1.8 try again", Kind::Defer, 450, "4.1.8", "try again", "450"},
      {"421 closing", Kind::Defer, 421, "", "closing", "421"},
      {"550 5.1.10 x", Kind::Reject, 550, "5.1.10", "x", "550"},
      {"550 5.123.456 x", Kind::Reject, 550, "5.123.456", "x", "550"},
      {"550 5.7 is not an enhanced code", Kind::Reject, 550, "", "5.7 is not an enhanced code",
       "550"},
      {"DISCARD", Kind::Discard, 0, "", "", "DISCARD"},
      {"DISCARD spam trap", Kind::Discard, 0, "", "spam trap", "DISCARD"},
      {"WARN suspicious", Kind::Warn, 0, "", "suspicious", "WARN"},
      {"HOLD", Kind::Ignored, 0, "", "", "HOLD"},
      {"INFO seen", Kind::Ignored, 0, "", "seen", "INFO"},
      {"FILTER smtp:[127.0.0.1]:10025", Kind::Ignored, 0, "", "smtp:[127.0.0.1]:10025", "FILTER"},
      {"PREPEND X-Flag: yes", Kind::Ignored, 0, "", "X-Flag: yes", "PREPEND"},
      {"REDIRECT abuse@example.com", Kind::Ignored, 0, "", "abuse@example.com", "REDIRECT"},
      {"BCC archive@example.com", Kind::Ignored, 0, "", "archive@example.com", "BCC"},
      {"  REJECT   padded  ", Kind::Reject, 0, "", "padded", "REJECT"},
  }));
  CAPTURE(e.result);
  auto a = parse_access_action(e.result);
  REQUIRE(a);
  CHECK(a->kind == e.kind);
  CHECK(a->code == e.code);
  CHECK(a->enhanced == e.enhanced);
  CHECK(a->text == e.text);
  CHECK(a->word == e.word);
  CHECK_FALSE(validate_access_action(e.result));
}

TEST_CASE("an all-numerical result is OK, even one that looks like a reply code", "[access]") {
  // access(5): "An all-numerical result is treated as OK" (pop-before-smtp time stamps);
  // Postfix applies that before the 4NN/5NN rule, so a bare "550" is OK as well.
  auto result = GENERATE(as<std::string>{}, "1234567890", "123", "550", "0");
  CAPTURE(result);
  auto a = parse_access_action(result);
  REQUIRE(a);
  CHECK(a->kind == Kind::Ok);
  CHECK(a->code == 0);
}

TEST_CASE("restriction names are accepted and ignored, since only Postfix can apply them",
          "[access]") {
  auto [result, word] = GENERATE(table<std::string, std::string>({
      {"permit_mynetworks", "permit_mynetworks"},
      {"reject_unauth_destination", "reject_unauth_destination"},
      {"permit_mynetworks, reject_unauth_destination", "permit_mynetworks"},
      {"permit_sasl_authenticated,reject", "permit_sasl_authenticated"},
      {"check_sender_access hash:/etc/postfix/other", "check_sender_access"},
      {"reject_rbl_client zen.spamhaus.org", "reject_rbl_client"},
      {"PERMIT_MYNETWORKS", "PERMIT_MYNETWORKS"},
      {"sleep 5", "sleep"},
      {"warn_if_reject reject_unknown_client_hostname", "warn_if_reject"},
      {"reject_some_future_restriction", "reject_some_future_restriction"},
  }));
  CAPTURE(result);
  auto a = parse_access_action(result);
  REQUIRE(a);
  CHECK(a->kind == Kind::Ignored);
  CHECK(a->word == word);
  CHECK(a->text == result);
}

TEST_CASE("unknown words, bad codes and mismatched enhanced codes are errors", "[access]") {
  auto [result, message] = GENERATE(table<std::string, std::string>({
      {"", "empty access action"},
      {"   ", "empty access action"},
      {"REJCT spam", "unknown access action 'REJCT'"},
      {"ACCEPT", "unknown access action 'ACCEPT'"},
      {"PERMITTED", "unknown access action 'PERMITTED'"},
      {"REJECT_NOW", "unknown access action 'REJECT_NOW'"},
      {"spam", "unknown access action 'spam'"},
      {"local_only", "unknown access action 'local_only'"},
      {"250 fine", "reply code 250 is not 4NN or 5NN"},
      {"650 nope", "reply code 650 is not 4NN or 5NN"},
      {"5500 nope", "unknown access action '5500'"},
      {"550 4.7.1 mixed", "enhanced status code 4.7.1 does not match reply class 5xx"},
      {"450 5.7.1 mixed", "enhanced status code 5.7.1 does not match reply class 4xx"},
      {"REJECT 4.7.1 mixed", "enhanced status code 4.7.1 does not match reply class 5xx"},
      {"DEFER 5.7.1 mixed", "enhanced status code 5.7.1 does not match reply class 4xx"},
      {"550 2.0.0 odd", "enhanced status code 2.0.0 does not match reply class 5xx"},
      {"FILTER", "FILTER needs transport:destination"},
      {"FILTER nocolon", "FILTER needs transport:destination"},
      {"PREPEND no header here", "PREPEND needs 'headername: headervalue'"},
      {"PREPEND", "PREPEND needs 'headername: headervalue'"},
      {"REDIRECT", "REDIRECT needs user@domain"},
      {"BCC", "BCC needs user@domain"},
      {"REJECT bad\x01text", "control or non-ASCII"},
  }));
  CAPTURE(result);
  auto a = parse_access_action(result);
  REQUIRE_FALSE(a);
  CHECK_THAT(a.error(), Catch::Contains(message));
  auto problem = validate_access_action(result);
  REQUIRE(problem);
  CHECK(*problem == a.error());
}
