// StoreLedger: the ledger as keys of a StateStore (Redis for a fleet). One round trip per key
// recorded or looked up; "ledger:since" is read at most once a minute (by housekeeping) and
// written by the first record of a process and then once every 32nd of the lifetime while
// records come, so that it expires only after a whole lifetime without a record.
#include <fmt/format.h>

#include <charconv>
#include <utility>

#include "mxguard/log.h"
#include "mxguard/state/ledger.h"

namespace mxguard::state {

namespace {

constexpr auto kReread = std::chrono::minutes(1);

std::int64_t to_ms(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::optional<std::int64_t> parse_ms(std::string_view s) {
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

struct Since {
  TimePoint at;
  std::uint64_t fingerprint = 0;
};

// "<ms since the epoch> <key fingerprint, 16 hex>"
std::optional<Since> parse_since(std::string_view v) {
  auto sp = v.find(' ');
  if (sp == std::string_view::npos) return std::nullopt;
  auto ms = parse_ms(v.substr(0, sp));
  std::string_view hex = v.substr(sp + 1);
  std::uint64_t fp = 0;
  auto [p, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), fp, 16);
  if (!ms || hex.empty() || ec != std::errc() || p != hex.data() + hex.size()) return std::nullopt;
  return Since{TimePoint(std::chrono::milliseconds(*ms)), fp};
}

std::string since_value(TimePoint at, std::uint64_t fingerprint) {
  return fmt::format("{} {:016x}", to_ms(at), fingerprint);
}

}  // namespace

StoreLedger::StoreLedger(std::shared_ptr<StateStore> store, LedgerKeys keys,
                         std::chrono::milliseconds lifetime)
    : Ledger(std::move(keys)), store_(std::move(store)), lifetime_(lifetime) {}

StoreResult<Done> StoreLedger::record(std::span<const LedgerKey> keys, TimePoint now) {
  const std::string value = std::to_string(to_ms(now));
  std::optional<StoreError> error;
  for (const LedgerKey& k : keys) {
    auto r = store_->put(store_key(k), value, lifetime_);
    if (r) {
      recorded_.fetch_add(1, std::memory_order_relaxed);
    } else if (!error) {
      error = r.error();
    }
  }
  bool first = false;
  {
    std::lock_guard lock(mu_);
    recorded_since_kept_ = true;
    first = !since_;
  }
  // The first record makes the ledger say it is recording at once, not a minute later.
  if (first && !keys.empty()) keep_since(now);
  if (error) return unexpected(std::move(*error));
  return Done{};
}

StoreResult<bool> StoreLedger::contains(std::span<const LedgerKey> keys, TimePoint now) {
  const std::int64_t now_ms = to_ms(now);
  std::optional<StoreError> error;
  for (const LedgerKey& k : keys) {
    auto r = store_->get_confirmed(store_key(k));
    if (!r) {
      if (!error) error = r.error();
      continue;
    }
    if (!*r) continue;
    // The store's expiry is the bound; the recorded time only guards against a store whose
    // clock runs behind ours.
    auto at = parse_ms(**r);
    if (!at || *at + lifetime_.count() > now_ms) return true;
  }
  if (error) return unexpected(std::move(*error));
  return false;
}

StoreResult<std::optional<TimePoint>> StoreLedger::read_since() {
  auto v = store_->get_confirmed(kSinceKey);
  if (!v) return unexpected(v.error());
  std::optional<TimePoint> since;
  bool foreign = false;
  if (*v) {
    if (auto s = parse_since(**v)) {
      if (s->fingerprint == keys().fingerprint()) {
        since = s->at;
      } else {
        foreign = true;
      }
    }
  }
  std::lock_guard lock(mu_);
  if (foreign && !std::exchange(foreign_logged_, true))
    log(LogLevel::Error,
        "ledger: the shared ledger in {} was started under another ledger key: this host's "
        "records cannot prove the others' mail, nor theirs this host's; copy the ledger key "
        "file of the other hosts here and restart",
        store_->describe());
  since_ = since;
  since_known_ = true;
  return since;
}

StoreResult<std::optional<TimePoint>> StoreLedger::recording_since() {
  {
    std::lock_guard lock(mu_);
    if (since_known_) return since_;
  }
  return read_since();
}

void StoreLedger::keep_since(TimePoint now) {
  std::unique_lock keeping(keep_mu_, std::try_to_lock);
  if (!keeping) return;  // another thread is at it
  auto v = store_->get_confirmed(kSinceKey);
  if (!v) return;  // tried again at the next housekeeping
  if (*v) {
    auto s = parse_since(**v);
    // Another key's ledger is left to expire; read_since() says so in the log.
    if (s && s->fingerprint != keys().fingerprint()) {
      (void)read_since();
    } else {
      (void)store_->put(kSinceKey, s ? **v : since_value(now, keys().fingerprint()), lifetime_);
      (void)read_since();
    }
  } else {
    auto won = store_->set_if_absent(kSinceKey, since_value(now, keys().fingerprint()), lifetime_);
    if (!won) return;
    (void)read_since();  // ours, or the one of a host that was quicker
  }
  std::lock_guard lock(mu_);
  since_read_at_ = since_kept_at_ = now;
  recorded_since_kept_ = false;
}

void StoreLedger::housekeeping(TimePoint now) {
  const auto keep_every = std::max<std::chrono::milliseconds>(kReread, lifetime_ / 32);
  bool keep = false, reread = false;
  {
    std::lock_guard lock(mu_);
    keep = recorded_since_kept_ && (now - since_kept_at_ >= keep_every || now < since_kept_at_);
    reread = !since_known_ || now - since_read_at_ >= kReread || now < since_read_at_;
  }
  if (keep) {
    keep_since(now);
  } else if (reread && read_since()) {
    std::lock_guard lock(mu_);
    since_read_at_ = now;
  }
}

LedgerStats StoreLedger::stats() const {
  LedgerStats s;
  s.recorded = recorded_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace mxguard::state
