#include "mxguard/state/bans.h"

#include <fmt/format.h>

#include <charconv>

#include "mxguard/log.h"
#include "mxguard/text.h"

namespace mxguard::state {

namespace {

// Bans we remember for the unban line; past this many the oldest are forgotten silently.
constexpr std::size_t kMaxSeen = 100'000;

// Ban records: "v1 <until, unix s> <duration s> <strikes> <escalated 0|1> <reason...>".
std::string encode(const Ban& b) {
  return fmt::format(
      "v1 {} {} {} {} {}",
      std::chrono::duration_cast<std::chrono::seconds>(b.until.time_since_epoch()).count(),
      b.duration.count(), b.strikes, b.escalated ? 1 : 0, b.reason);
}

std::optional<Ban> decode(std::string subject, std::string_view v) {
  auto next = [&v]() -> std::optional<std::int64_t> {
    auto sp = v.find(' ');
    std::string_view field = v.substr(0, sp);
    v = sp == std::string_view::npos ? std::string_view() : v.substr(sp + 1);
    std::int64_t n = 0;
    auto [p, ec] = std::from_chars(field.data(), field.data() + field.size(), n);
    if (field.empty() || ec != std::errc() || p != field.data() + field.size()) return std::nullopt;
    return n;
  };
  if (v.substr(0, 3) != "v1 ") return std::nullopt;
  v.remove_prefix(3);
  auto until = next();
  auto duration = next();
  auto strikes = next();
  auto escalated = next();
  if (!until || !duration || !strikes || !escalated) return std::nullopt;
  Ban b;
  b.subject = std::move(subject);
  b.until = TimePoint(std::chrono::seconds(*until));
  b.duration = std::chrono::seconds(*duration);
  b.strikes = static_cast<int>(*strikes);
  b.escalated = *escalated != 0;
  b.reason = std::string(v);
  return b;
}

// The reason ends up inside a log line that fail2ban reads: one line, printable ASCII only.
std::string clean_reason(std::string_view r) {
  std::string out;
  for (char c : r.substr(0, 200))
    out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  return out;
}

net::IpAddress unmapped(const net::IpAddress& a) {
  // A client reaching an IPv6 socket over IPv4 shows up as ::ffff:a.b.c.d; it is the same
  // client as a.b.c.d and must share its strikes.
  if (a.is_v4()) return a;
  const auto& b = a.bytes();
  for (int i = 0; i < 10; ++i)
    if (b[i] != 0) return a;
  if (b[10] != 0xff || b[11] != 0xff) return a;
  return net::IpAddress::v4((std::uint32_t{b[12]} << 24) | (std::uint32_t{b[13]} << 16) |
                            (std::uint32_t{b[14]} << 8) | std::uint32_t{b[15]});
}

}  // namespace

Bans::Bans(std::shared_ptr<StateStore> store, BanSettings settings)
    : store_(std::move(store)),
      settings_(std::make_shared<const BanSettings>(std::move(settings))) {}

void Bans::update_settings(BanSettings settings) {
  auto s = std::make_shared<const BanSettings>(std::move(settings));
  std::lock_guard lock(mu_);
  settings_ = std::move(s);
}

std::shared_ptr<const BanSettings> Bans::settings() const {
  std::lock_guard lock(mu_);
  return settings_;
}

void Bans::set_exempt_hook(ExemptHook hook) {
  std::lock_guard lock(mu_);
  hook_ = std::move(hook);
}

std::string Bans::subject_of(const net::IpAddress& client) const {
  net::IpAddress a = unmapped(client);
  auto s = settings();
  int prefix = a.is_v4() ? s->v4_prefix : s->v6_prefix;
  if (prefix <= 0 || prefix >= a.bit_width()) return a.to_string();
  return net::Cidr(net::Cidr::masked(a, prefix), prefix).to_string();
}

bool Bans::allowed(const net::IpAddress& client) const {
  auto s = settings();
  return s->allow.contains(client) || s->allow.contains(unmapped(client));
}

std::optional<std::string_view> Bans::never_banned(const net::IpAddress& client) const {
  if (!settings()->ban_loopback && client.is_loopback()) return "loopback";
  if (allowed(client)) return "allow-networks";
  return std::nullopt;
}

std::string Bans::ban_line(const Ban& b) {
  return fmt::format("ban {} for {}s: {} strike{} ({})", b.subject, b.duration.count(), b.strikes,
                     b.strikes == 1 ? "" : "s", b.reason);
}

std::string Bans::unban_line(std::string_view subject) {
  return fmt::format("unban {}", subject);
}

void Bans::remember(const Ban& b) {
  std::lock_guard lock(mu_);
  auto it = seen_.find(b.subject);
  if (it != seen_.end()) {
    it->second = b.until;
  } else if (seen_.size() < kMaxSeen) {
    seen_.emplace(b.subject, b.until);
  }
}

std::size_t Bans::active_known() const {
  std::lock_guard lock(mu_);
  return seen_.size();
}

void Bans::forget_and_log(const std::string& subject) {
  bool was_seen = false;
  {
    std::lock_guard lock(mu_);
    was_seen = seen_.erase(subject) > 0;
  }
  if (was_seen) log(LogLevel::Notice, "{}", unban_line(subject));
}

StoreResult<std::optional<BanEvent>> Bans::record_strike(const net::IpAddress& client,
                                                         std::string_view reason, TimePoint now) {
  using R = std::optional<BanEvent>;
  if (auto why = never_banned(client)) {
    log(LogLevel::Debug, "no strike for {}: {} clients are never banned", client.to_string(), *why);
    return R();
  }
  auto s = settings();
  const std::string subject = subject_of(client);
  auto count = store_->incr_with_window("strikes:" + subject, s->window);
  if (!count) return unexpected(count.error());
  if (*count < s->strikes) return R();

  ExemptHook hook;
  {
    std::lock_guard lock(mu_);
    hook = hook_;
  }
  if (hook) {
    if (auto why = hook(client)) {
      log(LogLevel::Info, "not banning {}: {} strikes, but {}", subject, *count, *why);
      return R();
    }
  }

  auto history = store_->get("banned:" + subject);
  if (!history) return unexpected(history.error());
  Ban b;
  b.subject = subject;
  b.escalated = history->has_value();
  b.duration = b.escalated ? s->escalated_time : s->ban_time;
  b.until = std::chrono::time_point_cast<std::chrono::seconds>(now) + b.duration;
  b.strikes = static_cast<int>(*count);
  b.reason = clean_reason(reason);
  auto won = store_->set_if_absent("ban:" + subject, encode(b), b.duration);
  if (!won) return unexpected(won.error());
  if (!*won) return R();  // already banned, by us or by another MX host sharing the store
  // Start counting afresh after the ban; remember it for escalation until `escalation_window`
  // after it ends. Failures here cost only accuracy, not the ban.
  (void)store_->erase("strikes:" + subject);
  (void)store_->put("banned:" + subject, "1", b.duration + s->escalation_window);
  remember(b);
  BanEvent ev{b, ban_line(b)};
  log(LogLevel::Notice, "{}", ev.log_line);
  return R(std::move(ev));
}

StoreResult<std::optional<Ban>> Bans::is_banned(const net::IpAddress& client, TimePoint now) {
  using R = std::optional<Ban>;
  if (never_banned(client)) return R();
  const std::string subject = subject_of(client);
  auto v = store_->get("ban:" + subject);
  if (!v) return unexpected(v.error());
  std::optional<Ban> ban;
  if (v->has_value()) ban = decode(subject, **v);
  // The store's TTL and our clock may disagree by a moment; the recorded end time decides, so
  // that sweep() and is_banned() agree on when a ban is over.
  if (ban && ban->until > now) {
    remember(*ban);
    return ban;
  }
  forget_and_log(subject);
  return R();
}

std::size_t Bans::sweep(TimePoint now) {
  std::vector<std::string> ended;
  {
    std::lock_guard lock(mu_);
    for (const auto& [subject, until] : seen_)
      if (until <= now) ended.push_back(subject);
  }
  for (const auto& subject : ended)
    forget_and_log(subject);
  return ended.size();
}

StoreResult<bool> Bans::unban(const net::IpAddress& client) {
  const std::string subject = subject_of(client);
  auto r = store_->erase("ban:" + subject);
  if (!r) return r;
  bool was_seen = false;
  {
    std::lock_guard lock(mu_);
    was_seen = seen_.erase(subject) > 0;
  }
  if (*r || was_seen) log(LogLevel::Notice, "{}", unban_line(subject));
  return r;
}

bool matches_provider_suffix(std::string_view host, const std::vector<std::string>& suffixes) {
  std::string h = ascii_lowercase(host);
  while (!h.empty() && h.back() == '.')
    h.pop_back();
  for (const auto& raw : suffixes) {
    std::string s = ascii_lowercase(raw);
    while (!s.empty() && s.back() == '.')
      s.pop_back();
    if (!s.empty() && s.front() == '.') s.erase(0, 1);
    if (s.empty()) continue;
    if (h == s) return true;
    if (h.size() > s.size() && h.compare(h.size() - s.size(), s.size(), s) == 0 &&
        h[h.size() - s.size() - 1] == '.')
      return true;
  }
  return false;
}

}  // namespace mxguard::state
