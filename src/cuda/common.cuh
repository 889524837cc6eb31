// src/cuda/common.cuh — shared by the kernel files: launch geometry, the complex
// type the kernels compute with, broadcast index arithmetic, instantiation macros.
// Internal to the CUDA build (nvcc only); not installed.
#pragma once
#include <cuda/std/complex>
#include <cuda_runtime.h>

#include <complex>
#include <cstdint>
#include <type_traits>

#include "erlmr/cuda/kernels.hpp"
#include "erlmr/cuda/runtime.hpp"

namespace erlmr::cuda::detail {

constexpr int kThreads = 256;

// Grid for a grid-stride loop over n elements (capped; the loop covers the rest).
inline unsigned blocks_for(std::int64_t n, int threads = kThreads) {
  const std::int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 * 8 ? 65535 * 8 : b));
}

// The type a kernel computes with for an API element type: std::complex<R> maps to
// cuda::std::complex<R> (same layout: two R, real first), real types map to themselves.
template <class T> struct dev_type { using type = T; };
template <class R> struct dev_type<std::complex<R>> { using type = ::cuda::std::complex<R>; };
template <class T> using dev_t = typename dev_type<T>::type;
template <class T> dev_t<T>* dev(T* p) { return reinterpret_cast<dev_t<T>*>(p); }
template <class T> const dev_t<T>* dev(const T* p) { return reinterpret_cast<const dev_t<T>*>(p); }
template <class T> dev_t<T> dev_value(const T& v) {
  if constexpr (std::is_floating_point_v<T>) return v;
  else return dev_t<T>(v.real(), v.imag());
}

template <class T> struct is_cplx : std::false_type {};
template <class R> struct is_cplx<::cuda::std::complex<R>> : std::true_type {};

// Row-major strides of a shape aligned to `rank` trailing axes, with 0 for broadcast
// axes (extent 1 or missing), so offset(i) of an output index reads the broadcast input.
struct BStrides {
  int rank;
  std::int64_t out_dims[8];
  std::int64_t in_strides[8];
};
inline BStrides broadcast_strides(const Dims& in, const Dims& out) {
  BStrides b{};
  b.rank = out.rank;
  std::int64_t s = 1;
  for (int k = out.rank - 1, j = in.rank - 1; k >= 0; --k, --j) {
    b.out_dims[k] = out.d[k];
    const std::int64_t e = j >= 0 ? in.d[j] : 1;
    b.in_strides[k] = (e == 1) ? 0 : s;
    s *= e;
  }
  return b;
}
// Offset into the broadcast input of the output element with flat index i.
__host__ __device__ inline std::int64_t broadcast_offset(const BStrides& b, std::int64_t i) {
  std::int64_t off = 0;
  for (int k = b.rank - 1; k >= 0; --k) {
    const std::int64_t e = b.out_dims[k];
    off += (i % e) * b.in_strides[k];
    i /= e;
  }
  return off;
}

// The first index and the stride of a grid-stride loop.
__device__ inline std::int64_t grid_first() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline std::int64_t grid_stride() { return static_cast<std::int64_t>(gridDim.x) * blockDim.x; }

// A broadcast read: `full` when the input has the output's element count (then the
// broadcast is the identity and element i is read at i, skipping the index arithmetic).
struct BRead {
  BStrides s;
  bool full;
};
inline BRead bread(const Dims& in, const Dims& out) { return {broadcast_strides(in, out), in.numel() == out.numel()}; }
__device__ inline std::int64_t at(const BRead& b, std::int64_t i) { return b.full ? i : broadcast_offset(b.s, i); }

}  // namespace erlmr::cuda::detail

// Explicit instantiation helpers: ERLMR_CUDA_FOR_T(M) expands M(T) for the four
// element types, ERLMR_CUDA_FOR_R(M) for the two real ones.
#define ERLMR_CUDA_FOR_R(M) M(float) M(double)
#define ERLMR_CUDA_FOR_T(M) M(float) M(double) M(std::complex<float>) M(std::complex<double>)
