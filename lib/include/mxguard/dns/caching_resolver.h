// CachingResolver: a Resolver decorator that remembers answers for their TTL (clamped to
// [min_ttl, max_ttl]) and negative answers for their SOA-derived TTL (RFC 2308, capped at
// max_negative_ttl), holds at most max_entries (least recently used evicted first), and makes
// concurrent lookups of one name and type share a single query: the first caller asks, the
// others wait for its answer. Errors are not cached (the next caller asks again), but they
// are shared with the callers that were waiting.
// Who uses it: the daemon's route analysis (one per configuration), `mxguard audit`.
// Thread-safety: fully internally synchronised. The cache is split into shards, each with its
// own mutex held only for map updates, never across a query.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>

#include "mxguard/dns/resolver.h"

namespace mxguard::dns {

struct CacheOptions {
  std::size_t max_entries = 100000;
  std::chrono::seconds min_ttl{10};
  std::chrono::seconds max_ttl{86400};
  std::chrono::seconds max_negative_ttl{3600};
};

struct CacheStats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;     // queries sent to the inner resolver
  std::uint64_t coalesced = 0;  // lookups that waited for another caller's query
  std::uint64_t errors = 0;     // inner lookups that failed
  std::uint64_t evictions = 0;
  std::size_t entries = 0;
};

class CachingResolver final : public Resolver {
 public:
  using Clock = std::chrono::steady_clock;
  CachingResolver(std::shared_ptr<Resolver> inner, CacheOptions o);
  ~CachingResolver() override;

  DnsResult lookup(std::string_view name, RrType type) override;
  CachedAnswer try_cached_until(std::string_view name, RrType type) override;
  Clock::time_point now() const override { return now_ ? now_() : Clock::now(); }

  CacheStats stats() const;
  // Tests move time forward without sleeping.
  void set_clock(std::function<Clock::time_point()> now) { now_ = std::move(now); }
  Resolver& inner() { return *inner_; }

 private:
  struct Shard;
  Shard& shard_for(const std::string& key);
  Clock::duration lifetime(const DnsAnswer& a) const;

  std::shared_ptr<Resolver> inner_;
  CacheOptions opts_;
  std::function<Clock::time_point()> now_;
  std::unique_ptr<Shard[]> shards_;
  std::size_t shard_count_;
  std::atomic<std::uint64_t> hits_{0}, misses_{0}, coalesced_{0}, errors_{0}, evictions_{0};
};

}  // namespace mxguard::dns
