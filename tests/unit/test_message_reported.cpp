// What a notification reports, for the ledger proof (issue 14): DSN recipients, addresses in a
// free-text bounce, the returned message's Message-ID, In-Reply-To and References; bounded.
#include <catch2/catch.hpp>

#include <algorithm>

#include "mxguard/message/classifier.h"
#include "mxguard/message/reported.h"

using namespace mxguard;
using namespace mxguard::message;

namespace {

ReportedFields fields_of(const std::string& text) {
  auto msg = MessageReader::from_text(text);
  return reported_fields(msg, classify(msg, Envelope{""}, Rules{}));
}

bool has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

TEST_CASE("a DSN reports its Final-Recipient and the returned Message-ID", "[message][reported]") {
  const std::string dsn =
      "From: MAILER-DAEMON@remote.example\n"
      "To: alice@example.com\n"
      "Subject: Undelivered Mail Returned to Sender\n"
      "MIME-Version: 1.0\n"
      "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n"
      "--b\nContent-Type: text/plain\n\nThe mail could not be delivered.\n"
      "--b\nContent-Type: message/delivery-status\n\n"
      "Reporting-MTA: dns; mx.remote.example\n\n"
      "Final-Recipient: rfc822; Dave@Remote.Example\n"
      "Original-Recipient: rfc822; dave.alias@remote.example\n"
      "Action: failed\nStatus: 5.1.1\n"
      "--b\nContent-Type: text/rfc822-headers\n\n"
      "Message-ID: <out-42@example.com>\nFrom: alice@example.com\nTo: dave@remote.example\n"
      "--b--\n";
  auto f = fields_of(dsn);
  CHECK(has(f.recipients, "dave@remote.example"));
  CHECK(has(f.recipients, "dave.alias@remote.example"));
  CHECK(has(f.message_ids, "<out-42@example.com>"));
}

TEST_CASE("a free-text bounce names the recipient in its own words", "[message][reported]") {
  auto f = fields_of(
      "From: MAILER-DAEMON@old.example\nSubject: failure notice\n\n"
      "I'm afraid I wasn't able to deliver your message to the following addresses.\n\n"
      "<dave@remote.example>:\n192.0.2.1 does not like recipient.\n"
      "Remote host said: 550 5.1.1 unknown user; see https://help.example/x?a=b@c\n");
  CHECK(has(f.recipients, "dave@remote.example"));
  CHECK_FALSE(has(f.recipients, "b@c"));  // no dot in the domain: not an address
}

TEST_CASE("an autoreply refers to what it answers by In-Reply-To and References",
          "[message][reported]") {
  auto msg = MessageReader::from_text(
      "From: bob@remote.example\nAuto-Submitted: auto-replied\n"
      "In-Reply-To: <out-1@example.com>\n"
      "References: <thread-0@example.com>\n <out-1@example.com>\n"
      "Subject: Out of office\n\nI am away.\n");
  auto ids = referenced_message_ids(msg);
  CHECK(ids == std::vector<std::string>{"<out-1@example.com>", "<thread-0@example.com>"});
}

TEST_CASE("an autoreply's own sender and From are who answers", "[message][reported]") {
  auto msg = MessageReader::from_text(
      "From: \"Dave D.\" <Dave@Remote.Example>\nAuto-Submitted: auto-replied\n"
      "Subject: Out of office\n\nI am away.\n");
  CHECK(answering_parties(msg, "<bounces+x@lists.remote.example>") ==
        std::vector<std::string>{"bounces+x@lists.remote.example", "dave@remote.example"});
  CHECK(answering_parties(msg, "dave@remote.example") ==
        std::vector<std::string>{"dave@remote.example"});  // each once
  CHECK(answering_parties(msg, "") == std::vector<std::string>{"dave@remote.example"});
  auto no_from = MessageReader::from_text("Subject: x\n\nbody\n");
  CHECK(answering_parties(no_from, "<>").empty());
}

TEST_CASE("what a notification reports is bounded", "[message][reported]") {
  std::string text = "From: MAILER-DAEMON@x.example\nSubject: failure notice\n\n";
  for (int i = 0; i < 100; ++i)
    text += "<user" + std::to_string(i) + "@remote.example>: unknown\n";
  auto f = fields_of(text);
  CHECK(f.recipients.size() == kMaxReported);
  CHECK(has(f.recipients, "user0@remote.example"));
}
