// erlmr/ops/linalg.hpp — matrix products and the linear layer.
//
//   matmul(A, B) = A·B for real×real, complex×complex and complex×real (2-D).
//   linear(x, W, b) = x·Wᵀ + b over the last axis of x (any leading axes).
//
// Backward (spec §2 convention; ᴴ is the conjugate transpose):
//   C = A·B:  G_A = G·Bᴴ,  G_B = Aᴴ·G.
//   Complex A, real B: G_A = G·Bᵀ, G_B = Re(Aᴴ·G) = Re(A)ᵀ·Re(G) + Im(A)ᵀ·Im(G).
//   Complex x, real W, real b (bias added to both parts, y = x·Wᵀ + (1+i)·b):
//     G_x = G·W,  G_W = Re(Gᴴ·x),  G_b = Σ_rows (Re G + Im G).
//
// Complex×real products run as ONE real GEMM on the stacked [Re; Im] rows, so the
// real weight is streamed once for both parts. Products are cut into column (or
// row) panels of fixed width that threads take independently; each panel is a
// single-threaded Eigen GEMM whose shape does not depend on the thread count,
// so results are bitwise identical for any number of threads. Real products with a
// thin side (the linear layer's three, a convolution's three) go through simd::gemm_nn
// instead, which reads the big operand in place, and A·Bᵀ with both sides short through
// simd::gemm_nt, which reads both in place (simd/gemm.hpp, product_* below).
#pragma once
#include <array>
#include <type_traits>
#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "erlmr/autograd/backward.hpp"
#include "erlmr/ops/elementwise.hpp"
#include "erlmr/simd/gemm.hpp"

namespace erlmr {

namespace detail {
template <class T> using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T> using MatRef = Eigen::Map<RowMat<T>>;
template <class T> using CMatRef = Eigen::Map<const RowMat<T>>;

inline constexpr std::int64_t kPanel = 128;

// C (+)= op(A)·op(B) where op is identity or (conjugate) transpose, parallel over
// fixed-width panels of C's columns (or rows when C is tall and thin).
template <class T, class EA, class EB>
void gemm_into(MatRef<T> C, const EA& A, const EB& B, bool accumulate) {
  const std::int64_t m = C.rows(), n = C.cols();
  const std::int64_t work = m * n * (A.cols() > 0 ? A.cols() : 1);
  if (work < (1 << 18)) {  // small: one call
    if (accumulate) C.noalias() += A * B; else C.noalias() = A * B;
    return;
  }
  if (n >= m) {
    const std::int64_t panels = (n + kPanel - 1) / kPanel;
    CpuDevice::parallel_for(panels, 1, [&](std::int64_t p0, std::int64_t p1) {
      for (std::int64_t p = p0; p < p1; ++p) {
        const std::int64_t c0 = p * kPanel, nc = std::min(kPanel, n - c0);
        if (accumulate) C.middleCols(c0, nc).noalias() += A * B.middleCols(c0, nc);
        else C.middleCols(c0, nc).noalias() = A * B.middleCols(c0, nc);
      }
    });
  } else {
    const std::int64_t panels = (m + kPanel - 1) / kPanel;
    CpuDevice::parallel_for(panels, 1, [&](std::int64_t p0, std::int64_t p1) {
      for (std::int64_t p = p0; p < p1; ++p) {
        const std::int64_t r0 = p * kPanel, nr = std::min(kPanel, m - r0);
        if (accumulate) C.middleRows(r0, nr).noalias() += A.middleRows(r0, nr) * B;
        else C.middleRows(r0, nr).noalias() = A.middleRows(r0, nr) * B;
      }
    });
  }
}

template <class T> CMatRef<T> cmat(const Tensor<T>& t, std::int64_t r, std::int64_t c) { return CMatRef<T>(t.data(), r, c); }
template <class T> MatRef<T> mmat(const Tensor<T>& t, std::int64_t r, std::int64_t c) { return MatRef<T>(t.data(), r, c); }

#if defined(__AVX__)
// d[j·ldd + i] = s[i·lds + j] for an 8 × 8 block of floats, in registers: eight row loads,
// three rounds of unpack / shuffle / lane permutes, eight row stores.
inline void transpose_8x8(const float* s, std::int64_t lds, float* d, std::int64_t ldd) {
  __m256 r[8], t[8], u[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(s + i * lds);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);      // rows i, i+1 interleaved: elements 0, 1, 4, 5
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);  // elements 2, 3, 6, 7
  }
  for (int h = 0; h < 8; h += 4)
    for (int q = 0; q < 2; ++q) {
      u[h + 2 * q] = _mm256_shuffle_ps(t[h + q], t[h + q + 2], 0x44);
      u[h + 2 * q + 1] = _mm256_shuffle_ps(t[h + q], t[h + q + 2], 0xEE);
    }
  for (int j = 0; j < 4; ++j) {
    _mm256_storeu_ps(d + j * ldd, _mm256_permute2f128_ps(u[j], u[j + 4], 0x20));
    _mm256_storeu_ps(d + (j + 4) * ldd, _mm256_permute2f128_ps(u[j], u[j + 4], 0x31));
  }
}
#endif

// dst (cols × rows) = srcᵀ for a row-major src (rows × cols): 32 × 32 tiles (each read
// and written through L1), parallel over bands of dst rows; float tiles by 8 × 8 blocks in
// registers where the target has AVX (1.9–2.7× the element loop's rate on (64 × 198),
// (256 × 3168) and (1584 × 256), hot), their edges element by element. A copy: exact in any
// split, so translation units built with and without AVX (a CUDA host file, a build without
// -march=native) compute the same result by different code.
template <class R> void transpose_into(const R* src, std::int64_t rows, std::int64_t cols, R* dst) {
  constexpr std::int64_t T = 32;
  CpuDevice::parallel_for((cols + T - 1) / T, 1, [=](std::int64_t b0, std::int64_t b1) {
    for (std::int64_t jb = b0 * T; jb < std::min(cols, b1 * T); jb += T)
      for (std::int64_t ib = 0; ib < rows; ib += T) {
        const std::int64_t je = std::min(cols, jb + T), ie = std::min(rows, ib + T);
        std::int64_t je8 = jb, ie8 = ib;  // the part done by 8 × 8 blocks: [jb, je8) × [ib, ie8)
#if defined(__AVX__)
        if constexpr (std::is_same_v<R, float>) {
          je8 = jb + (je - jb) / 8 * 8;
          ie8 = ib + (ie - ib) / 8 * 8;
          for (std::int64_t j = jb; j < je8; j += 8)
            for (std::int64_t i = ib; i < ie8; i += 8) transpose_8x8(src + i * cols + j, cols, dst + j * rows + i, rows);
        }
#endif
        for (std::int64_t j = jb; j < je; ++j)
          for (std::int64_t i = j < je8 ? ie8 : ib; i < ie; ++i) dst[j * rows + i] = src[i * cols + j];
      }
  });
}

// Real products with a thin side (at most kThinMax rows: the batch side of every product
// in ERL-MR's step, the output channels of a convolution) go through simd::gemm_nn, which
// reads the big operand (a weight, im2col's columns) in place instead of packing it; the
// thin operand is transposed when the kernel needs it so. Otherwise, or without SIMD, Eigen
// (gemm_into).
inline constexpr std::int64_t kThinMax = 1024;
inline bool thin_product(std::int64_t thin) { return thin <= kThinMax && simd::gemm_available(); }

// C (=|+=) A·B, A thin (m × k).
template <RealScalar R> void product_ab(MatRef<R> C, CMatRef<R> A, CMatRef<R> B, bool accumulate) {
  const std::int64_t m = A.rows(), k = A.cols(), n = B.cols();
  if (!thin_product(m)) return gemm_into<R>(C, A, B, accumulate);
  simd::gemm_nn<R>(m, n, k, A.data(), k, B.data(), n, C.data(), n, accumulate);
}
// C (=|+=) Aᵀ·B, A (k × m) with m or k thin: Aᵀ is formed (m·k elements) and read by rows.
template <RealScalar R> void product_atb(MatRef<R> C, CMatRef<R> A, CMatRef<R> B, bool accumulate) {
  const std::int64_t k = A.rows(), m = A.cols(), n = B.cols();
  if (!thin_product(std::min(m, k))) return gemm_into<R>(C, A.transpose(), B, accumulate);
  Tensor<R> at(Shape{m, k});
  transpose_into(A.data(), k, m, at.data());
  simd::gemm_nn<R>(m, n, k, at.data(), k, B.data(), n, C.data(), n, accumulate);
}
// C = A·Bᵀ (A: m × k thin, B: n × k). With B short too (fewer than kNtMaxRows rows: a
// convolution's weight gradient G·colsᵀ, the small heads) every element is a dot product of
// two rows read in place (simd::gemm_nt). Otherwise as Cᵀ = B·Aᵀ through gemm_nn, so that
// B is read in place and only the thin A is transposed (for B's of 128 rows or more this
// beats gemm_nt, whose rows then stream from L2). With fewer than kThinMin rows in A
// gemm_nn's vectors would be mostly padding (batch-1 inference: 4 rows): Eigen's product then.
inline constexpr std::int64_t kThinMin = 16;
inline constexpr std::int64_t kNtMaxRows = 128;
template <RealScalar R> void product_abt(MatRef<R> C, CMatRef<R> A, CMatRef<R> B) {
  const std::int64_t m = A.rows(), k = A.cols(), n = B.rows();
  if (n < kNtMaxRows && thin_product(m)) return simd::gemm_nt<R>(m, n, k, A.data(), k, B.data(), k, C.data(), n, false);
  if (m < kThinMin || !thin_product(m)) return gemm_into<R>(C, A, B.transpose(), false);
  Tensor<R> at(Shape{k, m}), ct(Shape{n, m});
  transpose_into(A.data(), m, k, at.data());
  simd::gemm_nn<R>(n, m, k, B.data(), k, at.data(), m, ct.data(), m, false);
  transpose_into(ct.data(), n, m, C.data());
}

// [Re z; Im z] as a (2m, k) real matrix (the stacked form of a complex (m, k) matrix).
template <class R> Tensor<R> stack_parts(const Tensor<std::complex<R>>& z, std::int64_t m, std::int64_t k) {
  Tensor<R> s(Shape{2 * m, k});
  const std::complex<R>* zv = z.data();
  R* re = s.data();
  R* im = s.data() + m * k;
  for (std::int64_t i = 0; i < m * k; ++i) {
    re[i] = zv[i].real();
    im[i] = zv[i].imag();
  }
  return s;
}
// Inverse of stack_parts: a (2m, n) real matrix (at st) back to a complex (m, n) tensor of shape s.
template <class R> Tensor<std::complex<R>> unstack_parts(const R* st, const Shape& s) {
  Tensor<std::complex<R>> z(s);
  const std::int64_t mn = z.numel();
  for (std::int64_t i = 0; i < mn; ++i) z.data()[i] = std::complex<R>(st[i], st[mn + i]);
  return z;
}
template <class R> Tensor<std::complex<R>> unstack_parts(const Tensor<R>& st, const Shape& s) { return unstack_parts(st.data(), s); }

// linear's checks and sizes: x (..., in), W (out, in), optional b (out).
struct LinearDims {
  std::int64_t in, out, rows;
  Shape ys;  // x's shape with the last axis replaced by out
};
inline LinearDims linear_dims(const Shape& xs, const Shape& ws, const Shape* bs) {
  if (xs.rank() < 1 || ws.rank() != 2 || xs[xs.rank() - 1] != ws[1])
    throw ShapeError("linear: input " + xs.str() + " and weight " + ws.str() + " do not match (weight is (out, in))");
  const std::int64_t in = ws[1], out = ws[0], rows = xs.numel() / std::max<std::int64_t>(in, 1);
  if (bs && !(*bs == Shape{out})) throw ShapeError("linear: bias " + bs->str() + " does not match weight " + ws.str());
  Shape ys = xs;
  ys[ys.rank() - 1] = out;
  return {in, out, rows, ys};
}

inline void check_matmul(const Shape& a, const Shape& b, const char* op) {
  if (a.rank() != 2 || b.rank() != 2 || a[1] != b[0])
    throw ShapeError(std::string(op) + ": shapes " + shapes_str(a, b) + " are not (m, k) and (k, n)");
}
}  // namespace detail

// Same-type product: real×real or complex×complex.
template <Scalar T> Var<T> matmul(const Var<T>& a, const Var<T>& b) {
  detail::check_matmul(a.shape(), b.shape(), "matmul");
  const std::int64_t m = a.shape()[0], k = a.shape()[1], n = b.shape()[1];
  Tensor<T> c(Shape{m, n});
  detail::gemm_into<T>(detail::mmat(c, m, n), detail::cmat(a.value(), m, k), detail::cmat(b.value(), k, n), false);
  return record("matmul", c, [a, b, m, k, n](const Tensor<T>& g) {
    const auto G = detail::cmat(g, m, n);
    if (a.requires_grad()) {  // G_A = G·Bᴴ
      Tensor<T> ga(a.shape());
      detail::gemm_into<T>(detail::mmat(ga, m, k), G, detail::cmat(b.value(), k, n).adjoint(), false);
      add_grad(a, std::move(ga));
    }
    if (b.requires_grad()) {  // G_B = Aᴴ·G
      Tensor<T> gb(b.shape());
      detail::gemm_into<T>(detail::mmat(gb, k, n), detail::cmat(a.value(), m, k).adjoint(), G, false);
      add_grad(b, std::move(gb));
    }
  }, a, b);
}

// Complex × real product.
template <RealScalar R> Var<std::complex<R>> matmul(const Var<std::complex<R>>& a, const Var<R>& b) {
  using C = std::complex<R>;
  detail::check_matmul(a.shape(), b.shape(), "matmul");
  const std::int64_t m = a.shape()[0], k = a.shape()[1], n = b.shape()[1];
  const Tensor<R> as = detail::stack_parts(a.value(), m, k);
  Tensor<R> cs(Shape{2 * m, n});
  detail::gemm_into<R>(detail::mmat(cs, 2 * m, n), detail::cmat(as, 2 * m, k), detail::cmat(b.value(), k, n), false);
  return record("matmul_complex_real", detail::unstack_parts(cs, Shape{m, n}), [a, b, as, m, k, n](const Tensor<C>& g) {
    const Tensor<R> gs = detail::stack_parts(g, m, n);
    if (a.requires_grad()) {  // G_A = G·Bᵀ on both parts at once
      Tensor<R> gas(Shape{2 * m, k});
      detail::gemm_into<R>(detail::mmat(gas, 2 * m, k), detail::cmat(gs, 2 * m, n), detail::cmat(b.value(), k, n).transpose(), false);
      add_grad(a, detail::unstack_parts(gas, a.shape()));
    }
    if (b.requires_grad()) {  // G_B = Re(A)ᵀRe(G) + Im(A)ᵀIm(G) = [Re A; Im A]ᵀ·[Re G; Im G]
      Tensor<R> gb(b.shape());
      detail::gemm_into<R>(detail::mmat(gb, k, n), detail::cmat(as, 2 * m, k).transpose(), detail::cmat(gs, 2 * m, n), false);
      add_grad(b, std::move(gb));
    }
  }, a, b);
}

// linear(x, W, b) = x·Wᵀ + b for x of shape (..., in), W (out, in), b (out) or undefined.
// Same element type throughout (real or complex).
template <Scalar T> Var<T> linear(const Var<T>& x, const Var<T>& w, const Var<T>& b = Var<T>()) {
  // Plain variables, not a structured binding: lambdas below capture them (clang < 16 rejects that).
  const detail::LinearDims dims = detail::linear_dims(x.shape(), w.shape(), b.defined() ? &b.shape() : nullptr);
  const std::int64_t in = dims.in, out = dims.out, rows = dims.rows;
  const Shape& ys = dims.ys;
  Tensor<T> y(ys);
  auto Y = detail::mmat(y, rows, out);
  if constexpr (RealScalar<T>) detail::product_abt<T>(Y, detail::cmat(x.value(), rows, in), detail::cmat(w.value(), out, in));
  else detail::gemm_into<T>(Y, detail::cmat(x.value(), rows, in), detail::cmat(w.value(), out, in).transpose(), false);
  if (b.defined()) Y.rowwise() += detail::cmat(b.value(), 1, out).row(0);
  auto rule = [x, w, b, rows, in, out](const Tensor<T>& g) {
    const auto G = detail::cmat(g, rows, out);
    if (x.requires_grad()) {  // G_x = G·conj(W)
      Tensor<T> gx(x.shape());
      if constexpr (RealScalar<T>) detail::product_ab<T>(detail::mmat(gx, rows, in), G, detail::cmat(w.value(), out, in), false);
      else detail::gemm_into<T>(detail::mmat(gx, rows, in), G, detail::cmat(w.value(), out, in).conjugate(), false);
      add_grad(x, std::move(gx));
    }
    bool factored = false;  // real weights only: G_W = Gᵀ·x left as its two factors (grad_factored)
    if constexpr (RealScalar<T>) factored = wants_grad_factors(w);
    if (factored) {
      add_grad_factor(w, g, x.value());
    } else if (w.requires_grad()) {  // G_W = Gᵀ·conj(x)
      Tensor<T> gw(w.shape());
      if constexpr (RealScalar<T>) detail::product_atb<T>(detail::mmat(gw, out, in), G, detail::cmat(x.value(), rows, in), false);
      else detail::gemm_into<T>(detail::mmat(gw, out, in), G.transpose(), detail::cmat(x.value(), rows, in).conjugate(), false);
      add_grad(w, std::move(gw));
    }
    if (b.defined() && b.requires_grad()) {  // G_b = Σ_rows G (rows summed in order)
      Tensor<T> gb = Tensor<T>::zeros(b.shape());
      for (std::int64_t r = 0; r < rows; ++r) detail::mmat(gb, 1, out).row(0) += G.row(r);
      add_grad(b, std::move(gb));
    }
  };
  if (b.defined()) return record("linear", y, rule, x, w, b);
  return record("linear", y, rule, x, w);
}

namespace detail {
// linear_complex_real's weight and bias gradients from gs = [Re G; Im G] (2·rows × out):
// G_W = gsᵀ·[Re x; Im x] (left as its two factors when grad_factored/grad_seeds asks), G_b =
// Σ_rows gs (rows summed in order).
template <RealScalar R>
void linear_cr_weight_bias_grads(const Var<R>& w, const Var<R>& b, const Tensor<R>& gs, const Tensor<R>& xsk, std::int64_t rows,
                                 std::int64_t in, std::int64_t out) {
  const auto G = cmat(gs, 2 * rows, out);
  if (wants_grad_factors(w)) {
    add_grad_factor(w, gs, xsk);
  } else if (w.requires_grad()) {
    Tensor<R> gw(w.shape());
    product_atb<R>(mmat(gw, out, in), G, cmat(xsk, 2 * rows, in), false);
    add_grad(w, std::move(gw));
  }
  if (b.defined() && b.requires_grad()) {
    Tensor<R> gb = Tensor<R>::zeros(b.shape());
    for (std::int64_t r = 0; r < 2 * rows; ++r) mmat(gb, 1, out).row(0) += G.row(r);
    add_grad(b, std::move(gb));
  }
}
}  // namespace detail

// Complex input, real weight and bias: y = x·Wᵀ + (1+i)·b (W and b act on Re and Im alike).
template <RealScalar R>
Var<std::complex<R>> linear(const Var<std::complex<R>>& x, const Var<R>& w, const Var<R>& b = Var<R>()) {
  using C = std::complex<R>;
  // Plain variables, not a structured binding: lambdas below capture them (clang < 16 rejects that).
  const detail::LinearDims dims = detail::linear_dims(x.shape(), w.shape(), b.defined() ? &b.shape() : nullptr);
  const std::int64_t in = dims.in, out = dims.out, rows = dims.rows;
  const Shape& ys = dims.ys;
  const Tensor<R> xsk = detail::stack_parts(x.value(), rows, in);  // [Re x; Im x]
  Tensor<R> ysk(Shape{2 * rows, out});
  auto Y = detail::mmat(ysk, 2 * rows, out);
  detail::product_abt<R>(Y, detail::cmat(xsk, 2 * rows, in), detail::cmat(w.value(), out, in));
  if (b.defined()) Y.rowwise() += detail::cmat(b.value(), 1, out).row(0);
  // The rule for n output gradients at once: an ordinary pass gives one; grad_seeds gives one
  // per seed that reached the node, adj[j] landing in seed[j]'s slots. Where a seed's own
  // input-gradient product goes through gemm_nn, the seeds' output adjoints are stacked and
  // one gemm_nn (no row limit) gives all their input gradients, reading W once; its rows do
  // not depend on each other, so each seed gets the bits of its own pass. Otherwise (Eigen)
  // the products run seed by seed. The weight and bias gradients per seed.
  auto run = [x, w, b, xsk, rows, in, out](const Tensor<C>* const* adj, const int* seed, int n) {
    const std::int64_t m = 2 * rows;
    Tensor<R> gs[kMaxSeeds];
    for (int j = 0; j < n; ++j) gs[j] = detail::stack_parts(*adj[j], rows, out);
    if (x.requires_grad()) {
      Tensor<R> gx(Shape{n * m, in});
      if (detail::thin_product(m)) {  // what each seed's own product_ab does, for all rows at once
        Tensor<R> g_all = gs[0];
        if (n > 1) {
          g_all = Tensor<R>(Shape{n * m, out});
          for (int j = 0; j < n; ++j) std::copy_n(gs[j].data(), m * out, g_all.data() + j * m * out);
        }
        simd::gemm_nn<R>(n * m, in, out, g_all.data(), out, w.value().data(), in, gx.data(), in, false);
      } else {  // Eigen's products (SIMD off, or more rows than kThinMax): seed by seed
        for (int j = 0; j < n; ++j)
          detail::product_ab<R>(detail::MatRef<R>(gx.data() + j * m * in, m, in), detail::cmat(gs[j], m, out),
                                detail::cmat(w.value(), out, in), false);
      }
      for (int j = 0; j < n; ++j) {
        const detail::ActiveSeed active(seed[j]);
        add_grad(x, detail::unstack_parts(gx.data() + j * m * in, x.shape()));
      }
    }
    for (int j = 0; j < n; ++j) {
      const detail::ActiveSeed active(seed[j]);
      detail::linear_cr_weight_bias_grads(w, b, gs[j], xsk, rows, in, out);
    }
  };
  auto rule = [run](const Tensor<C>& g) {
    const Tensor<C>* adj[1] = {&g};
    const int seed[1] = {detail::g_active_seed};
    run(adj, seed, 1);
  };
  auto seeds_rule = [run](const Tensor<C>* const* adj, int seeds) {
    const Tensor<C>* in[kMaxSeeds];
    int seed[kMaxSeeds], n = 0;
    for (int s = 0; s < seeds; ++s)
      if (adj[s]) {
        in[n] = adj[s];
        seed[n++] = s;
      }
    run(in, seed, n);
  };
  auto y = detail::unstack_parts(ysk, ys);
  auto v = b.defined() ? record("linear_complex_real", y, rule, x, w, b) : record("linear_complex_real", y, rule, x, w);
  record_seeds(v, seeds_rule);
  return v;
}

}  // namespace erlmr

// ---- gradients in factored form (grad_factored in autograd/backward.hpp) -------------
namespace erlmr {

namespace detail {
// Σ a[k]·b[k] in double with 8 interleaved partial sums (vectorisable, and a fixed order:
// the result depends only on the data).
template <RealScalar R> double dot_sum8(const R* a, const R* b, std::int64_t n) {
  double s[8] = {};
  std::int64_t k = 0;
  for (; k + 8 <= n; k += 8)
    for (int l = 0; l < 8; ++l) s[l] += double(a[k + l]) * double(b[k + l]);
  for (int l = 0; k < n; ++k, ++l) s[l] += double(a[k]) * double(b[k]);
  double t = 0;
  for (double x : s) t += x;
  return t;
}
}  // namespace detail

// The gradient as one dense tensor: dense + Σ aᵀ·x.
template <RealScalar R> Tensor<R> to_dense(const Gradient<R>& g) {
  Tensor<R> d = g.dense.defined() ? g.dense.clone() : Tensor<R>::zeros(g.shape);
  if (g.shape.rank() != 2 && !g.terms.empty()) throw ShapeError("to_dense: factored gradient of shape " + g.shape.str() + " is not 2-D");
  for (const auto& t : g.terms) {
    const std::int64_t out = g.shape[0], in = g.shape[1];
    if (!t.fits(out, in)) throw ShapeError("to_dense: a factored term does not fit the gradient's shape " + g.shape.str());
    const std::int64_t rows = t.rows_of(t.a, out);
    detail::product_atb<R>(detail::mmat(d, out, in), detail::cmat(t.a, rows, out), detail::cmat(t.x, rows, in), true);
  }
  return d;
}

// Dot products of two gradients of one (out × in) weight given as sums of terms aᵀ·x:
// returns {⟨f,f⟩, ⟨f,g⟩, ⟨g,g⟩} with
//   ⟨Σ_i a_iᵀx_i, Σ_j b_jᵀy_j⟩ = Σ_ij Σ_nm (a_i b_jᵀ)_nm (x_i y_jᵀ)_nm,
// i.e. from the small rows × rows Gram matrices of the factors instead of the out × in
// products. Each Gram matrix is one single-threaded product (threads take whole
// products; a factor's Gram matrix with itself, symmetric, as a rank update of its lower
// half, mirrored: half the work), the element sums run in double in a fixed order, and terms
// sharing an x (the same buffer) share its Gram matrix, so the result does not depend on the
// thread count.
template <RealScalar R>
std::array<double, 3> factored_gram(std::span<const GradFactor<R>> f, std::span<const GradFactor<R>> g, std::int64_t out,
                                    std::int64_t in) {
  struct Pair {
    const GradFactor<R>* u;
    const GradFactor<R>* v;
    int which;  // 0: ⟨f,f⟩ (off-diagonal pairs counted twice), 1: ⟨f,g⟩, 2: ⟨g,g⟩
    double weight;
    std::size_t p = 0, q = 0;  // indices of the a- and x-Gram products
    bool q_transposed = false;  // the x-Gram was formed for the swapped pair: read it transposed
  };
  PoolVector<Pair> pairs;
  for (std::size_t i = 0; i < f.size(); ++i)
    for (std::size_t j = i; j < f.size(); ++j) pairs.push_back({&f[i], &f[j], 0, i == j ? 1.0 : 2.0});
  for (const auto& u : f)
    for (const auto& v : g) pairs.push_back({&u, &v, 1, 1.0});
  for (std::size_t i = 0; i < g.size(); ++i)
    for (std::size_t j = i; j < g.size(); ++j) pairs.push_back({&g[i], &g[j], 2, i == j ? 1.0 : 2.0});
  // The products to form: one a-Gram per pair, one x-Gram per distinct pair of x buffers.
  struct Product {
    const R* l;
    const R* r;
    std::int64_t rl, rr, k;
    bool is_x;
    Tensor<R> m;
  };
  PoolVector<Product> prods;
  for (auto& pr : pairs) {
    const GradFactor<R>& u = *pr.u;
    const GradFactor<R>& v = *pr.v;
    if (!u.fits(out, in) || !v.fits(out, in))
      throw ShapeError("factored_gram: factors do not match a gradient of shape (" + std::to_string(out) + ", " +
                       std::to_string(in) + ")");
    const std::int64_t ur = u.rows_of(u.a, out), vr = v.rows_of(v.a, out);
    pr.p = prods.size();
    prods.push_back({u.a.data(), v.a.data(), ur, vr, out, false, Tensor<R>()});
    pr.q = prods.size();
    for (std::size_t k = 0; k < prods.size(); ++k) {
      const Product& c = prods[k];
      if (!c.is_x) continue;
      if (c.l == u.x.data() && c.r == v.x.data() && c.rl == ur && c.rr == vr) {
        pr.q = k;
        break;
      }
      if (c.l == v.x.data() && c.r == u.x.data() && c.rl == vr && c.rr == ur) {
        pr.q = k;
        pr.q_transposed = true;
        break;
      }
    }
    if (pr.q == prods.size()) prods.push_back({u.x.data(), v.x.data(), ur, vr, in, true, Tensor<R>()});
  }
  CpuDevice::parallel_for(std::int64_t(prods.size()), 1, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t k = b; k < e; ++k) {
      Product& p = prods[std::size_t(k)];
      p.m = Tensor<R>(Shape{p.rl, p.rr});
      auto M = detail::mmat(p.m, p.rl, p.rr);
      const auto L = detail::CMatRef<R>(p.l, p.rl, p.k);
      if (p.l == p.r && p.rl == p.rr) {  // a Gram matrix of one factor with itself: half the product
        M.setZero();
        M.template selfadjointView<Eigen::Lower>().rankUpdate(L);
        for (std::int64_t i = 0; i < p.rl; ++i)
          for (std::int64_t j = i + 1; j < p.rl; ++j) M(i, j) = M(j, i);
      } else {
        M.noalias() = L * detail::CMatRef<R>(p.r, p.rr, p.k).transpose();
      }
    }
  });
  std::array<double, 3> v{0, 0, 0};
  for (const auto& pr : pairs) {
    const Product& P = prods[pr.p];
    const Product& Q = prods[pr.q];
    const R* pm = P.m.data();
    const R* qm = Q.m.data();
    double t = 0;
    if (!pr.q_transposed) {
      t = detail::dot_sum8(pm, qm, P.rl * P.rr);
    } else {
      double s[8] = {};
      for (std::int64_t r = 0; r < P.rl; ++r)
        for (std::int64_t c = 0; c < P.rr; ++c) s[c & 7] += double(pm[r * P.rr + c]) * double(qm[c * P.rl + r]);
      for (double x : s) t += x;
    }
    v[std::size_t(pr.which)] += pr.weight * t;
  }
  return v;
}

}  // namespace erlmr
