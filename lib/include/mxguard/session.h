// Session and Transaction: what mxguard knows about one SMTP connection and the message in it.
// The milter adapter fills them from libmilter callbacks and macros; checks read them.
// Thread-safety: one Session per MTA connection, touched only by that connection's thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mxguard/address.h"
#include "mxguard/net/ip.h"
#include "mxguard/text.h"

namespace mxguard {

struct Policy;
namespace message {
class MessageReader;
}

// Deletes the reader where its type is complete (lib/message/feed.cpp), so this header needs
// only the forward declaration.
struct MessageReaderDeleter {
  void operator()(message::MessageReader* r) const;
};

// The BATV tag of the recipient being judged, verified once at RCPT before any check runs
// (content::prepare_stage): the batv check judges it, the content feed keeps a valid one.
enum class RecipientTagStatus : std::uint8_t { NotTagged, Valid, Invalid, Expired };
struct RecipientTag {
  RecipientTagStatus status = RecipientTagStatus::NotTagged;
  std::string reason;  // batv::to_string of the verification, for logs and metrics
  std::string plain;   // the address without its tag (when valid)
};

// A recipient that carried a valid BATV tag at RCPT (content::on_recipient).
struct TaggedRecipient {
  std::string tagged;  // as given at RCPT
  std::string plain;   // without the tag: what the message is delivered to
};

// The protocol stages a check can run at (milter callbacks, in order).
enum class Stage : std::uint8_t { Connect, Helo, Mail, Rcpt, Data, Header, Eoh, Body, Eom };
std::string_view to_string(Stage s);

// A small set of stages, for what a check needs and what the adapter negotiates.
class StageSet {
 public:
  constexpr StageSet() = default;
  constexpr StageSet(std::initializer_list<Stage> stages) {
    for (Stage s : stages)
      bits_ |= bit(s);
  }
  constexpr bool has(Stage s) const { return (bits_ & bit(s)) != 0; }
  constexpr StageSet& operator|=(StageSet o) {
    bits_ |= o.bits_;
    return *this;
  }
  constexpr bool empty() const { return bits_ == 0; }

 private:
  static constexpr std::uint16_t bit(Stage s) {
    return static_cast<std::uint16_t>(1u << static_cast<unsigned>(s));
  }
  std::uint16_t bits_ = 0;
};

struct Header {
  std::string name;
  std::string value;
};

// A recipient the MTA itself already refused (Postfix SMFIP_RCPT_REJ: {rcpt_mailer} "error").
struct MtaRejection {
  std::string enhanced;  // from {rcpt_host}
  std::string text;      // from {rcpt_addr}
};

struct Transaction {
  Address sender;  // the envelope sender; null(): the null sender
  bool has_sender = false;
  std::vector<Address> recipients;  // recipients mxguard did not object to
  Address rcpt;                     // the recipient being judged at Stage::Rcpt
  RecipientTag rcpt_tag;            // its BATV tag, verified once
  // The ledger of our sent mail has recorded for a whole lifetime (set at MAIL): automatic
  // replies from real senders are judged too.
  bool ledger_warm = false;
  // check.backscatter = auto enforces: the ledger is warm, or BATV signing has run a lifetime.
  bool auto_warm = false;
  std::optional<MtaRejection> rcpt_rejected_by_mta;
  std::string queue_id;
  std::vector<Header> headers;  // bounded by the adapter
  std::size_t header_bytes = 0;
  bool headers_truncated = false;
  bool allowed = false;       // an access table said OK for the sender: skip the rest
  bool rcpt_allowed = false;  // likewise for the recipient being judged
  // The check of the first report-only reject in this transaction (report-header marks the
  // delivered message with it); empty: nothing would have been rejected.
  std::string would_reject;

  // Content for the message checks (backscatter), fed through content.h; made at the
  // first header when a check needs it. Bounded by max-body-scan.
  std::unique_ptr<message::MessageReader, MessageReaderDeleter> reader;
  bool skip_body = false;                   // set at end of headers: the body cannot matter
  std::vector<TaggedRecipient> batv_valid;  // recipients with a valid BATV tag
};

struct Session {
  // Connection facts, set at connect.
  std::optional<net::IpAddress> client_addr;  // empty for a local (non-TCP) client
  std::string client_name;                    // verified host name, or "unknown"
  std::optional<net::IpAddress> daemon_addr;  // the address the MTA accepted on
  std::string mta_hostname;                   // macro j
  std::string helo;
  std::string auth_authen;  // SASL login name; non-empty means authenticated
  bool trusted_network = false;
  bool allowed = false;      // an access table said OK for the client or helo
  std::string would_reject;  // likewise for a report-only reject at connect or HELO

  std::shared_ptr<const Policy> policy;  // taken at connect; a reload does not change it
  Transaction tx;
  std::uint64_t messages = 0;

  bool authenticated() const { return !auth_authen.empty(); }
  // The queue id for logs: Postfix assigns it only from DATA on.
  std::string_view log_id() const {
    return tx.queue_id.empty() ? std::string_view("NOQUEUE") : tx.queue_id;
  }
  // "host[addr]" as Postfix writes it.
  std::string client_label() const;
  void new_transaction() { tx = Transaction{}; }
};

}  // namespace mxguard
