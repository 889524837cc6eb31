// tools/cuda_emu/shim/cuda_runtime.h — the device side of the CPU emulation: kernel
// qualifiers, the built-in index variables, __syncthreads and kernel launches.
//
// Launches are produced by tools/cuda_emu/rewrite.py, which turns
//   kernel<<<grid, block, shmem, stream>>>(args...);
// into a call of emu::launch(...). The arguments are evaluated and copied at the launch
// (as CUDA does); the kernel runs later, when the queue is flushed.
//  * Kernels that (transitively) call __syncthreads run each block's threads as
//    cooperative fibers (ucontext): thread 0 runs until it reaches the barrier, then
//    thread 1, ..., and all are released together — a correct barrier. Reaching a barrier
//    with only some of the block's threads (the others exited) is reported as an error.
//  * All other kernels run the block's threads one after another.
// Shared memory (__shared__) is a static array per kernel instantiation, refilled with
// 0xFF garbage by thread 0 of each block at the declaration.
#pragma once
#include <cmath>
#include <math.h>

#include <tuple>
#include <utility>

#include "cuda_runtime_api.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __restrict__ __restrict
#define __launch_bounds__(...)

inline thread_local uint3 threadIdx{0, 0, 0};
inline thread_local uint3 blockIdx{0, 0, 0};
inline thread_local dim3 blockDim{1, 1, 1};
inline thread_local dim3 gridDim{1, 1, 1};
constexpr int warpSize = 32;

inline unsigned int __umulhi(unsigned int a, unsigned int b) {
  return static_cast<unsigned int>((static_cast<unsigned long long>(a) * b) >> 32);
}

namespace emu {

struct Fiber {
  ucontext_t ctx;
  char* stack = nullptr;
  bool done = false, at_barrier = false;
  uint3 tid;
};
struct BlockRun {
  ucontext_t sched;
  std::vector<Fiber> fibers;
  int current = -1;
  bool cooperative = false;  // true inside a fiber-run kernel
  std::function<void()>* body = nullptr;
  long barriers = 0;
};
inline thread_local BlockRun* block_run = nullptr;
constexpr std::size_t kFiberStack = 256 * 1024;

inline void fiber_entry() {
  BlockRun* br = block_run;
  (*br->body)();
  br->fibers[br->current].done = true;
  swapcontext(&br->fibers[br->current].ctx, &br->sched);
}

}  // namespace emu

inline void __syncthreads() {
  emu::BlockRun* br = emu::block_run;
  if (!br || !br->cooperative) {
    if (blockDim.x * blockDim.y * blockDim.z == 1) return;
    emu::fatal("__syncthreads in a kernel that rewrite.py did not mark as using barriers (run sequentially): "
               "the emulation cannot run it; mark it in rewrite.py");
  }
  emu::Fiber& f = br->fibers[br->current];
  f.at_barrier = true;
  swapcontext(&f.ctx, &br->sched);
}

namespace emu {

// Shared memory starts as garbage in every block: the first thread of a block (in
// execution order) to reach a __shared__ declaration refills the array with 0xFF.
inline thread_local std::uint64_t block_epoch = 0;
template <class T> void shared_poison(T* p, std::size_t bytes) {
  static thread_local std::map<const void*, std::uint64_t> seen;
  auto& e = seen[static_cast<const void*>(p)];
  if (e != block_epoch) {
    e = block_epoch;
    std::memset(static_cast<void*>(p), 0xFF, bytes);
  }
}

template <class A> void check_arg(const char* kernel, int i, const A& a) {
  if constexpr (std::is_pointer_v<A> && !std::is_function_v<std::remove_pointer_t<A>>) {
    if (a != nullptr && !find_alloc(a))
      fatal(std::string("kernel ") + kernel + ": pointer argument #" + std::to_string(i) +
            " is not in device memory (a host pointer, or a freed/out-of-range device pointer)");
  }
}
template <class A> void open_arg(OpenSet& o, const A& a) {
  if constexpr (std::is_pointer_v<A> && !std::is_function_v<std::remove_pointer_t<A>>) o.add(a);
}

// EMU_ORDER=reverse runs blocks and threads in reverse order (results of a race-free
// kernel cannot depend on it; compare runs to expose order dependence).
inline const bool reverse_order = [] {
  const char* e = std::getenv("EMU_ORDER");
  return e && std::string(e) == "reverse";
}();
inline unsigned ord(unsigned i, unsigned n) { return reverse_order ? n - 1 - i : i; }

inline void run_block_sequential(dim3 block, const std::function<void()>& body) {
  for (unsigned z = 0; z < block.z; ++z)
    for (unsigned y = 0; y < block.y; ++y)
      for (unsigned x = 0; x < block.x; ++x) {
        threadIdx = uint3{ord(x, block.x), ord(y, block.y), ord(z, block.z)};
        body();
      }
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wclobbered"
inline void run_block_fibers(dim3 block, std::function<void()>& body, const char* kernel) {
  static thread_local std::vector<char*> stacks;
  const unsigned nt = block.x * block.y * block.z;
  while (stacks.size() < nt) {
    void* m = mmap(nullptr, kFiberStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) fatal("fiber stack mmap failed");
    stacks.push_back(static_cast<char*>(m));
  }
  BlockRun br;
  br.cooperative = true;
  br.body = &body;
  br.fibers.resize(nt);
  for (unsigned t = 0; t < nt; ++t) {
    Fiber& f = br.fibers[t];
    f.tid = uint3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
    f.stack = stacks[t];
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = kFiberStack;
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, fiber_entry, 0);
  }
  BlockRun* saved = block_run;
  block_run = &br;
  for (;;) {
    unsigned alive = 0, waiting = 0;
    for (unsigned u = 0; u < nt; ++u) {
      const unsigned t = ord(u, nt);
      Fiber& f = br.fibers[t];
      if (f.done || f.at_barrier) continue;
      br.current = static_cast<int>(t);
      threadIdx = f.tid;
      swapcontext(&br.sched, &f.ctx);
    }
    for (auto& f : br.fibers) {
      if (!f.done) ++alive;
      if (f.at_barrier) ++waiting;
    }
    if (alive == 0) break;
    if (waiting != alive) fatal("internal: fiber neither done nor waiting");
    if (waiting != nt)
      fatal(std::string("kernel ") + kernel + ": __syncthreads reached by " + std::to_string(waiting) + " of " +
            std::to_string(nt) + " threads of block (" + std::to_string(blockIdx.x) +
            ") while the others have exited (divergent barrier)");
    for (auto& f : br.fibers) f.at_barrier = false;
    ++br.barriers;
  }
  block_run = saved;
  ++state().fiber_blocks;
  state().barriers += br.barriers;
}
#pragma GCC diagnostic pop

// The launch: checks the configuration now (errors go to cudaGetLastError), queues the run.
template <class K, class... A>
void launch(bool cooperative, const char* kernel, const char* where, dim3 grid, dim3 block, std::size_t shmem,
            cudaStream_t stream, long max_threads, K k, A... args) {
  const unsigned long long nt = 1ull * block.x * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || block.x == 0 || block.y == 0 || block.z == 0 || nt > 1024 ||
      block.x > 1024 || block.y > 1024 || block.z > 64 || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535 ||
      shmem > 48 * 1024) {
    std::fprintf(stderr, "CUDA-EMU: invalid launch configuration of %s at %s: grid (%u,%u,%u) block (%u,%u,%u)\n",
                 kernel, where, grid.x, grid.y, grid.z, block.x, block.y, block.z);
    emu_set_error(cudaErrorInvalidConfiguration);
    return;
  }
  if (max_threads > 0 && nt > static_cast<unsigned long long>(max_threads)) {
    std::fprintf(stderr, "CUDA-EMU: %s launched with %llu threads per block > __launch_bounds__(%ld) at %s\n", kernel,
                 nt, max_threads, where);
    emu_set_error(cudaErrorLaunchOutOfResources);
    return;
  }
  if (!valid_stream(stream)) {
    emu_set_error(cudaErrorInvalidResourceHandle);
    return;
  }
  {
    int i = 0;
    (check_arg(kernel, i++, args), ...);
  }
  ++state().launches;
  auto tup = std::make_tuple(args...);
  enqueue([=]() mutable {
    auto& st = state();
    st.current_op = std::string("kernel ") + kernel + " launched at " + where;
    ++st.runs[kernel];
    OpenSet o;
    std::apply([&](const auto&... a) { (open_arg(o, a), ...); }, tup);
    std::function<void()> body = [&] { std::apply(k, tup); };
    const dim3 saved_g = gridDim, saved_b = blockDim;
    const uint3 saved_bi = blockIdx, saved_ti = threadIdx;
    gridDim = grid;
    blockDim = block;
    for (unsigned z = 0; z < grid.z; ++z)
      for (unsigned y = 0; y < grid.y; ++y)
        for (unsigned x = 0; x < grid.x; ++x) {
          blockIdx = uint3{ord(x, grid.x), ord(y, grid.y), ord(z, grid.z)};
          ++block_epoch;
          if (cooperative) run_block_fibers(block, body, kernel);
          else run_block_sequential(block, body);
        }
    gridDim = saved_g;
    blockDim = saved_b;
    blockIdx = saved_bi;
    threadIdx = saved_ti;
    st.current_op.clear();
  });
}

}  // namespace emu
