#include "adapter.h"

#include <arpa/inet.h>
#include <libmilter/mfapi.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <ctime>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "mxguard/content.h"
#include "mxguard/log.h"
#include "mxguard/metrics.h"
#include "mxguard/session.h"
#include "mxguard/state/bans.h"

namespace mxguard::milter {

namespace {

PolicyHolder g_policy;
Stats g_stats;
std::atomic<state::StateRuntime*> g_state{nullptr};

// Bounds on what a session keeps of a message, so no client can grow our memory.
constexpr std::size_t kMaxHeaderBytes = 256 * 1024;
constexpr std::size_t kMaxHeaders = 1000;

// What libmilter keeps for a connection: the session, and the protocol steps negotiated,
// since a step negotiated as "no reply" must answer SMFIS_NOREPLY.
struct Connection {
  Session session;
  unsigned long steps = 0;
  bool in_transaction = false;  // from MAIL to end of message or abort
  // MAIL is negotiated without a reply (one round trip less a message): a refusal of the
  // sender is kept here and given at each RCPT, as Postfix's smtpd_delay_reject does.
  std::optional<Verdict> sender_refusal;
  // So is connect, with delay-reject (one round trip less a session): a client refused there
  // is refused at each RCPT of the connection, and nothing more of it is judged.
  std::optional<Verdict> client_refusal;
  // Where a refusal decided at a stage without a reply is kept (connect or MAIL).
  std::optional<Verdict>& kept_refusal(Stage stage) {
    return stage == Stage::Connect ? client_refusal : sender_refusal;
  }
};

// A stop waits for transactions under way, not for idle connections.
void begin_transaction(Connection* c) {
  if (c && !c->in_transaction) {
    c->in_transaction = true;
    g_stats.transactions++;
  }
}
void end_transaction(Connection* c) {
  if (c && c->in_transaction) {
    c->in_transaction = false;
    g_stats.transactions--;
  }
}

Connection* connection_of(SMFICTX* ctx) {
  return static_cast<Connection*>(smfi_getpriv(ctx));
}
Session* session_of(SMFICTX* ctx) {
  Connection* c = connection_of(ctx);
  return c ? &c->session : nullptr;
}

// Counted here, at negotiation (which the MTA waits for), not at connect: an MTA whose client
// hangs up at once sends connect (without a reply) and QUIT together, and libmilter may close
// the session without running connect.
Connection* new_connection(SMFICTX* ctx) {
  auto* c = new Connection;
  c->session.policy = g_policy.get();
  smfi_setpriv(ctx, c);
  g_stats.connections++;
  g_stats.active++;
  return c;
}

unsigned long no_reply_flag(Stage stage) {
  switch (stage) {
    case Stage::Connect:
      return SMFIP_NR_CONN;
    case Stage::Helo:
      return SMFIP_NR_HELO;
    case Stage::Mail:
      return SMFIP_NR_MAIL;
    case Stage::Rcpt:
      return SMFIP_NR_RCPT;
    case Stage::Data:
      return SMFIP_NR_DATA;
    case Stage::Header:
      return SMFIP_NR_HDR;
    case Stage::Eoh:
      return SMFIP_NR_EOH;
    case Stage::Body:
      return SMFIP_NR_BODY;
    case Stage::Eom:
      return 0;
  }
  return 0;
}

std::string macro(SMFICTX* ctx, const char* name) {
  const char* v = smfi_getsymval(ctx, const_cast<char*>(name));
  return v ? std::string(v) : std::string();
}

// Which MTA speaks to us, from macro v ("Postfix 3.7.11" or Sendmail's "8.17.1"): a warning
// about a missing macro should name the one setting the admin has to change.
enum class MtaKind { Unknown, Postfix, Sendmail };

MtaKind mta_kind(SMFICTX* ctx) {
  std::string v = macro(ctx, "v");
  if (v.empty()) return MtaKind::Unknown;
  return v.starts_with("Postfix") ? MtaKind::Postfix : MtaKind::Sendmail;
}

// A macro mxguard relies on that the MTA is not configured to send. Warned about once per
// process: the MTA's configuration does not change per connection, and a line per message
// would drown the log.
struct MissingMacro {
  const char* name;
  const char* postfix_setting;
  const char* sendmail_setting;
  std::atomic<bool> warned{false};
};

MissingMacro g_no_daemon_addr{"{daemon_addr}", "add {daemon_addr} to milter_connect_macros",
                              "add {if_addr} to confMILTER_MACROS_CONNECT"};
MissingMacro g_no_queue_id{"i", "add i to milter_rcpt_macros or milter_data_macros",
                           "add i to confMILTER_MACROS_ENVFROM or confMILTER_MACROS_ENVRCPT"};

void warn_missing_macro(MissingMacro& m, MtaKind kind, std::string_view why) {
  if (m.warned.exchange(true)) return;
  std::string fix;
  if (kind != MtaKind::Sendmail) fix += fmt::format("Postfix: {}", m.postfix_setting);
  if (kind == MtaKind::Unknown) fix += "; ";
  if (kind != MtaKind::Postfix) fix += fmt::format("Sendmail: {}", m.sendmail_setting);
  log(LogLevel::Warning, "the MTA does not send macro {} ({}): {}", m.name, why, fix);
}

std::optional<net::IpAddress> address_of(const sockaddr* sa) {
  if (!sa) return std::nullopt;
  if (sa->sa_family == AF_INET) {
    sockaddr_in sin;
    std::memcpy(&sin, sa, sizeof sin);
    return net::IpAddress::v4(ntohl(sin.sin_addr.s_addr));
  }
  if (sa->sa_family == AF_INET6) {
    sockaddr_in6 sin6;
    std::memcpy(&sin6, sa, sizeof sin6);
    std::array<std::uint8_t, 16> b{};
    std::memcpy(b.data(), &sin6.sin6_addr, 16);
    auto a = net::IpAddress::v6(b);
    // Postfix on a dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d.
    if (auto v4 = a.embedded_v4(); v4 && b[10] == 0xff && b[11] == 0xff) return v4;
    return a;
  }
  return std::nullopt;
}

// libmilter treats '%' in reply text as a format character.
std::string escape_percent(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    out.push_back(c);
    if (c == '%') out.push_back('%');
  }
  return out;
}

sfsistat internal_error(Session* s, const char* where, const char* what) {
  g_stats.internal_errors++;
  std::string id = s ? std::string(s->log_id()) : std::string("NOQUEUE");
  log(LogLevel::Error, "{}: internal error in {}: {}", id, where, what);
  // on-internal-error, a failure policy like the others: counted under check="internal".
  const FailureAction action =
      s && s->policy ? s->policy->config->on_internal_error : FailureAction::Tempfail;
  metrics().count_failure_policy("internal", to_string(action));
  return action == FailureAction::Accept ? SMFIS_CONTINUE : SMFIS_TEMPFAIL;
}

// An exception in a stage. A stage negotiated without a reply must not answer (the MTA would
// read the answer as the reply to a later step); a tempfail at MAIL is then given at RCPT.
sfsistat stage_failed(Connection* c, Stage stage, const char* where, const char* what) {
  const sfsistat r = internal_error(c ? &c->session : nullptr, where, what);
  if (!c || !(c->steps & no_reply_flag(stage))) return r;
  if ((stage == Stage::Mail || stage == Stage::Connect) && r == SMFIS_TEMPFAIL)
    c->kept_refusal(stage) = Verdict::tempfail(
        SmtpReply::fixed(451, "4.3.0", "temporary failure in the mail filter; try again later"),
        "internal", "error");
  return SMFIS_NOREPLY;
}

sfsistat reply(SMFICTX* ctx, const Verdict& v) {
  switch (v.action) {
    case Action::Continue:
    case Action::Accept:
      return SMFIS_CONTINUE;
    case Action::Discard:
      return SMFIS_DISCARD;
    case Action::Reject:
    case Action::Tempfail:
      break;
  }
  if (v.reply) {
    std::string code = std::to_string(v.reply->code());
    std::string text = escape_percent(v.reply->text());
    smfi_setreply(ctx, code.data(), const_cast<char*>(v.reply->enhanced().c_str()), text.data());
  }
  if (v.action == Action::Reject) {
    g_stats.rejects++;
    return SMFIS_REJECT;
  }
  g_stats.tempfails++;
  return SMFIS_TEMPFAIL;
}

// Runs one stage for the session and answers the MTA. Every callback ends here, inside a
// try block: no exception may cross into libmilter's C code.
template <class Fill>
sfsistat run_stage(SMFICTX* ctx, Stage stage, const char* where, Fill&& fill) {
  Connection* c = connection_of(ctx);
  Session* s = c ? &c->session : nullptr;
  try {
    if (!c) return SMFIS_CONTINUE;
    fill(*s);
    const bool no_reply = (c->steps & no_reply_flag(stage)) != 0;
    if (c->client_refusal) {
      // Refused at connect (delay-reject): its recipients are refused, nothing else is judged,
      // as the MTA would have asked nothing more had connect been answered. A recipient the MTA
      // refused itself has its answer already.
      if (no_reply) return SMFIS_NOREPLY;
      if (stage != Stage::Rcpt || s->tx.rcpt_rejected_by_mta) return SMFIS_CONTINUE;
      return reply(ctx, *c->client_refusal);
    }
    // MAIL without a reply still runs its checks, and so does connect without one
    // (delay-reject) when a check needs it; what they refuse is answered at RCPT.
    const bool deferred =
        no_reply && (stage == Stage::Mail ||
                     (stage == Stage::Connect && s->policy->pipeline.stages().has(stage)));
    // Header is the stage where headers are collected; checks judge them at end of headers.
    if ((no_reply && !deferred) || stage == Stage::Header)
      return no_reply ? SMFIS_NOREPLY : SMFIS_CONTINUE;
    CheckContext cc{*s->policy->config};
    cc.routes = s->policy->routes.get();
    // Kept alive for the call, so a reload that rebuilds the store cannot pull it away.
    std::shared_ptr<state::Bans> bans;
    if (stage == Stage::Connect || stage == Stage::Rcpt) {
      if (state::StateRuntime* rt = g_state.load()) bans = rt->bans();
      cc.bans = bans.get();
      cc.store = bans ? &bans->store() : nullptr;
    }
    // The ledger of our sent mail, for the backscatter proof at end of headers and message.
    std::shared_ptr<state::Ledger> ledger;
    if (stage == Stage::Eoh || stage == Stage::Eom) {
      if (state::StateRuntime* rt = g_state.load()) ledger = rt->ledger();
      cc.ledger = ledger.get();
    }
    cc.auto_enforces = s->tx.auto_warm;
    std::optional<Verdict> v = s->policy->pipeline.run(stage, *s, cc);
    if (deferred) {
      c->kept_refusal(stage) = std::move(v);
      return SMFIS_NOREPLY;
    }
    if (!v) return SMFIS_CONTINUE;
    return reply(ctx, *v);
  } catch (const std::exception& e) {
    return stage_failed(c, stage, where, e.what());
  } catch (...) {
    return stage_failed(c, stage, where, "unknown exception");
  }
}

sfsistat on_negotiate(SMFICTX* ctx, unsigned long f0, unsigned long f1, unsigned long,
                      unsigned long, unsigned long* pf0, unsigned long* pf1, unsigned long* pf2,
                      unsigned long* pf3) {
  try {
    Connection* c = new_connection(ctx);
    const auto& policy = c->session.policy;

    // Ask only for the steps some check needs: most of a milter's cost is protocol round
    // trips (see DESIGN.md, cost model). MAIL is kept whenever a later step is, for the
    // sender that exemptions and logs need.
    StageSet need = policy->pipeline.stages();
    // The content feed (the ledger, BATV signing, the message checks) needs the envelope and
    // the headers, without a reply to each, and may accept the message at DATA or at end of
    // headers.
    const bool content = content::wants_content(c->session);
    const Config& cfg = *policy->config;
    // A client refused at connect is told so at its RCPTs (delay-reject), as Postfix's
    // smtpd_delay_reject does for its own client restrictions.
    const bool delay = cfg.delay_reject && need.has(Stage::Connect);
    unsigned long steps = 0;
    const bool after_mail = content || delay || need.has(Stage::Rcpt) || need.has(Stage::Data) ||
                            need.has(Stage::Header) || need.has(Stage::Eoh) ||
                            need.has(Stage::Body) || need.has(Stage::Eom);
    // HELO only when a check reads it (a helo-access table): the decisions' log lines then
    // have no helo=<>, which Postfix's own milter-reject line carries anyway.
    if (!need.has(Stage::Helo)) steps |= SMFIP_NOHELO | SMFIP_NR_HELO;
    if (!need.has(Stage::Mail) && !after_mail) steps |= SMFIP_NOMAIL;
    // MAIL is never answered on its own: a sender refused there is refused at each RCPT.
    steps |= SMFIP_NR_MAIL;
    if (need.has(Stage::Header)) steps |= SMFIP_NR_HDR;  // collected, judged at end of headers
    // RCPT answers for the sender checks too (MAIL has no reply of its own), and with
    // delay-reject for the connect checks.
    if (!need.has(Stage::Rcpt) && !need.has(Stage::Mail) && !delay)
      steps |= content ? SMFIP_NR_RCPT : SMFIP_NORCPT | SMFIP_NR_RCPT;
    // DATA is where mail that needs no content check is accepted (see on_data).
    if (!need.has(Stage::Data) && !content) steps |= SMFIP_NODATA | SMFIP_NR_DATA;
    if (!need.has(Stage::Header)) steps |= content ? SMFIP_NR_HDR : SMFIP_NOHDRS | SMFIP_NR_HDR;
    if (!need.has(Stage::Eoh) && !content) steps |= SMFIP_NOEOH | SMFIP_NR_EOH;
    if (!need.has(Stage::Body)) steps |= SMFIP_NOBODY | SMFIP_NR_BODY;
    steps |= SMFIP_NOUNKNOWN | SMFIP_NR_UNKN;
    if (!need.has(Stage::Connect) || delay) steps |= SMFIP_NR_CONN;
    if (f1 & SMFIP_SKIP) steps |= SMFIP_SKIP;
    // Postfix (>= 2.6) can show us the recipients it refused itself, so that website-only
    // domains it answers "Relay access denied" for still count against their senders.
    if (cfg.enabled(CheckId::UnhandledDomain) && !cfg.website.unhandled_domains.empty())
      steps |= SMFIP_RCPT_REJ;
    *pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_ADDRCPT | SMFIF_DELRCPT | SMFIF_CHGFROM);
    *pf1 = steps & f1;  // only what the MTA offers
    c->steps = *pf1;
    *pf2 = 0;
    *pf3 = 0;
    return SMFIS_CONTINUE;
  } catch (...) {
    return SMFIS_ALL_OPTS;
  }
}

sfsistat on_connect(SMFICTX* ctx, char* hostname, _SOCK_ADDR* hostaddr) {
  // An MTA that skipped negotiation (protocol version < 6) gets its connection here.
  if (!connection_of(ctx)) new_connection(ctx);
  return run_stage(ctx, Stage::Connect, "connect", [&](Session& s) {
    s.client_addr = address_of(hostaddr);
    std::string name = hostname ? hostname : "";
    // Sendmail passes "[addr]" for a client without a verified name; Postfix "unknown".
    s.client_name = name.empty() || name.front() == '[' ? "unknown" : name;
    std::string daemon = macro(ctx, "{daemon_addr}");
    if (daemon.empty()) daemon = macro(ctx, "{if_addr}");
    s.daemon_addr = net::IpAddress::parse(daemon);
    s.mta_hostname = macro(ctx, "j");
    const Config& cfg = *s.policy->config;
    // Only a TCP client has a listener address; trap-mx and unhandled-domain need it.
    if (daemon.empty() && s.client_addr &&
        (!cfg.trap.addresses.empty() || !cfg.website.unhandled_domains.empty()))
      warn_missing_macro(g_no_daemon_addr, mta_kind(ctx),
                         "trap-address and unhandled-domains need the listener address");
    s.trusted_network = s.client_addr && cfg.trusted_networks.contains(*s.client_addr);
  });
}

sfsistat on_helo(SMFICTX* ctx, char* helo) {
  return run_stage(ctx, Stage::Helo, "helo", [&](Session& s) { s.helo = helo ? helo : ""; });
}

// BATV signing has run a whole lifetime: asked of the state store at most once a minute, not
// at every MAIL (with Redis, a round trip each).
bool signing_warm(state::StateRuntime& rt, std::chrono::milliseconds lifetime,
                  std::chrono::system_clock::time_point now) {
  static std::mutex mu;
  static std::chrono::system_clock::time_point checked{};
  static bool warm = false;
  std::lock_guard lock(mu);
  if (checked == std::chrono::system_clock::time_point{} ||
      now - checked >= std::chrono::minutes(1)) {
    checked = now;
    auto bans = rt.bans();
    warm = bans && content::signing_warm(bans->store(), lifetime, now);
  }
  return warm;
}

// At MAIL: has the ledger recorded our outgoing mail for a whole lifetime? (auto enforces,
// automatic replies from real senders are judged; see content::ledger_warmth.)
void note_ledger_warmth(Session& s) {
  const Config& cfg = *s.policy->config;
  if (!cfg.enabled(CheckId::Backscatter)) return;
  state::StateRuntime* rt = g_state.load();
  if (!rt) return;
  const auto now = std::chrono::system_clock::now();
  const auto lifetime = cfg.state.ledger.lifetime;
  if (auto ledger = rt->ledger())
    s.tx.ledger_warm = content::ledger_warmth(*ledger, lifetime, now).warm;
  s.tx.auto_warm = s.tx.ledger_warm;
  if (!s.tx.auto_warm && cfg.batv.keys && cfg.batv.sign)
    s.tx.auto_warm = signing_warm(*rt, lifetime, now);
}

sfsistat on_envfrom(SMFICTX* ctx, char** argv) {
  Connection* c = connection_of(ctx);
  begin_transaction(c);
  if (c) c->sender_refusal.reset();
  sfsistat r = run_stage(ctx, Stage::Mail, "mail", [&](Session& s) {
    s.new_transaction();
    s.messages++;
    g_stats.messages++;
    s.tx.has_sender = true;
    s.tx.sender = Address::parse(argv && argv[0] ? argv[0] : "");
    s.tx.queue_id = macro(ctx, "i");
    std::string auth = macro(ctx, "{auth_authen}");
    if (!auth.empty()) s.auth_authen = auth;
    note_ledger_warmth(s);
  });
  if (r != SMFIS_CONTINUE && r != SMFIS_NOREPLY) end_transaction(c);
  return r;
}

sfsistat on_envrcpt(SMFICTX* ctx, char** argv) {
  Session* s = session_of(ctx);
  Connection* c = connection_of(ctx);
  bool refused = false;
  sfsistat r = run_stage(ctx, Stage::Rcpt, "rcpt", [&](Session& ss) {
    ss.tx.rcpt = Address::parse(argv && argv[0] ? argv[0] : "");
    ss.tx.rcpt_rejected_by_mta.reset();
    // With SMFIP_RCPT_REJ Postfix marks a recipient it refused with {rcpt_mailer} "error",
    // the enhanced status in {rcpt_host} and its reply text in {rcpt_addr}.
    if ((c->steps & SMFIP_RCPT_REJ) && macro(ctx, "{rcpt_mailer}") == "error") {
      refused = true;
      ss.tx.rcpt_rejected_by_mta =
          MtaRejection{macro(ctx, "{rcpt_host}"), macro(ctx, "{rcpt_addr}")};
    }
    if (ss.tx.queue_id.empty()) ss.tx.queue_id = macro(ctx, "i");
  });
  if (refused) return r;  // not a recipient of the message: the MTA refused it
  if (c && c->sender_refusal && r == SMFIS_CONTINUE && !(c->steps & SMFIP_NR_RCPT)) {
    // The sender was refused at MAIL (without a reply): every recipient is refused for it.
    // The decision was logged and counted at MAIL.
    return reply(ctx, *c->sender_refusal);
  }
  if (s && (r == SMFIS_CONTINUE || r == SMFIS_NOREPLY)) {
    try {
      s->tx.recipients.push_back(s->tx.rcpt);
      content::on_recipient(*s);  // keeps a valid BATV tag (verified once by the pipeline)
    } catch (...) {
      return internal_error(s, "rcpt", "out of memory");
    }
  }
  return r;
}

sfsistat on_data(SMFICTX* ctx) {
  sfsistat r = run_stage(ctx, Stage::Data, "data", [&](Session& s) {
    std::string id = macro(ctx, "i");
    if (!id.empty()) s.tx.queue_id = id;
  });
  // Mail that can be neither a bounce to judge nor a message to change is accepted here:
  // the MTA then sends none of its headers, body or end of message (each a round trip).
  Connection* c = connection_of(ctx);
  if (r == SMFIS_CONTINUE && c && content::wants_content(c->session)) {
    try {
      if (!content::content_matters(c->session)) {
        log(LogLevel::Debug, "{}: accepted at DATA: no content check applies", c->session.log_id());
        end_transaction(c);
        return SMFIS_ACCEPT;
      }
    } catch (const std::exception& e) {
      return internal_error(&c->session, "data", e.what());
    }
  }
  return r;
}

sfsistat on_header(SMFICTX* ctx, char* name, char* value) {
  return run_stage(ctx, Stage::Header, "header", [&](Session& s) {
    content::feed_header(s, name ? name : "", value ? value : "");  // content hook (bounded)
    std::size_t n = std::strlen(name ? name : "") + std::strlen(value ? value : "");
    if (s.tx.headers.size() >= kMaxHeaders || s.tx.header_bytes + n > kMaxHeaderBytes) {
      s.tx.headers_truncated = true;
      return;
    }
    s.tx.header_bytes += n;
    s.tx.headers.push_back(Header{name ? name : "", value ? value : ""});
  });
}

sfsistat on_eoh(SMFICTX* ctx) {
  sfsistat r = run_stage(ctx, Stage::Eoh, "eoh", [](Session& s) { content::feed_eoh(s); });
  // Our users' outgoing mail goes into the ledger once its Message-ID is known.
  Session* s = session_of(ctx);
  if (s && r == SMFIS_CONTINUE) {
    try {
      if (state::StateRuntime* rt = g_state.load())
        if (auto ledger = rt->ledger())
          content::record_outgoing(*s, *ledger, std::chrono::system_clock::now());
      // Recorded, and nothing else wants the body: the MTA need not send it (round trips).
      if (!content::needed_after_headers(*s)) {
        log(LogLevel::Debug, "{}: accepted at end of headers", s->log_id());
        end_transaction(connection_of(ctx));
        return SMFIS_ACCEPT;
      }
    } catch (const std::exception& e) {
      return internal_error(s, "eoh", e.what());
    }
  }
  return r;
}

sfsistat on_body(SMFICTX* ctx, unsigned char* data, size_t len) {
  // Content hook: the bounded message reader. feed_body() returns false when nothing more of
  // the body is needed; the adapter then answers SMFIS_SKIP where the MTA offered it.
  bool more = true;
  sfsistat r = run_stage(ctx, Stage::Body, "body", [&](Session& s) {
    more = content::feed_body(
        s, std::string_view(reinterpret_cast<const char*>(data), data ? len : 0));
  });
  // Nothing more of the body matters: ask the MTA not to send the rest (saves round trips).
  Connection* c = connection_of(ctx);
  if (!more && r == SMFIS_CONTINUE && c && (c->steps & SMFIP_SKIP)) return SMFIS_SKIP;
  return r;
}

// Applies the changes the core planned for an accepted message (BATV signing, tag removal).
// A change the MTA refuses is logged, never fatal: the message is still good to deliver.
void apply_changes(SMFICTX* ctx, const Session& s) {
  // Report-only: mark what would have been rejected, so users can sort that mail while
  // they gain confidence in mxguard.
  const std::string& would_reject = s.tx.would_reject.empty() ? s.would_reject : s.tx.would_reject;
  if (s.policy->config->report_header && !would_reject.empty()) {
    std::string name = "X-Mxguard", value = "would-reject=" + would_reject;
    if (smfi_addheader(ctx, name.data(), value.data()) != MI_SUCCESS)
      log(LogLevel::Warning, "{}: add header {} failed (did the MTA grant the milter this action?)",
          s.log_id(), name);
  }
  content::MessageChanges changes = content::plan_changes(s, std::time(nullptr));
  if (changes.empty()) return;
  auto warn_if = [&](int rc, const char* what, const std::string& arg) {
    if (rc != MI_SUCCESS)
      log(LogLevel::Warning, "{}: {} {} failed (did the MTA grant the milter this action?)",
          s.log_id(), what, arg);
  };
  if (changes.new_sender) {
    std::string from = "<" + *changes.new_sender + ">";
    warn_if(smfi_chgfrom(ctx, from.data(), nullptr), "change sender to", from);
    log(LogLevel::Info, "{}: batv: sender <{}> signed as {}", s.log_id(), s.tx.sender.raw, from);
    if (state::StateRuntime* rt = g_state.load())
      if (auto bans = rt->bans())
        content::note_signing(bans->store(), s.policy->config->state.ledger.lifetime,
                              std::chrono::system_clock::now());
  }
  for (const Header& h : changes.add_headers) {
    std::string name = h.name, value = h.value;
    warn_if(smfi_addheader(ctx, name.data(), value.data()), "add header", name);
  }
  for (const auto& rw : changes.rewrite_rcpts) {
    std::string tagged = "<" + rw.tagged + ">", plain = "<" + rw.plain + ">";
    warn_if(smfi_delrcpt(ctx, tagged.data()), "remove recipient", tagged);
    warn_if(smfi_addrcpt(ctx, plain.data()), "add recipient", plain);
    log(LogLevel::Info, "{}: batv: recipient {} delivered as {}", s.log_id(), tagged, plain);
  }
}

sfsistat on_eom(SMFICTX* ctx) {
  sfsistat r = run_stage(ctx, Stage::Eom, "eom", [&](Session& s) {
    if (s.tx.queue_id.empty()) s.tx.queue_id = macro(ctx, "i");
    if (s.tx.queue_id.empty())
      warn_missing_macro(g_no_queue_id, mta_kind(ctx), "log lines cannot name the queue id");
    content::feed_eom(s);
  });
  Session* s = session_of(ctx);
  if (s && r == SMFIS_CONTINUE) {
    try {
      apply_changes(ctx, *s);
    } catch (const std::exception& e) {
      r = internal_error(s, "eom", e.what());
    }
  }
  end_transaction(connection_of(ctx));
  return r;
}

sfsistat on_abort(SMFICTX* ctx) {
  if (Connection* c = connection_of(ctx)) {
    c->session.new_transaction();
    c->sender_refusal.reset();
    end_transaction(c);
  }
  return SMFIS_CONTINUE;
}

sfsistat on_close(SMFICTX* ctx) {
  if (Connection* c = connection_of(ctx)) {
    smfi_setpriv(ctx, nullptr);
    end_transaction(c);
    delete c;
    g_stats.active--;
  }
  return SMFIS_CONTINUE;
}

}  // namespace

void set_state(state::StateRuntime* runtime) {
  g_state.store(runtime);
}

std::shared_ptr<state::Bans> current_bans() {
  state::StateRuntime* rt = g_state.load();
  return rt ? rt->bans() : nullptr;
}

std::shared_ptr<state::Ledger> current_ledger() {
  state::StateRuntime* rt = g_state.load();
  return rt ? rt->ledger() : nullptr;
}

PolicyHolder& policy_holder() {
  return g_policy;
}
Stats& stats() {
  return g_stats;
}

bool register_callbacks() {
  smfiDesc desc{};
  desc.xxfi_name = const_cast<char*>("mxguard");
  desc.xxfi_version = SMFI_VERSION;
  desc.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_ADDRCPT | SMFIF_DELRCPT | SMFIF_CHGFROM;
  desc.xxfi_connect = on_connect;
  desc.xxfi_helo = on_helo;
  desc.xxfi_envfrom = on_envfrom;
  desc.xxfi_envrcpt = on_envrcpt;
  desc.xxfi_header = on_header;
  desc.xxfi_eoh = on_eoh;
  desc.xxfi_body = on_body;
  desc.xxfi_eom = on_eom;
  desc.xxfi_abort = on_abort;
  desc.xxfi_close = on_close;
  desc.xxfi_unknown = nullptr;
  desc.xxfi_data = on_data;
  desc.xxfi_negotiate = on_negotiate;
  return smfi_register(desc) == MI_SUCCESS;
}

}  // namespace mxguard::milter
