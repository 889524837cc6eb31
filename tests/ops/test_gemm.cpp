// Tests for erlmr/simd/gemm.hpp (the unpacked product for thin operands) and for the linear
// layer's products that use it.
#include "test_util.hpp"

#include <cmath>
#include <cstring>
#include <vector>

using namespace erlmr;

namespace {

// C (=|+=) A·B element by element, each element one fma chain over k in increasing order:
// the kernel's documented numerics, so with hardware FMA the two agree bitwise.
template <class R>
void fma_reference(std::int64_t M, std::int64_t N, std::int64_t K, const R* A, std::int64_t lda, const R* B, std::int64_t ldb,
                   R* C, std::int64_t ldc, bool acc) {
  for (std::int64_t i = 0; i < M; ++i)
    for (std::int64_t j = 0; j < N; ++j) {
      R s = acc ? C[i * ldc + j] : R(0);
      for (std::int64_t k = 0; k < K; ++k) s = std::fma(A[i * lda + k], B[k * ldb + j], s);
      C[i * ldc + j] = s;
    }
}

// C (=|+=) A·Bᵀ with gemm_nt's documented numerics: per element, L lane chains (lane l over
// k ≡ l mod L, k < L·⌊K/L⌋), the lanes summed by halving, then the chain over the last k's.
template <class R>
void nt_reference(std::int64_t M, std::int64_t N, std::int64_t K, const R* A, std::int64_t lda, const R* B, std::int64_t ldb,
                  R* C, std::int64_t ldc, bool acc, std::int64_t L) {
  const std::int64_t K0 = K / L * L;
  std::vector<R> lane(static_cast<std::size_t>(L));
  for (std::int64_t i = 0; i < M; ++i)
    for (std::int64_t j = 0; j < N; ++j) {
      std::fill(lane.begin(), lane.end(), R(0));
      for (std::int64_t k = 0; k < K0; ++k) lane[std::size_t(k % L)] = std::fma(A[i * lda + k], B[j * ldb + k], lane[std::size_t(k % L)]);
      for (std::int64_t h = L / 2; h >= 1; h /= 2)
        for (std::int64_t l = 0; l < h; ++l) lane[std::size_t(l)] += lane[std::size_t(l + h)];
      R s = lane[0];
      for (std::int64_t k = K0; k < K; ++k) s = std::fma(A[i * lda + k], B[j * ldb + k], s);
      C[i * ldc + j] = acc ? C[i * ldc + j] + s : s;
    }
}

template <class R> std::vector<R> filled(std::size_t n, std::uint64_t seed) {
  Generator g(seed);
  auto t = Tensor<R>::randn(Shape{std::int64_t(n)}, g);
  return std::vector<R>(t.data(), t.data() + n);
}

// A kernel's C against its reference: close in any build; columns [N, ldc) of every row
// untouched; and with FMA hardware (the kernels' chains fused like std::fma) the same bits.
template <class R>
void check_against_reference(const std::vector<R>& C, const std::vector<R>& ref, const std::vector<R>& before, std::int64_t M,
                             std::int64_t N, std::int64_t ldc) {
  double err = 0;
  for (std::size_t i = 0; i < C.size(); ++i) err = std::max(err, std::abs(double(C[i]) - double(ref[i])));
  CHECK(err <= (sizeof(R) == 4 ? 1e-3 : 1e-11));
  bool padding_untouched = true;
  for (std::int64_t i = 0; i < M; ++i)
    padding_untouched = padding_untouched && std::memcmp(&C[std::size_t(i * ldc + N)], &before[std::size_t(i * ldc + N)],
                                                         std::size_t(ldc - N) * sizeof(R)) == 0;
  CHECK(padding_untouched);
#ifdef __FMA__
  CHECK(std::memcmp(C.data(), ref.data(), C.size() * sizeof(R)) == 0);
#endif
}

struct Case {
  std::int64_t M, N, K;
};

}  // namespace

TEST_CASE_TEMPLATE("gemm_nn: every tile and remainder path equals the fma-chain reference", R, float, double) {
  if (!simd::gemm_available()) {
    MESSAGE("skipped: built without SIMD (the layers use Eigen then)");
    return;
  }
  // M: full 6-row tiles and every remainder; N: 4-vector tiles, single vectors, a scalar tail,
  // the strip split and the row-block split; K: one k-block, several (kKc = 1024), none.
  const Case cases[] = {{1, 1, 1},    {5, 7, 3},     {6, 64, 10},  {13, 83, 17},  {64, 600, 40},
                        {400, 40, 70}, {11, 150, 2100}, {7, 33, 0}, {250, 530, 5}};
  for (const auto& c : cases)
    for (bool acc : {false, true}) {
      CAPTURE(c.M);
      CAPTURE(c.N);
      CAPTURE(c.K);
      CAPTURE(acc);
      // Leading dimensions wider than the matrices (views into bigger buffers).
      const std::int64_t lda = c.K + 3, ldb = c.N + 5, ldc = c.N + 2;
      const auto A = filled<R>(std::size_t(c.M * lda), 1), B = filled<R>(std::size_t(std::max<std::int64_t>(c.K, 1) * ldb), 2);
      auto C = filled<R>(std::size_t(c.M * ldc), 3);
      const auto before = C;
      auto ref = C;
      simd::gemm_nn<R>(c.M, c.N, c.K, A.data(), lda, B.data(), ldb, C.data(), ldc, acc);
      fma_reference<R>(c.M, c.N, c.K, A.data(), lda, B.data(), ldb, ref.data(), ldc, acc);
      check_against_reference(C, ref, before, c.M, c.N, ldc);
    }
}

TEST_CASE_TEMPLATE("gemm_nn: every width of a last partial vector, masked and padded, equals the fma-chain reference", R, float, double) {
  // Column counts L + w for every w in [1, L): the last w columns go through the masked tail on
  // AVX-512 (gemm_detail::tail_masked) and through the zero-padded copies elsewhere
  // (gemm_detail::tail); the padded path is also called directly, so that both are checked on
  // every build. K: none, a few, and past one k-block of the padded path (kTailK = 256).
  if (!simd::gemm_available()) return;
#ifdef ERLMR_USE_XSIMD
  constexpr std::int64_t L = std::int64_t(xsimd::batch<R>::size);
  for (std::int64_t w = 1; w < L; ++w)
    for (const std::int64_t K : {std::int64_t(0), std::int64_t(3), std::int64_t(300)})
      for (bool acc : {false, true}) {
        CAPTURE(w);
        CAPTURE(K);
        CAPTURE(acc);
        const std::int64_t M = 8, N = L + w, lda = K + 1, ldb = N + 3, ldc = N + 2;
        const auto A = filled<R>(std::size_t(M * lda), 4), B = filled<R>(std::size_t(std::max<std::int64_t>(K, 1) * ldb), 5);
        auto C = filled<R>(std::size_t(M * ldc), 6);
        const auto before = C;
        auto ref = C, padded = C;
        simd::gemm_nn<R>(M, N, K, A.data(), lda, B.data(), ldb, C.data(), ldc, acc);
        fma_reference<R>(M, N, K, A.data(), lda, B.data(), ldb, ref.data(), ldc, acc);
        check_against_reference(C, ref, before, M, N, ldc);
        // The padded path on the last w columns, the first L as the reference computes them.
        std::copy(ref.begin(), ref.end(), padded.begin());
        for (std::int64_t i = 0; i < M; ++i)
          for (std::int64_t j = L; j < N; ++j) padded[std::size_t(i * ldc + j)] = before[std::size_t(i * ldc + j)];
        simd::gemm_detail::tail<R>(A.data(), lda, B.data() + L, ldb, padded.data() + L, ldc, M, K, w, acc);
        check_against_reference(padded, ref, before, M, N, ldc);
      }
#endif
}

TEST_CASE_TEMPLATE("gemm_nt: every tile and remainder path equals the lane-chain reference", R, float, double) {
  if (!simd::gemm_available()) {
    MESSAGE("skipped: built without SIMD (the layers use Eigen then)");
    return;
  }
#ifdef ERLMR_USE_XSIMD
  const std::int64_t L = std::int64_t(xsimd::batch<R>::size);
#else
  const std::int64_t L = 1;
#endif
  // M, N: full tiles and every remainder (tiles of 3 or 4); K: shorter than a vector, whole
  // vectors, vectors plus a tail, none.
  const Case cases[] = {{1, 1, 1}, {4, 4, 16}, {5, 7, 3}, {9, 6, 33}, {13, 11, 100}, {64, 4, 637}, {3, 30, 0}, {40, 50, 17}};
  for (const auto& c : cases)
    for (bool acc : {false, true}) {
      CAPTURE(c.M);
      CAPTURE(c.N);
      CAPTURE(c.K);
      CAPTURE(acc);
      const std::int64_t lda = c.K + 3, ldb = c.K + 1, ldc = c.N + 2;
      const auto A = filled<R>(std::size_t(c.M * lda), 6), B = filled<R>(std::size_t(c.N * ldb), 7);
      auto C = filled<R>(std::size_t(c.M * ldc), 8);
      const auto before = C;
      auto ref = C;
      simd::gemm_nt<R>(c.M, c.N, c.K, A.data(), lda, B.data(), ldb, C.data(), ldc, acc);
      nt_reference<R>(c.M, c.N, c.K, A.data(), lda, B.data(), ldb, ref.data(), ldc, acc, L);
      check_against_reference(C, ref, before, c.M, c.N, ldc);
    }
}

TEST_CASE("gemm_nt: the same bits with one thread and with two") {
  if (!simd::gemm_available()) {
    MESSAGE("skipped: built without SIMD");
    return;
  }
  const std::int64_t M = 61, N = 39, K = 3001;
  const auto A = filled<float>(std::size_t(M * K), 9), B = filled<float>(std::size_t(N * K), 10);
  std::vector<float> c1(std::size_t(M * N)), c2(c1.size());
  auto& pool = ThreadPool::instance();
  const int saved = pool.num_threads();
  pool.set_num_threads(1);
  simd::gemm_nt<float>(M, N, K, A.data(), K, B.data(), K, c1.data(), N, false);
  pool.set_num_threads(2);
  simd::gemm_nt<float>(M, N, K, A.data(), K, B.data(), K, c2.data(), N, false);
  pool.set_num_threads(saved);
  CHECK(std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(float)) == 0);
}

TEST_CASE("gemm_nn: the same bits with one thread and with two") {
  if (!simd::gemm_available()) {
    MESSAGE("skipped: built without SIMD");
    return;
  }
  const std::int64_t M = 300, N = 700, K = 1500;
  const auto A = filled<float>(std::size_t(M * K), 4), B = filled<float>(std::size_t(K * N), 5);
  std::vector<float> c1(std::size_t(M * N)), c2(c1.size()), c3(c1.size()), c4(c1.size());
  auto& pool = ThreadPool::instance();
  const int saved = pool.num_threads();
  pool.set_num_threads(1);
  simd::gemm_nn<float>(M, N, K, A.data(), K, B.data(), N, c1.data(), N, false);
  simd::gemm_nn<float>(M, 40, K, A.data(), K, B.data(), N, c3.data(), N, false);  // the row-block split
  pool.set_num_threads(2);
  simd::gemm_nn<float>(M, N, K, A.data(), K, B.data(), N, c2.data(), N, false);
  simd::gemm_nn<float>(M, 40, K, A.data(), K, B.data(), N, c4.data(), N, false);
  pool.set_num_threads(saved);
  CHECK(std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(float)) == 0);
  bool same = true;  // the first 40 columns do not depend on how C was split, nor on the threads
  for (std::int64_t i = 0; i < M; ++i) {
    same = same && std::memcmp(&c1[std::size_t(i * N)], &c3[std::size_t(i * N)], 40 * sizeof(float)) == 0;
    same = same && std::memcmp(&c3[std::size_t(i * N)], &c4[std::size_t(i * N)], 40 * sizeof(float)) == 0;
  }
  CHECK(same);
}

TEST_CASE("linear and conv2d: the unpacked products agree with Eigen's (forward and every gradient)") {
  auto run = [](bool thin) {
    simd::set_enabled(thin);
    auto x = test::rnd<double>(Shape{2, 9, 130}, 11), w = test::rnd<double>(Shape{70, 130}, 12), b = test::rnd<double>(Shape{70}, 13);
    auto z = test::rnd<test::cd>(Shape{9, 130}, 14);
    auto y = linear(x, w, b);
    auto yz = linear(z, w, b);
    // A weight of 140 ≥ kNtMaxRows rows: Y = X·Wᵀ through gemm_nn (as W·Xᵀ), not gemm_nt.
    auto w2 = test::rnd<double>(Shape{140, 130}, 18);
    auto y2 = linear(x, w2);
    // conv2d: forward W·cols, G_W = G·colsᵀ (gemm_nt: 30 patch rows), G_cols = Wᵀ·G.
    auto im = test::rnd<double>(Shape{3, 5, 6, 40}, 15), k = test::rnd<double>(Shape{20, 5, 2, 3}, 16), kb = test::rnd<double>(Shape{20}, 17);
    auto c = conv2d(im, k, kb, {1, 2}, {1, 0});
    auto loss = add(add(add(sum(mul(y, y)), add(sum(mul(real(yz), real(yz))), sum(imag(yz)))), sum(mul(c, c))), sum(mul(y2, y2)));
    backward(loss);
    simd::set_enabled(true);
    return std::vector<Tensor<double>>{loss.value(), x.grad(), w.grad(), b.grad(), im.grad(), k.grad(), kb.grad(), w2.grad()};
  };
  const auto thin = run(true), eigen = run(false);
  for (std::size_t i = 0; i < thin.size(); ++i) {
    CAPTURE(i);
    const double scale = std::max(1.0, thin[i].mat().cwiseAbs().maxCoeff());
    CHECK((thin[i].mat() - eigen[i].mat()).cwiseAbs().maxCoeff() <= 1e-12 * scale);
  }
}

TEST_CASE_TEMPLATE("transpose_into: every element in its place, for any shape and thread count", T, float, double) {
  // Floats go by 8 × 8 register blocks where the target has AVX, with element-by-element
  // edges: shapes with and without whole blocks, rows and columns shorter than a block, and
  // more than one 32 × 32 tile each way.
  for (const auto& rc : {std::pair<std::int64_t, std::int64_t>{1, 1}, {1, 17}, {17, 1}, {8, 8}, {7, 9}, {16, 40}, {37, 53},
                         {64, 198}, {33, 96}}) {
    const std::int64_t r = rc.first, c = rc.second;
    CAPTURE(r);
    CAPTURE(c);
    std::vector<T> src(static_cast<std::size_t>(r * c));
    for (std::size_t i = 0; i < src.size(); ++i) src[i] = T(i) + T(0.25);
    for (const int threads : {1, 2}) {
      CAPTURE(threads);
      auto& pool = ThreadPool::instance();
      const int saved = pool.num_threads();
      pool.set_num_threads(threads);
      std::vector<T> dst(src.size(), T(-1));
      detail::transpose_into(src.data(), r, c, dst.data());
      pool.set_num_threads(saved);
      std::int64_t wrong = 0;
      for (std::int64_t i = 0; i < r; ++i)
        for (std::int64_t j = 0; j < c; ++j) wrong += dst[static_cast<std::size_t>(j * r + i)] != src[static_cast<std::size_t>(i * c + j)];
      CHECK(wrong == 0);
    }
  }
}
