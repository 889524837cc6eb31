// erlmr/cuda/ops.hpp — the ops of ops/*.hpp for tensors on the CUDA device.
//
// Each op here is an overload of the CPU op of the same name for Var<T, CudaDevice>
// (selected by the argument types at compile time, never by a runtime switch), with
// the same shape checks and error messages, the same forward definition and the same
// hand-written backward rule as the CPU version (derivations in docs/gradients.md);
// only the arithmetic runs in the kernels of kernels.hpp. Results differ from the
// CPU's only by rounding (reductions sum in a different, but fixed, order).
#pragma once
#include "erlmr/autograd/backward.hpp"
#include "erlmr/cuda/device.hpp"
#include "erlmr/ops/complex.hpp"
#include "erlmr/ops/conv.hpp"
#include "erlmr/ops/elementwise.hpp"
#include "erlmr/ops/linalg.hpp"
#include "erlmr/ops/loss.hpp"
#include "erlmr/ops/norm.hpp"
#include "erlmr/ops/reduce.hpp"
#include "erlmr/ops/shape_ops.hpp"

namespace erlmr {

template <class T> using CudaTensor = Tensor<T, CudaDevice>;
template <class T> using CudaVar = Var<T, CudaDevice>;

namespace cuda::ops_detail {
inline Dims dims(const Shape& s) {
  Dims d;
  d.rank = s.rank();
  for (int i = 0; i < s.rank(); ++i) d.d[i] = s[i];
  return d;
}
// g summed onto shape s (the adjoint of broadcasting s up to g's shape).
template <class T> CudaTensor<T> sum_to(const CudaTensor<T>& g, const Shape& s) {
  if (g.shape() == s) return g;
  CudaTensor<T> out(s);
  cuda::sum_to<T>(g.data(), dims(g.shape()), out.data(), dims(s));
  return out;
}
template <class T> CudaTensor<T> expand(const CudaTensor<T>& x, const Shape& s) {
  if (x.shape() == s) return x;
  CudaTensor<T> out(s);
  cuda::expand<T>(x.data(), dims(x.shape()), out.data(), dims(s));
  return out;
}
template <class T> CudaTensor<T> binary(Binary op, const CudaTensor<T>& a, const CudaTensor<T>& b, const Shape& s) {
  CudaTensor<T> out(s);
  cuda::binary<T>(op, a.data(), dims(a.shape()), b.data(), dims(b.shape()), out.data(), dims(s));
  return out;
}
template <class T> CudaTensor<T> unary(Unary op, const CudaTensor<T>& x) {
  CudaTensor<T> out(x.shape());
  cuda::unary<T>(op, x.data(), out.data(), x.numel());
  return out;
}
template <class T> CudaTensor<T> scaled(const CudaTensor<T>& x, T k) {
  CudaTensor<T> out(x.shape());
  cuda::scale<T>(x.data(), k, out.data(), x.numel());
  return out;
}
// Elementwise unary op with its backward kernel.
template <class T> CudaVar<T> unary_op(const char* name, Unary op, const CudaVar<T>& x) {
  CudaTensor<T> y = unary(op, x.value());
  return record(name, y, [x, y, op](const CudaTensor<T>& g) {
    CudaTensor<T> gx(g.shape());
    cuda::unary_backward<T>(op, x.value().data(), y.data(), g.data(), gx.data(), g.numel());
    add_grad(x, std::move(gx));
  }, x);
}
// Row-major product C (m×n) = op(A)·op(B) into a fresh tensor.
template <class T>
CudaTensor<T> gemm(Op ta, Op tb, std::int64_t m, std::int64_t n, std::int64_t k, const T* A, std::int64_t lda, const T* B,
                   std::int64_t ldb, const Shape& cs) {
  CudaTensor<T> c(cs);
  cuda::gemm<T>(ta, tb, m, n, k, T(1), A, lda, B, ldb, T(0), c.data(), n);
  return c;
}
template <class R> CudaTensor<R> stack_parts(const CudaTensor<std::complex<R>>& z, std::int64_t rows, std::int64_t cols) {
  CudaTensor<R> s(Shape{2 * rows, cols});
  cuda::deinterleave<R>(z.data(), rows, cols, s.data());
  return s;
}
template <class R> CudaTensor<std::complex<R>> unstack_parts(const CudaTensor<R>& st, const Shape& s) {
  CudaTensor<std::complex<R>> z(s);
  const std::int64_t cols = s.rank() ? s[s.rank() - 1] : 1;
  cuda::interleave<R>(st.data(), cols ? s.numel() / cols : 0, cols, z.data());
  return z;
}
}  // namespace cuda::ops_detail

// ---- arithmetic (ops/elementwise.hpp) ------------------------------------------------
template <class T> CudaVar<T> add(const CudaVar<T>& a, const CudaVar<T>& b) {
  namespace d = cuda::ops_detail;
  const Shape s = broadcast_shapes(a.shape(), b.shape(), "add");
  return record("add", d::binary(cuda::Binary::add, a.value(), b.value(), s), [a, b](const CudaTensor<T>& g) {
    add_grad(a, d::sum_to(g, a.shape()));
    add_grad(b, d::sum_to(g, b.shape()));
  }, a, b);
}
template <class T> CudaVar<T> sub(const CudaVar<T>& a, const CudaVar<T>& b) {
  namespace d = cuda::ops_detail;
  const Shape s = broadcast_shapes(a.shape(), b.shape(), "sub");
  return record("sub", d::binary(cuda::Binary::sub, a.value(), b.value(), s), [a, b](const CudaTensor<T>& g) {
    add_grad(a, d::sum_to(g, a.shape()));
    if (b.requires_grad()) add_grad(b, d::sum_to(d::unary(cuda::Unary::neg, g), b.shape()));
  }, a, b);
}
// G_a = G·conj(b), G_b = G·conj(a).
template <class T> CudaVar<T> mul(const CudaVar<T>& a, const CudaVar<T>& b) {
  namespace d = cuda::ops_detail;
  const Shape s = broadcast_shapes(a.shape(), b.shape(), "mul");
  return record("mul", d::binary(cuda::Binary::mul, a.value(), b.value(), s), [a, b](const CudaTensor<T>& g) {
    if (a.requires_grad()) add_grad(a, d::sum_to(d::binary(cuda::Binary::mul_conj, g, b.value(), g.shape()), a.shape()));
    if (b.requires_grad()) add_grad(b, d::sum_to(d::binary(cuda::Binary::mul_conj, g, a.value(), g.shape()), b.shape()));
  }, a, b);
}
// G_a = G/conj(b), G_b = −G·conj(s/b).
template <class T> CudaVar<T> div(const CudaVar<T>& a, const CudaVar<T>& b) {
  namespace d = cuda::ops_detail;
  const Shape s = broadcast_shapes(a.shape(), b.shape(), "div");
  CudaTensor<T> v = d::binary(cuda::Binary::div, a.value(), b.value(), s);
  return record("div", v, [a, b, v](const CudaTensor<T>& g) {
    if (a.requires_grad()) add_grad(a, d::sum_to(d::binary(cuda::Binary::div_conj, g, b.value(), g.shape()), a.shape()));
    if (b.requires_grad()) {
      const CudaTensor<T> q = d::binary(cuda::Binary::div, v, b.value(), g.shape());
      add_grad(b, d::sum_to(d::unary(cuda::Unary::neg, d::binary(cuda::Binary::mul_conj, g, q, g.shape())), b.shape()));
    }
  }, a, b);
}
template <class T> CudaVar<T> neg(const CudaVar<T>& a) {
  namespace d = cuda::ops_detail;
  return record("neg", d::unary(cuda::Unary::neg, a.value()),
                [a](const CudaTensor<T>& g) { add_grad(a, d::unary(cuda::Unary::neg, g)); }, a);
}
// G_a = G·conj(k).
template <class T> CudaVar<T> scale(const CudaVar<T>& a, T k) {
  namespace d = cuda::ops_detail;
  return record("scale", d::scaled(a.value(), k), [a, k](const CudaTensor<T>& g) { add_grad(a, d::scaled(g, T(conj_if(k)))); }, a);
}
template <class T> CudaVar<T> add_scalar(const CudaVar<T>& a, T k) {
  CudaTensor<T> v(a.shape());
  cuda::add_scalar<T>(a.value().data(), k, v.data(), v.numel());
  return record("add_scalar", v, [a](const CudaTensor<T>& g) { add_grad(a, g); }, a);
}
template <class T> CudaVar<T> operator+(const CudaVar<T>& a, const CudaVar<T>& b) { return add(a, b); }
template <class T> CudaVar<T> operator-(const CudaVar<T>& a, const CudaVar<T>& b) { return sub(a, b); }
template <class T> CudaVar<T> operator*(const CudaVar<T>& a, const CudaVar<T>& b) { return mul(a, b); }
template <class T> CudaVar<T> operator/(const CudaVar<T>& a, const CudaVar<T>& b) { return div(a, b); }
template <class T> CudaVar<T> operator-(const CudaVar<T>& a) { return neg(a); }
template <class T> CudaVar<T> operator*(const CudaVar<T>& a, T k) { return scale(a, k); }
template <class T> CudaVar<T> operator*(T k, const CudaVar<T>& a) { return scale(a, k); }
template <class T> CudaVar<T> operator+(const CudaVar<T>& a, T k) { return add_scalar(a, k); }
template <class T> CudaVar<T> operator-(const CudaVar<T>& a, T k) { return add_scalar(a, T(-k)); }

// ---- elementwise functions (backward: G·conj(f'(x))) -------------------------------------
template <Scalar T> CudaVar<T> exp(const CudaVar<T>& x) { return cuda::ops_detail::unary_op("exp", cuda::Unary::exp, x); }
template <Scalar T> CudaVar<T> log(const CudaVar<T>& x) { return cuda::ops_detail::unary_op("log", cuda::Unary::log, x); }
template <Scalar T> CudaVar<T> sqrt(const CudaVar<T>& x) { return cuda::ops_detail::unary_op("sqrt", cuda::Unary::sqrt, x); }
template <Scalar T> CudaVar<T> sin(const CudaVar<T>& x) { return cuda::ops_detail::unary_op("sin", cuda::Unary::sin, x); }
template <Scalar T> CudaVar<T> cos(const CudaVar<T>& x) { return cuda::ops_detail::unary_op("cos", cuda::Unary::cos, x); }
template <Scalar T> CudaVar<T> tanh(const CudaVar<T>& x) { return cuda::ops_detail::unary_op("tanh", cuda::Unary::tanh, x); }
template <Scalar T> CudaVar<T> sigmoid(const CudaVar<T>& x) { return cuda::ops_detail::unary_op("sigmoid", cuda::Unary::sigmoid, x); }
template <RealScalar T> CudaVar<T> relu(const CudaVar<T>& x) { return cuda::ops_detail::unary_op("relu", cuda::Unary::relu, x); }
template <RealScalar T> CudaVar<T> abs(const CudaVar<T>& x) { return cuda::ops_detail::unary_op("abs", cuda::Unary::abs, x); }

// ---- complex (ops/complex.hpp) --------------------------------------------------------------
// G_x = Re(G), G_y = Im(G).
template <RealScalar R> CudaVar<std::complex<R>> make_complex(const CudaVar<R>& x, const CudaVar<R>& y) {
  using C = std::complex<R>;
  check_same_shape(x.shape(), y.shape(), "make_complex");
  CudaTensor<C> z(x.shape());
  cuda::make_complex<R>(x.value().data(), y.value().data(), z.data(), z.numel());
  return record("make_complex", z, [x, y](const CudaTensor<C>& g) {
    if (x.requires_grad()) {
      CudaTensor<R> gx(g.shape());
      cuda::real_part<R>(g.data(), gx.data(), g.numel());
      add_grad(x, std::move(gx));
    }
    if (y.requires_grad()) {
      CudaTensor<R> gy(g.shape());
      cuda::imag_part<R>(g.data(), gy.data(), g.numel());
      add_grad(y, std::move(gy));
    }
  }, x, y);
}
// z = μ·exp(iθ): G_μ = Re(conj(G)·exp(iθ)), G_θ = Im(G)·Re(z) − Re(G)·Im(z).
template <RealScalar R> CudaVar<std::complex<R>> euler(const CudaVar<R>& mu, const CudaVar<R>& theta) {
  using C = std::complex<R>;
  namespace d = cuda::ops_detail;
  const Shape s = broadcast_shapes(mu.shape(), theta.shape(), "euler");
  CudaTensor<C> z(s);
  cuda::euler<R>(mu.value().data(), d::dims(mu.shape()), theta.value().data(), d::dims(theta.shape()), z.data(), d::dims(s));
  return record("euler", z, [mu, theta, z](const CudaTensor<C>& g) {
    CudaTensor<R> gm, gt;
    if (mu.requires_grad()) gm = CudaTensor<R>(g.shape());
    if (theta.requires_grad()) gt = CudaTensor<R>(g.shape());
    cuda::euler_backward<R>(g.data(), z.data(), theta.value().data(), d::dims(theta.shape()),
                            gm.defined() ? gm.data() : nullptr, gt.defined() ? gt.data() : nullptr, d::dims(g.shape()));
    if (gm.defined()) add_grad(mu, d::sum_to(gm, mu.shape()));
    if (gt.defined()) add_grad(theta, d::sum_to(gt, theta.shape()));
  }, mu, theta);
}
// G_z = G + 0i.
template <RealScalar R> CudaVar<R> real(const CudaVar<std::complex<R>>& z) {
  using C = std::complex<R>;
  CudaTensor<R> s(z.shape());
  cuda::real_part<R>(z.value().data(), s.data(), s.numel());
  return record("real", s, [z](const CudaTensor<R>& g) {
    CudaTensor<C> gz(g.shape());
    cuda::make_complex<R>(g.data(), nullptr, gz.data(), g.numel());
    add_grad(z, std::move(gz));
  }, z);
}
// G_z = i·G.
template <RealScalar R> CudaVar<R> imag(const CudaVar<std::complex<R>>& z) {
  using C = std::complex<R>;
  CudaTensor<R> s(z.shape());
  cuda::imag_part<R>(z.value().data(), s.data(), s.numel());
  return record("imag", s, [z](const CudaTensor<R>& g) {
    CudaTensor<C> gz(g.shape());
    cuda::make_complex<R>(nullptr, g.data(), gz.data(), g.numel());
    add_grad(z, std::move(gz));
  }, z);
}
// G_z = conj(G).
template <RealScalar R> CudaVar<std::complex<R>> conj(const CudaVar<std::complex<R>>& z) {
  namespace d = cuda::ops_detail;
  return record("conj", d::unary(cuda::Unary::conj, z.value()),
                [z](const CudaTensor<std::complex<R>>& g) { add_grad(z, d::unary(cuda::Unary::conj, g)); }, z);
}
// G_z = G·z/|z| (0 at z = 0).
template <RealScalar R> CudaVar<R> abs(const CudaVar<std::complex<R>>& z) {
  using C = std::complex<R>;
  CudaTensor<R> s(z.shape());
  cuda::abs_complex<R>(z.value().data(), s.data(), s.numel());
  return record("abs", s, [z](const CudaTensor<R>& g) {
    CudaTensor<C> gz(g.shape());
    cuda::abs_complex_backward<R>(z.value().data(), g.data(), gz.data(), g.numel());
    add_grad(z, std::move(gz));
  }, z);
}
// G_z = i·G·z/|z|² (0 at z = 0).
template <RealScalar R> CudaVar<R> arg(const CudaVar<std::complex<R>>& z) {
  using C = std::complex<R>;
  CudaTensor<R> s(z.shape());
  cuda::arg<R>(z.value().data(), s.data(), s.numel());
  return record("arg", s, [z](const CudaTensor<R>& g) {
    CudaTensor<C> gz(g.shape());
    cuda::arg_backward<R>(z.value().data(), g.data(), gz.data(), g.numel());
    add_grad(z, std::move(gz));
  }, z);
}
// G_z = Re(G)·1[x > 0] + i·Im(G)·1[y > 0].
template <RealScalar R> CudaVar<std::complex<R>> crelu(const CudaVar<std::complex<R>>& z) {
  using C = std::complex<R>;
  CudaTensor<C> s(z.shape());
  cuda::crelu<R>(z.value().data(), s.data(), s.numel());
  return record("crelu", s, [z](const CudaTensor<C>& g) {
    CudaTensor<C> gz(g.shape());
    cuda::crelu_backward<R>(z.value().data(), g.data(), gz.data(), g.numel());
    add_grad(z, std::move(gz));
  }, z);
}
// z·r: G_z = G·r, G_r = Re(conj(G)·z).
template <RealScalar R> CudaVar<std::complex<R>> mul(const CudaVar<std::complex<R>>& z, const CudaVar<R>& r) {
  using C = std::complex<R>;
  namespace d = cuda::ops_detail;
  const Shape s = broadcast_shapes(z.shape(), r.shape(), "mul");
  CudaTensor<C> out(s);
  cuda::mul_complex_real<R>(z.value().data(), d::dims(z.shape()), r.value().data(), d::dims(r.shape()), out.data(), d::dims(s));
  return record("mul_complex_real", out, [z, r](const CudaTensor<C>& g) {
    if (z.requires_grad()) {
      CudaTensor<C> gz(g.shape());
      cuda::mul_complex_real<R>(g.data(), d::dims(g.shape()), r.value().data(), d::dims(r.shape()), gz.data(), d::dims(g.shape()));
      add_grad(z, d::sum_to(gz, z.shape()));
    }
    if (r.requires_grad()) {
      CudaTensor<R> gr(g.shape());
      cuda::re_conj_mul<R>(g.data(), z.value().data(), d::dims(z.shape()), gr.data(), d::dims(g.shape()));
      add_grad(r, d::sum_to(gr, r.shape()));
    }
  }, z, r);
}

// ---- reductions (ops/reduce.hpp) ----------------------------------------------------------
template <Scalar T> CudaVar<T> sum(const CudaVar<T>& x, int axis, bool keepdim = false) {
  namespace d = cuda::ops_detail;
  const int a = x.shape().normalize_axis(axis, "sum");
  const auto sp = detail::split_at(x.shape(), a);
  const Shape os = detail::reduced_shape(x.shape(), a, keepdim);
  CudaTensor<T> out(os);
  cuda::sum_axis<T>(x.value().data(), sp.outer, sp.n, sp.inner, out.data());
  return record("sum", out, [x, sp](const CudaTensor<T>& g) {
    // G_x[o, k, i] = G[o, i]: a broadcast of G viewed as (outer, 1, inner).
    const CudaTensor<T> g3 = g.reshape({sp.outer, 1, sp.inner});
    add_grad(x, d::expand(g3, Shape{sp.outer, sp.n, sp.inner}).reshape(x.shape()));
  }, x);
}
template <Scalar T> CudaVar<T> sum(const CudaVar<T>& x) {
  namespace d = cuda::ops_detail;
  CudaTensor<T> out(Shape{});
  cuda::sum_all<T>(x.value().data(), x.numel(), out.data());
  return record("sum_all", out, [x](const CudaTensor<T>& g) { add_grad(x, d::expand(g, x.shape())); }, x);
}
template <Scalar T> CudaVar<T> sum(const CudaVar<T>& x, std::vector<int> axes, bool keepdim = false) {
  for (auto& a : axes) a = x.shape().normalize_axis(a, "sum");
  std::sort(axes.rbegin(), axes.rend());
  CudaVar<T> r = x;
  for (int a : axes) r = sum(r, a, keepdim);
  return r;
}
template <Scalar T> CudaVar<T> mean(const CudaVar<T>& x, int axis, bool keepdim = false) {
  return scale(sum(x, axis, keepdim), T(real_t<T>(1) / real_t<T>(x.shape().dim(axis))));
}
template <Scalar T> CudaVar<T> mean(const CudaVar<T>& x) { return scale(sum(x), T(real_t<T>(1) / real_t<T>(x.numel()))); }
template <Scalar T> CudaVar<T> mean(const CudaVar<T>& x, std::vector<int> axes, bool keepdim = false) {
  std::int64_t n = 1;
  for (int a : axes) n *= x.shape().dim(a);
  return scale(sum(x, std::move(axes), keepdim), T(real_t<T>(1) / real_t<T>(n)));
}
template <RealScalar T> CudaVar<T> max(const CudaVar<T>& x, int axis, bool keepdim = false) {
  const int a = x.shape().normalize_axis(axis, "max");
  const auto sp = detail::split_at(x.shape(), a);
  if (sp.n == 0) throw ShapeError("max: reduction over an empty axis of shape " + x.shape().str());
  const Shape os = detail::reduced_shape(x.shape(), a, keepdim);
  CudaTensor<T> out(os);
  CudaTensor<std::int64_t> idx(Shape{sp.outer * sp.inner});
  cuda::max_axis<T>(x.value().data(), sp.outer, sp.n, sp.inner, out.data(), idx.data());
  return record("max", out, [x, sp, idx](const CudaTensor<T>& g) {
    CudaTensor<T> gx(x.shape());
    cuda::max_axis_backward<T>(g.data(), idx.data(), sp.outer, sp.n, sp.inner, gx.data());
    add_grad(x, std::move(gx));
  }, x);
}

// ---- shape ops (ops/shape_ops.hpp) ----------------------------------------------------------
template <Scalar T> CudaVar<T> reshape(const CudaVar<T>& x, const std::vector<std::int64_t>& dims) {
  return record("reshape", x.value().reshape(dims), [x](const CudaTensor<T>& g) { add_grad(x, g.reshape(x.shape()).clone()); }, x);
}
template <Scalar T> CudaVar<T> flatten(const CudaVar<T>& x, int start = 1, int end = -1) {
  return reshape(x, detail::flatten_dims(x.shape(), start, end));
}
namespace cuda::ops_detail {
template <class T> CudaTensor<T> swap_axes(const CudaTensor<T>& x, int a, int b) {
  Shape os = x.shape();
  std::swap(os[a], os[b]);
  CudaTensor<T> out(os);
  cuda::swap_axes<T>(x.data(), dims(x.shape()), a, b, out.data());
  return out;
}
}  // namespace cuda::ops_detail
template <Scalar T> CudaVar<T> transpose(const CudaVar<T>& x, int a = -2, int b = -1) {
  namespace d = cuda::ops_detail;
  const int ua = x.shape().normalize_axis(a, "transpose"), ub = x.shape().normalize_axis(b, "transpose");
  return record("transpose", d::swap_axes(x.value(), ua, ub),
                [x, ua, ub](const CudaTensor<T>& g) { add_grad(x, d::swap_axes(g, ua, ub)); }, x);
}
template <Scalar T> CudaVar<T> concat(std::span<const CudaVar<T>> in, int axis) {
  // Plain variables, not a structured binding: the rule captures the axis (clang < 16 rejects that).
  const std::pair<int, Shape> cs = detail::concat_shape(detail::shapes_of(in), axis);
  const int a = cs.first;
  const Shape& os = cs.second;
  const auto sp = detail::split_at(os, a);
  CudaTensor<T> y(os);
  PoolVector<CudaVar<T>> xs(in.begin(), in.end());
  PoolVector<std::int64_t> starts;
  std::int64_t start = 0;
  for (const auto& x : xs) {
    const std::int64_t len = x.shape()[a];
    cuda::copy_slab<T>(x.value().data(), len, 0, y.data(), sp.n, start, sp.outer, len, sp.inner);
    starts.push_back(start);
    start += len;
  }
  auto rule = [xs = std::move(xs), sp, starts = std::move(starts), a](const CudaTensor<T>& g) {
    for (std::size_t j = 0; j < xs.size(); ++j) {
      if (!xs[j].requires_grad()) continue;
      CudaTensor<T> gx(xs[j].shape());
      const std::int64_t len = xs[j].shape()[a];
      cuda::copy_slab<T>(g.data(), sp.n, starts[j], gx.data(), len, 0, sp.outer, len, sp.inner);
      add_grad(xs[j], gx);
    }
  };
  return record_n("concat", y, std::move(rule), in);
}
template <Scalar T> CudaVar<T> concat(const std::vector<CudaVar<T>>& xs, int axis) {
  return concat(std::span<const CudaVar<T>>(xs), axis);
}
template <Scalar T> CudaVar<T> concat(const CudaVar<T>& x0, const CudaVar<T>& x1, int axis) {
  const std::array<CudaVar<T>, 2> xs{x0, x1};
  return concat(std::span<const CudaVar<T>>(xs), axis);
}
template <Scalar T> CudaVar<T> slice(const CudaVar<T>& x, int axis, std::int64_t start, std::int64_t length) {
  const Shape& s = x.shape();
  const int a = detail::check_slice(s, axis, start, length);
  const auto sp = detail::split_at(s, a);
  Shape os = s;
  os[a] = length;
  CudaTensor<T> y(os);
  cuda::copy_slab<T>(x.value().data(), sp.n, start, y.data(), length, 0, sp.outer, length, sp.inner);
  return record("slice", y, [x, sp, start, length](const CudaTensor<T>& g) {
    auto gx = CudaTensor<T>::zeros(x.shape());
    cuda::copy_slab<T>(g.data(), length, 0, gx.data(), sp.n, start, sp.outer, length, sp.inner);
    add_grad(x, std::move(gx));
  }, x);
}
template <Scalar T> std::vector<CudaVar<T>> split(const CudaVar<T>& x, const std::vector<std::int64_t>& sizes, int axis) {
  const int a = detail::check_split(x.shape(), sizes, axis);
  std::vector<CudaVar<T>> out;
  std::int64_t start = 0;
  for (auto v : sizes) {
    out.push_back(slice(x, a, start, v));
    start += v;
  }
  return out;
}

// ---- products (ops/linalg.hpp; cuBLAS) -------------------------------------------------------
// C = A·B: G_A = G·Bᴴ, G_B = Aᴴ·G.
template <Scalar T> CudaVar<T> matmul(const CudaVar<T>& a, const CudaVar<T>& b) {
  namespace d = cuda::ops_detail;
  using cuda::Op;
  detail::check_matmul(a.shape(), b.shape(), "matmul");
  const std::int64_t m = a.shape()[0], k = a.shape()[1], n = b.shape()[1];
  CudaTensor<T> c = d::gemm<T>(Op::N, Op::N, m, n, k, a.value().data(), k, b.value().data(), n, Shape{m, n});
  return record("matmul", c, [a, b, m, k, n](const CudaTensor<T>& g) {
    if (a.requires_grad()) add_grad(a, d::gemm<T>(Op::N, Op::C, m, k, n, g.data(), n, b.value().data(), n, a.shape()));
    if (b.requires_grad()) add_grad(b, d::gemm<T>(Op::C, Op::N, k, n, m, a.value().data(), k, g.data(), n, b.shape()));
  }, a, b);
}
// Complex A, real B, as one real product on the stacked [Re A; Im A] rows.
// G_A = G·Bᵀ (both parts at once); G_B = [Re A; Im A]ᵀ·[Re G; Im G].
template <RealScalar R> CudaVar<std::complex<R>> matmul(const CudaVar<std::complex<R>>& a, const CudaVar<R>& b) {
  using C = std::complex<R>;
  namespace d = cuda::ops_detail;
  using cuda::Op;
  detail::check_matmul(a.shape(), b.shape(), "matmul");
  const std::int64_t m = a.shape()[0], k = a.shape()[1], n = b.shape()[1];
  const CudaTensor<R> as = d::stack_parts(a.value(), m, k);
  const CudaTensor<R> cs = d::gemm<R>(Op::N, Op::N, 2 * m, n, k, as.data(), k, b.value().data(), n, Shape{2 * m, n});
  return record("matmul_complex_real", d::unstack_parts(cs, Shape{m, n}), [a, b, as, m, k, n](const CudaTensor<C>& g) {
    const CudaTensor<R> gs = d::stack_parts(g, m, n);
    if (a.requires_grad())
      add_grad(a, d::unstack_parts(d::gemm<R>(Op::N, Op::T, 2 * m, k, n, gs.data(), n, b.value().data(), n, Shape{2 * m, k}), a.shape()));
    if (b.requires_grad()) add_grad(b, d::gemm<R>(Op::T, Op::N, k, n, 2 * m, as.data(), k, gs.data(), n, b.shape()));
  }, a, b);
}
// y = x·Wᵀ + b over the last axis: G_x = G·conj(W), G_W = Gᵀ·conj(x), G_b = Σ_rows G.
template <Scalar T> CudaVar<T> linear(const CudaVar<T>& x, const CudaVar<T>& w, const CudaVar<T>& b = CudaVar<T>()) {
  namespace d = cuda::ops_detail;
  using cuda::Op;
  // Plain variables, not a structured binding: lambdas below capture them (clang < 16 rejects that).
  const detail::LinearDims dims = detail::linear_dims(x.shape(), w.shape(), b.defined() ? &b.shape() : nullptr);
  const std::int64_t in = dims.in, out = dims.out, rows = dims.rows;
  const Shape& ys = dims.ys;
  CudaTensor<T> y = d::gemm<T>(Op::N, Op::T, rows, out, in, x.value().data(), in, w.value().data(), in, ys);
  if (b.defined()) y = d::binary(cuda::Binary::add, y, b.value(), ys);
  auto rule = [x, w, b, rows, in, out](const CudaTensor<T>& g) {
    if (x.requires_grad()) {  // G·conj(W) = conj(conj(G)·W) would need two passes; conj(W) once is simpler
      const CudaTensor<T> wc = is_complex_v<T> ? d::unary(cuda::Unary::conj, w.value()) : w.value();
      add_grad(x, d::gemm<T>(Op::N, Op::N, rows, in, out, g.data(), out, wc.data(), in, x.shape()));
    }
    if (w.requires_grad()) {  // Gᵀ·conj(x) = (xᴴ·G)ᵀ... computed directly as op(G) = Gᵀ, op(x) = conj(x) via a copy
      const CudaTensor<T> xc = is_complex_v<T> ? d::unary(cuda::Unary::conj, x.value()) : x.value();
      add_grad(w, d::gemm<T>(Op::T, Op::N, out, in, rows, g.data(), out, xc.data(), in, w.shape()));
    }
    if (b.defined() && b.requires_grad()) {
      CudaTensor<T> gb(b.shape());
      cuda::sum_axis<T>(g.data(), 1, rows, out, gb.data());
      add_grad(b, std::move(gb));
    }
  };
  if (b.defined()) return record("linear", y, rule, x, w, b);
  return record("linear", y, rule, x, w);
}
// Complex x, real W and b (b added to both parts): one real product on [Re x; Im x].
// G_x = G·W, G_W = Re(Gᴴ·x) = [Re G; Im G]ᵀ·[Re x; Im x], G_b = Σ_rows (Re G + Im G).
template <RealScalar R>
CudaVar<std::complex<R>> linear(const CudaVar<std::complex<R>>& x, const CudaVar<R>& w, const CudaVar<R>& b = CudaVar<R>()) {
  using C = std::complex<R>;
  namespace d = cuda::ops_detail;
  using cuda::Op;
  // Plain variables, not a structured binding: lambdas below capture them (clang < 16 rejects that).
  const detail::LinearDims dims = detail::linear_dims(x.shape(), w.shape(), b.defined() ? &b.shape() : nullptr);
  const std::int64_t in = dims.in, out = dims.out, rows = dims.rows;
  const Shape& ys = dims.ys;
  const CudaTensor<R> xsk = d::stack_parts(x.value(), rows, in);
  CudaTensor<R> ysk = d::gemm<R>(Op::N, Op::T, 2 * rows, out, in, xsk.data(), in, w.value().data(), in, Shape{2 * rows, out});
  if (b.defined()) ysk = d::binary(cuda::Binary::add, ysk, b.value(), ysk.shape());
  auto rule = [x, w, b, xsk, rows, in, out](const CudaTensor<C>& g) {
    const CudaTensor<R> gs = d::stack_parts(g, rows, out);
    if (x.requires_grad())
      add_grad(x, d::unstack_parts(d::gemm<R>(Op::N, Op::N, 2 * rows, in, out, gs.data(), out, w.value().data(), in, Shape{2 * rows, in}), x.shape()));
    if (w.requires_grad()) add_grad(w, d::gemm<R>(Op::T, Op::N, out, in, 2 * rows, gs.data(), out, xsk.data(), in, w.shape()));
    if (b.defined() && b.requires_grad()) {
      CudaTensor<R> gb(b.shape());
      cuda::sum_axis<R>(gs.data(), 1, 2 * rows, out, gb.data());
      add_grad(b, std::move(gb));
    }
  };
  CudaTensor<C> y = d::unstack_parts(ysk, ys);
  if (b.defined()) return record("linear_complex_real", y, rule, x, w, b);
  return record("linear_complex_real", y, rule, x, w);
}

// ---- softmax, cross-entropy, cosine (ops/loss.hpp) ---------------------------------------------
namespace cuda::ops_detail {
template <class R> CudaVar<R> softmax_op(const CudaVar<R>& x, int axis, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  const int a = x.shape().normalize_axis(axis, name);
  const auto sp = detail::split_at(x.shape(), a);
  CudaTensor<R> y(x.shape());
  cuda::softmax_axis<R>(x.value().data(), y.data(), sp.outer, sp.n, sp.inner, log);
  return record(name, y, [x, y, sp, log](const CudaTensor<R>& g) {
    CudaTensor<R> gx(g.shape());
    cuda::softmax_axis_backward<R>(y.data(), g.data(), gx.data(), sp.outer, sp.n, sp.inner, log);
    add_grad(x, std::move(gx));
  }, x);
}
}  // namespace cuda::ops_detail
template <RealScalar T> CudaVar<T> softmax(const CudaVar<T>& x, int axis = -1) { return cuda::ops_detail::softmax_op(x, axis, false); }
template <RealScalar T> CudaVar<T> log_softmax(const CudaVar<T>& x, int axis = -1) { return cuda::ops_detail::softmax_op(x, axis, true); }

// Mean cross-entropy; G_x = G·(softmax(x) − onehot(y))/B. Labels are checked on the host.
template <RealScalar T> CudaVar<T> cross_entropy(const CudaVar<T>& logits, const std::vector<std::int64_t>& labels) {
  const Shape& s = logits.shape();
  detail::check_cross_entropy(s, labels);
  const std::int64_t B = s[0], K = s[1];
  const auto lab = CudaTensor<std::int64_t>::from_vector(Shape{B}, labels);
  CudaTensor<T> prob(s), loss(Shape{});
  cuda::cross_entropy<T>(logits.value().data(), lab.data(), B, K, loss.data(), prob.data());
  return record("cross_entropy", loss, [logits, lab, prob, B, K](const CudaTensor<T>& g) {
    CudaTensor<T> gx(logits.shape());
    cuda::cross_entropy_backward<T>(prob.data(), lab.data(), B, K, g.data(), gx.data());
    add_grad(logits, std::move(gx));
  }, logits);
}

template <RealScalar T> CudaVar<T> cosine_similarity(const CudaVar<T>& a, const CudaVar<T>& b, int axis = 1, double eps = 1e-8) {
  check_same_shape(a.shape(), b.shape(), "cosine_similarity");
  const int ax = a.shape().normalize_axis(axis, "cosine_similarity");
  const auto sp = detail::split_at(a.shape(), ax);
  const Shape os = detail::reduced_shape(a.shape(), ax, false);
  CudaTensor<T> c(os), na(os), nb(os);
  cuda::cosine_similarity<T>(a.value().data(), b.value().data(), sp.outer, sp.n, sp.inner, T(eps), c.data(), na.data(), nb.data());
  return record("cosine_similarity", c, [a, b, c, na, nb, sp, eps](const CudaTensor<T>& g) {
    CudaTensor<T> ga, gb;
    if (a.requires_grad()) ga = CudaTensor<T>(a.shape());
    if (b.requires_grad()) gb = CudaTensor<T>(b.shape());
    cuda::cosine_similarity_backward<T>(a.value().data(), b.value().data(), c.data(), na.data(), nb.data(), g.data(), sp.outer,
                                        sp.n, sp.inner, T(eps), ga.defined() ? ga.data() : nullptr,
                                        gb.defined() ? gb.data() : nullptr);
    if (ga.defined()) add_grad(a, std::move(ga));
    if (gb.defined()) add_grad(b, std::move(gb));
  }, a, b);
}

// ---- batch norm and dropout (ops/norm.hpp) -----------------------------------------------------
template <RealScalar T>
CudaVar<T> batch_norm(const CudaVar<T>& x, const CudaVar<T>& gamma, const CudaVar<T>& beta, const CudaTensor<T>& running_mean,
                      const CudaTensor<T>& running_var, bool training, double momentum = 0.1, double eps = 1e-5) {
  const Shape& s = x.shape();
  const detail::BatchNormDims d = detail::batch_norm_dims(s, gamma.shape(), beta.shape(), running_mean.shape(), running_var.shape(), training);
  const std::int64_t N = d.N, C = d.C, inner = d.inner;  // not a binding: the rule captures them (clang < 16)
  const Shape cs{C};
  CudaTensor<T> y(s), xhat(s), inv(cs);
  cuda::batch_norm<T>(x.value().data(), gamma.value().data(), beta.value().data(), running_mean.data(), running_var.data(), N, C,
                      inner, training, momentum, eps, y.data(), xhat.data(), inv.data());
  auto rule = [x, gamma, beta, xhat, inv, N, C, inner, training](const CudaTensor<T>& g) {
    CudaTensor<T> gx, gg, gb;
    if (x.requires_grad()) gx = CudaTensor<T>(x.shape());
    if (gamma.requires_grad()) gg = CudaTensor<T>(gamma.shape());
    if (beta.requires_grad()) gb = CudaTensor<T>(beta.shape());
    cuda::batch_norm_backward<T>(g.data(), xhat.data(), gamma.value().data(), inv.data(), N, C, inner, training,
                                 gx.defined() ? gx.data() : nullptr, gg.defined() ? gg.data() : nullptr,
                                 gb.defined() ? gb.data() : nullptr);
    if (gx.defined()) add_grad(x, std::move(gx));
    if (gg.defined()) add_grad(gamma, std::move(gg));
    if (gb.defined()) add_grad(beta, std::move(gb));
  };
  return record("batch_norm", y, rule, x, gamma, beta);
}

// The same masks as the CPU's dropout for the same generator state: counter first + i
// decides real part i (Philox evaluated on the device).
template <Scalar T> CudaVar<T> dropout(const CudaVar<T>& x, double p, bool training, Generator& gen) {
  detail::check_dropout_p(p);
  if (!training || p == 0) return x;
  using R = real_t<T>;
  constexpr int parts = is_complex_v<T> ? 2 : 1;
  const std::int64_t n = x.numel(), total = parts * n;
  const std::uint64_t first = gen.reserve(static_cast<std::uint64_t>(total));
  const std::uint32_t threshold = detail::dropout_threshold(p);
  CudaTensor<R> mask(Shape{total});
  cuda::dropout_mask<R>(gen.seed(), first, total, threshold, R(1) / R(1 - p), mask.data());
  auto apply = [mask, n](const CudaTensor<T>& in) {
    CudaTensor<T> out(in.shape());
    cuda::apply_mask<T>(in.data(), mask.data(), out.data(), n);
    return out;
  };
  return record("dropout", apply(x.value()), [x, apply](const CudaTensor<T>& g) { add_grad(x, apply(g)); }, x);
}

// ---- convolution and pooling (ops/conv.hpp) -----------------------------------------------------
// im2col + one cuBLAS product over the whole batch: Y = W·cols (+ b), laid out (N, O, Ho, Wo).
// G_W = G·colsᴴ, G_cols = Wᴴ·G → col2im, G_b = Σ G.
template <Scalar T>
CudaVar<T> conv2d(const CudaVar<T>& x, const CudaVar<T>& w, const CudaVar<T>& b = CudaVar<T>(),
                  std::array<std::int64_t, 2> stride = {1, 1}, std::array<std::int64_t, 2> padding = {0, 0}) {
  namespace d = cuda::ops_detail;
  using cuda::Op;
  const auto g = detail::conv_geometry(x.shape(), w.shape(), stride, padding);
  if (b.defined() && !(b.shape() == Shape{g.o}))
    throw ShapeError("conv2d: bias " + b.shape().str() + " does not match weight " + w.shape().str());
  const std::int64_t hw = g.ho * g.wo, K = g.patch(), P = g.positions();
  const cuda::ConvGeom cg{g.n, g.c, g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.ho, g.wo};
  CudaTensor<T> cols(Shape{K, P});
  cuda::im2col<T>(x.value().data(), cg, cols.data());
  CudaTensor<T> yt = d::gemm<T>(Op::N, Op::N, g.o, P, K, w.value().data(), K, cols.data(), P, Shape{g.o, P});
  if (b.defined()) yt = d::binary(cuda::Binary::add, yt, b.value().reshape({g.o, 1}), yt.shape());
  CudaTensor<T> y(Shape{g.n, g.o, g.ho, g.wo});
  cuda::permute_onhw<T>(yt.data(), y.data(), g.n, g.o, hw, true);
  auto rule = [x, w, b, g, cg, cols, hw, K, P](const CudaTensor<T>& gy) {
    CudaTensor<T> gt(Shape{g.o, P});
    cuda::permute_onhw<T>(gy.data(), gt.data(), g.n, g.o, hw, false);
    if (w.requires_grad()) add_grad(w, d::gemm<T>(Op::N, Op::C, g.o, K, P, gt.data(), P, cols.data(), P, w.shape()));
    if (x.requires_grad()) {
      const CudaTensor<T> gc = d::gemm<T>(Op::C, Op::N, K, P, g.o, w.value().data(), K, gt.data(), P, Shape{K, P});
      CudaTensor<T> gx(x.shape());
      cuda::col2im<T>(gc.data(), cg, gx.data());
      add_grad(x, std::move(gx));
    }
    if (b.defined() && b.requires_grad()) {
      CudaTensor<T> gb(b.shape());
      cuda::sum_axis<T>(gt.data(), g.o, P, 1, gb.data());
      add_grad(b, std::move(gb));
    }
  };
  if (b.defined()) return record("conv2d", y, rule, x, w, b);
  return record("conv2d", y, rule, x, w);
}
template <Scalar T> CudaVar<T> global_avg_pool(const CudaVar<T>& x) {
  if (x.shape().rank() != 4) throw ShapeError("global_avg_pool: input " + x.shape().str() + " is not (N, C, H, W)");
  return mean(x, std::vector<int>{2, 3}, false);
}

}  // namespace erlmr
