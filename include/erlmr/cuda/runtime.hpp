// erlmr/cuda/runtime.hpp — the CUDA runtime pieces of the CUDA device: error
// checking, the stream every erlmr kernel runs on, and a caching allocator over
// cudaMalloc/cudaFree (never managed memory).
//
// This header needs only the CUDA runtime API (cuda_runtime_api.h, libcudart), not
// nvcc: host code compiled by the ordinary C++ compiler includes it, and so do the
// kernel files in src/cuda/ that nvcc compiles. It deliberately includes nothing
// else from erlmr (no Eigen), so that nvcc never sees Eigen.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

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

// A caching device allocator, the device twin of HostBlockCache: freed blocks are
// kept in per-size free lists (sizes rounded to 256 bytes) and reused, so a training
// step reaches a steady state with no cudaMalloc/cudaFree (both synchronise the
// device). Blocks are reused only after the work queued on the single stream before
// the free has run, which stream order guarantees.
class DeviceBlockCache {
 public:
  static constexpr std::size_t kAlignment = 256;
  static constexpr std::size_t kMaxCachedBytes = std::size_t(4) << 30;

  static DeviceBlockCache& instance() {
    static DeviceBlockCache* c = new DeviceBlockCache();  // never destroyed: tensors may outlive statics
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
        return p;
      }
      ++misses_;
    }
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, r);
    if (e == cudaErrorMemoryAllocation) {  // give the cache back and try once more
      cudaGetLastError();
      release();
      e = cudaMalloc(&p, r);
    }
    check(e, ("cudaMalloc of " + std::to_string(r) + " bytes").c_str());
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
    if (cached_ + r > kMaxCachedBytes) {
      cudaFree(p);
      return;
    }
    free_[r].push_back(p);
    cached_ += r;
  }
  void release() {
    std::lock_guard<std::mutex> g(m_);
    for (auto& [r, v] : free_)
      for (void* p : v) cudaFree(p);
    free_.clear();
    cached_ = 0;
  }
  std::uint64_t system_allocations() const {
    std::lock_guard<std::mutex> g(m_);
    return misses_;
  }

 private:
  DeviceBlockCache() = default;
  mutable std::mutex m_;
  std::unordered_map<std::size_t, std::vector<void*>> free_;
  std::unordered_map<void*, std::size_t> sizes_;
  std::size_t cached_ = 0;
  std::uint64_t misses_ = 0;
};

}  // namespace erlmr::cuda
