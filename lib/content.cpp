#include "mxguard/content.h"

#include "mxguard/text.h"

#include <mutex>

#include "mxguard/batv/prvs.h"
#include "mxguard/batv/tag.h"
#include "mxguard/check.h"
#include "mxguard/config.h"
#include "mxguard/log.h"
#include "mxguard/message/classifier.h"
#include "mxguard/message/reader.h"
#include "mxguard/metrics.h"
#include "mxguard/policy.h"

namespace mxguard {

// Declared in session.h, defined where MessageReader is complete.
void MessageReaderDeleter::operator()(message::MessageReader* r) const {
  delete r;
}

namespace content {

using message::MessageReader;
using message::Rules;

namespace {

const Config* config_of(const Session& s) {
  return s.policy && s.policy->config ? s.policy->config.get() : nullptr;
}

bool signs(const Config& cfg) {
  return cfg.batv.keys && cfg.batv.sign;
}

// "@domain" entries name a domain, others a whole address (with '@') or a local part.
bool excluded(const Config& cfg, const Address& sender) {
  for (const auto& e : cfg.batv.exclude_senders) {
    if (e.front() == '@' ? std::string_view(e).substr(1) == sender.domain
                         : (e.find('@') != std::string::npos ? iequals(e, sender.raw)
                                                             : iequals(e, sender.given_local())))
      return true;
  }
  return false;
}

// Does plan_changes() sign this transaction's sender (add a tag header, maybe rewrite it)?
bool signs_sender(const Config& cfg, const Session& s) {
  const Address& sender = s.tx.sender;
  return signs(cfg) && !sender.null() && (s.authenticated() || s.trusted_network) &&
         cfg.site.is_local_domain(sender.domain);
}

const Rules& rules_of(const Config& cfg) {
  static const Rules none;
  return cfg.message.rules ? *cfg.message.rules : none;
}

// Is this our users' outgoing mail, which the ledger records?
bool outgoing(const Session& s) {
  return (s.authenticated() || s.trusted_network) && !s.tx.sender.null();
}

bool records(const Config& cfg, const Session& s) {
  return cfg.state.ledger.enabled && outgoing(s);
}

}  // namespace

bool wants_content(const Session& s) {
  const Config* cfg = config_of(s);
  return cfg && (cfg->enabled(CheckId::Backscatter) || signs(*cfg) || cfg->state.ledger.enabled);
}

bool judges_real_senders(const Session& s) {
  const Config* cfg = config_of(s);
  return cfg && cfg->enabled(CheckId::Backscatter) && s.tx.ledger_warm && !outgoing(s);
}

bool content_matters(const Session& s) {
  const Config* cfg = config_of(s);
  if (!cfg) return true;
  // The ledger needs the Message-ID of our outgoing mail (and only that).
  return records(*cfg, s) || needed_after_headers(s);
}

bool needed_after_headers(const Session& s) {
  const Config* cfg = config_of(s);
  if (!cfg) return true;
  if (!s.tx.batv_valid.empty()) return true;  // tags to remove at end of message
  if (cfg->report_header && !(s.would_reject.empty() && s.tx.would_reject.empty())) return true;
  if (cfg->enabled(CheckId::Backscatter) &&
      message::is_bounce_sender(s.tx.sender.raw, rules_of(*cfg)))
    return true;
  // A warm ledger lets the headers of inbound mail show an automatic reply from a real sender.
  if (judges_real_senders(s)) return true;
  return signs_sender(*cfg, s);
}

void prepare_stage(Stage stage, Session& s, const CheckContext& ctx) {
  if (stage != Stage::Rcpt) return;
  RecipientTag& tag = s.tx.rcpt_tag;
  tag = RecipientTag{};
  const Config* cfg = config_of(s);
  if (!cfg || !cfg->batv.keys || !s.tx.rcpt.tagged()) return;
  auto r = batv::verify(*cfg->batv.keys, s.tx.rcpt, ctx.clock->time(), cfg->batv.lifetime_days);
  tag.reason = std::string(batv::to_string(r.status));
  switch (r.status) {
    case batv::PrvsStatus::Valid:
      tag.status = RecipientTagStatus::Valid;
      tag.plain = r.address;
      break;
    case batv::PrvsStatus::NotTagged:
      break;
    case batv::PrvsStatus::Expired:
      tag.status = RecipientTagStatus::Expired;
      break;
    default:
      tag.status = RecipientTagStatus::Invalid;
      break;
  }
}

void on_recipient(Session& s) {
  if (s.tx.rcpt_tag.status != RecipientTagStatus::Valid) return;
  if (s.tx.batv_valid.size() < 1000)
    s.tx.batv_valid.push_back({s.tx.rcpt.raw, s.tx.rcpt_tag.plain});
}

namespace {

// Makes the reader on first use; false when no check needs the content.
bool ensure_reader(Session& s) {
  if (s.tx.reader) return true;
  const Config* cfg = config_of(s);
  if (!cfg || !wants_content(s)) return false;
  s.tx.reader.reset(new MessageReader(cfg->message.max_body_scan));
  return true;
}

}  // namespace

std::vector<state::LedgerKey> outgoing_keys(const Session& s, const state::LedgerKeys& keys) {
  std::vector<state::LedgerKey> out;
  const Config* cfg = config_of(s);
  if (!cfg || !records(*cfg, s)) return out;
  const std::string sender = s.tx.sender.plain();
  for (const Address& r : s.tx.recipients)
    out.push_back(keys.recipient_key(sender, r.plain()));
  if (s.tx.reader) {
    const std::string id = message::extract_msg_id(s.tx.reader->header("Message-ID"));
    if (!id.empty()) out.push_back(keys.message_id_key(sender, id));
  }
  return out;
}

void record_outgoing(const Session& s, state::Ledger& ledger, state::TimePoint now) {
  const auto keys = outgoing_keys(s, ledger.keys());
  if (keys.empty()) return;
  if (auto r = ledger.record(keys, now); !r) {
    metrics().count_store_error();
    log(LogLevel::Warning, "{}: ledger: {} recipient(s) of <{}> not recorded: {}", s.log_id(),
        s.tx.recipients.size(), s.tx.sender.raw, r.error().to_string());
  }
}

namespace {

constexpr std::string_view kSigningSince = "batv:signing-since";
constexpr std::string_view kSignedRecently = "batv:signed-recently";

std::int64_t ms_of(state::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

void note_signing(state::StateStore& store, std::chrono::milliseconds lifetime,
                  state::TimePoint now) {
  static std::mutex mu;
  static state::TimePoint last{};
  {
    std::lock_guard lock(mu);
    if (last != state::TimePoint{} && now - last < std::chrono::minutes(1)) return;
    last = now;
  }
  // A gap of a whole lifetime without signing starts the count again.
  auto recent = store.get(kSignedRecently);
  if (recent && !*recent) (void)store.put(kSigningSince, std::to_string(ms_of(now)), {});
  (void)store.set_if_absent(kSigningSince, std::to_string(ms_of(now)), {});
  (void)store.put(kSignedRecently, "1", lifetime);
}

bool signing_warm(state::StateStore& store, std::chrono::milliseconds lifetime,
                  state::TimePoint now) {
  auto since = store.get(kSigningSince);
  if (!since || !*since) return false;
  auto ms = parse_int(**since);
  return ms && ms_of(now) - *ms >= lifetime.count();
}

LedgerWarmth ledger_warmth_now(state::Ledger& ledger, std::chrono::milliseconds lifetime,
                               state::TimePoint now) {
  LedgerWarmth w;
  auto since = ledger.recording_since();
  if (!since) {
    w.why =
        fmt::format("the ledger cannot say since when it records: {}", since.error().to_string());
    return w;
  }
  w.since = *since;
  if (!w.since) {
    w.why =
        "the ledger has recorded no outgoing mail yet: pass the mail your users send through "
        "mxguard (smtpd_milters, from trusted-networks or authenticated clients)";
    return w;
  }
  const auto ready = *w.since + lifetime;
  w.warm = now >= ready;
  const auto left = std::chrono::duration_cast<std::chrono::seconds>(ready - now);
  if (!w.warm)
    w.why = fmt::format(
        "the ledger has recorded our outgoing mail for {}s of the {}s of "
        "ledger-lifetime; {}s to go",
        std::chrono::duration_cast<std::chrono::seconds>(now - *w.since).count(),
        std::chrono::duration_cast<std::chrono::seconds>(lifetime).count(), left.count());
  return w;
}

LedgerWarmth ledger_warmth(state::Ledger& ledger, std::chrono::milliseconds lifetime,
                           state::TimePoint now) {
  static std::mutex mu;
  static const state::Ledger* cached_for = nullptr;
  static state::TimePoint checked{};
  static state::TimePoint logged{};
  static LedgerWarmth cached;
  std::lock_guard lock(mu);
  // Until the first record, ask every second: the first outgoing message starts the clock.
  const auto every = cached.since ? std::chrono::seconds(60) : std::chrono::seconds(1);
  if (cached_for != &ledger || now - checked >= every ||
      (!cached.warm && cached.since && now >= *cached.since + lifetime)) {
    const bool was_warm = cached_for == &ledger && cached.warm;
    cached = ledger_warmth_now(ledger, lifetime, now);
    cached_for = &ledger;
    checked = now;
    if (cached.warm && !was_warm)
      log(LogLevel::Notice,
          "backscatter: the ledger has recorded our outgoing mail for a whole "
          "ledger-lifetime: check.backscatter = auto now enforces");
  }
  if (!cached.warm && (logged == state::TimePoint{} || now - logged >= std::chrono::hours(24))) {
    logged = now;
    log(LogLevel::Notice, "backscatter: check.backscatter = auto reports only: {}", cached.why);
  }
  return cached;
}

void feed_header(Session& s, std::string_view name, std::string_view value) {
  if (ensure_reader(s)) s.tx.reader->add_header(name, value);
}

void feed_eoh(Session& s) {
  // A message without a single header field still has a body worth reading.
  if (!ensure_reader(s)) return;
  s.tx.reader->end_of_headers();
  const Config& cfg = *s.policy->config;
  // The body matters only to the backscatter check, and only for bounce senders.
  s.tx.skip_body = !cfg.enabled(CheckId::Backscatter) ||
                   !message::is_bounce_sender(s.tx.sender.raw, rules_of(cfg)) ||
                   !s.tx.batv_valid.empty();
}

bool feed_body(Session& s, std::string_view chunk) {
  if (!s.tx.reader || s.tx.skip_body) return false;
  return s.tx.reader->add_body(chunk);
}

void feed_eom(Session& s) {
  if (s.tx.reader) s.tx.reader->end_of_message();
}

MessageChanges plan_changes(const Session& s, std::time_t now) {
  MessageChanges c;
  const Config* cfg = config_of(s);
  if (!cfg) return c;
  for (const auto& t : s.tx.batv_valid)
    c.rewrite_rcpts.push_back({t.tagged, t.plain});
  const Address& sender = s.tx.sender;
  if (!signs_sender(*cfg, s)) return c;
  std::string msg_id =
      s.tx.reader ? message::extract_msg_id(s.tx.reader->header("Message-ID")) : "";
  c.add_headers.push_back(
      Header{std::string(batv::kTagHeader), batv::make_tag(*cfg->batv.keys, msg_id, now)});
  if (!excluded(*cfg, sender) && !sender.tagged()) {
    c.new_sender =
        batv::sign(*cfg->batv.keys, sender.raw, now, cfg->batv.lifetime_days,
                   cfg->batv.subaddress ? batv::PrvsForm::SubAddress : batv::PrvsForm::Prefix);
  }
  return c;
}

}  // namespace content
}  // namespace mxguard
