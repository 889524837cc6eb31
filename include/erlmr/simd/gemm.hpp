// erlmr/simd/gemm.hpp — a real matrix product that reads its right operand in place.
//
//   gemm_nn(M, N, K, A, lda, B, ldb, C, ldc, accumulate):  C (=|+=) A·B
//   A (M×K), B (K×N), C (M×N), all row-major with leading dimensions lda, ldb, ldc.
//   gemm_nt(M, N, K, A, lda, B, ldb, C, ldc, accumulate):  C (=|+=) A·Bᵀ
//   A (M×K), B (N×K): every element of C is the dot product of two contiguous rows.
//
// Why: ERL-MR's products all have one thin side — at batch 16 the shared projection's
// 1584 × 3168 weight meets 4B = 64 rows — and a general GEMM (Eigen's) copies both operands
// into packed panels in every product, so the 20 MB weight is copied five times per step;
// packing was 16 % of the step's profile. Here nothing is packed:
//   - C is cut into column strips of kStrip columns (or, when N is narrow, into blocks of
//     kRowBlock rows); threads take whole strips/blocks (CpuDevice::parallel_for);
//   - within a strip, a micro-kernel keeps an MR × (NV·L) tile of C in registers (L = SIMD
//     lanes; MR = 6, NV = 4 with 32 vector registers, 2 with 16) and for each k loads NV vectors of B's row k
//     and broadcasts MR elements of A's column k — B's strip (kc rows × NV·L columns) stays
//     in L2 and is reused by every MR-row block of A; K is cut into blocks of kc rows;
//   - the last columns (fewer than L) go through the same micro-kernel on zero-padded copies
//     (on AVX-512: through masked loads and stores, without copies);
//   - a transposed operand is handled by the caller: ops/linalg.hpp transposes the thin
//     operand (cheap) or computes Cᵀ = Bᵀ·Aᵀ so that the big operand is the one read in place.
// Numerics: every element of C is one multiply-add chain over k in increasing order (fused,
// i.e. rounded once per step, on targets with FMA),
// starting from C's value (accumulate) or zero — the same in every code path (full tiles,
// row and column remainders, the padded tail, any strip or thread split), so the result
// does not depend on the thread count. It differs from Eigen's product by the summation
// order only (the float64 fixture tests hold to 1e-10).
//
// gemm_nt is for A·Bᵀ with both M and N small and K long — a convolution's weight gradient
// G·colsᵀ (16–64 output channels × 4–256 patch rows, K = B·H·W positions), the small heads'
// X·Wᵀ — where gemm_nn would need both operands transposed first. An MR × NR tile of C
// keeps one SIMD accumulator per element, loads MR rows of A and NR rows of B per step of L
// k's, and reduces each accumulator once at the end. Numerics: lane l of element (i, j)
// is the fma chain over k ≡ l (mod L), k < K₀ = L·⌊K/L⌋, in increasing order; the L lanes
// are summed by halving (lane[i] += lane[i + h] for h = L/2, L/4, …, 1); the chain then
// continues over k = K₀ … K−1; the result is stored (or added to C). Every tile, remainder
// and thread split computes each element this way.
// Compiled with xsimd (ERLMR_USE_XSIMD); gemm_available() says whether it may be used (the
// callers fall back to Eigen otherwise, and when simd::set_enabled(false)).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <type_traits>

#include "erlmr/core/device.hpp"
#include "erlmr/core/scalar.hpp"
#include "erlmr/simd/kernels.hpp"

namespace erlmr::simd {

inline bool gemm_available() { return enabled(); }

#ifdef ERLMR_USE_XSIMD
namespace gemm_detail {

inline constexpr int kMR = 6;  // rows of A per micro-tile
// SIMD vectors of C per micro-tile row: 6 × 4 accumulators + 4 B vectors + a broadcast fit
// AVX-512's 32 vector registers; with 16 (AVX2, SSE) the tile is 6 × 2.
template <class R> constexpr int kNV = sizeof(xsimd::batch<R>) >= 64 ? 4 : 2;

// c + a·b rounded once. xsimd 8's fma is not fused on AVX-512 (it computes a·b + c, which
// GCC contracts only from -O2 on), so the FMA instructions are named directly where the
// target has them: the result is then the same at every optimisation level.
template <class R, class V> inline V fmadd(const V& a, const V& b, const V& c) {
#if defined(__AVX512F__)
  if constexpr (sizeof(V) == 64) {
    if constexpr (std::is_same_v<R, float>) return V(_mm512_fmadd_ps(a, b, c));
    else return V(_mm512_fmadd_pd(a, b, c));
  }
#endif
#if defined(__FMA__)
  if constexpr (sizeof(V) == 32) {
    if constexpr (std::is_same_v<R, float>) return V(_mm256_fmadd_ps(a, b, c));
    else return V(_mm256_fmadd_pd(a, b, c));
  }
  if constexpr (sizeof(V) == 16) {
    if constexpr (std::is_same_v<R, float>) return V(_mm_fmadd_ps(a, b, c));
    else return V(_mm_fmadd_pd(a, b, c));
  }
#endif
  return xsimd::fma(a, b, c);
}
inline constexpr std::int64_t kKc = 1024;   // rows of B per k-block (the strip stays in L2)
inline constexpr std::int64_t kRowBlock = 48;  // rows of C per task when C is narrow (a multiple of kMR)

// C[0:MR, 0:NV·L] (=|+=) A[0:MR, 0:K] · B[0:K, 0:NV·L]: the register tile.
template <class R, int MR, int NV>
inline void micro(const R* __restrict A, std::int64_t lda, const R* __restrict B, std::int64_t ldb, R* __restrict C,
                  std::int64_t ldc, std::int64_t K, bool acc) {
  using V = xsimd::batch<R>;
  constexpr int L = int(V::size);
  V c[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) c[r][v] = acc ? V::load_unaligned(C + r * ldc + v * L) : V(R(0));
  for (std::int64_t k = 0; k < K; ++k) {
    V b[NV];
    for (int v = 0; v < NV; ++v) b[v] = V::load_unaligned(B + k * ldb + v * L);
    for (int r = 0; r < MR; ++r) {
      const V a(A[r * lda + k]);
      for (int v = 0; v < NV; ++v) c[r][v] = fmadd<R>(a, b[v], c[r][v]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) c[r][v].store_unaligned(C + r * ldc + v * L);
}

// A tile of mr ≤ MR rows (the micro-kernel takes its row count at compile time).
template <class R, int NV>
inline void micro_rows(std::int64_t mr, const R* A, std::int64_t lda, const R* B, std::int64_t ldb, R* C, std::int64_t ldc,
                       std::int64_t K, bool acc) {
  switch (mr) {
    case 6: micro<R, 6, NV>(A, lda, B, ldb, C, ldc, K, acc); break;
    case 5: micro<R, 5, NV>(A, lda, B, ldb, C, ldc, K, acc); break;
    case 4: micro<R, 4, NV>(A, lda, B, ldb, C, ldc, K, acc); break;
    case 3: micro<R, 3, NV>(A, lda, B, ldb, C, ldc, K, acc); break;
    case 2: micro<R, 2, NV>(A, lda, B, ldb, C, ldc, K, acc); break;
    case 1: micro<R, 1, NV>(A, lda, B, ldb, C, ldc, K, acc); break;
    default: break;
  }
}
static_assert(kMR == 6, "micro_rows dispatches tiles of up to 6 rows");

// All M rows for NV·L columns: full MR-row tiles, then one tile of the remaining rows.
template <class R, int NV>
inline void rows(const R* A, std::int64_t lda, const R* B, std::int64_t ldb, R* C, std::int64_t ldc, std::int64_t M, std::int64_t K,
                 bool acc) {
  std::int64_t i = 0;
  for (; i + kMR <= M; i += kMR) micro<R, kMR, NV>(A + i * lda, lda, B, ldb, C + i * ldc, ldc, K, acc);
  micro_rows<R, NV>(M - i, A + i * lda, lda, B, ldb, C + i * ldc, ldc, K, acc);
}

// The last w < L columns: copied into zero-padded L-wide buffers (B by chunks of kTailK
// rows, C by MR-row tiles) and run through the same one-vector micro-kernel, so they are
// computed by the same fma chains as every other column, at vector speed.
inline constexpr std::int64_t kTailK = 256;
template <class R>
void tail(const R* A, std::int64_t lda, const R* B, std::int64_t ldb, R* C, std::int64_t ldc, std::int64_t M, std::int64_t K,
          std::int64_t w, bool acc) {
  constexpr std::int64_t L = std::int64_t(xsimd::batch<R>::size);
  alignas(64) R bt[kTailK * L];
  alignas(64) R ct[kMR * L];
  for (std::int64_t k0 = 0; k0 < K || k0 == 0; k0 += kTailK) {
    const std::int64_t kc = std::min(kTailK, K - k0);
    const bool a0 = acc || k0 > 0;
    for (std::int64_t k = 0; k < kc; ++k)
      for (std::int64_t c = 0; c < L; ++c) bt[k * L + c] = c < w ? B[(k0 + k) * ldb + c] : R(0);
    for (std::int64_t i = 0; i < M; i += kMR) {
      const std::int64_t mr = std::min<std::int64_t>(kMR, M - i);
      for (std::int64_t r = 0; r < mr; ++r)
        for (std::int64_t c = 0; c < L; ++c) ct[r * L + c] = a0 && c < w ? C[(i + r) * ldc + c] : R(0);
      micro_rows<R, 1>(mr, A + i * lda + k0, lda, bt, L, ct, L, kc, true);
      for (std::int64_t r = 0; r < mr; ++r)
        for (std::int64_t c = 0; c < w; ++c) C[(i + r) * ldc + c] = ct[r * L + c];
    }
    if (K == 0) break;
  }
}

#if defined(__AVX512F__)
// The last w < L columns on AVX-512, without copies: B's and C's vectors loaded and C's
// stored under a mask of w lanes (masked-off lanes are neither read nor written, so nothing
// past the matrices' ends is touched). Each element is the same fma chain as in tail (and
// every other path), so the same bits.
template <class R> inline constexpr bool kMaskedTail = sizeof(xsimd::batch<R>) == 64;
template <class R, int MR>
inline void micro_masked(const R* __restrict A, std::int64_t lda, const R* __restrict B, std::int64_t ldb, R* __restrict C,
                         std::int64_t ldc, std::int64_t K, bool acc, std::int64_t w) {
  if constexpr (std::is_same_v<R, float>) {
    const __mmask16 m = static_cast<__mmask16>((1u << w) - 1);
    __m512 c[MR];
    for (int r = 0; r < MR; ++r) c[r] = acc ? _mm512_maskz_loadu_ps(m, C + r * ldc) : _mm512_setzero_ps();
    for (std::int64_t k = 0; k < K; ++k) {
      const __m512 b = _mm512_maskz_loadu_ps(m, B + k * ldb);
      for (int r = 0; r < MR; ++r) c[r] = _mm512_fmadd_ps(_mm512_set1_ps(A[r * lda + k]), b, c[r]);
    }
    for (int r = 0; r < MR; ++r) _mm512_mask_storeu_ps(C + r * ldc, m, c[r]);
  } else {
    const __mmask8 m = static_cast<__mmask8>((1u << w) - 1);
    __m512d c[MR];
    for (int r = 0; r < MR; ++r) c[r] = acc ? _mm512_maskz_loadu_pd(m, C + r * ldc) : _mm512_setzero_pd();
    for (std::int64_t k = 0; k < K; ++k) {
      const __m512d b = _mm512_maskz_loadu_pd(m, B + k * ldb);
      for (int r = 0; r < MR; ++r) c[r] = _mm512_fmadd_pd(_mm512_set1_pd(A[r * lda + k]), b, c[r]);
    }
    for (int r = 0; r < MR; ++r) _mm512_mask_storeu_pd(C + r * ldc, m, c[r]);
  }
}
template <class R>
void tail_masked(const R* A, std::int64_t lda, const R* B, std::int64_t ldb, R* C, std::int64_t ldc, std::int64_t M, std::int64_t K,
                 std::int64_t w, bool acc) {
  std::int64_t i = 0;
  for (; i + kMR <= M; i += kMR) micro_masked<R, kMR>(A + i * lda, lda, B, ldb, C + i * ldc, ldc, K, acc, w);
  const R* Ai = A + i * lda;
  R* Ci = C + i * ldc;
  switch (M - i) {
    case 5: micro_masked<R, 5>(Ai, lda, B, ldb, Ci, ldc, K, acc, w); break;
    case 4: micro_masked<R, 4>(Ai, lda, B, ldb, Ci, ldc, K, acc, w); break;
    case 3: micro_masked<R, 3>(Ai, lda, B, ldb, Ci, ldc, K, acc, w); break;
    case 2: micro_masked<R, 2>(Ai, lda, B, ldb, Ci, ldc, K, acc, w); break;
    case 1: micro_masked<R, 1>(Ai, lda, B, ldb, Ci, ldc, K, acc, w); break;
    default: break;
  }
}
#else
template <class R> inline constexpr bool kMaskedTail = false;
template <class R>
void tail_masked(const R*, std::int64_t, const R*, std::int64_t, R*, std::int64_t, std::int64_t, std::int64_t, std::int64_t, bool) {}
#endif

// Columns [j0, j1) of rows [0, M) of C, over K in blocks of kKc (each block continues the
// chains the previous one stored: the order over k is unchanged).
template <class R>
void block(const R* A, std::int64_t lda, const R* B, std::int64_t ldb, R* C, std::int64_t ldc, std::int64_t M, std::int64_t K,
           std::int64_t j0, std::int64_t j1, bool acc) {
  constexpr std::int64_t L = std::int64_t(xsimd::batch<R>::size);
  for (std::int64_t k0 = 0; k0 < K || k0 == 0; k0 += kKc) {
    const std::int64_t kc = std::min(kKc, K - k0);
    const bool a0 = acc || k0 > 0;
    const R* Ak = A + k0;
    const R* Bk = B + k0 * ldb;
    std::int64_t j = j0;
    for (; j + kNV<R> * L <= j1; j += kNV<R> * L) rows<R, kNV<R>>(Ak, lda, Bk + j, ldb, C + j, ldc, M, kc, a0);
    for (; j + L <= j1; j += L) rows<R, 1>(Ak, lda, Bk + j, ldb, C + j, ldc, M, kc, a0);
    if (j < j1) {
      if constexpr (kMaskedTail<R>) tail_masked<R>(Ak, lda, Bk + j, ldb, C + j, ldc, M, kc, j1 - j, a0);
      else tail<R>(Ak, lda, Bk + j, ldb, C + j, ldc, M, kc, j1 - j, a0);
    }
    if (K == 0) break;
  }
}

// ---- gemm_nt -------------------------------------------------------------------------
// An MR × NR tile of C (=|+=) A·Bᵀ: MR·NR accumulators + MR + NR loaded vectors fit the
// register file (4 × 4 with 32 vector registers, 3 × 3 with 16).
template <class R> constexpr int kNtTile = sizeof(xsimd::batch<R>) >= 64 ? 4 : 3;

template <class R, int MR, int NR>
inline void nt_micro(const R* __restrict A, std::int64_t lda, const R* __restrict B, std::int64_t ldb, R* __restrict C,
                     std::int64_t ldc, std::int64_t K, bool acc) {
  using V = xsimd::batch<R>;
  constexpr int L = int(V::size);
  const std::int64_t K0 = K / L * L;
  V c[MR][NR];
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NR; ++j) c[r][j] = V(R(0));
  for (std::int64_t k = 0; k < K0; k += L) {
    V a[MR], b[NR];
    for (int r = 0; r < MR; ++r) a[r] = V::load_unaligned(A + r * lda + k);
    for (int j = 0; j < NR; ++j) b[j] = V::load_unaligned(B + j * ldb + k);
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < NR; ++j) c[r][j] = fmadd<R>(a[r], b[j], c[r][j]);
  }
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NR; ++j) {
      alignas(64) R lane[L];
      c[r][j].store_aligned(lane);
      for (int h = L / 2; h >= 1; h /= 2)
        for (int i = 0; i < h; ++i) lane[i] += lane[i + h];
      R s = lane[0];
      for (std::int64_t k = K0; k < K; ++k) s = std::fma(A[r * lda + k], B[j * ldb + k], s);
      R& out = C[r * ldc + j];
      out = acc ? out + s : s;
    }
}

template <class R, int MR>
inline void nt_cols(int nr, const R* A, std::int64_t lda, const R* B, std::int64_t ldb, R* C, std::int64_t ldc, std::int64_t K,
                    bool acc) {
  switch (nr) {
    case 4: nt_micro<R, MR, 4>(A, lda, B, ldb, C, ldc, K, acc); break;
    case 3: nt_micro<R, MR, 3>(A, lda, B, ldb, C, ldc, K, acc); break;
    case 2: nt_micro<R, MR, 2>(A, lda, B, ldb, C, ldc, K, acc); break;
    case 1: nt_micro<R, MR, 1>(A, lda, B, ldb, C, ldc, K, acc); break;
    default: break;
  }
}
template <class R>
inline void nt_tile(int mr, int nr, const R* A, std::int64_t lda, const R* B, std::int64_t ldb, R* C, std::int64_t ldc,
                    std::int64_t K, bool acc) {
  switch (mr) {
    case 4: nt_cols<R, 4>(nr, A, lda, B, ldb, C, ldc, K, acc); break;
    case 3: nt_cols<R, 3>(nr, A, lda, B, ldb, C, ldc, K, acc); break;
    case 2: nt_cols<R, 2>(nr, A, lda, B, ldb, C, ldc, K, acc); break;
    case 1: nt_cols<R, 1>(nr, A, lda, B, ldb, C, ldc, K, acc); break;
    default: break;
  }
}
static_assert(kNtTile<float> <= 4 && kNtTile<double> <= 4, "nt_tile dispatches tiles of up to 4 × 4");

}  // namespace gemm_detail
#endif

// C (=|+=) A·B, see the top of this file. Requires gemm_available().
template <RealScalar R>
void gemm_nn(std::int64_t M, std::int64_t N, std::int64_t K, const R* A, std::int64_t lda, const R* B, std::int64_t ldb, R* C,
             std::int64_t ldc, bool accumulate) {
#ifdef ERLMR_USE_XSIMD
  using namespace gemm_detail;
  if (M <= 0 || N <= 0) return;
  constexpr std::int64_t L = std::int64_t(xsimd::batch<R>::size);
  constexpr std::int64_t strip = 4 * kNV<R> * L;  // columns per task
  if (N >= 2 * strip || M < 2 * kRowBlock) {
    const std::int64_t tasks = (N + strip - 1) / strip;
    CpuDevice::parallel_for(tasks, 1, [&](std::int64_t t0, std::int64_t t1) {
      for (std::int64_t t = t0; t < t1; ++t) block<R>(A, lda, B, ldb, C, ldc, M, K, t * strip, std::min(N, (t + 1) * strip), accumulate);
    });
  } else {
    const std::int64_t tasks = (M + kRowBlock - 1) / kRowBlock;
    CpuDevice::parallel_for(tasks, 1, [&](std::int64_t t0, std::int64_t t1) {
      for (std::int64_t t = t0; t < t1; ++t) {
        const std::int64_t i0 = t * kRowBlock, m = std::min(kRowBlock, M - i0);
        block<R>(A + i0 * lda, lda, B, ldb, C + i0 * ldc, ldc, m, K, 0, N, accumulate);
      }
    });
  }
#else
  (void)M, (void)N, (void)K, (void)A, (void)lda, (void)B, (void)ldb, (void)C, (void)ldc, (void)accumulate;
  throw std::logic_error("simd::gemm_nn: compiled without xsimd (check simd::gemm_available() first)");
#endif
}

// C (=|+=) A·Bᵀ, see the top of this file. Requires gemm_available(). Tiles are taken
// B-block by B-block (a task's tiles share their NR rows of B, which stay in L1 while A's
// rows stream past), in chunks sized to give each thread several.
template <RealScalar R>
void gemm_nt(std::int64_t M, std::int64_t N, std::int64_t K, const R* A, std::int64_t lda, const R* B, std::int64_t ldb, R* C,
             std::int64_t ldc, bool accumulate) {
#ifdef ERLMR_USE_XSIMD
  using namespace gemm_detail;
  if (M <= 0 || N <= 0) return;
  constexpr std::int64_t T = kNtTile<R>;
  const std::int64_t mi = (M + T - 1) / T, nj = (N + T - 1) / T, tiles = mi * nj;
  const std::int64_t grain = std::max<std::int64_t>(1, tiles / (4 * CpuDevice::num_threads()));
  CpuDevice::parallel_for(tiles, grain, [&](std::int64_t t0, std::int64_t t1) {
    for (std::int64_t t = t0; t < t1; ++t) {
      const std::int64_t i = (t % mi) * T, j = (t / mi) * T;
      nt_tile<R>(int(std::min(T, M - i)), int(std::min(T, N - j)), A + i * lda, lda, B + j * ldb, ldb, C + i * ldc + j, ldc, K,
                 accumulate);
    }
  });
#else
  (void)M, (void)N, (void)K, (void)A, (void)lda, (void)B, (void)ldb, (void)C, (void)ldc, (void)accumulate;
  throw std::logic_error("simd::gemm_nt: compiled without xsimd (check simd::gemm_available() first)");
#endif
}

}  // namespace erlmr::simd
