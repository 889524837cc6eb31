// src/cuda/norm.cu — batch normalisation forward and backward (R = float, double).
//
// x is (N, C, inner); channel c owns the m = N·inner values x[(n·C + c)·inner + t], which
// we number e = n·inner + t. One block of kBN threads per channel. Per-channel sums are
// reduced deterministically: thread t adds the values e = t, t + kBN, t + 2·kBN, ... in
// increasing order, then the kBN partial sums are combined by a fixed shared-memory
// tree (pairs at distance 128, 64, ..., 1). The tree's shape depends only on kBN and the
// partials only on m, so the result is bitwise the same every run; no atomics. (The
// grouping differs from the CPU's sequential sums, so CPU and GPU agree to rounding.)
#include <string>

#include "common.cuh"

namespace erlmr::cuda {

namespace detail {
namespace {

constexpr int kBN = 256;  // block size of the channel kernels; the tree below assumes a power of two

__device__ inline float d_sqrt(float v) { return sqrtf(v); }
__device__ inline double d_sqrt(double v) { return sqrt(v); }

// Block-wide sum of v (one value per thread) by the fixed tree; every thread gets the total.
// sh must hold kBN values. Ends with a barrier, so sh may be reused right after.
template <class R> __device__ R block_sum(R v, R* sh) {
  const int t = threadIdx.x;
  sh[t] = v;
  __syncthreads();
  for (int s = kBN / 2; s > 0; s >>= 1) {
    if (t < s) sh[t] += sh[t + s];
    __syncthreads();
  }
  const R total = sh[0];
  __syncthreads();
  return total;
}

// Two block sums at once (same tree for each).
template <class R> __device__ void block_sum2(R& u, R& v, R* su, R* sv) {
  const int t = threadIdx.x;
  su[t] = u;
  sv[t] = v;
  __syncthreads();
  for (int s = kBN / 2; s > 0; s >>= 1) {
    if (t < s) {
      su[t] += su[t + s];
      sv[t] += sv[t + s];
    }
    __syncthreads();
  }
  u = su[0];
  v = sv[0];
  __syncthreads();
}

// Walks this thread's values e = threadIdx.x, + kBN, ... of channel c, tracking (n, t) with
// e = n·inner + t incrementally (no 64-bit division per element). Use:
//   for (ChannelWalk w(c, C, inner, m); w.more(); w.next()) ... x[w.off] ...
struct ChannelWalk {
  std::int64_t e, m, n, t, inner, C, c, off, dn, dt;
  __device__ ChannelWalk(std::int64_t c_, std::int64_t C_, std::int64_t inner_, std::int64_t m_)
      : e(threadIdx.x), m(m_), n(0), t(0), inner(inner_), C(C_), c(c_), off(0), dn(0), dt(0) {
    if (e < m) {  // m > 0 implies inner > 0
      n = e / inner;
      t = e % inner;
      dn = kBN / inner;
      dt = kBN % inner;
      off = (n * C + c) * inner + t;
    }
  }
  __device__ bool more() const { return e < m; }
  __device__ void next() {
    e += kBN;
    n += dn;
    t += dt;
    if (t >= inner) {
      t -= inner;
      ++n;
    }
    off = (n * C + c) * inner + t;
  }
};

// Forward, one block per channel c (blockIdx.x). Training: mean = Σx/m, var = Σ(x − mean)²/m
// (two passes, like ops/norm.hpp), running_mean ← (1−mom)·rm + mom·mean, running_var ←
// (1−mom)·rv + mom·var·m/(m−1); evaluation reads the running statistics. Then
// inv = 1/√(var + eps), xhat = (x − mean)·inv, y = γ·xhat + β. Hyper-parameters are cast
// to R as the CPU code casts them.
template <class R>
__global__ void __launch_bounds__(kBN)
    batch_norm_kernel(const R* x, const R* gamma, const R* beta, R* running_mean, R* running_var, std::int64_t N,
                      std::int64_t C, std::int64_t inner, bool training, R keep, R mom, R eps, R* y, R* xhat, R* inv) {
  __shared__ R sh[kBN];
  const std::int64_t c = blockIdx.x;
  const std::int64_t m = N * inner;
  R mean, var;
  if (training) {
    R acc = 0;
    for (ChannelWalk w(c, C, inner, m); w.more(); w.next()) acc += x[w.off];
    mean = block_sum(acc, sh) / R(m);
    R sq = 0;
    for (ChannelWalk w(c, C, inner, m); w.more(); w.next()) {
      const R d = x[w.off] - mean;
      sq += d * d;
    }
    var = block_sum(sq, sh) / R(m);
    if (threadIdx.x == 0) {
      running_mean[c] = keep * running_mean[c] + mom * mean;
      running_var[c] = keep * running_var[c] + mom * var * R(m) / R(m - 1);
    }
  } else {
    mean = running_mean[c];
    var = running_var[c];
  }
  const R is = R(1) / d_sqrt(var + eps);
  if (threadIdx.x == 0) inv[c] = is;
  const R gm = gamma[c], bt = beta[c];
  for (ChannelWalk w(c, C, inner, m); w.more(); w.next()) {
    const std::int64_t k = w.off;
    const R xh = (x[k] - mean) * is;
    xhat[k] = xh;
    y[k] = gm * xh + bt;
  }
}

// Backward, one block per channel: sg = ΣG, sgx = ΣG·x̂ (fixed tree); G_β = sg, G_γ = sgx;
// training G_x = γ·s·((G − sg/m) − x̂·(sgx/m)), evaluation G_x = γ·s·G (s = inv[c]).
template <class R>
__global__ void __launch_bounds__(kBN)
    batch_norm_backward_kernel(const R* g, const R* xhat, const R* gamma, const R* inv, std::int64_t N, std::int64_t C,
                               std::int64_t inner, bool training, R* gx, R* ggamma, R* gbeta) {
  __shared__ R su[kBN];
  __shared__ R sv[kBN];
  const std::int64_t c = blockIdx.x;
  const std::int64_t m = N * inner;
  R sg = 0, sgx = 0;
  if ((gx && training) || ggamma || gbeta) {
    for (ChannelWalk w(c, C, inner, m); w.more(); w.next()) {
      const std::int64_t k = w.off;
      sg += g[k];
      sgx += g[k] * xhat[k];
    }
    block_sum2(sg, sgx, su, sv);
    if (threadIdx.x == 0) {
      if (gbeta) gbeta[c] = sg;
      if (ggamma) ggamma[c] = sgx;
    }
  }
  if (!gx) return;
  const R a = gamma[c] * inv[c];
  const R mg = sg / R(m), mgx = sgx / R(m);
  for (ChannelWalk w(c, C, inner, m); w.more(); w.next()) {
    const std::int64_t k = w.off;
    gx[k] = training ? a * (g[k] - mg - xhat[k] * mgx) : a * g[k];
  }
}

}  // namespace
}  // namespace detail

template <class R>
void batch_norm(const R* x, const R* gamma, const R* beta, R* running_mean, R* running_var, std::int64_t N,
                std::int64_t C, std::int64_t inner, bool training, double momentum, double eps, R* y, R* xhat, R* inv) {
  // C = 0: nothing to do. N·inner = 0 still writes inv (evaluation); training with fewer
  // than two values per channel is rejected by the caller, as in ops/norm.hpp.
  if (C <= 0) return;
  if (C > 0x7fffffff) throw CudaError("batch_norm: " + std::to_string(C) + " channels exceed the grid limit");
  detail::batch_norm_kernel<R><<<static_cast<unsigned>(C), detail::kBN, 0, stream()>>>(
      x, gamma, beta, running_mean, running_var, N, C, inner, training, R(1 - momentum), R(momentum), R(eps), y, xhat,
      inv);
  check_launch("batch_norm");
}

template <class R>
void batch_norm_backward(const R* g, const R* xhat, const R* gamma, const R* inv, std::int64_t N, std::int64_t C,
                         std::int64_t inner, bool training, R* gx, R* ggamma, R* gbeta) {
  if (C <= 0 || (!gx && !ggamma && !gbeta)) return;
  if (C > 0x7fffffff) throw CudaError("batch_norm_backward: " + std::to_string(C) + " channels exceed the grid limit");
  detail::batch_norm_backward_kernel<R><<<static_cast<unsigned>(C), detail::kBN, 0, stream()>>>(
      g, xhat, gamma, inv, N, C, inner, training, gx, ggamma, gbeta);
  check_launch("batch_norm_backward");
}

#define ERLMR_INST_NORM(R)                                                                                           \
  template void batch_norm<R>(const R*, const R*, const R*, R*, R*, std::int64_t, std::int64_t, std::int64_t, bool, \
                              double, double, R*, R*, R*);                                                           \
  template void batch_norm_backward<R>(const R*, const R*, const R*, const R*, std::int64_t, std::int64_t,           \
                                       std::int64_t, bool, R*, R*, R*);
ERLMR_CUDA_FOR_R(ERLMR_INST_NORM)
#undef ERLMR_INST_NORM

}  // namespace erlmr::cuda
