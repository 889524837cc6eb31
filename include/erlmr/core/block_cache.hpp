// erlmr/core/block_cache.hpp — a caching allocator over any memory backend.
//
// Freed blocks are kept in per-size free lists (sizes rounded up to the backend's
// alignment) and handed out again, so a training step that allocates the same tensors
// every iteration reaches a steady state with no calls into the system allocator (on
// the host: no page faults on fresh pages; on a GPU: no cudaMalloc/cudaFree, which
// synchronise the device). At most Backend::kMaxCachedBytes stay cached; beyond that,
// freed blocks go back to the backend. When the backend is out of memory, the cache is
// released and the allocation tried once more.
//
// Backend: static constexpr std::size_t kAlignment, kMaxCachedBytes;
//          static void* alloc(std::size_t)   (nullptr when out of memory)
//          static void free(void*)
//          [[noreturn]] static void out_of_memory(std::size_t bytes)
// This header includes only the standard library and small_pool.hpp (the CUDA kernels
// include it too).
#pragma once
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "erlmr/core/small_pool.hpp"

namespace erlmr {

template <class Backend>
class BlockCache {
 public:
  static constexpr std::size_t kAlignment = Backend::kAlignment;

  static BlockCache& instance() {
    static BlockCache* c = new BlockCache();  // never destroyed: tensors may outlive statics
    return *c;
  }
  static std::size_t rounded(std::size_t bytes) {
    if (bytes == 0) bytes = kAlignment;
    return (bytes + kAlignment - 1) / kAlignment * kAlignment;
  }
  void* get(std::size_t bytes) {
    const std::size_t r = rounded(bytes);
    {
      std::lock_guard<std::mutex> g(m_);
      auto it = free_.find(r);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_ -= r;
        sizes_[p] = r;
        ++hits_;
        return p;
      }
      ++misses_;
    }
    void* p = Backend::alloc(r);
    if (!p) {  // give the cached blocks back and try once more
      release();
      p = Backend::alloc(r);
      if (!p) Backend::out_of_memory(r);
    }
    std::lock_guard<std::mutex> g(m_);
    sizes_[p] = r;
    return p;
  }
  void put(void* p) {
    if (!p) return;
    std::lock_guard<std::mutex> g(m_);
    auto it = sizes_.find(p);
    if (it == sizes_.end()) return;
    const std::size_t r = it->second;
    sizes_.erase(it);
    if (cached_ + r > Backend::kMaxCachedBytes) {
      Backend::free(p);
      return;
    }
    free_[r].push_back(p);
    cached_ += r;
  }
  // Returns every cached block to the backend.
  void release() {
    std::lock_guard<std::mutex> g(m_);
    for (auto& [r, v] : free_)
      for (void* p : v) Backend::free(p);
    free_.clear();
    cached_ = 0;
  }
  // Allocations that had to go to the backend (a steady-state step adds none).
  std::uint64_t system_allocations() const {
    std::lock_guard<std::mutex> g(m_);
    return misses_;
  }
  std::size_t cached_bytes() const {
    std::lock_guard<std::mutex> g(m_);
    return cached_;
  }

 private:
  BlockCache() = default;
  mutable std::mutex m_;
  // The maps' nodes come from the small-object pool, so the bookkeeping of a cache hit
  // does not allocate either.
  template <class K, class V>
  using Map = std::unordered_map<K, V, std::hash<K>, std::equal_to<K>, PoolAllocator<std::pair<const K, V>>>;
  Map<std::size_t, std::vector<void*>> free_;
  Map<void*, std::size_t> sizes_;
  std::size_t cached_ = 0;
  std::uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace erlmr
