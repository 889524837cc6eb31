// erlmr/cuda/runtime.hpp — the CUDA runtime pieces of the CUDA device: error
// checking, the stream every erlmr kernel runs on, and device memory for the caching
// allocator of core/block_cache.hpp (cudaMalloc/cudaFree, never managed memory).
//
// This header needs only the CUDA runtime API (cuda_runtime_api.h, libcudart), not
// nvcc: host code compiled by the ordinary C++ compiler includes it, and so do the
// kernel files in src/cuda/ that nvcc compiles. It deliberately includes nothing
// else from erlmr but the standard-library-only block cache, so that nvcc never sees Eigen.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "erlmr/core/block_cache.hpp"

namespace erlmr::cuda {

class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw CudaError(std::string("CUDA: ") + what + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

// Whether a usable CUDA device is present; when not, *why says what is missing
// (no driver, no device, ...), so tests can skip with that message.
inline bool available(std::string* why = nullptr) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why) *why = std::string("cudaGetDeviceCount: ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return false;
  }
  if (n == 0) {
    if (why) *why = "no CUDA device found";
    return false;
  }
  return true;
}

// The one stream all erlmr work on the device is queued on (created on first use,
// non-blocking with respect to the legacy default stream). Work on one stream runs
// in issue order, so host code needs to synchronise only when it reads results.
inline cudaStream_t stream() {
  static cudaStream_t s = [] {
    cudaStream_t t = nullptr;
    check(cudaStreamCreateWithFlags(&t, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    return t;
  }();
  return s;
}

inline void synchronize() { check(cudaStreamSynchronize(stream()), "cudaStreamSynchronize"); }

// Checks that the last kernel launch was accepted (launch errors are reported
// asynchronously by the runtime; this surfaces configuration errors at once).
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

// Device memory for the caching allocator (core/block_cache.hpp): cudaMalloc/cudaFree,
// never managed memory; sizes rounded to 256 bytes; at most 4 GiB kept cached. Reusing a
// freed block is safe because all erlmr work runs on one stream: a block freed after
// queueing a kernel that reads it is handed only to work queued after that kernel.
struct DeviceMemory {
  static constexpr std::size_t kAlignment = 256;
  static constexpr std::size_t kMaxCachedBytes = std::size_t(4) << 30;
  static void* alloc(std::size_t bytes) {
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear it: the cache releases its blocks and tries again
      return nullptr;
    }
    check(e, ("cudaMalloc of " + std::to_string(bytes) + " bytes").c_str());
    return p;
  }
  static void free(void* p) { cudaFree(p); }
  [[noreturn]] static void out_of_memory(std::size_t bytes) {
    throw CudaError("CUDA: cudaMalloc of " + std::to_string(bytes) + " bytes: out of device memory");
  }
};
using DeviceBlockCache = BlockCache<DeviceMemory>;

}  // namespace erlmr::cuda
