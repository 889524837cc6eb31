// erlmr/core/device.hpp — the device trait.
//
// A device is a plain struct of static functions, in the manner of Eigen's
// DefaultDevice: allocate, deallocate, copy, fill, parallel_for, num_threads.
// Storage and kernels are templated on the device type; op code that only uses
// these functions (and Eigen maps on host devices) is device-agnostic. The CUDA
// device (erlmr/cuda/device.hpp, optional) provides the same members plus its own
// kernels for the ops, selected by overload on the device type, never by a
// runtime switch.
#pragma once
#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include <Eigen/Core>

#include "erlmr/core/thread_pool.hpp"

namespace erlmr {

template <class D>
concept Device = requires(std::size_t n, void* p, const void* q, std::int64_t m) {
  { D::allocate(n) } -> std::same_as<void*>;
  D::deallocate(p);
  D::copy(p, q, n);              // device-to-device copy of n bytes
  D::copy_from_host(p, q, n);
  D::copy_to_host(p, q, n);
  D::zero(p, n);
  { D::num_threads() } -> std::convertible_to<int>;
  { D::is_host } -> std::convertible_to<bool>;
};

// A caching host allocator: freed blocks are kept in per-size free lists and handed
// out again, so a training step that allocates the same tensors every iteration
// reaches a steady state with no calls into malloc and no page faults (fresh pages
// from the OS are what made a large first-touch cost). Blocks are cache-line aligned.
// At most kMaxCachedBytes stay cached; beyond that, freed blocks go back to the system.
class HostBlockCache {
 public:
  static constexpr std::size_t kAlignment = 64;
  static constexpr std::size_t kMaxCachedBytes = std::size_t(2) << 30;

  static HostBlockCache& instance() {
    static HostBlockCache* c = new HostBlockCache();  // never destroyed: tensors may outlive statics
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
    void* p = std::aligned_alloc(kAlignment, r);
    if (!p) throw std::bad_alloc();
    std::lock_guard<std::mutex> g(m_);
    sizes_[p] = r;
    return p;
  }
  void put(void* p) {
    if (!p) return;
    std::lock_guard<std::mutex> g(m_);
    auto it = sizes_.find(p);
    const std::size_t r = it->second;
    sizes_.erase(it);
    if (cached_ + r > kMaxCachedBytes) {
      std::free(p);
      return;
    }
    free_[r].push_back(p);
    cached_ += r;
  }
  // Returns every cached block to the system.
  void release() {
    std::lock_guard<std::mutex> g(m_);
    for (auto& [r, v] : free_)
      for (void* p : v) std::free(p);
    free_.clear();
    cached_ = 0;
  }
  // Allocations that had to go to the system (a steady-state step adds none).
  std::uint64_t system_allocations() const {
    std::lock_guard<std::mutex> g(m_);
    return misses_;
  }
  std::size_t cached_bytes() const {
    std::lock_guard<std::mutex> g(m_);
    return cached_;
  }

 private:
  HostBlockCache() = default;
  mutable std::mutex m_;
  std::unordered_map<std::size_t, std::vector<void*>> free_;
  std::unordered_map<void*, std::size_t> sizes_;
  std::size_t cached_ = 0;
  std::uint64_t hits_ = 0, misses_ = 0;
};

// add_inplace(dst, src, n) (dst += src, used by the tape to accumulate adjoints) and
// fill(p, n, v) are also expected of every device; they are templates, so the concept
// cannot name them.
struct CpuDevice {
  static constexpr bool is_host = true;
  static constexpr std::size_t kAlignment = HostBlockCache::kAlignment;  // a cache line; enough for AVX-512

  static void* allocate(std::size_t bytes) { return HostBlockCache::instance().get(bytes); }
  static void deallocate(void* p) { HostBlockCache::instance().put(p); }
  static void copy(void* dst, const void* src, std::size_t bytes) {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  static void copy_from_host(void* dst, const void* src, std::size_t bytes) { copy(dst, src, bytes); }
  static void copy_to_host(void* dst, const void* src, std::size_t bytes) { copy(dst, src, bytes); }
  static void zero(void* p, std::size_t bytes) {
    if (bytes) std::memset(p, 0, bytes);
  }
  template <class T> static void fill(T* p, std::int64_t n, const T& v) { std::fill(p, p + n, v); }
  // dst[i] += src[i] (gradient accumulation in the tape).
  template <class T> static void add_inplace(T* dst, const T* src, std::int64_t n) {
    using A = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
    A(dst, n) += A(const_cast<T*>(src), n);
  }

  static int num_threads() { return ThreadPool::instance().num_threads(); }

  // Calls f(begin, end) over [0, n) in chunks of `grain` elements. Chunk
  // boundaries depend on n and grain only, so results never depend on the
  // thread count (see thread_pool.hpp).
  template <class F> static void parallel_for(std::int64_t n, std::int64_t grain, F&& f) {
    if (n <= 0) return;
    grain = std::max<std::int64_t>(1, grain);
    const std::int64_t chunks = (n + grain - 1) / grain;
    if (chunks == 1) {
      f(std::int64_t{0}, n);
      return;
    }
    ThreadPool::instance().run(chunks, [&](std::int64_t c) {
      const std::int64_t b = c * grain;
      f(b, std::min(n, b + grain));
    });
  }
};

static_assert(Device<CpuDevice>);

}  // namespace erlmr
