// tools/cuda_emu/shim/cuda_runtime.h — the device side of the CPU emulation: kernel
// qualifiers, the built-in index variables, __syncthreads and kernel launches.
//
// Launches are produced by tools/cuda_emu/rewrite.py, which turns
//   kernel<<<grid, block, shmem, stream>>>(args...);
// into a call of emu::launch(...). The arguments are evaluated and copied at the launch
// (as CUDA does); the kernel runs later, when the queue is flushed.
//  * Kernels that (transitively) call __syncthreads run each block's threads as
//    cooperative fibers: thread 0 runs until it reaches the barrier, then thread 1, ...,
//    and all are released together — a correct barrier. Reaching a barrier with only some
//    of the block's threads (the others exited) is reported as an error. On x86-64 the
//    fibers switch with a minimal stack switch (below; glibc's swapcontext makes an
//    rt_sigprocmask system call and saves the x87 environment on every switch, which was
//    most of the emulator's run time); elsewhere with ucontext.
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

// EMU_ORDER=reverse runs blocks and threads in reverse order (results of a race-free
// kernel cannot depend on it; compare runs to expose order dependence).
inline const bool reverse_order = [] {
  const char* e = std::getenv("EMU_ORDER");
  return e && std::string(e) == "reverse";
}();
inline unsigned ord(unsigned i, unsigned n) { return reverse_order ? n - 1 - i : i; }

// ---- fiber context switch -------------------------------------------------------------------
// Ctx holds a suspended fiber's (or the scheduler's) machine state; ctx_switch(from, to)
// saves the running context into `from` and resumes `to`. A fresh fiber (ctx_init) starts
// in fiber_main on its own stack.
#if defined(__x86_64__) && defined(__linux__) && !(defined(__CET__) && (__CET__ & 2))
#define EMU_FIBER_ASM 1
// The x86-64 SysV switch: pushes the callee-saved registers (rbp rbx r12-r15) onto the
// running stack, stores the stack pointer in *save_sp, loads new_sp and pops the same
// frame from there. Caller-saved registers need no saving (the switch is an ordinary call
// to the compiler), and the signal mask is per OS thread and never changed by fibers, so
// unlike swapcontext no system call is made. The floating-point control state (MXCSR,
// x87 control word; callee-saved in the ABI) is not switched either: saving and loading
// it cost more than the rest of the switch, and it is one state for the whole block, so
// run_block_fibers checks after every round that no thread changed it (fp_control).
// A fresh fiber's stack holds such a frame whose return address is emu_fiber_start,
// which calls the function whose address is in r12 (fiber_main) on a 16-byte aligned
// stack; its CFI marks the end of the call chain, as glibc's __start_context does, so
// backtrace() in a fault inside a fiber stops there.
// (Not built when the compiler targets shadow stacks (-fcf-protection=return/full): a
// `ret` onto a new stack would fault there, so that configuration uses ucontext.)
// A COMDAT group, as this header is included by many translation units.
extern "C" void emu_fiber_switch(void** save_sp, void* new_sp);
extern "C" void emu_fiber_start();
asm(R"(
  .pushsection .text.emu_fiber_switch,"axG",@progbits,emu_fiber_switch,comdat
  .weak emu_fiber_switch
  .hidden emu_fiber_switch
  .type emu_fiber_switch, @function
  .p2align 4
emu_fiber_switch:
  .cfi_startproc
  pushq %rbp
  .cfi_adjust_cfa_offset 8
  pushq %rbx
  .cfi_adjust_cfa_offset 8
  pushq %r12
  .cfi_adjust_cfa_offset 8
  pushq %r13
  .cfi_adjust_cfa_offset 8
  pushq %r14
  .cfi_adjust_cfa_offset 8
  pushq %r15
  .cfi_adjust_cfa_offset 8
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  .cfi_adjust_cfa_offset -8
  popq %r14
  .cfi_adjust_cfa_offset -8
  popq %r13
  .cfi_adjust_cfa_offset -8
  popq %r12
  .cfi_adjust_cfa_offset -8
  popq %rbx
  .cfi_adjust_cfa_offset -8
  popq %rbp
  .cfi_adjust_cfa_offset -8
  ret
  .cfi_endproc
  .size emu_fiber_switch, .-emu_fiber_switch

  .weak emu_fiber_start
  .hidden emu_fiber_start
  .type emu_fiber_start, @function
  .p2align 4
emu_fiber_start:
  .cfi_startproc
  .cfi_undefined rip
  xorl %ebp, %ebp
  callq *%r12
  ud2
  .cfi_endproc
  .size emu_fiber_start, .-emu_fiber_start
  .popsection
)");
struct Ctx {
  void* sp = nullptr;
};
inline void ctx_switch(Ctx& from, Ctx& to) { emu_fiber_switch(&from.sp, to.sp); }
inline void ctx_init(Ctx& c, char* stack, std::size_t size, void (*fn)()) {
  // the frame emu_fiber_switch pops: r15 r14 r13 r12 rbx rbp, return address
  auto* top = reinterpret_cast<std::uint64_t*>(reinterpret_cast<std::uintptr_t>(stack + size) & ~std::uintptr_t(15));
  std::uint64_t* sp = top - 9;  // sp[6] = return address; after the ret rsp = top - 2, 16-byte aligned
  sp[0] = sp[1] = sp[2] = 0;                    // r15 r14 r13
  sp[3] = reinterpret_cast<std::uint64_t>(fn);  // r12: called by emu_fiber_start
  sp[4] = sp[5] = 0;                            // rbx rbp
  sp[6] = reinterpret_cast<std::uint64_t>(&emu_fiber_start);
  sp[7] = sp[8] = 0;
  c.sp = sp;
}
// MXCSR and the x87 control word, which emu_fiber_switch does not switch.
inline std::uint64_t fp_control() {
  std::uint32_t mxcsr;
  std::uint16_t fpucw;
  asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(mxcsr), "=m"(fpucw));
  return mxcsr | (std::uint64_t(fpucw) << 32);
}
#else
struct Ctx {
  ucontext_t uc;
};
inline void ctx_switch(Ctx& from, Ctx& to) { swapcontext(&from.uc, &to.uc); }
inline std::uint64_t fp_control() { return 0; }  // swapcontext switches it
inline void ctx_init(Ctx& c, char* stack, std::size_t size, void (*fn)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, fn, 0);
}
#endif

struct Fiber {
  Ctx ctx;
  bool done = false, at_barrier = false;
  uint3 tid;
};
struct BlockRun {
  Ctx sched;
  std::vector<Fiber> fibers;
  unsigned nt = 0;   // threads in the block
  int current = -1;  // the running thread (index into fibers)
  unsigned pos = 0;  // its position in this round's execution order (ord)
  bool cooperative = false;  // true inside a fiber-run kernel
  std::function<void()>* body = nullptr;
  long barriers = 0;
};
inline thread_local BlockRun* block_run = nullptr;
constexpr std::size_t kFiberStack = 256 * 1024;
// Fiber stacks: the one of thread t is mapped once and reused by every block. Each has a
// PROT_NONE guard page below it, so a stack overflow faults instead of overwriting the
// neighbouring mapping (often the next fiber's stack). The top of stack t is offset by
// (t % 128) * 512 bytes ("colouring"): with equal offsets the suspended frames of all
// threads sit at the same address modulo 256 KiB, i.e. in the same few cache sets, and
// every switch missed the cache. Every stack keeps at least kFiberStack usable bytes.
constexpr std::size_t kFiberColour = 512, kFiberColours = 128;
struct FiberStack {
  char* lo;          // lowest usable byte (just above the guard page)
  std::size_t size;  // usable bytes
};
inline const FiberStack& fiber_stack(unsigned t) {
  static thread_local std::vector<FiberStack> stacks;
  while (stacks.size() <= t) {
    const std::size_t colour = (stacks.size() % kFiberColours) * kFiberColour;
    const std::size_t len = kPage + kFiberStack + kFiberColours * kFiberColour;
    void* m = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) fatal("fiber stack mmap failed");
    if (mprotect(m, kPage, PROT_NONE) != 0) fatal("fiber stack guard mprotect failed");
    stacks.push_back(FiberStack{static_cast<char*>(m) + kPage, kFiberStack + colour});
  }
  return stacks[t];
}

// Switches from `self` to the first thread at a position ≥ `from` of this round's
// execution order that has neither finished nor reached the barrier, or, when there is
// none (the round is over), back to the scheduler (run_block_fibers). A thread that
// leaves hands over directly to the next one: one switch per thread and round instead of
// two through the scheduler, in the same order.
inline void run_next(BlockRun* br, Ctx& self, unsigned from) {
  for (unsigned u = from; u < br->nt; ++u) {
    const unsigned t = ord(u, br->nt);
    Fiber& f = br->fibers[t];
    if (f.done || f.at_barrier) continue;
    br->current = static_cast<int>(t);
    br->pos = u;
    threadIdx = f.tid;
    ctx_switch(self, f.ctx);
    return;
  }
  if (&self != &br->sched) ctx_switch(self, br->sched);
}

inline void fiber_main() {
  BlockRun* br = block_run;
  (*br->body)();
  Fiber& f = br->fibers[br->current];
  f.done = true;
  run_next(br, f.ctx, br->pos + 1);
  fatal("internal: a finished fiber was resumed");
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
  emu::run_next(br, f.ctx, br->pos + 1);
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
  const unsigned nt = block.x * block.y * block.z;
  BlockRun br;
  br.cooperative = true;
  br.body = &body;
  br.fibers.resize(nt);
  br.nt = nt;
  for (unsigned t = 0; t < nt; ++t) {
    Fiber& f = br.fibers[t];
    f.tid = uint3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
    const FiberStack& s = fiber_stack(t);
    ctx_init(f.ctx, s.lo, s.size, fiber_main);
  }
  BlockRun* saved = block_run;
  block_run = &br;
  const std::uint64_t fpc = fp_control();
  for (;;) {
    unsigned alive = 0, waiting = 0;
    run_next(&br, br.sched, 0);  // runs every thread of the round in order, up to the barrier or its end
    if (fp_control() != fpc)
      fatal(std::string("kernel ") + kernel + " changed the floating-point control state (MXCSR / x87 control "
            "word), which the emulator's fiber switch does not keep per thread");
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
