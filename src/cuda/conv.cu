// src/cuda/conv.cu — im2col, its adjoint col2im, and the (O, N·HW) <-> (N, O, HW) permutation
// used by conv2d (T = float, double, complex<float>, complex<double>).
//
// All three are pure gathers: each output element is written by exactly one thread.
// col2im sums the (at most kh·kw) cols entries that read an input element in the fixed
// order i = 0..kh−1, j = 0..kw−1 starting from 0 — the order in which ops/conv.hpp's
// scatter loop adds them to that element — so it is deterministic without atomics.
#include "common.cuh"

namespace erlmr::cuda {

namespace detail {
namespace {

// cols[r, p] with r = (c·kh + i)·kw + j and p = (n·Ho + y)·Wo + x holds
// x[n, c, y·sh − ph + i, x·sw − pw + j], or 0 outside the input. One thread per cols
// element; p is the fastest index, so the writes of a warp are contiguous.
template <class D> __global__ void im2col_kernel(const D* x, ConvGeom g, D* cols) {
  const std::int64_t P = g.N * g.Ho * g.Wo;
  const std::int64_t total = g.C * g.kh * g.kw * P;
  for (std::int64_t e = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; e < total;
       e += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t r = e / P, p = e % P;
    const std::int64_t j = r % g.kw, i = (r / g.kw) % g.kh, c = r / (g.kw * g.kh);
    const std::int64_t xx = p % g.Wo, y = (p / g.Wo) % g.Ho, n = p / (g.Wo * g.Ho);
    const std::int64_t h = y * g.sh - g.ph + i, w = xx * g.sw - g.pw + j;
    cols[e] = (h >= 0 && h < g.H && w >= 0 && w < g.W) ? x[((n * g.C + c) * g.H + h) * g.W + w] : D{};
  }
}

// x[n, c, h, w] = Σ over (i, j), in that order, of cols[(c·kh + i)·kw + j, (n·Ho + y)·Wo + x]
// for the (y, x) with y·sh − ph + i = h and x·sw − pw + j = w (if any, in range). One
// thread per input element.
template <class D> __global__ void col2im_kernel(const D* cols, ConvGeom g, D* x) {
  const std::int64_t P = g.N * g.Ho * g.Wo;
  const std::int64_t total = g.N * g.C * g.H * g.W;
  for (std::int64_t e = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; e < total;
       e += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t w = e % g.W, h = (e / g.W) % g.H, nc = e / (g.W * g.H);
    const std::int64_t c = nc % g.C, n = nc / g.C;
    D acc{};
    for (std::int64_t i = 0; i < g.kh; ++i) {
      const std::int64_t ty = h + g.ph - i;  // = y·sh
      if (ty < 0 || ty % g.sh != 0) continue;
      const std::int64_t y = ty / g.sh;
      if (y >= g.Ho) continue;
      for (std::int64_t j = 0; j < g.kw; ++j) {
        const std::int64_t tx = w + g.pw - j;  // = x·sw
        if (tx < 0 || tx % g.sw != 0) continue;
        const std::int64_t xx = tx / g.sw;
        if (xx >= g.Wo) continue;
        acc += cols[((c * g.kh + i) * g.kw + j) * P + (n * g.Ho + y) * g.Wo + xx];
      }
    }
    x[e] = acc;
  }
}

// to_nohw: dst[(b·o + k)·hw + s] = src[(k·n + b)·hw + s]; else the reverse. One thread per
// dst element (contiguous writes; reads contiguous within each hw run).
template <class D>
__global__ void permute_onhw_kernel(const D* src, D* dst, std::int64_t n, std::int64_t o, std::int64_t hw,
                                    bool to_nohw) {
  const std::int64_t total = n * o * hw;
  for (std::int64_t e = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; e < total;
       e += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t s = e % hw, q = e / hw;
    if (to_nohw) {  // dst (n, o, hw): q = b·o + k
      const std::int64_t k = q % o, b = q / o;
      dst[e] = src[(k * n + b) * hw + s];
    } else {  // dst (o, n, hw): q = k·n + b
      const std::int64_t b = q % n, k = q / n;
      dst[e] = src[(b * o + k) * hw + s];
    }
  }
}

}  // namespace
}  // namespace detail

template <class T> void im2col(const T* x, const ConvGeom& g, T* cols) {
  const std::int64_t total = g.C * g.kh * g.kw * g.N * g.Ho * g.Wo;
  if (total <= 0) return;
  detail::im2col_kernel<detail::dev_t<T>>
      <<<detail::blocks_for(total), detail::kThreads, 0, stream()>>>(detail::dev(x), g, detail::dev(cols));
  check_launch("im2col");
}

template <class T> void col2im(const T* cols, const ConvGeom& g, T* x) {
  const std::int64_t total = g.N * g.C * g.H * g.W;
  if (total <= 0) return;
  detail::col2im_kernel<detail::dev_t<T>>
      <<<detail::blocks_for(total), detail::kThreads, 0, stream()>>>(detail::dev(cols), g, detail::dev(x));
  check_launch("col2im");
}

template <class T> void permute_onhw(const T* src, T* dst, std::int64_t n, std::int64_t o, std::int64_t hw, bool to_nohw) {
  const std::int64_t total = n * o * hw;
  if (total <= 0) return;
  detail::permute_onhw_kernel<detail::dev_t<T>><<<detail::blocks_for(total), detail::kThreads, 0, stream()>>>(
      detail::dev(src), detail::dev(dst), n, o, hw, to_nohw);
  check_launch("permute_onhw");
}

#define ERLMR_INST_CONV(T)                                                        \
  template void im2col<T>(const T*, const ConvGeom&, T*);                         \
  template void col2im<T>(const T*, const ConvGeom&, T*);                         \
  template void permute_onhw<T>(const T*, T*, std::int64_t, std::int64_t, std::int64_t, bool);
ERLMR_CUDA_FOR_T(ERLMR_INST_CONV)
#undef ERLMR_INST_CONV

}  // namespace erlmr::cuda
