#include "mxguard/dns/caching_resolver.h"

#include "mxguard/metrics.h"

#include <charconv>
#include <future>
#include <list>
#include <mutex>
#include <optional>
#include <unordered_map>

namespace mxguard::dns {

namespace {

constexpr std::size_t kShards = 16;

// canonical_name(name) + "/" + the type's number, built in one allocation: every route
// decision makes several of these.
std::string cache_key(std::string_view name, RrType type) {
  char digits[8];
  const char* end = std::to_chars(digits, digits + sizeof digits, static_cast<unsigned>(type)).ptr;
  std::string key;
  key.reserve(name.size() + 1 + static_cast<std::size_t>(end - digits));
  append_canonical_name(key, name);
  key.push_back('/');
  key.append(digits, static_cast<std::size_t>(end - digits));
  return key;
}

}  // namespace

struct CachingResolver::Shard {
  struct Entry {
    std::string key;
    SharedAnswer answer;  // never null
    Clock::time_point expires;
  };
  std::mutex mu;
  std::list<Entry> lru;  // most recently used first
  // Keys view the strings inside the list nodes, which never move: one copy of each key.
  std::unordered_map<std::string_view, std::list<Entry>::iterator> index;
  std::unordered_map<std::string, std::shared_future<DnsResult>> inflight;
  std::size_t capacity = 1;

  // Under mu. A fresh entry is moved to the front; a stale one is dropped.
  const Entry* find(std::string_view key, Clock::time_point now) {
    auto it = index.find(key);
    if (it == index.end()) return nullptr;
    if (it->second->expires <= now) {
      lru.erase(it->second);
      index.erase(it);
      return nullptr;
    }
    lru.splice(lru.begin(), lru, it->second);
    return &*it->second;
  }
  // Under mu. Returns how many entries were evicted.
  std::size_t put(std::string key, SharedAnswer answer, Clock::time_point expires) {
    if (auto it = index.find(key); it != index.end()) {
      lru.erase(it->second);
      index.erase(it);
    }
    lru.push_front(Entry{std::move(key), std::move(answer), expires});
    index.emplace(lru.front().key, lru.begin());
    std::size_t evicted = 0;
    while (lru.size() > capacity) {
      index.erase(lru.back().key);
      lru.pop_back();
      ++evicted;
    }
    return evicted;
  }
};

CachingResolver::CachingResolver(std::shared_ptr<Resolver> inner, CacheOptions o)
    : inner_(std::move(inner)), opts_(o), shards_(new Shard[kShards]), shard_count_(kShards) {
  const std::size_t per = std::max<std::size_t>(1, (opts_.max_entries + kShards - 1) / kShards);
  for (std::size_t i = 0; i < shard_count_; ++i)
    shards_[i].capacity = per;
}

CachingResolver::~CachingResolver() = default;

CachingResolver::Shard& CachingResolver::shard_for(const std::string& key) {
  return shards_[std::hash<std::string>{}(key) % shard_count_];
}

CachingResolver::Clock::duration CachingResolver::lifetime(const DnsAnswer& a) const {
  std::chrono::seconds ttl{a.ttl};
  const bool negative = a.status != DnsStatus::Ok && a.cname_target.empty();
  auto max = negative ? std::min(opts_.max_negative_ttl, opts_.max_ttl) : opts_.max_ttl;
  return std::clamp(ttl, std::min(opts_.min_ttl, max), max);
}

CachedAnswer CachingResolver::try_cached_until(std::string_view name, RrType type) {
  const std::string key = cache_key(name, type);
  Shard& s = shard_for(key);
  std::lock_guard lock(s.mu);
  if (const Shard::Entry* e = s.find(key, now())) {
    hits_++;
    return {e->answer, e->expires};
  }
  return {};
}

DnsResult CachingResolver::lookup(std::string_view name, RrType type) {
  std::string key = cache_key(name, type);
  Shard& s = shard_for(key);
  std::optional<std::promise<DnsResult>> promise;  // only on a miss: it allocates
  {
    std::unique_lock lock(s.mu);
    if (const Shard::Entry* e = s.find(key, now())) {
      hits_++;
      return *e->answer;
    }
    if (auto it = s.inflight.find(key); it != s.inflight.end()) {
      std::shared_future<DnsResult> f = it->second;
      lock.unlock();
      coalesced_++;
      return f.get();
    }
    promise.emplace();
    s.inflight.emplace(key, promise->get_future().share());
  }
  misses_++;
  std::optional<DnsResult> result;
  const auto started = std::chrono::steady_clock::now();
  try {
    result.emplace(inner_->lookup(name, type));
  } catch (const std::exception& e) {
    result.emplace(unexpected(DnsError{DnsError::Kind::Network, e.what()}));
  }
  metrics().observe_dns_query(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  {
    std::lock_guard lock(s.mu);
    if (*result) {
      evictions_ += s.put(key, std::make_shared<const DnsAnswer>(result->value()),
                          now() + lifetime(result->value()));
    } else {
      errors_++;
    }
    s.inflight.erase(key);
  }
  promise->set_value(*result);
  return std::move(*result);
}

CacheStats CachingResolver::stats() const {
  CacheStats st;
  st.hits = hits_;
  st.misses = misses_;
  st.coalesced = coalesced_;
  st.errors = errors_;
  st.evictions = evictions_;
  for (std::size_t i = 0; i < shard_count_; ++i) {
    std::lock_guard lock(shards_[i].mu);
    st.entries += shards_[i].lru.size();
  }
  return st;
}

}  // namespace mxguard::dns
