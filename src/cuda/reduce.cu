// src/cuda/reduce.cu — sums and maxima over an axis, and the deterministic total sum.
//
// Determinism: no floating-point atomics anywhere.
//  * sum_axis / max_axis: one thread per output element walks the reduced axis in
//    increasing k (the CPU's order), so sum_axis is bitwise equal to ops/reduce.hpp.
//  * sum_all: a fixed two-level tree whose shape depends only on n. Level 1 splits x into
//    contiguous chunks of kChunk = 4096 elements; each chunk is summed by one block of
//    kRedThreads = 256 threads (thread t adds elements t, t + 256, ... of the chunk in
//    order, then a fixed shared-memory tree halves 256 → 1). Level 2 sums the chunk
//    partials by one block in the same way. Which block handles which chunk (grid-stride)
//    does not change any sum, so the result is the same on every run and every GPU.
#include <string>

#include "common.cuh"

namespace erlmr::cuda {
namespace {

using detail::dev;
using detail::kThreads;

constexpr std::int64_t kChunk = 4096;  // elements per level-1 partial sum of sum_all
constexpr int kRedThreads = 256;       // threads of a reduction block (a power of two)

__device__ inline std::int64_t grid_first() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline std::int64_t grid_stride() { return static_cast<std::int64_t>(gridDim.x) * blockDim.x; }

// out[o, i] = Σ_k x[o, k, i], k increasing from a zero start, one thread per output.
template <class D>
__global__ void sum_axis_kernel(const D* x, std::int64_t outer, std::int64_t n, std::int64_t inner, D* out) {
  const std::int64_t total = outer * inner;
  for (std::int64_t j = grid_first(); j < total; j += grid_stride()) {
    const std::int64_t o = j / inner, i = j % inner;
    const D* p = x + o * n * inner + i;
    D acc = D(0);
    for (std::int64_t k = 0; k < n; ++k) acc = acc + p[k * inner];
    out[j] = acc;
  }
}

// Sums v over the kRedThreads threads of the block with a fixed tree (sh[t] += sh[t + s] for
// s = 128, 64, ..., 1); the result is returned to thread 0. Ends synchronised, so sh can be
// reused at once.
template <class D> __device__ D block_tree_sum(D v, D* sh) {
  const int t = static_cast<int>(threadIdx.x);
  sh[t] = v;
  __syncthreads();
  for (int s = kRedThreads / 2; s > 0; s >>= 1) {
    if (t < s) sh[t] = sh[t] + sh[t + s];
    __syncthreads();
  }
  const D r = sh[0];
  __syncthreads();
  return r;
}

// Level 1 of sum_all: partial[c] = Σ of chunk c = x[c·kChunk, min(n, (c + 1)·kChunk)), one
// block per chunk (grid-stride over chunks). With one chunk, partial is the final output.
template <class D> __global__ void chunk_sum_kernel(const D* x, std::int64_t n, std::int64_t nchunks, D* partial) {
  __shared__ alignas(16) unsigned char raw[kRedThreads * sizeof(D)];
  D* sh = reinterpret_cast<D*>(raw);
  for (std::int64_t c = blockIdx.x; c < nchunks; c += gridDim.x) {
    const std::int64_t b = c * kChunk, e = b + kChunk < n ? b + kChunk : n;
    D acc = D(0);
    for (std::int64_t i = b + threadIdx.x; i < e; i += kRedThreads) acc = acc + x[i];
    const D s = block_tree_sum(acc, sh);
    if (threadIdx.x == 0) partial[c] = s;
  }
}

// Level 2 of sum_all: out[0] = Σ partial[0, m) by a single block, same fixed pattern.
template <class D> __global__ void final_sum_kernel(const D* partial, std::int64_t m, D* out) {
  __shared__ alignas(16) unsigned char raw[kRedThreads * sizeof(D)];
  D* sh = reinterpret_cast<D*>(raw);
  D acc = D(0);
  for (std::int64_t i = threadIdx.x; i < m; i += kRedThreads) acc = acc + partial[i];
  const D s = block_tree_sum(acc, sh);
  if (threadIdx.x == 0) out[0] = s;
}

// out[o, i] = max_k x[o, k, i] and idx[o, i] = its first k, one thread per output, with the
// CPU's rule: a later value wins if it is greater, or NaN while the best so far is not.
template <class R>
__global__ void max_axis_kernel(const R* x, std::int64_t outer, std::int64_t n, std::int64_t inner, R* out,
                                std::int64_t* idx) {
  using std::isnan;
  const std::int64_t total = outer * inner;
  for (std::int64_t j = grid_first(); j < total; j += grid_stride()) {
    const std::int64_t o = j / inner, i = j % inner;
    const R* p = x + o * n * inner + i;
    std::int64_t best = 0;
    R bv = p[0];
    for (std::int64_t k = 1; k < n; ++k) {
      const R v = p[k * inner];
      if (v > bv || (isnan(v) && !isnan(bv))) {
        bv = v;
        best = k;
      }
    }
    out[j] = bv;
    idx[j] = best;
  }
}

// out[o, k, i] = g[o, i] if k == idx[o, i] else 0, one thread per element of out (every
// element written once, no scatter).
template <class R>
__global__ void max_axis_backward_kernel(const R* g, const std::int64_t* idx, std::int64_t outer, std::int64_t n,
                                         std::int64_t inner, R* out) {
  const std::int64_t total = outer * n * inner;
  for (std::int64_t e = grid_first(); e < total; e += grid_stride()) {
    const std::int64_t i = e % inner, t = e / inner, k = t % n, o = t / n, j = o * inner + i;
    out[e] = idx[j] == k ? g[j] : R(0);
  }
}

}  // namespace

template <class T> void sum_axis(const T* x, std::int64_t outer, std::int64_t n, std::int64_t inner, T* out) {
  const std::int64_t total = outer * inner;
  if (total <= 0) return;
  sum_axis_kernel<<<detail::blocks_for(total), kThreads, 0, stream()>>>(dev(x), outer, n, inner, dev(out));
  check_launch("sum_axis_kernel");
}

template <class T> void sum_all(const T* x, std::int64_t n, T* out) {
  if (n <= 0) {  // the empty sum is 0 (all-zero bytes for every T)
    check(cudaMemsetAsync(out, 0, sizeof(T), stream()), "cudaMemsetAsync (sum_all of nothing)");
    return;
  }
  const std::int64_t nchunks = (n + kChunk - 1) / kChunk;
  const unsigned grid = static_cast<unsigned>(nchunks < 65535 * 8 ? nchunks : 65535 * 8);
  if (nchunks == 1) {
    chunk_sum_kernel<<<1, kRedThreads, 0, stream()>>>(dev(x), n, nchunks, dev(out));
    check_launch("chunk_sum_kernel");
    return;
  }
  auto& cache = DeviceBlockCache::instance();
  T* partial = static_cast<T*>(cache.get(static_cast<std::size_t>(nchunks) * sizeof(T)));
  chunk_sum_kernel<<<grid, kRedThreads, 0, stream()>>>(dev(x), n, nchunks, dev(partial));
  check_launch("chunk_sum_kernel");
  final_sum_kernel<<<1, kRedThreads, 0, stream()>>>(dev(static_cast<const T*>(partial)), nchunks, dev(out));
  check_launch("final_sum_kernel");
  cache.put(partial);  // reused only by work queued later on the same stream
}

template <class R>
void max_axis(const R* x, std::int64_t outer, std::int64_t n, std::int64_t inner, R* out, std::int64_t* idx) {
  const std::int64_t total = outer * inner;
  if (total <= 0) return;
  if (n <= 0) throw CudaError("CUDA max_axis: reduction over an empty axis");
  max_axis_kernel<<<detail::blocks_for(total), kThreads, 0, stream()>>>(x, outer, n, inner, out, idx);
  check_launch("max_axis_kernel");
}

template <class R>
void max_axis_backward(const R* g, const std::int64_t* idx, std::int64_t outer, std::int64_t n, std::int64_t inner,
                       R* out) {
  const std::int64_t total = outer * n * inner;
  if (total <= 0) return;
  max_axis_backward_kernel<<<detail::blocks_for(total), kThreads, 0, stream()>>>(g, idx, outer, n, inner, out);
  check_launch("max_axis_backward_kernel");
}

#define ERLMR_INST_T(T)                                                                \
  template void sum_axis<T>(const T*, std::int64_t, std::int64_t, std::int64_t, T*); \
  template void sum_all<T>(const T*, std::int64_t, T*);
ERLMR_CUDA_FOR_T(ERLMR_INST_T)
#undef ERLMR_INST_T

#define ERLMR_INST_R(R)                                                                                  \
  template void max_axis<R>(const R*, std::int64_t, std::int64_t, std::int64_t, R*, std::int64_t*);     \
  template void max_axis_backward<R>(const R*, const std::int64_t*, std::int64_t, std::int64_t, std::int64_t, \
                                     R*);
ERLMR_CUDA_FOR_R(ERLMR_INST_R)
#undef ERLMR_INST_R

}  // namespace erlmr::cuda
