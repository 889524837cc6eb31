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

#include "erlmr/core/block_cache.hpp"
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

// Host memory for the caching allocator (core/block_cache.hpp): cache-line aligned
// blocks from aligned_alloc; at most 2 GiB kept cached.
struct HostMemory {
  static constexpr std::size_t kAlignment = 64;
  static constexpr std::size_t kMaxCachedBytes = std::size_t(2) << 30;
  static void* alloc(std::size_t bytes) { return std::aligned_alloc(kAlignment, bytes); }
  static void free(void* p) { std::free(p); }
  [[noreturn]] static void out_of_memory(std::size_t) { throw std::bad_alloc(); }
};
using HostBlockCache = BlockCache<HostMemory>;

// add_inplace(dst, src, n) (dst += src, used by the tape to accumulate adjoints),
// fill(p, n, v), axpy(y, a, x, n) and scale_inplace(p, k, n) are also expected of every
// device; they are templates, so the concept cannot name them.
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

  // y += a·x and p *= k (gradient arithmetic of the rebalancing methods, train/method.hpp).
  template <class T> static void axpy(T* y, const T& a, const T* x, std::int64_t n) {
    using A = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
    A(y, n) += a * A(const_cast<T*>(x), n);
  }
  template <class T> static void scale_inplace(T* p, const T& k, std::int64_t n) {
    Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(p, n) *= k;
  }

  static int num_threads() { return ThreadPool::instance().num_threads(); }

  // The grain that gives each thread one contiguous block of [0, n): for loops whose items
  // write interleaved memory — per-channel loops over (N, C, ·) tensors, where channel c's
  // segments border channel c ± 1's in every sample — so that neighbouring items are not
  // split between cores that would then fight over the cache lines they share (false
  // sharing; with grain 1, batch norm ran 2–3× slower on two threads than on one). The
  // grain depends on the thread count, so only for items that are independent of each
  // other (no reduction across items): the chunking then cannot change any result.
  static std::int64_t block_grain(std::int64_t n) {
    const std::int64_t t = num_threads();
    return std::max<std::int64_t>(1, (n + t - 1) / t);
  }

  // Calls f(begin, end) over [0, n) in chunks of `grain` elements. Chunk
  // boundaries depend on n and grain only (see thread_pool.hpp); a grain that depends
  // on the thread count, as block_grain's, is for independent items only.
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
