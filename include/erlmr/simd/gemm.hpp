// erlmr/simd/gemm.hpp — a real matrix product that reads its right operand in place.
//
//   gemm_nn(M, N, K, A, lda, B, ldb, C, ldc, accumulate):  C (=|+=) A·B
//   A (M×K), B (K×N), C (M×N), all row-major with leading dimensions lda, ldb, ldc.
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
//   - the last columns (fewer than L) go through the same micro-kernel on zero-padded copies;
//   - a transposed operand is handled by the caller: ops/linalg.hpp transposes the thin
//     operand (cheap) or computes Cᵀ = Bᵀ·Aᵀ so that the big operand is the one read in place.
// Numerics: every element of C is one multiply-add chain over k in increasing order (fused,
// i.e. rounded once per step, on targets with FMA),
// starting from C's value (accumulate) or zero — the same in every code path (full tiles,
// row and column remainders, the padded tail, any strip or thread split), so the result
// does not depend on the thread count. It differs from Eigen's product by the summation
// order only (the float64 fixture tests hold to 1e-10).
// Compiled with xsimd (ERLMR_USE_XSIMD); gemm_available() says whether it may be used (the
// callers fall back to Eigen otherwise, and when simd::set_enabled(false)).
#pragma once
#include <algorithm>
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
    if (j < j1) tail<R>(Ak, lda, Bk + j, ldb, C + j, ldc, M, kc, j1 - j, a0);
    if (K == 0) break;
  }
}

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

}  // namespace erlmr::simd
