// src/cuda/random.cu — dropout (the Bernoulli mask from the counter-based Philox
// generator, and its application) and OGM-GE's Gaussian gradient noise.
//
// Mask element i depends only on (seed, first + i) through philox_bits (erlmr/cuda/
// philox.hpp, the same function as Generator::bits of core/rng.hpp), never on which thread
// computes it, so the mask is reproducible and equals the CPU's mask for the same
// (seed, first). One thread evaluates one Philox block and writes the (up to) four mask
// elements whose counters fall in it. Likewise noise element i is philox_normal(seed,
// first + i) (Generator::normal); one thread evaluates one Box–Muller pair (counters 2b and
// 2b + 1 share lane block b) and updates the (up to) two elements whose counters fall in it.
#include "common.cuh"
#include "erlmr/cuda/philox.hpp"

namespace erlmr::cuda {
namespace {

using detail::dev;
using detail::is_cplx;
using detail::kThreads;

__device__ inline std::int64_t grid_first() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline std::int64_t grid_stride() { return static_cast<std::int64_t>(gridDim.x) * blockDim.x; }

// For Philox block b = b0 + j (j < nblocks): its word k is counter c = 4b + k; when
// first ≤ c < first + total, mask[c − first] = keep_scale if (word >> 8) ≥ threshold, else 0.
template <class R>
__global__ void dropout_mask_kernel(std::uint64_t seed, std::uint64_t first, std::uint64_t total, std::uint64_t b0,
                                    std::int64_t nblocks, std::uint32_t threshold, R keep_scale, R* mask) {
  for (std::int64_t j = grid_first(); j < nblocks; j += grid_stride()) {
    const std::uint64_t b = b0 + static_cast<std::uint64_t>(j);
    std::uint32_t w[4];
    philox_block(seed, b, w);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const std::uint64_t c = 4 * b + static_cast<std::uint64_t>(k);
      if (c < first) continue;
      const std::uint64_t i = c - first;
      if (i >= total) break;
      mask[i] = dropout_keep(w[k], threshold) ? keep_scale : R(0);
    }
  }
}

// For lane block b = b0 + j (j < npairs): counter c = 2b + k (k = 0: r·cos θ, k = 1: r·sin θ,
// as philox_normal); when first ≤ c < first + n, g[c − first] = R(k·g + sd·z) computed in double.
template <class R>
__global__ void normal_noise_kernel(R* g, std::uint64_t n, double k, double sd, std::uint64_t seed,
                                    std::uint64_t first, std::uint64_t b0, std::int64_t npairs) {
  for (std::int64_t j = grid_first(); j < npairs; j += grid_stride()) {
    const std::uint64_t b = b0 + static_cast<std::uint64_t>(j);
    double r, theta;
    philox_box_muller(seed, b, r, theta);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const std::uint64_t c = 2 * b + static_cast<std::uint64_t>(h);
      if (c < first) continue;
      const std::uint64_t i = c - first;
      if (i >= n) break;
      const double z = h ? r * std::sin(theta) : r * std::cos(theta);
      g[i] = R(k * double(g[i]) + sd * z);
    }
  }
}

// out[i] = x[i]·mask[i] (real), or (Re x[i]·mask[2i], Im x[i]·mask[2i + 1]) (complex).
template <class D, class R> __global__ void apply_mask_kernel(const D* x, const R* mask, D* out, std::int64_t n) {
  for (std::int64_t i = grid_first(); i < n; i += grid_stride()) {
    if constexpr (is_cplx<D>::value) {
      const D v = x[i];
      out[i] = D(v.real() * mask[2 * i], v.imag() * mask[2 * i + 1]);
    } else {
      out[i] = x[i] * mask[i];
    }
  }
}

template <class T> struct real_of { using type = T; };
template <class R> struct real_of<std::complex<R>> { using type = R; };

}  // namespace

template <class R>
void dropout_mask(std::uint64_t seed, std::uint64_t first, std::int64_t total, std::uint32_t threshold, R keep_scale,
                  R* mask) {
  if (total <= 0) return;
  const std::uint64_t b0 = first >> 2, b1 = (first + static_cast<std::uint64_t>(total) - 1) >> 2;
  const std::int64_t nblocks = static_cast<std::int64_t>(b1 - b0 + 1);
  dropout_mask_kernel<<<detail::blocks_for(nblocks), kThreads, 0, stream()>>>(
      seed, first, static_cast<std::uint64_t>(total), b0, nblocks, threshold, keep_scale, mask);
  check_launch("dropout_mask_kernel");
}

template <class T> void apply_mask(const T* x, const void* mask, T* out, std::int64_t n) {
  if (n <= 0) return;
  using R = typename real_of<T>::type;
  apply_mask_kernel<<<detail::blocks_for(n), kThreads, 0, stream()>>>(dev(x), static_cast<const R*>(mask), dev(out), n);
  check_launch("apply_mask_kernel");
}

template <class R>
void add_normal_noise(R* g, std::int64_t n, double k, double sd, std::uint64_t seed, std::uint64_t first) {
  if (n <= 0) return;
  const std::uint64_t b0 = first >> 1, b1 = (first + static_cast<std::uint64_t>(n) - 1) >> 1;
  const std::int64_t npairs = static_cast<std::int64_t>(b1 - b0 + 1);
  normal_noise_kernel<<<detail::blocks_for(npairs), kThreads, 0, stream()>>>(g, static_cast<std::uint64_t>(n), k, sd,
                                                                             seed, first, b0, npairs);
  check_launch("normal_noise_kernel");
}

#define ERLMR_INST_R(R)                                                                            \
  template void dropout_mask<R>(std::uint64_t, std::uint64_t, std::int64_t, std::uint32_t, R, R*); \
  template void add_normal_noise<R>(R*, std::int64_t, double, double, std::uint64_t, std::uint64_t);
ERLMR_CUDA_FOR_R(ERLMR_INST_R)
#undef ERLMR_INST_R

#define ERLMR_INST_T(T) template void apply_mask<T>(const T*, const void*, T*, std::int64_t);
ERLMR_CUDA_FOR_T(ERLMR_INST_T)
#undef ERLMR_INST_T

}  // namespace erlmr::cuda
