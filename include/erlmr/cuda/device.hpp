// erlmr/cuda/device.hpp — CudaDevice: the CUDA implementation of the device trait
// (core/device.hpp), so Tensor<T, CudaDevice> and Var<T, CudaDevice> work unchanged.
//
//   allocate/deallocate  cudaMalloc/cudaFree behind a caching allocator (runtime.hpp);
//                        never managed memory
//   copy                 device-to-device, queued on the stream
//   copy_from_host       host-to-device; returns once the copy is done (the host
//                        buffer may be freed by the caller right after)
//   copy_to_host         device-to-host; waits for all queued work, then copies
//   zero, fill           queued on the stream
//   add_inplace, axpy, scale_inplace, add_normal_noise
//                        elementwise gradient arithmetic, queued on the stream
//   sum, gram            reductions; wait and return the result to the host
//   parallel_for         (nvcc only) runs f(i, i + 1) for every i in [0, n) on the GPU
//
// Host code using CudaDevice needs the CUDA runtime headers and libcudart, and the
// erlmr_cuda library for the kernels (link erlmr::cuda); it does not need nvcc.
#pragma once
#include "erlmr/core/device.hpp"
#include "erlmr/cuda/kernels.hpp"
#include "erlmr/cuda/runtime.hpp"

namespace erlmr {

struct CudaDevice {
  static constexpr bool is_host = false;

  static void* allocate(std::size_t bytes) { return cuda::DeviceBlockCache::instance().get(bytes); }
  static void deallocate(void* p) { cuda::DeviceBlockCache::instance().put(p); }
  static void copy(void* dst, const void* src, std::size_t bytes) {
    if (bytes) cuda::check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda::stream()), "copy (device to device)");
  }
  static void copy_from_host(void* dst, const void* src, std::size_t bytes) {
    if (!bytes) return;
    cuda::check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cuda::stream()), "copy (host to device)");
    cuda::synchronize();
  }
  static void copy_to_host(void* dst, const void* src, std::size_t bytes) {
    if (!bytes) return;
    cuda::check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cuda::stream()), "copy (device to host)");
    cuda::synchronize();
  }
  static void zero(void* p, std::size_t bytes) {
    if (bytes) cuda::check(cudaMemsetAsync(p, 0, bytes, cuda::stream()), "zero (cudaMemsetAsync)");
  }
  template <class T> static void fill(T* p, std::int64_t n, const T& v) { cuda::fill<T>(p, n, v); }
  template <class T> static void add_inplace(T* dst, const T* src, std::int64_t n) { cuda::add_inplace<T>(dst, src, n); }
  // y += a·x and p *= k (gradient arithmetic of the rebalancing methods, as CpuDevice's).
  template <class T> static void axpy(T* y, const T& a, const T* x, std::int64_t n) { cuda::axpy<T>(y, a, x, n); }
  // In place through cuda::scale: each element is read and written by the same thread.
  template <class T> static void scale_inplace(T* p, const T& k, std::int64_t n) { cuda::scale<T>(p, k, p, n); }
  // g ← k·g + sd·N(0, 1) with the normals Generator(seed).normal(first + i) (OGM-GE's noise,
  // balance/ogm_ge.hpp), for R = float, double.
  template <class R>
  static void add_normal_noise(R* g, std::int64_t n, double k, double sd, std::uint64_t seed, std::uint64_t first) {
    cuda::add_normal_noise<R>(g, n, k, sd, seed, first);
  }

  // The sum of n device elements, returned to the host: cuda::sum_all's fixed tree, so the
  // same on every run (differs from the CPU's sum only by summation order).
  template <class T> static T sum(const T* x, std::int64_t n) {
    T* d = static_cast<T*>(allocate(sizeof(T)));
    cuda::sum_all<T>(x, n, d);
    T out;
    copy_to_host(&out, d, sizeof(T));
    deallocate(d);
    return out;
  }

  // Σa², Σab, Σb² (double) of two device arrays, returned to the host (erl/mmc.hpp's
  // min-norm weight on gradients that live on the device).
  template <class R> static void gram(const R* a, const R* b, std::int64_t n, double out[3]) {
    double* d = static_cast<double*>(allocate(3 * sizeof(double)));
    cuda::gram3<R>(a, b, n, d);
    copy_to_host(out, d, 3 * sizeof(double));
    deallocate(d);
  }

  // The number of streaming multiprocessors of the current device (what a
  // "thread count" means for work split into blocks).
  static int num_threads() {
    int dev = 0, sms = 0;
    cuda::check(cudaGetDevice(&dev), "cudaGetDevice");
    cuda::check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");
    return sms;
  }

#ifdef __CUDACC__
  // f must be a __device__ (or __host__ __device__) callable; it is called as f(i, i + 1)
  // for every i in [0, n), in no particular order (each call must write disjoint output).
  // grain is accepted for interface compatibility with CpuDevice and ignored.
  template <class F> static void parallel_for(std::int64_t n, std::int64_t /*grain*/, F f);
#endif
};

static_assert(Device<CudaDevice>);

}  // namespace erlmr

#ifdef __CUDACC__
namespace erlmr::cuda::detail {
template <class F> __global__ void parallel_for_kernel(std::int64_t n, F f) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x)
    f(i, i + 1);
}
}  // namespace erlmr::cuda::detail
template <class F> void erlmr::CudaDevice::parallel_for(std::int64_t n, std::int64_t, F f) {
  if (n <= 0) return;
  const std::int64_t b = (n + 255) / 256;
  cuda::detail::parallel_for_kernel<<<static_cast<unsigned>(b > 524280 ? 524280 : b), 256, 0, cuda::stream()>>>(n, f);
  cuda::check_launch("CudaDevice::parallel_for");
}
#endif
