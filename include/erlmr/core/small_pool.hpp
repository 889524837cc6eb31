// erlmr/core/small_pool.hpp — a free-list pool for the engine's small objects.
//
// A training step builds and drops the same graph every iteration: a few thousand
// nodes, backward rules, tensor handles, parent lists and tape vectors. Their tensor
// buffers come from the BlockCache; this pool does the same for the small objects, so
// that in steady state a step makes no call into the system allocator at all (a test
// counts operator new calls to hold this).
//
// Blocks are kept in per-size-class free lists (powers of two from 16 B to 64 KiB) and
// given back to the system only beyond kMaxCachedBytes or by trim(); larger requests go
// straight to operator new. One mutex per size class: blocks may be freed by another thread than
// the one that took them (a worker of parallel_for may create a tensor the caller
// drops), so the lists are shared rather than per thread. Under AddressSanitizer a
// cached block is poisoned past its 16-byte link, so a use after free is still reported.
//
// PoolAllocator<T> is a standard allocator over the pool (for std::allocate_shared and
// containers); PoolVector<T> a std::vector that uses it. This header includes only the
// standard library and is C++17 (the CUDA kernels, compiled as C++17, include the block
// cache, which uses it).
#pragma once
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define ERLMR_POOL_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define ERLMR_POOL_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define ERLMR_POOL_POISON(p, n) ((void)(p), (void)(n))
#define ERLMR_POOL_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace erlmr {

class SmallPool {
 public:
  static constexpr std::size_t kMinBytes = 16, kMaxBytes = std::size_t(1) << 16;
  static constexpr int kClasses = 13;  // 16 B, 32 B, …, 64 KiB
  // At most this much stays cached (a step needs about a megabyte); beyond it, freed blocks
  // go back to the system, so one huge graph does not pin its memory for good.
  static constexpr std::size_t kMaxCachedBytes = std::size_t(64) << 20;
  static_assert((kMinBytes << (kClasses - 1)) == kMaxBytes);

  static SmallPool& instance() {
    static SmallPool* p = new SmallPool();  // never destroyed: objects may be freed during static destruction
    return *p;
  }
  static int size_class(std::size_t bytes) {
    int c = 0;  // the smallest c with (16 << c) >= bytes
    while ((kMinBytes << c) < bytes) ++c;
    return c;
  }
  static std::size_t class_bytes(int c) { return kMinBytes << c; }

  void* allocate(std::size_t bytes) {
    if (bytes > kMaxBytes) return ::operator new(bytes);
    const int c = size_class(bytes);
    {
      std::lock_guard<std::mutex> g(m_[std::size_t(c)]);
      if (Free* f = head_[std::size_t(c)]) {
        ERLMR_POOL_UNPOISON(f, class_bytes(c));
        head_[std::size_t(c)] = f->next;
        cached_.fetch_sub(class_bytes(c), std::memory_order_relaxed);
        hits_.fetch_add(1, std::memory_order_relaxed);
        return f;
      }
      misses_.fetch_add(1, std::memory_order_relaxed);
    }
    return ::operator new(class_bytes(c));
  }
  void deallocate(void* p, std::size_t bytes) noexcept {
    if (!p) return;
    const int c = bytes > kMaxBytes ? kClasses : size_class(bytes);
    if (c == kClasses || cached_.load(std::memory_order_relaxed) + class_bytes(c) > kMaxCachedBytes) {
      ::operator delete(p);
      return;
    }
    std::lock_guard<std::mutex> g(m_[std::size_t(c)]);
    Free* f = static_cast<Free*>(p);
    f->next = head_[std::size_t(c)];
    head_[std::size_t(c)] = f;
    cached_.fetch_add(class_bytes(c), std::memory_order_relaxed);
    // The link stays readable (LeakSanitizer follows it: cached blocks are not leaks).
    ERLMR_POOL_POISON(static_cast<char*>(p) + kMinBytes, class_bytes(c) - kMinBytes);
  }
  // Gives every cached block back to the system.
  void trim() {
    for (int c = 0; c < kClasses; ++c) {
      std::lock_guard<std::mutex> g(m_[std::size_t(c)]);
      while (Free* f = head_[std::size_t(c)]) {
        ERLMR_POOL_UNPOISON(f, class_bytes(c));
        head_[std::size_t(c)] = f->next;
        cached_.fetch_sub(class_bytes(c), std::memory_order_relaxed);
        ::operator delete(f);
      }
    }
  }
  // Requests served from a free list, and requests that went to operator new.
  std::uint64_t hits() const { return hits_.load(std::memory_order_relaxed); }
  std::uint64_t misses() const { return misses_.load(std::memory_order_relaxed); }
  std::size_t cached_bytes() const { return cached_.load(std::memory_order_relaxed); }

 private:
  struct Free {
    Free* next;
  };
  SmallPool() = default;
  std::array<std::mutex, kClasses> m_;
  std::array<Free*, kClasses> head_{};
  std::atomic<std::uint64_t> hits_{0}, misses_{0};
  std::atomic<std::size_t> cached_{0};
};

template <class T> struct PoolAllocator {
  using value_type = T;
  static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__, "PoolAllocator: over-aligned type");
  PoolAllocator() noexcept = default;
  template <class U> PoolAllocator(const PoolAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    if (n > std::size_t(-1) / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T*>(SmallPool::instance().allocate(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept { SmallPool::instance().deallocate(p, n * sizeof(T)); }
  template <class U> bool operator==(const PoolAllocator<U>&) const noexcept { return true; }
};

template <class T> using PoolVector = std::vector<T, PoolAllocator<T>>;

// A move-only std::function whose callable lives in a pool block (std::function puts
// any capture larger than two pointers on the heap): the backward rules.
template <class Sig> class PoolFunction;
template <class R, class... A> class PoolFunction<R(A...)> {
 public:
  PoolFunction() noexcept = default;
  PoolFunction(std::nullptr_t) noexcept {}
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, PoolFunction>>>
  PoolFunction(F&& f) {  // NOLINT: implicit like std::function
    using Impl = Model<std::decay_t<F>>;
    static_assert(alignof(Impl) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__, "PoolFunction: over-aligned callable");
    void* mem = SmallPool::instance().allocate(sizeof(Impl));
    try {
      p_ = ::new (mem) Impl(std::forward<F>(f));
    } catch (...) {
      SmallPool::instance().deallocate(mem, sizeof(Impl));
      throw;
    }
  }
  PoolFunction(PoolFunction&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  PoolFunction& operator=(PoolFunction&& o) noexcept {
    if (this != &o) {
      reset();
      p_ = std::exchange(o.p_, nullptr);
    }
    return *this;
  }
  PoolFunction& operator=(std::nullptr_t) noexcept {
    reset();
    return *this;
  }
  PoolFunction(const PoolFunction&) = delete;
  PoolFunction& operator=(const PoolFunction&) = delete;
  ~PoolFunction() { reset(); }

  explicit operator bool() const noexcept { return p_ != nullptr; }
  R operator()(A... a) const { return p_->call(std::forward<A>(a)...); }

 private:
  struct Concept {
    virtual R call(A... a) = 0;
    virtual std::size_t size() const noexcept = 0;
    virtual ~Concept() = default;
  };
  template <class F> struct Model final : Concept {
    F f;
    template <class G> explicit Model(G&& g) : f(std::forward<G>(g)) {}
    R call(A... a) override { return f(std::forward<A>(a)...); }
    std::size_t size() const noexcept override { return sizeof(Model); }
  };
  void reset() noexcept {
    if (!p_) return;
    // The callable's destructor may release the last handle on objects whose own
    // destruction reaches back into this function's owner: detach first.
    Concept* p = std::exchange(p_, nullptr);
    const std::size_t n = p->size();
    p->~Concept();
    SmallPool::instance().deallocate(p, n);
  }
  Concept* p_ = nullptr;
};

}  // namespace erlmr
