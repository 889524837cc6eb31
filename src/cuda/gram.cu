// src/cuda/gram.cu — Σa², Σab, Σb² of two arrays in double, for the min-norm weight γ.
//
// Deterministic: the array is cut into fixed chunks of kChunk elements (depending only
// on n); one block reduces each chunk with a fixed shared-memory tree into a partial
// triple; then one block sums the partials with the same fixed tree. No atomics.
#include "common.cuh"

namespace erlmr::cuda {
namespace {

constexpr int kBlock = 256;
constexpr std::int64_t kChunk = 16384;

// Sums s[k][0..kBlock) into s[k][0] for k < 3 with a fixed tree (the same pairs for every
// launch), then thread 0 writes the three sums to out[0..3). Every thread of the block
// must call it after storing its own s[k][threadIdx.x].
__device__ void block_tree3(double (&s)[3][kBlock], double* out) {
  __syncthreads();
  for (unsigned w = kBlock / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w)
      for (int k = 0; k < 3; ++k) s[k][threadIdx.x] += s[k][threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0)
    for (int k = 0; k < 3; ++k) out[k] = s[k][0];
}

template <class R>
__global__ void gram_partial(const R* a, const R* b, std::int64_t n, double* partial) {
  __shared__ double s[3][kBlock];
  const std::int64_t c0 = blockIdx.x * kChunk;
  const std::int64_t c1 = c0 + kChunk < n ? c0 + kChunk : n;
  double v11 = 0, v12 = 0, v22 = 0;
  for (std::int64_t i = c0 + threadIdx.x; i < c1; i += kBlock) {
    const double x = double(a[i]), y = double(b[i]);
    v11 += x * x;
    v12 += x * y;
    v22 += y * y;
  }
  s[0][threadIdx.x] = v11;
  s[1][threadIdx.x] = v12;
  s[2][threadIdx.x] = v22;
  block_tree3(s, partial + 3 * blockIdx.x);
}

__global__ void gram_final(const double* partial, std::int64_t chunks, double* out) {
  __shared__ double s[3][kBlock];
  double v[3] = {0, 0, 0};
  for (std::int64_t c = threadIdx.x; c < chunks; c += kBlock)
    for (int k = 0; k < 3; ++k) v[k] += partial[3 * c + k];
  for (int k = 0; k < 3; ++k) s[k][threadIdx.x] = v[k];
  block_tree3(s, out);
}

}  // namespace

template <class R> void gram3(const R* a, const R* b, std::int64_t n, double* out) {
  const std::int64_t chunks = n > 0 ? (n + kChunk - 1) / kChunk : 1;
  auto& cache = DeviceBlockCache::instance();
  double* partial = static_cast<double*>(cache.get(static_cast<std::size_t>(3 * chunks) * sizeof(double)));
  if (n > 0) {
    gram_partial<R><<<static_cast<unsigned>(chunks), kBlock, 0, stream()>>>(a, b, n, partial);
    check_launch("gram_partial");
  } else {
    check(cudaMemsetAsync(partial, 0, 3 * sizeof(double), stream()), "gram3 (zero)");
  }
  gram_final<<<1, kBlock, 0, stream()>>>(partial, chunks, out);
  check_launch("gram_final");
  cache.put(partial);  // safe: later users of the block are queued after these kernels
}

#define ERLMR_INST(R) template void gram3<R>(const R*, const R*, std::int64_t, double*);
ERLMR_CUDA_FOR_R(ERLMR_INST)
#undef ERLMR_INST

}  // namespace erlmr::cuda
