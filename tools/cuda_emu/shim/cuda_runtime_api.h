// tools/cuda_emu/shim/cuda_runtime_api.h — a CPU emulation of the part of the CUDA
// runtime API that erlmr uses, for running the CUDA test program without a GPU.
//
// Faithfulness rules (so that real bugs show up rather than being hidden):
//  * Device memory is NOT host memory: every cudaMalloc gets its own mmap with
//    PROT_NONE guard pages on both sides, and the data pages stay PROT_NONE except
//    while a device operation (kernel, memcpy, memset, GEMM) that was handed a pointer
//    into that allocation is executing. Host code dereferencing a device pointer, a
//    kernel reading a device buffer it was not given, and out-of-bounds accesses past
//    the (256-byte rounded) end all fault; the SIGSEGV handler says which.
//  * Fresh allocations are filled with 0xFF bytes (NaN for float/double, -1 for
//    integers), as cudaMalloc leaves memory uninitialised.
//  * Work is asynchronous: kernels, async copies/memsets and GEMMs are queued in
//    stream order and run only at a synchronisation point (cudaStreamSynchronize,
//    cudaDeviceSynchronize, cudaFree, synchronous cudaMemcpy/cudaMemset), so host code
//    that reads results without synchronising sees stale data. (EMU_SYNC=1 in the
//    environment runs every operation at once instead, for debugging.)
//  * Kernel pointer arguments must be null or point into a live device allocation.
//  * Launch configurations are checked (block ≤ 1024 threads, __launch_bounds__,
//    grid limits); errors are returned by cudaGetLastError like the real runtime.
#pragma once
#include <execinfo.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

// ---- types -------------------------------------------------------------------------------
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorIllegalAddress = 700,
};
typedef enum cudaError_t cudaError;
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};
enum cudaDeviceAttr { cudaDevAttrMaxThreadsPerBlock = 1, cudaDevAttrWarpSize = 10, cudaDevAttrMultiProcessorCount = 16 };
struct CUstream_st {
  unsigned flags;
};
typedef CUstream_st* cudaStream_t;
struct CUevent_st {
  int dummy;
};
typedef CUevent_st* cudaEvent_t;
#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01

struct uint3 {
  unsigned int x, y, z;
};
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};
struct float2 {
  float x, y;
};
struct alignas(16) double2 {
  double x, y;
};

struct cudaDeviceProp {
  char name[256];
  std::size_t totalGlobalMem;
  std::size_t sharedMemPerBlock;
  int regsPerBlock;
  int warpSize;
  int maxThreadsPerBlock;
  int maxThreadsDim[3];
  int maxGridSize[3];
  int major;
  int minor;
  int multiProcessorCount;
};

// ---- the emulator's state ------------------------------------------------------------------
namespace emu {

[[noreturn]] inline void fatal(const std::string& msg) {
  std::fprintf(stderr, "\n*** CUDA-EMU ERROR: %s\n", msg.c_str());
  void* frames[64];
  const int n = backtrace(frames, 64);
  backtrace_symbols_fd(frames, n, 2);
  std::fflush(stderr);
  std::_Exit(134);
}

constexpr std::size_t kPage = 4096;
struct Alloc {
  char* map;          // the whole mapping (guard page, data pages, guard page)
  std::size_t map_len;
  char* data;         // first data page
  std::size_t data_len;
  char* base;         // the pointer cudaMalloc returned; base + rounded == data + data_len
  std::size_t size;   // requested bytes
  std::size_t rounded;
  int open = 0;       // > 0 while a device operation may touch it
  std::uint64_t serial;
};

struct State {
  std::mutex m;
  std::map<std::uintptr_t, Alloc> allocs;  // keyed by base
  std::deque<std::function<void()>> queue;
  bool sync_mode = std::getenv("EMU_SYNC") != nullptr;
  bool flushing = false;
  std::string current_op;  // the device operation running now (for diagnostics)
  std::uint64_t serial = 0, launches = 0, mallocs = 0, gemms = 0;
  std::set<CUstream_st*> streams;
  std::map<std::string, long> runs;  // kernel name -> blocks-of-work executed (launches run)
  long fiber_blocks = 0, barriers = 0;
};
void print_stats();
inline State& state() {
  static State* s = [] {
    auto* p = new State();
    std::atexit(print_stats);
    return p;
  }();
  return *s;
}
inline void print_stats() {
  auto& st = state();
  long runs = 0;
  for (auto& [k, v] : st.runs) runs += v;
  std::fprintf(stderr,
               "CUDA-EMU: %ld kernel launches run (%zu distinct kernels), %ld blocks run as fibers with %ld "
               "barriers, %llu GEMMs, %llu cudaMallocs, %zu allocations live\n",
               runs, st.runs.size(), st.fiber_blocks, st.barriers, (unsigned long long)st.gemms,
               (unsigned long long)st.mallocs, st.allocs.size());
  if (std::getenv("EMU_STATS"))
    for (auto& [k, v] : st.runs) std::fprintf(stderr, "  %8ld  %s\n", v, k.c_str());
}
inline thread_local cudaError_t last_error = cudaSuccess;

inline std::size_t round_up(std::size_t v, std::size_t a) { return (v + a - 1) / a * a; }

// The allocation containing p (base ≤ p < base + rounded), or null.
inline Alloc* find_alloc(const void* p) {
  auto& st = state();
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  auto it = st.allocs.upper_bound(a);
  if (it == st.allocs.begin()) return nullptr;
  --it;
  Alloc& al = it->second;
  if (a >= it->first && a < it->first + al.rounded) return &al;
  return nullptr;
}
// The allocation whose whole mapping (guards included) contains p.
inline Alloc* find_mapping(const void* p) {
  auto& st = state();
  const char* c = static_cast<const char*>(p);
  for (auto& [k, al] : st.allocs)
    if (c >= al.map && c < al.map + al.map_len) return &al;
  return nullptr;
}
inline bool is_device_ptr(const void* p) { return p && find_alloc(p) != nullptr; }

inline void open_alloc(Alloc* a) {
  if (a->open++ == 0 && mprotect(a->data, a->data_len, PROT_READ | PROT_WRITE) != 0) fatal("mprotect (open) failed");
}
inline void close_alloc(Alloc* a) {
  if (--a->open == 0 && mprotect(a->data, a->data_len, PROT_NONE) != 0) fatal("mprotect (close) failed");
}

// Opens every allocation a pointer points into for the duration of a device operation.
struct OpenSet {
  std::vector<Alloc*> open;
  void add(const void* p) {
    if (!p) return;
    if (Alloc* a = find_alloc(p)) {
      open_alloc(a);
      open.push_back(a);
    }
  }
  ~OpenSet() {
    for (Alloc* a : open) close_alloc(a);
  }
};

inline void segv_handler(int sig, siginfo_t* si, void*) {
  const void* addr = si->si_addr;
  auto& st = state();
  char buf[512];
  Alloc* a = nullptr;
  for (auto& [k, al] : st.allocs)
    if (static_cast<const char*>(addr) >= al.map && static_cast<const char*>(addr) < al.map + al.map_len) a = &al;
  const char* op = st.current_op.empty() ? "(host code, no device operation running)" : st.current_op.c_str();
  if (a) {
    const long off = static_cast<const char*>(addr) - a->base;
    const char* what = (off >= 0 && static_cast<std::size_t>(off) < a->rounded)
                           ? (st.current_op.empty() ? "HOST CODE DEREFERENCED DEVICE MEMORY"
                                                    : "device operation touched an allocation it was not given")
                           : "OUT-OF-BOUNDS access to device memory";
    std::snprintf(buf, sizeof buf,
                  "\n*** CUDA-EMU SIGSEGV: %s\n    address %p = allocation #%llu [base %p, %zu bytes requested, %zu "
                  "rounded] offset %ld\n    during: %s\n",
                  what, addr, (unsigned long long)a->serial, (void*)a->base, a->size, a->rounded, off, op);
  } else {
    std::snprintf(buf, sizeof buf, "\n*** CUDA-EMU SIGSEGV at %p (not device memory)\n    during: %s\n", addr, op);
  }
  (void)!write(2, buf, std::strlen(buf));
  void* frames[64];
  const int n = backtrace(frames, 64);
  backtrace_symbols_fd(frames, n, 2);
  signal(sig, SIG_DFL);
  std::_Exit(139);
}
inline bool install_handler() {
  static char altstack[1 << 16];
  stack_t ss{};
  ss.ss_sp = altstack;
  ss.ss_size = sizeof altstack;
  sigaltstack(&ss, nullptr);
  struct sigaction sa {};
  sa.sa_sigaction = segv_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigaction(SIGSEGV, &sa, nullptr);
  sigaction(SIGBUS, &sa, nullptr);
  return true;
}
inline const bool handler_installed = install_handler();

// Runs queued device work in order (the "GPU").
inline void flush() {
  auto& st = state();
  if (st.flushing) return;
  st.flushing = true;
  while (!st.queue.empty()) {
    auto f = std::move(st.queue.front());
    st.queue.pop_front();
    f();
  }
  st.flushing = false;
}
inline void enqueue(std::function<void()> f) {
  auto& st = state();
  st.queue.push_back(std::move(f));
  if (st.sync_mode) flush();
}
inline bool valid_stream(cudaStream_t s) { return s == nullptr || state().streams.count(s) != 0; }

}  // namespace emu

// ---- the runtime API -----------------------------------------------------------------------
inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
  }
  return "cudaErrorUnknown";
}
inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    default: return cudaGetErrorName(e);
  }
}
inline cudaError_t emu_set_error(cudaError_t e) {
  if (e != cudaSuccess) emu::last_error = e;
  return e;
}
inline cudaError_t cudaGetLastError() {
  const cudaError_t e = emu::last_error;
  emu::last_error = cudaSuccess;
  return e;
}
inline cudaError_t cudaPeekAtLastError() { return emu::last_error; }

inline cudaError_t cudaGetDeviceCount(int* n) {
  if (!n) return emu_set_error(cudaErrorInvalidValue);
  *n = 1;
  return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* d) {
  if (!d) return emu_set_error(cudaErrorInvalidValue);
  *d = 0;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : emu_set_error(cudaErrorInvalidValue); }
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
  if (!p || d != 0) return emu_set_error(cudaErrorInvalidValue);
  std::memset(p, 0, sizeof *p);
  std::snprintf(p->name, sizeof p->name, "CPU emulation (tools/cuda_emu)");
  p->totalGlobalMem = std::size_t(80) << 30;
  p->sharedMemPerBlock = 48 << 10;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsDim[0] = 1024;
  p->maxThreadsDim[1] = 1024;
  p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 0x7fffffff;
  p->maxGridSize[1] = 65535;
  p->maxGridSize[2] = 65535;
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = 132;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int d) {
  if (!v || d != 0) return emu_set_error(cudaErrorInvalidValue);
  switch (a) {
    case cudaDevAttrMultiProcessorCount: *v = 132; return cudaSuccess;
    case cudaDevAttrMaxThreadsPerBlock: *v = 1024; return cudaSuccess;
    case cudaDevAttrWarpSize: *v = 32; return cudaSuccess;
  }
  return emu_set_error(cudaErrorInvalidValue);
}

inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  if (!s) return emu_set_error(cudaErrorInvalidValue);
  *s = new CUstream_st{flags};
  std::lock_guard<std::mutex> g(emu::state().m);
  emu::state().streams.insert(*s);
  return cudaSuccess;
}
inline cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }
inline cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (!s || !emu::state().streams.count(s)) return emu_set_error(cudaErrorInvalidResourceHandle);
  emu::flush();
  emu::state().streams.erase(s);
  delete s;
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (!emu::valid_stream(s)) return emu_set_error(cudaErrorInvalidResourceHandle);
  emu::flush();
  return cudaSuccess;
}
inline cudaError_t cudaDeviceSynchronize() {
  emu::flush();
  return cudaSuccess;
}

inline cudaError_t cudaMalloc(void** p, std::size_t bytes) {
  if (!p) return emu_set_error(cudaErrorInvalidValue);
  if (bytes == 0) {
    *p = nullptr;
    return cudaSuccess;
  }
  if (bytes > (std::size_t(80) << 30)) return emu_set_error(cudaErrorMemoryAllocation);
  auto& st = emu::state();
  emu::Alloc a{};
  a.size = bytes;
  a.rounded = emu::round_up(bytes, 256);
  a.data_len = emu::round_up(a.rounded, emu::kPage);
  a.map_len = a.data_len + 2 * emu::kPage;
  void* m = mmap(nullptr, a.map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return emu_set_error(cudaErrorMemoryAllocation);
  a.map = static_cast<char*>(m);
  a.data = a.map + emu::kPage;
  a.base = a.data + (a.data_len - a.rounded);
  mprotect(a.data, a.data_len, PROT_READ | PROT_WRITE);
  std::memset(a.data, 0xFF, a.data_len);  // uninitialised: NaN / -1 pattern
  mprotect(a.data, a.data_len, PROT_NONE);
  std::lock_guard<std::mutex> g(st.m);
  a.serial = ++st.serial;
  ++st.mallocs;
  st.allocs[reinterpret_cast<std::uintptr_t>(a.base)] = a;
  *p = a.base;
  return cudaSuccess;
}
inline cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  emu::flush();  // cudaFree synchronises the device
  auto& st = emu::state();
  std::lock_guard<std::mutex> g(st.m);
  auto it = st.allocs.find(reinterpret_cast<std::uintptr_t>(p));
  if (it == st.allocs.end()) {
    std::fprintf(stderr, "CUDA-EMU: cudaFree of %p, which is not the base of a live device allocation\n", p);
    return emu_set_error(cudaErrorInvalidDevicePointer);
  }
  if (it->second.open) emu::fatal("cudaFree of an allocation that a device operation is using");
  munmap(it->second.map, it->second.map_len);
  st.allocs.erase(it);
  return cudaSuccess;
}

namespace emu {
// Checks that [p, p + bytes) lies inside one device allocation.
inline bool device_range(const void* p, std::size_t bytes, const char* what) {
  Alloc* a = find_alloc(p);
  if (!a) return false;
  const std::size_t off = static_cast<const char*>(p) - a->base;
  if (off + bytes > a->size)
    fatal(std::string(what) + ": " + std::to_string(bytes) + " bytes at offset " + std::to_string(off) +
          " run past the end of a device allocation of " + std::to_string(a->size) + " bytes");
  return true;
}
}  // namespace emu

inline cudaError_t emu_memcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind, cudaStream_t s,
                              bool sync) {
  if (!emu::valid_stream(s)) return emu_set_error(cudaErrorInvalidResourceHandle);
  if (bytes == 0) return cudaSuccess;
  if (!dst || !src) return emu_set_error(cudaErrorInvalidValue);
  const bool dd = emu::device_range(dst, bytes, "cudaMemcpy destination");
  const bool sd = emu::device_range(src, bytes, "cudaMemcpy source");
  bool ok = true;
  switch (kind) {
    case cudaMemcpyHostToDevice: ok = dd && !sd; break;
    case cudaMemcpyDeviceToHost: ok = !dd && sd; break;
    case cudaMemcpyDeviceToDevice: ok = dd && sd; break;
    case cudaMemcpyHostToHost: ok = !dd && !sd; break;
    case cudaMemcpyDefault: ok = true; break;
    default: return emu_set_error(cudaErrorInvalidMemcpyDirection);
  }
  if (!ok) {
    std::fprintf(stderr, "CUDA-EMU: cudaMemcpy kind %d with dst %s, src %s\n", int(kind), dd ? "device" : "host",
                 sd ? "device" : "host");
    return emu_set_error(cudaErrorInvalidValue);
  }
  emu::enqueue([=] {
    auto& st = emu::state();
    st.current_op = "cudaMemcpyAsync kind " + std::to_string(int(kind)) + " (" + std::to_string(bytes) + " bytes)";
    {
      emu::OpenSet o;
      o.add(dst);
      o.add(src);
      std::memmove(dst, src, bytes);
    }
    st.current_op.clear();
  });
  if (sync) emu::flush();
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind,
                                   cudaStream_t s = nullptr) {
  return emu_memcpy(dst, src, bytes, kind, s, false);
}
inline cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
  return emu_memcpy(dst, src, bytes, kind, nullptr, true);
}
inline cudaError_t emu_memset(void* p, int v, std::size_t bytes, cudaStream_t s, bool sync) {
  if (!emu::valid_stream(s)) return emu_set_error(cudaErrorInvalidResourceHandle);
  if (bytes == 0) return cudaSuccess;
  if (!emu::device_range(p, bytes, "cudaMemset")) {
    std::fprintf(stderr, "CUDA-EMU: cudaMemset of %p, which is not device memory\n", p);
    return emu_set_error(cudaErrorInvalidValue);
  }
  emu::enqueue([=] {
    auto& st = emu::state();
    st.current_op = "cudaMemsetAsync (" + std::to_string(bytes) + " bytes)";
    {
      emu::OpenSet o;
      o.add(p);
      std::memset(p, v, bytes);
    }
    st.current_op.clear();
  });
  if (sync) emu::flush();
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* p, int v, std::size_t bytes, cudaStream_t s = nullptr) {
  return emu_memset(p, v, bytes, s, false);
}
inline cudaError_t cudaMemset(void* p, int v, std::size_t bytes) { return emu_memset(p, v, bytes, nullptr, true); }

inline cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new CUevent_st{};
  return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t = nullptr) { return cudaSuccess; }
inline cudaError_t cudaEventSynchronize(cudaEvent_t) {
  emu::flush();
  return cudaSuccess;
}
inline cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
