// erlmr/ops/elementwise.hpp — broadcasting arithmetic and elementwise functions.
//
// Conventions (spec §2): for s = f(z) with incoming gradient G,
//   holomorphic f (exp, log, sqrt, pow, sin, cos, tanh, sigmoid, +, -, ×, ÷):
//     G_z = G · conj(f'(z))            (for real z this is G · f'(z))
//   non-holomorphic f (abs, relu on reals): derived case by case below.
// Binary ops broadcast like NumPy; the adjoint of a broadcast is a sum over
// the broadcast axes (sum_to). Shape errors name the op and both shapes.
#pragma once
#include <cmath>

#include "erlmr/autograd/variable.hpp"
#include "erlmr/ops/broadcast.hpp"
#include "erlmr/simd/kernels.hpp"

namespace erlmr {

namespace detail {
template <class T> using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;

// Evaluates a binary expression on operands broadcast to a common shape.
template <class T, class F>
Tensor<T> broadcast_binary(const Tensor<T>& a, const Tensor<T>& b, const char* op, F&& f) {
  const Shape s = broadcast_shapes(a.shape(), b.shape(), op);
  const Tensor<T> ea = expand(a, s, op), eb = expand(b, s, op);
  Tensor<T> out(s);
  f(ea.vec(), eb.vec(), out.vec());
  return out;
}
template <class T> Tensor<T> from_array(const Shape& s, const Arr<T>& a) {
  Tensor<T> t(s);
  t.vec() = a;
  return t;
}
// The rectifier's two loops over n reals (a complex tensor is 2n interleaved reals, rectified
// part by part), parallel over fixed chunks and branch-free so they vectorise:
//   forward  y = max(x, 0) (NaN stays NaN, as in PyTorch);   backward  g_x = g where x > 0, else 0.
// (The pointers are copied into locals inside the chunk and marked __restrict: read through
// the lambda's reference captures, every store could change them, and GCC then emits a
// scalar reload-compare-branch loop — several times slower than the vector loop.)
template <RealScalar R> void relu_forward(const R* x, R* y, std::int64_t n) {
  CpuDevice::parallel_for(n, 1 << 15, [x, y](std::int64_t b, std::int64_t e) {
    const R* __restrict xs = x;
    R* __restrict ys = y;
    for (std::int64_t i = b; i < e; ++i) ys[i] = xs[i] < R(0) ? R(0) : xs[i];
  });
}
template <RealScalar R> void relu_backward(const R* x, const R* g, R* gx, std::int64_t n) {
  CpuDevice::parallel_for(n, 1 << 15, [x, g, gx](std::int64_t b, std::int64_t e) {
    const R* __restrict xs = x;
    const R* __restrict gs = g;
    R* __restrict os = gx;
    for (std::int64_t i = b; i < e; ++i) os[i] = xs[i] > R(0) ? gs[i] : R(0);
  });
}
}  // namespace detail

// ---- arithmetic -----------------------------------------------------------------
// add: d(a+b)/da = 1, d(a+b)/db = 1.
template <class T> Var<T> add(const Var<T>& a, const Var<T>& b) {
  auto v = detail::broadcast_binary(a.value(), b.value(), "add", [](auto x, auto y, auto o) { o = x + y; });
  return record("add", v, [a, b](const Tensor<T>& g) {
    add_grad(a, sum_to(g, a.shape()));
    add_grad(b, sum_to(g, b.shape()));
  }, a, b);
}

// sub: G_a = G, G_b = −G.
template <class T> Var<T> sub(const Var<T>& a, const Var<T>& b) {
  auto v = detail::broadcast_binary(a.value(), b.value(), "sub", [](auto x, auto y, auto o) { o = x - y; });
  return record("sub", v, [a, b](const Tensor<T>& g) {
    add_grad(a, sum_to(g, a.shape()));
    if (b.requires_grad()) {
      Tensor<T> n(g.shape());
      n.vec() = -g.vec();
      add_grad(b, sum_to(n, b.shape()));
    }
  }, a, b);
}

// mul: s = a·b, ∂s/∂a = b ⇒ G_a = G·conj(b), G_b = G·conj(a).
template <class T> Var<T> mul(const Var<T>& a, const Var<T>& b) {
  auto v = detail::broadcast_binary(a.value(), b.value(), "mul", [](auto x, auto y, auto o) { o = x * y; });
  return record("mul", v, [a, b](const Tensor<T>& g) {
    const Shape& s = g.shape();
    if (a.requires_grad()) {
      auto eb = expand(b.value(), s);
      add_grad(a, sum_to(detail::from_array<T>(s, g.vec() * eb.vec().conjugate()), a.shape()));
    }
    if (b.requires_grad()) {
      auto ea = expand(a.value(), s);
      add_grad(b, sum_to(detail::from_array<T>(s, g.vec() * ea.vec().conjugate()), b.shape()));
    }
  }, a, b);
}

// div: s = a/b, ∂s/∂a = 1/b, ∂s/∂b = −a/b² = −s/b ⇒ G_a = G/conj(b), G_b = −G·conj(s/b).
template <class T> Var<T> div(const Var<T>& a, const Var<T>& b) {
  auto v = detail::broadcast_binary(a.value(), b.value(), "div", [](auto x, auto y, auto o) { o = x / y; });
  return record("div", v, [a, b, v](const Tensor<T>& g) {
    const Shape& s = g.shape();
    auto eb = expand(b.value(), s);
    if (a.requires_grad())
      add_grad(a, sum_to(detail::from_array<T>(s, g.vec() / eb.vec().conjugate()), a.shape()));
    if (b.requires_grad())
      add_grad(b, sum_to(detail::from_array<T>(s, -g.vec() * (v.vec() / eb.vec()).conjugate()), b.shape()));
  }, a, b);
}

template <class T> Var<T> neg(const Var<T>& a) {
  Tensor<T> v(a.shape());
  v.vec() = -a.value().vec();
  return record("neg", v, [a](const Tensor<T>& g) { add_grad(a, detail::from_array<T>(g.shape(), -g.vec())); }, a);
}

// s = k·a for a constant k: G_a = G·conj(k).
template <class T> Var<T> scale(const Var<T>& a, T k) {
  Tensor<T> v(a.shape());
  v.vec() = a.value().vec() * k;
  return record("scale", v, [a, k](const Tensor<T>& g) {
    add_grad(a, detail::from_array<T>(g.shape(), g.vec() * conj_if(k)));
  }, a);
}
// s = a + k for a constant k: G_a = G.
template <class T> Var<T> add_scalar(const Var<T>& a, T k) {
  Tensor<T> v(a.shape());
  v.vec() = a.value().vec() + k;
  return record("add_scalar", v, [a](const Tensor<T>& g) { add_grad(a, g); }, a);
}

template <class T> Var<T> operator+(const Var<T>& a, const Var<T>& b) { return add(a, b); }
template <class T> Var<T> operator-(const Var<T>& a, const Var<T>& b) { return sub(a, b); }
template <class T> Var<T> operator*(const Var<T>& a, const Var<T>& b) { return mul(a, b); }
template <class T> Var<T> operator/(const Var<T>& a, const Var<T>& b) { return div(a, b); }
template <class T> Var<T> operator-(const Var<T>& a) { return neg(a); }
template <class T> Var<T> operator*(const Var<T>& a, T k) { return scale(a, k); }
template <class T> Var<T> operator*(T k, const Var<T>& a) { return scale(a, k); }
template <class T> Var<T> operator+(const Var<T>& a, T k) { return add_scalar(a, k); }
template <class T> Var<T> operator-(const Var<T>& a, T k) { return add_scalar(a, T(-k)); }

// ---- elementwise functions --------------------------------------------------------
namespace detail {
template <class T> Tensor<T> apply_unary(simd::Unary op, const Tensor<T>& x) {
  Tensor<T> y(x.shape());
  simd::unary(op, x.data(), y.data(), x.numel());
  return y;
}
}  // namespace detail

// exp: f' = exp(z) = s ⇒ G_z = G·conj(s).
template <class T> Var<T> exp(const Var<T>& x) {
  auto y = detail::apply_unary(simd::Unary::exp, x.value());
  return record("exp", y, [x, y](const Tensor<T>& g) {
    add_grad(x, detail::from_array<T>(g.shape(), g.vec() * y.vec().conjugate()));
  }, x);
}
// log: f' = 1/z ⇒ G_z = G / conj(z).
template <class T> Var<T> log(const Var<T>& x) {
  auto y = detail::apply_unary(simd::Unary::log, x.value());
  return record("log", y, [x](const Tensor<T>& g) {
    add_grad(x, detail::from_array<T>(g.shape(), g.vec() / x.value().vec().conjugate()));
  }, x);
}
// sqrt: f' = 1/(2√z) ⇒ G_z = G / (2·conj(s)).
template <class T> Var<T> sqrt(const Var<T>& x) {
  auto y = detail::apply_unary(simd::Unary::sqrt, x.value());
  return record("sqrt", y, [x, y](const Tensor<T>& g) {
    add_grad(x, detail::from_array<T>(g.shape(), g.vec() / (T(2) * y.vec().conjugate())));
  }, x);
}
// pow with a real exponent p: f' = p·z^(p−1) ⇒ G_z = G·conj(p·z^(p−1)).
template <class T> Var<T> pow(const Var<T>& x, real_t<T> p) {
  Tensor<T> y(x.shape());
  y.vec() = x.value().vec().unaryExpr([p](T z) { return T(std::pow(z, p)); });
  return record("pow", y, [x, p](const Tensor<T>& g) {
    detail::Arr<T> d = x.value().vec().unaryExpr([p](T z) { return T(p) * T(std::pow(z, p - 1)); });
    add_grad(x, detail::from_array<T>(g.shape(), g.vec() * d.conjugate()));
  }, x);
}
// sin: f' = cos z ⇒ G_z = G·conj(cos z).
template <class T> Var<T> sin(const Var<T>& x) {
  auto y = detail::apply_unary(simd::Unary::sin, x.value());
  return record("sin", y, [x](const Tensor<T>& g) {
    auto c = detail::apply_unary(simd::Unary::cos, x.value());
    add_grad(x, detail::from_array<T>(g.shape(), g.vec() * c.vec().conjugate()));
  }, x);
}
// cos: f' = −sin z ⇒ G_z = −G·conj(sin z).
template <class T> Var<T> cos(const Var<T>& x) {
  auto y = detail::apply_unary(simd::Unary::cos, x.value());
  return record("cos", y, [x](const Tensor<T>& g) {
    auto s = detail::apply_unary(simd::Unary::sin, x.value());
    add_grad(x, detail::from_array<T>(g.shape(), -g.vec() * s.vec().conjugate()));
  }, x);
}
// tanh: f' = 1 − s² ⇒ G_z = G·conj(1 − s²).
template <class T> Var<T> tanh(const Var<T>& x) {
  auto y = detail::apply_unary(simd::Unary::tanh, x.value());
  return record("tanh", y, [x, y](const Tensor<T>& g) {
    add_grad(x, detail::from_array<T>(g.shape(), g.vec() * (T(1) - y.vec() * y.vec()).conjugate()));
  }, x);
}
// sigmoid: f' = s(1 − s) ⇒ G_z = G·conj(s(1 − s)).
template <class T> Var<T> sigmoid(const Var<T>& x) {
  auto y = detail::apply_unary(simd::Unary::sigmoid, x.value());
  return record("sigmoid", y, [x, y](const Tensor<T>& g) {
    add_grad(x, detail::from_array<T>(g.shape(), g.vec() * (y.vec() * (T(1) - y.vec())).conjugate()));
  }, x);
}
// relu (real): f' = 1[x > 0] (0 at the kink, as PyTorch).
template <RealScalar T> Var<T> relu(const Var<T>& x) {
  Tensor<T> y(x.shape());
  detail::relu_forward(x.value().data(), y.data(), y.numel());
  return record("relu", y, [x](const Tensor<T>& g) {
    Tensor<T> gx(g.shape());
    detail::relu_backward(x.value().data(), g.data(), gx.data(), g.numel());
    add_grad(x, std::move(gx));
  }, x);
}
// abs (real): f' = sign(x), 0 at 0.
template <RealScalar T> Var<T> abs(const Var<T>& x) {
  Tensor<T> y(x.shape());
  y.vec() = x.value().vec().abs();
  return record("abs", y, [x](const Tensor<T>& g) {
    const auto& v = x.value().vec();
    add_grad(x, detail::from_array<T>(g.shape(), g.vec() * ((v > T(0)).template cast<T>() - (v < T(0)).template cast<T>())));
  }, x);
}

// atan2(y, x) on reals. With r² = x² + y²: ∂θ/∂y = x/r², ∂θ/∂x = −y/r²;
// at the origin θ is defined as 0 with zero gradient.
template <RealScalar T> Var<T> atan2(const Var<T>& y, const Var<T>& x) {
  check_same_shape(y.shape(), x.shape(), "atan2");
  Tensor<T> t(y.shape());
  simd::atan2(y.value().data(), x.value().data(), t.data(), t.numel());
  return record("atan2", t, [y, x](const Tensor<T>& g) {
    const auto& yv = y.value().vec();
    const auto& xv = x.value().vec();
    detail::Arr<T> r2 = xv * xv + yv * yv;
    detail::Arr<T> inv = (r2 > T(0)).select(g.vec() / r2, T(0));
    if (y.requires_grad()) add_grad(y, detail::from_array<T>(g.shape(), inv * xv));
    if (x.requires_grad()) add_grad(x, detail::from_array<T>(g.shape(), -inv * yv));
  }, y, x);
}

}  // namespace erlmr
