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
// so results are bitwise identical for any number of threads.
#pragma once
#include "erlmr/ops/elementwise.hpp"

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
// Inverse of stack_parts: a (2m, n) real matrix back to a complex (m, n) tensor of shape s.
template <class R> Tensor<std::complex<R>> unstack_parts(const Tensor<R>& st, const Shape& s) {
  Tensor<std::complex<R>> z(s);
  const std::int64_t mn = z.numel();
  for (std::int64_t i = 0; i < mn; ++i) z.data()[i] = std::complex<R>(st.data()[i], st.data()[mn + i]);
  return z;
}

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
  const auto [in, out, rows, ys] = detail::linear_dims(x.shape(), w.shape(), b.defined() ? &b.shape() : nullptr);
  Tensor<T> y(ys);
  auto Y = detail::mmat(y, rows, out);
  detail::gemm_into<T>(Y, detail::cmat(x.value(), rows, in), detail::cmat(w.value(), out, in).transpose(), false);
  if (b.defined()) Y.rowwise() += detail::cmat(b.value(), 1, out).row(0);
  auto rule = [x, w, b, rows, in, out](const Tensor<T>& g) {
    const auto G = detail::cmat(g, rows, out);
    if (x.requires_grad()) {  // G_x = G·conj(W)
      Tensor<T> gx(x.shape());
      detail::gemm_into<T>(detail::mmat(gx, rows, in), G, detail::cmat(w.value(), out, in).conjugate(), false);
      add_grad(x, std::move(gx));
    }
    if (w.requires_grad()) {  // G_W = Gᵀ·conj(x)
      Tensor<T> gw(w.shape());
      detail::gemm_into<T>(detail::mmat(gw, out, in), G.transpose(), detail::cmat(x.value(), rows, in).conjugate(), false);
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

// Complex input, real weight and bias: y = x·Wᵀ + (1+i)·b (W and b act on Re and Im alike).
template <RealScalar R>
Var<std::complex<R>> linear(const Var<std::complex<R>>& x, const Var<R>& w, const Var<R>& b = Var<R>()) {
  using C = std::complex<R>;
  const auto [in, out, rows, ys] = detail::linear_dims(x.shape(), w.shape(), b.defined() ? &b.shape() : nullptr);
  const Tensor<R> xsk = detail::stack_parts(x.value(), rows, in);  // [Re x; Im x]
  Tensor<R> ysk(Shape{2 * rows, out});
  auto Y = detail::mmat(ysk, 2 * rows, out);
  detail::gemm_into<R>(Y, detail::cmat(xsk, 2 * rows, in), detail::cmat(w.value(), out, in).transpose(), false);
  if (b.defined()) Y.rowwise() += detail::cmat(b.value(), 1, out).row(0);
  auto rule = [x, w, b, xsk, rows, in, out](const Tensor<C>& g) {
    const Tensor<R> gs = detail::stack_parts(g, rows, out);
    const auto G = detail::cmat(gs, 2 * rows, out);
    if (x.requires_grad()) {
      Tensor<R> gx(Shape{2 * rows, in});
      detail::gemm_into<R>(detail::mmat(gx, 2 * rows, in), G, detail::cmat(w.value(), out, in), false);
      add_grad(x, detail::unstack_parts(gx, x.shape()));
    }
    if (w.requires_grad()) {
      Tensor<R> gw(w.shape());
      detail::gemm_into<R>(detail::mmat(gw, out, in), G.transpose(), detail::cmat(xsk, 2 * rows, in), false);
      add_grad(w, std::move(gw));
    }
    if (b.defined() && b.requires_grad()) {
      Tensor<R> gb = Tensor<R>::zeros(b.shape());
      for (std::int64_t r = 0; r < 2 * rows; ++r) detail::mmat(gb, 1, out).row(0) += G.row(r);
      add_grad(b, std::move(gb));
    }
  };
  auto y = detail::unstack_parts(ysk, ys);
  if (b.defined()) return record("linear_complex_real", y, rule, x, w, b);
  return record("linear_complex_real", y, rule, x, w);
}

}  // namespace erlmr
