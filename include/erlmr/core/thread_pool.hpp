// erlmr/core/thread_pool.hpp — a small persistent pool behind CpuDevice::parallel_for.
//
// Determinism contract: work is cut into chunks whose boundaries depend only on
// the problem size and the grain. Each chunk is executed by exactly one thread and
// writes a disjoint part of the output, so the result of any parallel_for is bitwise
// identical for 1, 2 or N threads. Where a caller's grain depends on the thread count
// (CpuDevice::block_grain, simd::gemm_nt's tile chunks), the items are independent:
// no item's result depends on which chunk it falls in.
// Reductions are done per chunk into a per-chunk slot and combined in chunk
// order by the caller. A parallel_for nested inside a chunk runs serially.
#pragma once
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <type_traits>
#include <mutex>
#include <thread>
#include <vector>

namespace erlmr {

// A non-owning reference to the chunk function of one run() (no allocation per
// parallel_for, unlike a std::function holding the caller's lambda).
class ChunkFn {
 public:
  ChunkFn() = default;
  // f must outlive the run() it is passed to (a lambda written in the call does).
  template <class F>
    requires(!std::is_same_v<std::decay_t<F>, ChunkFn>)
  ChunkFn(F&& f)  // NOLINT: implicit
      : obj_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
        call_([](void* o, std::int64_t c) { (*static_cast<std::remove_reference_t<F>*>(o))(c); }) {}
  void operator()(std::int64_t c) const { call_(obj_, c); }
  explicit operator bool() const { return call_ != nullptr; }

 private:
  void* obj_ = nullptr;
  void (*call_)(void*, std::int64_t) = nullptr;
};

class ThreadPool {
 public:
  static ThreadPool& instance() {
    static ThreadPool pool;
    return pool;
  }

  int num_threads() const { return num_threads_; }

  // Sets the number of threads used by parallel_for (the caller counts as one).
  void set_num_threads(int n) {
    n = std::max(1, n);
    std::lock_guard<std::mutex> g(resize_mutex_);
    stop_workers();
    num_threads_ = n;
    start_workers(n - 1);
  }

  // Runs f(chunk_index) for chunk_index in [0, chunks). Blocks until all are done.
  // Exceptions thrown by f are rethrown (the first one) in the calling thread.
  void run(std::int64_t chunks, ChunkFn f) {
    if (chunks <= 0) return;
    if (chunks == 1 || num_threads_ == 1 || in_parallel_) {
      for (std::int64_t c = 0; c < chunks; ++c) f(c);
      return;
    }
    std::lock_guard<std::mutex> job_guard(job_mutex_);  // one job at a time
    {
      std::lock_guard<std::mutex> g(m_);
      job_ = f;
      chunks_ = chunks;
      next_.store(0);
      pending_.store(static_cast<int>(workers_.size()));
      error_ = nullptr;
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();  // wakes the workers that stopped spinning (no system call when none sleeps)
    in_parallel_ = true;  // a nested parallel_for from the caller's chunks runs serially
    work();               // the caller takes chunks too
    in_parallel_ = false;
    // The workers are usually finishing their last chunk: spin briefly before sleeping.
    for (int s = 0; s < kSpin && pending_.load(std::memory_order_acquire) != 0; ++s) cpu_relax();
    std::unique_lock<std::mutex> lk(m_);
    done_cv_.wait(lk, [&] { return pending_.load(std::memory_order_acquire) == 0; });
    job_ = ChunkFn();
    if (error_) std::rethrow_exception(error_);
  }

  ~ThreadPool() { stop_workers(); }

 private:
  ThreadPool() {
    unsigned hw = std::thread::hardware_concurrency();
    num_threads_ = hw == 0 ? 1 : static_cast<int>(hw);
    start_workers(num_threads_ - 1);
  }

  void work() {
    for (;;) {
      const std::int64_t c = next_.fetch_add(1);
      if (c >= chunks_) break;
      try {
        job_(c);
      } catch (...) {
        std::lock_guard<std::mutex> g(m_);
        if (!error_) error_ = std::current_exception();
      }
    }
  }

  // Pause instruction for spin-waits (or nothing where there is none).
  static void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }

  // A worker spins for about kSpin pauses (tens of microseconds) for the next job before it
  // sleeps on the condition variable: a training step runs hundreds of short parallel_for
  // calls with short serial gaps between them, and a futex sleep/wake costs several
  // microseconds each way. Which thread runs which chunk is unchanged by this, so results
  // stay bitwise identical.
  static constexpr int kSpin = 1 << 12;

  void worker_loop() {
    in_parallel_ = true;
    std::uint64_t seen = 0;
    for (;;) {
      for (int s = 0; s < kSpin && generation_.load(std::memory_order_acquire) == seen; ++s) cpu_relax();
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return stop_ || generation_.load(std::memory_order_relaxed) != seen; });
        if (stop_) return;
        seen = generation_.load(std::memory_order_relaxed);
      }
      work();
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> g(m_);  // under the lock: the caller cannot miss the notification
        done_cv_.notify_one();
      }
    }
  }

  void start_workers(int n) {
    stop_ = false;
    for (int i = 0; i < n; ++i) workers_.emplace_back([this] { worker_loop(); });
  }
  void stop_workers() {
    {
      std::lock_guard<std::mutex> g(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  int num_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex m_, job_mutex_, resize_mutex_;
  std::condition_variable cv_, done_cv_;
  ChunkFn job_;
  std::int64_t chunks_ = 0;
  std::atomic<std::int64_t> next_{0};
  std::atomic<int> pending_{0};
  std::atomic<std::uint64_t> generation_{0};
  bool stop_ = false;
  std::exception_ptr error_;
  static inline thread_local bool in_parallel_ = false;
};

inline int num_threads() { return ThreadPool::instance().num_threads(); }
inline void set_num_threads(int n) { ThreadPool::instance().set_num_threads(n); }

}  // namespace erlmr
