// Bans: strikes against client addresses, and the bans they earn.
// A strike is evidence that a client ignores DNS (mail for a null-MX or website-only domain that
// DNS could not have sent here, a hit on a trap MX). Strikes count in a fixed window that opens
// at the first one; `strikes` of them within `window` ban the client for `ban_time`; a client
// banned again within `escalation_window` after its previous ban ended gets `escalated_time`.
// Addresses may be aggregated (all of a /24 or /64 share strikes and a ban), because one host
// often owns a whole IPv6 /64. Loopback clients (127.0.0.0/8, ::1: webmail, local submission,
// content filters re-injecting) are never struck nor banned unless `ban_loopback` is set (test
// set-ups that play remote clients from loopback addresses); trusted and authenticated
// clients get no strike from the checks that call record_strike (they skip it, and say so at
// debug level). Allow-listed networks are never banned; the caller may add an
// exemption hook (forward-confirmed reverse DNS of big providers), asked only when a strike
// would otherwise ban, so DNS is consulted once per would-be ban, not once per strike.
//
// The log lines, stable for fail2ban (packaging/fail2ban/filter.d/mxguard.conf):
//   ban 203.0.113.7 for 1800s: 3 strikes (unhandled domain product.com)
//   ban 2001:db8:1:2::/64 for 86400s: 3 strikes (trap 192.0.2.25)
//   unban 203.0.113.7
// "ban" is logged once, by the process that issued the ban (with shared Redis: exactly one MX
// host, the one whose set-if-absent won). "unban" is logged by every process that issued or
// enforced the ban, once, when it first notices that the ban has ended: at the next is_banned()
// lookup of that client or at the next sweep() (the maintenance thread calls it every few
// seconds), whichever comes first.
//
// Who calls it: the unhandled-domain and trap-mx checks (record_strike), the ban check at
// connect (is_banned), the maintenance thread (sweep). Thread-safety: all members may be called
// concurrently; update_settings() swaps the settings under a lock.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "mxguard/net/ip.h"
#include "mxguard/state/store.h"

namespace mxguard::state {

struct BanSettings {
  int strikes = 3;
  std::chrono::seconds window{std::chrono::minutes(10)};
  std::chrono::seconds ban_time{std::chrono::minutes(30)};
  std::chrono::seconds escalated_time{std::chrono::hours(24)};
  std::chrono::seconds escalation_window{std::chrono::hours(24)};
  int v4_prefix = 32;  // 32: per address
  int v6_prefix = 64;  // 128: per address
  net::CidrSet allow{};
  // Loopback clients may be struck and banned like any other (ban-loopback; tests only).
  bool ban_loopback = false;
  // Host name suffixes (".google.com") of providers never banned once their FCrDNS checks out;
  // used by the caller's exemption hook (see matches_provider_suffix).
  std::vector<std::string> provider_suffixes{};
};

struct Ban {
  std::string subject;  // "203.0.113.7", or "203.0.113.0/24" when aggregated
  TimePoint until;
  std::chrono::seconds duration{0};
  int strikes = 0;
  bool escalated = false;
  std::string reason;  // of the strike that tipped it: "unhandled domain product.com"
};

struct BanEvent {
  Ban ban;
  std::string log_line;  // as logged: "ban 203.0.113.7 for 1800s: 3 strikes (...)"
};

// Returns why the client must never be banned ("fcrdns mail-yw1.google.com"), or nothing.
using ExemptHook = std::function<std::optional<std::string>(const net::IpAddress&)>;

class Bans {
 public:
  Bans(std::shared_ptr<StateStore> store, BanSettings settings);

  void update_settings(BanSettings settings);
  std::shared_ptr<const BanSettings> settings() const;
  void set_exempt_hook(ExemptHook hook);
  StateStore& store() { return *store_; }

  // Counts one strike; returns the ban it caused, if it caused one (and logs the ban line).
  // Allow-listed and (unless ban_loopback) loopback clients get no strike.
  StoreResult<std::optional<BanEvent>> record_strike(const net::IpAddress& client,
                                                     std::string_view reason, TimePoint now);
  // The ban in force for this client (its own or its aggregate's), if any.
  StoreResult<std::optional<Ban>> is_banned(const net::IpAddress& client, TimePoint now);
  // Logs "unban" for bans seen by this process that have ended by `now`; returns how many.
  std::size_t sweep(TimePoint now);
  // Lifts a ban by hand (admin tooling); logs "unban" if there was one.
  StoreResult<bool> unban(const net::IpAddress& client);

  // Bans in force that this process knows of (issued or enforced here), for the metrics.
  std::size_t active_known() const;

  // What strikes and bans are kept under: the address, or its aggregate network.
  std::string subject_of(const net::IpAddress& client) const;
  bool allowed(const net::IpAddress& client) const;
  // Why this client is never struck nor banned ("loopback", "allow-networks"), or nothing.
  std::optional<std::string_view> never_banned(const net::IpAddress& client) const;

  static std::string ban_line(const Ban& b);
  static std::string unban_line(std::string_view subject);

 private:
  void remember(const Ban& b);
  void forget_and_log(const std::string& subject);

  std::shared_ptr<StateStore> store_;
  mutable std::mutex mu_;  // guards settings_, hook_, seen_; never held across a store call
  std::shared_ptr<const BanSettings> settings_;
  ExemptHook hook_;
  std::map<std::string, TimePoint, std::less<>> seen_;  // bans in force that we know of
};

// True when `host` (a verified PTR name) ends in one of the suffixes at a label boundary:
// ".google.com" and "google.com" both match "mail-yw1.google.com", never "evilgoogle.com".
bool matches_provider_suffix(std::string_view host, const std::vector<std::string>& suffixes);

}  // namespace mxguard::state
