// The content feed: how the milter adapter (and the offline mode, -t) hands message content
// and recipients to the core, the recipient's BATV tag verified once per RCPT before the checks
// (prepare_stage, run by the pipeline), and the message changes the core asks for at end of
// message. Nothing here knows libmilter; the adapter maps each call to a callback and each
// change to an smfi_* function (see the table at plan_changes()).
// Thread-safety: called on the session's own thread only.
#pragma once

#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mxguard/session.h"
#include "mxguard/state/ledger.h"
#include "mxguard/state/store.h"

namespace mxguard {
struct CheckContext;
}

namespace mxguard::content {

// Does any enabled check (or BATV signing) need the headers and body? If not, the adapter may
// negotiate them away and the feed calls below do nothing.
bool wants_content(const Session& s);

// At DATA, when wants_content(): does anything after DATA still matter to this transaction:
// the backscatter check for a bounce sender, a BATV tag to remove from a recipient, a sender to
// sign, a report header to add? If not, the adapter accepts the message there (SMFIS_ACCEPT)
// and the MTA sends none of its headers, body or end of message.
bool content_matters(const Session& s);

// Run by the pipeline before the checks of a stage. At RCPT: verifies the recipient's BATV tag
// once (tx.rcpt_tag), for the batv check and for on_recipient().
void prepare_stage(Stage stage, Session& s, const CheckContext& ctx);

// At end of headers, once the ledger has what it needs: does anything still need the body or
// the end of message (content_matters() less the ledger's Message-ID)? If not, the adapter
// accepts the message there.
bool needed_after_headers(const Session& s);

// xxfi_envrcpt, after the pipeline let the recipient through: keeps a valid BATV tag in
// tx.batv_valid (proof a for the backscatter check; tag removal at end of message).
void on_recipient(Session& s);

// Inbound mail from any sender may be an automatic reply to judge: the backscatter check is on
// and the ledger is warm (tx.ledger_warm, set by the adapter at MAIL).
bool judges_real_senders(const Session& s);

// The ledger keys of our users' outgoing mail (trusted network or authenticated, non-null
// sender): one per envelope recipient and one for the Message-ID, bound to the sender. Empty
// for any other mail, or when the ledger is off.
std::vector<state::LedgerKey> outgoing_keys(const Session& s, const state::LedgerKeys& keys);
// Records them (at end of headers, when the Message-ID is known); a store error is logged and
// counted, never fatal.
void record_outgoing(const Session& s, state::Ledger& ledger, state::TimePoint now);

// Whether the ledger has recorded our outgoing mail for a whole lifetime (check.backscatter =
// auto enforces from then on, and automatic replies from real senders are judged). Asks the
// ledger at most once a minute; while not warm, says why in the log once a day.
struct LedgerWarmth {
  bool warm = false;
  std::optional<state::TimePoint> since;  // when the ledger began recording; empty: never
  std::string why;                        // for the log and -n
};
LedgerWarmth ledger_warmth(state::Ledger& ledger, std::chrono::milliseconds lifetime,
                           state::TimePoint now);
// BATV signing counts as well (issue 14): auto also enforces once our outgoing mail has been
// signed for a whole ledger-lifetime (bounces of it then carry the tag). note_signing() is
// called when a sender is signed, at most once a minute, and keeps in the state store since
// when signing has run without a gap of a lifetime; signing_warm() reads it.
void note_signing(state::StateStore& store, std::chrono::milliseconds lifetime,
                  state::TimePoint now);
bool signing_warm(state::StateStore& store, std::chrono::milliseconds lifetime,
                  state::TimePoint now);

// The same, worked out afresh and without logging (mxguard -n).
LedgerWarmth ledger_warmth_now(state::Ledger& ledger, std::chrono::milliseconds lifetime,
                               state::TimePoint now);

// xxfi_header: one field as libmilter gives it. Bounded; does nothing when !wants_content().
void feed_header(Session& s, std::string_view name, std::string_view value);

// xxfi_eoh, before the pipeline runs Stage::Eoh: decides whether the body is needed at all.
void feed_eoh(Session& s);

// xxfi_body: a chunk. Returns false when nothing more of the body is needed (the reader is
// full, or the headers settled it): the adapter may return SMFIS_SKIP if the MTA offered it.
bool feed_body(Session& s, std::string_view chunk);

// xxfi_eom, before the pipeline runs Stage::Eom.
void feed_eom(Session& s);

// Changes to make at end of message, when the verdict is to continue. The adapter applies
// them in this order:
//   new_sender        smfi_chgfrom(ctx, "<new_sender>", nullptr)
//   add_headers       smfi_addheader(ctx, name, value)   (X-Mxguard-Tag)
//   rewrite_rcpts     smfi_delrcpt(ctx, "<tagged>") then smfi_addrcpt(ctx, "<plain>")
// SMFIF_CHGFROM, SMFIF_ADDHDRS, SMFIF_ADDRCPT and SMFIF_DELRCPT must have been registered.
struct RecipientRewrite {
  std::string tagged;  // as the client gave it at RCPT
  std::string plain;   // the address without its BATV tag
};
struct MessageChanges {
  std::optional<std::string> new_sender;
  std::vector<Header> add_headers;
  std::vector<RecipientRewrite> rewrite_rcpts;
  bool empty() const { return !new_sender && add_headers.empty() && rewrite_rcpts.empty(); }
};
MessageChanges plan_changes(const Session& s, std::time_t now);

}  // namespace mxguard::content
