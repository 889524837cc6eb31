// src/cuda/shape.cu — element moves: slab copies (concat, split, slice and their
// adjoints) and axis swaps (transpose). Pure copies, one thread per destination element
// in a grid-stride loop, so results are exact and independent of the launch geometry.
#include <utility>

#include "common.cuh"

namespace erlmr::cuda {
namespace {

using detail::dev;
using detail::kThreads;

__device__ inline std::int64_t grid_first() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline std::int64_t grid_stride() { return static_cast<std::int64_t>(gridDim.x) * blockDim.x; }

// For e < outer·w with w = len·inner: o = e / w, r = e % w (r indexes the contiguous run of
// len rows of inner elements), dst[o·dst_mid·inner + dst_start·inner + r] =
// src[o·src_mid·inner + src_start·inner + r].
template <class D>
__global__ void copy_slab_kernel(const D* src, std::int64_t src_row, std::int64_t src_off, D* dst, std::int64_t dst_row,
                                 std::int64_t dst_off, std::int64_t w, std::int64_t total) {
  for (std::int64_t e = grid_first(); e < total; e += grid_stride()) {
    const std::int64_t o = e / w, r = e % w;
    dst[o * dst_row + dst_off + r] = src[o * src_row + src_off + r];
  }
}

// Geometry of swap_axes: the output's extents and, per output axis, the stride of the
// source axis it reads (x's row-major strides with a and b exchanged).
struct SwapGeom {
  int rank;
  std::int64_t out_d[8];
  std::int64_t src_stride[8];
};

// out[i] = x[Σ_k idx_k(i)·src_stride[k]], idx(i) the row-major index of i in out's shape.
template <class D> __global__ void swap_axes_kernel(const D* x, SwapGeom g, D* out, std::int64_t n) {
  for (std::int64_t i = grid_first(); i < n; i += grid_stride()) {
    std::int64_t off = 0, rest = i;
    for (int k = g.rank - 1; k >= 0; --k) {
      const std::int64_t e = g.out_d[k];
      off += (rest % e) * g.src_stride[k];
      rest /= e;
    }
    out[i] = x[off];
  }
}

}  // namespace

template <class T>
void copy_slab(const T* src, std::int64_t src_mid, std::int64_t src_start, T* dst, std::int64_t dst_mid,
               std::int64_t dst_start, std::int64_t outer, std::int64_t len, std::int64_t inner) {
  const std::int64_t w = len * inner, total = outer * w;
  if (total <= 0) return;
  copy_slab_kernel<<<detail::blocks_for(total), kThreads, 0, stream()>>>(
      dev(src), src_mid * inner, src_start * inner, dev(dst), dst_mid * inner, dst_start * inner, w, total);
  check_launch("copy_slab_kernel");
}

template <class T> void swap_axes(const T* x, const Dims& xs, int a, int b, T* out) {
  const std::int64_t n = xs.numel();
  if (n <= 0) return;
  if (a < 0 || b < 0 || a >= xs.rank || b >= xs.rank) throw CudaError("CUDA swap_axes: axis out of range");
  SwapGeom g{};
  g.rank = xs.rank;
  std::int64_t st = 1;
  for (int k = xs.rank - 1; k >= 0; --k) {
    g.out_d[k] = xs.d[k];
    g.src_stride[k] = st;
    st *= xs.d[k];
  }
  std::swap(g.out_d[a], g.out_d[b]);
  std::swap(g.src_stride[a], g.src_stride[b]);
  swap_axes_kernel<<<detail::blocks_for(n), kThreads, 0, stream()>>>(dev(x), g, dev(out), n);
  check_launch("swap_axes_kernel");
}

#define ERLMR_INST(T)                                                                                           \
  template void copy_slab<T>(const T*, std::int64_t, std::int64_t, T*, std::int64_t, std::int64_t, std::int64_t, \
                             std::int64_t, std::int64_t);                                                       \
  template void swap_axes<T>(const T*, const Dims&, int, int, T*);
ERLMR_CUDA_FOR_T(ERLMR_INST)
#undef ERLMR_INST

}  // namespace erlmr::cuda
