// src/cuda/loss.cu — softmax / log-softmax, cross-entropy and cosine similarity (R = float, double).
//
// Every reduction here runs along the middle axis of a tensor viewed as (outer, n, inner)
// and is done by one thread per (outer, inner) row, summing k = 0, 1, ..., n−1 in order —
// the order of the CPU loops in ops/loss.hpp — so results are bitwise reproducible and no
// atomics are used. Adjacent threads take adjacent inner indices, so for inner > 1 the
// loads of a warp are coalesced.
#include "common.cuh"

namespace erlmr::cuda {

namespace detail {
namespace {

__device__ inline float d_exp(float v) { return expf(v); }
__device__ inline double d_exp(double v) { return exp(v); }
__device__ inline float d_log(float v) { return logf(v); }
__device__ inline double d_log(double v) { return log(v); }
__device__ inline float d_sqrt(float v) { return sqrtf(v); }
__device__ inline double d_sqrt(double v) { return sqrt(v); }
// std::max semantics: (a < b) ? b : a (the first argument wins ties and NaN comparisons).
template <class R> __device__ inline R d_max(R a, R b) { return a < b ? b : a; }

// y = softmax or log-softmax of each row: max, then Σ exp(x − max) in k order, then
// lse = max + log Σ, y = x − lse (log) or exp(x − lse) — as detail::softmax_rows.
template <class R>
__global__ void softmax_kernel(const R* x, R* y, std::int64_t outer, std::int64_t n, std::int64_t inner, bool take_log) {
  const std::int64_t rows = outer * inner;
  for (std::int64_t r = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; r < rows;
       r += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t o = r / inner, i = r % inner;
    const R* xr = x + o * n * inner + i;
    R* yr = y + o * n * inner + i;
    R mx = xr[0];
    for (std::int64_t k = 1; k < n; ++k) mx = d_max(mx, xr[k * inner]);
    R s = 0;
    for (std::int64_t k = 0; k < n; ++k) s += d_exp(xr[k * inner] - mx);
    const R lse = mx + d_log(s);
    for (std::int64_t k = 0; k < n; ++k) {
      const R v = xr[k * inner];
      yr[k * inner] = take_log ? v - lse : d_exp(v - lse);
    }
  }
}

// softmax: out = y·(g − Σ_k g·y); log-softmax: out = g − exp(y)·Σ_k g.
template <class R>
__global__ void softmax_backward_kernel(const R* y, const R* g, R* out, std::int64_t outer, std::int64_t n,
                                        std::int64_t inner, bool take_log) {
  const std::int64_t rows = outer * inner;
  for (std::int64_t r = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; r < rows;
       r += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t base = (r / inner) * n * inner + r % inner;
    R s = 0;
    if (take_log)
      for (std::int64_t k = 0; k < n; ++k) s += g[base + k * inner];
    else
      for (std::int64_t k = 0; k < n; ++k) s += g[base + k * inner] * y[base + k * inner];
    for (std::int64_t k = 0; k < n; ++k) {
      const std::int64_t j = base + k * inner;
      out[j] = take_log ? g[j] - d_exp(y[j]) * s : y[j] * (g[j] - s);
    }
  }
}

// Per row b of the (B, K) logits: log-softmax lp as softmax_rows; prob = exp(lp) (what the
// CPU backward recomputes) and row_lp[b] = lp[b, y_b].
template <class R>
__global__ void cross_entropy_rows_kernel(const R* x, const std::int64_t* labels, std::int64_t B, std::int64_t K,
                                          R* prob, R* row_lp) {
  for (std::int64_t b = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; b < B;
       b += std::int64_t(gridDim.x) * blockDim.x) {
    const R* xr = x + b * K;
    R* pr = prob + b * K;
    R mx = xr[0];
    for (std::int64_t k = 1; k < K; ++k) mx = d_max(mx, xr[k]);
    R s = 0;
    for (std::int64_t k = 0; k < K; ++k) s += d_exp(xr[k] - mx);
    const R lse = mx + d_log(s);
    for (std::int64_t k = 0; k < K; ++k) pr[k] = d_exp(xr[k] - lse);
    row_lp[b] = xr[labels[b]] - lse;
  }
}

// loss[0] = (0 − lp_0 − lp_1 − ... − lp_{B−1}) / B, one thread, b increasing: the CPU's
// exact sequence of operations, so the mean is deterministic and needs no atomics.
template <class R> __global__ void cross_entropy_mean_kernel(const R* row_lp, std::int64_t B, R* loss) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  R l = 0;
  for (std::int64_t b = 0; b < B; ++b) l -= row_lp[b];
  loss[0] = l / R(B);
}

// out[b, j] = (g[0]/B)·(prob[b, j] − 1[j = y_b]); elementwise.
template <class R>
__global__ void cross_entropy_backward_kernel(const R* prob, const std::int64_t* labels, std::int64_t B,
                                              std::int64_t K, const R* g, R* out) {
  const R k = g[0] / R(B);
  const std::int64_t total = B * K;
  for (std::int64_t e = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; e < total;
       e += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t b = e / K, j = e % K;
    out[e] = k * (prob[e] - (j == labels[b] ? R(1) : R(0)));
  }
}

// c = Σ a·b / (max(‖a‖, eps)·max(‖b‖, eps)) per row, the three sums in k order; na, nb get
// the clamped norms max(‖a‖, eps), max(‖b‖, eps) (kernels.hpp). ops/loss.hpp keeps the
// unclamped norms instead, but its backward only uses max(n, eps) and the test n > eps,
// which give the same values for either (‖a‖ ≤ eps ⇔ max(‖a‖, eps) = eps, not > eps).
template <class R>
__global__ void cosine_kernel(const R* a, const R* b, std::int64_t outer, std::int64_t n, std::int64_t inner, R eps,
                              R* c, R* na, R* nb) {
  const std::int64_t rows = outer * inner;
  for (std::int64_t r = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; r < rows;
       r += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t base = (r / inner) * n * inner + r % inner;
    R d = 0, sa = 0, sb = 0;
    for (std::int64_t k = 0; k < n; ++k) {
      const R av = a[base + k * inner], bv = b[base + k * inner];
      d += av * bv;
      sa += av * av;
      sb += bv * bv;
    }
    const R ra = d_max(d_sqrt(sa), eps), rb = d_max(d_sqrt(sb), eps);
    na[r] = ra;
    nb[r] = rb;
    c[r] = d / (ra * rb);
  }
}

// G_a = G·(b/(A·B) − ka·a), ka = c/A² where ‖a‖ > eps else 0 (A, B the clamped norms);
// likewise G_b. Elementwise given the per-row c, na, nb.
template <class R>
__global__ void cosine_backward_kernel(const R* a, const R* b, const R* c, const R* na, const R* nb, const R* g,
                                       std::int64_t outer, std::int64_t n, std::int64_t inner, R eps, R* ga, R* gb) {
  const std::int64_t total = outer * n * inner;
  for (std::int64_t e = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; e < total;
       e += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t r = (e / (n * inner)) * inner + e % inner;
    const R A = d_max(na[r], eps), Bn = d_max(nb[r], eps);
    const R cr = c[r], gr = g[r];
    if (ga) {
      const R ka = na[r] > eps ? cr / (A * A) : R(0);
      ga[e] = gr * (b[e] / (A * Bn) - ka * a[e]);
    }
    if (gb) {
      const R kb = nb[r] > eps ? cr / (Bn * Bn) : R(0);
      gb[e] = gr * (a[e] / (A * Bn) - kb * b[e]);
    }
  }
}

}  // namespace
}  // namespace detail

template <class R>
void softmax_axis(const R* x, R* y, std::int64_t outer, std::int64_t n, std::int64_t inner, bool log) {
  const std::int64_t rows = outer * inner;
  if (rows <= 0 || n <= 0) return;
  detail::softmax_kernel<R><<<detail::blocks_for(rows), detail::kThreads, 0, stream()>>>(x, y, outer, n, inner, log);
  check_launch("softmax_axis");
}

template <class R>
void softmax_axis_backward(const R* y, const R* g, R* out, std::int64_t outer, std::int64_t n, std::int64_t inner,
                           bool log) {
  const std::int64_t rows = outer * inner;
  if (rows <= 0 || n <= 0) return;
  detail::softmax_backward_kernel<R>
      <<<detail::blocks_for(rows), detail::kThreads, 0, stream()>>>(y, g, out, outer, n, inner, log);
  check_launch("softmax_axis_backward");
}

template <class R>
void cross_entropy(const R* logits, const std::int64_t* labels, std::int64_t B, std::int64_t K, R* loss, R* prob) {
  if (B <= 0) {  // mean over no rows: 0/0, as the CPU's loss /= T(B)
    detail::cross_entropy_mean_kernel<R><<<1, 1, 0, stream()>>>(nullptr, 0, loss);
    check_launch("cross_entropy (mean)");
    return;
  }
  // Scratch for the B per-row log-probabilities, from the caching allocator; handing it
  // back right after queueing is safe because any reuse is queued later on the same stream.
  auto& cache = DeviceBlockCache::instance();
  R* row_lp = static_cast<R*>(cache.get(static_cast<std::size_t>(B) * sizeof(R)));
  try {
    detail::cross_entropy_rows_kernel<R>
        <<<detail::blocks_for(B), detail::kThreads, 0, stream()>>>(logits, labels, B, K, prob, row_lp);
    check_launch("cross_entropy (rows)");
    detail::cross_entropy_mean_kernel<R><<<1, 1, 0, stream()>>>(row_lp, B, loss);
    check_launch("cross_entropy (mean)");
  } catch (...) {
    cache.put(row_lp);
    throw;
  }
  cache.put(row_lp);
}

template <class R>
void cross_entropy_backward(const R* prob, const std::int64_t* labels, std::int64_t B, std::int64_t K, const R* g,
                            R* out) {
  const std::int64_t total = B * K;
  if (total <= 0) return;
  detail::cross_entropy_backward_kernel<R>
      <<<detail::blocks_for(total), detail::kThreads, 0, stream()>>>(prob, labels, B, K, g, out);
  check_launch("cross_entropy_backward");
}

template <class R>
void cosine_similarity(const R* a, const R* b, std::int64_t outer, std::int64_t n, std::int64_t inner, R eps, R* c,
                       R* na, R* nb) {
  const std::int64_t rows = outer * inner;
  if (rows <= 0) return;  // n = 0 is fine: zero sums, c = 0
  detail::cosine_kernel<R>
      <<<detail::blocks_for(rows), detail::kThreads, 0, stream()>>>(a, b, outer, n, inner, eps, c, na, nb);
  check_launch("cosine_similarity");
}

template <class R>
void cosine_similarity_backward(const R* a, const R* b, const R* c, const R* na, const R* nb, const R* g,
                                std::int64_t outer, std::int64_t n, std::int64_t inner, R eps, R* ga, R* gb) {
  const std::int64_t total = outer * n * inner;
  if (total <= 0 || (!ga && !gb)) return;
  detail::cosine_backward_kernel<R><<<detail::blocks_for(total), detail::kThreads, 0, stream()>>>(
      a, b, c, na, nb, g, outer, n, inner, eps, ga, gb);
  check_launch("cosine_similarity_backward");
}

#define ERLMR_INST_LOSS(R)                                                                                             \
  template void softmax_axis<R>(const R*, R*, std::int64_t, std::int64_t, std::int64_t, bool);                         \
  template void softmax_axis_backward<R>(const R*, const R*, R*, std::int64_t, std::int64_t, std::int64_t, bool);      \
  template void cross_entropy<R>(const R*, const std::int64_t*, std::int64_t, std::int64_t, R*, R*);                   \
  template void cross_entropy_backward<R>(const R*, const std::int64_t*, std::int64_t, std::int64_t, const R*, R*);    \
  template void cosine_similarity<R>(const R*, const R*, std::int64_t, std::int64_t, std::int64_t, R, R*, R*, R*);     \
  template void cosine_similarity_backward<R>(const R*, const R*, const R*, const R*, const R*, const R*, std::int64_t, \
                                              std::int64_t, std::int64_t, R, R*, R*);
ERLMR_CUDA_FOR_R(ERLMR_INST_LOSS)
#undef ERLMR_INST_LOSS

}  // namespace erlmr::cuda
