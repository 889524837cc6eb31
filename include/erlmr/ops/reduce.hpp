// erlmr/ops/reduce.hpp — sum, mean and max over axes.
//
// A reduction over axis a views x as (outer, n, inner) and reduces the middle
// axis in index order (a fixed order, so sums are deterministic).
//   sum:  G_x[o,k,i] = G[o,i]
//   mean: G_x[o,k,i] = G[o,i] / n
//   max:  G_x[o,k,i] = G[o,i] at the first maximal k, 0 elsewhere (like torch.max(dim)).
// keepdim keeps the reduced axis with extent 1.
#pragma once
#include <algorithm>
#include <vector>

#include "erlmr/ops/elementwise.hpp"

namespace erlmr {

namespace detail {
struct AxisSplit {
  std::int64_t outer, n, inner;
};
inline AxisSplit split_at(const Shape& s, int a) {
  AxisSplit r{1, s[a], 1};
  for (int i = 0; i < a; ++i) r.outer *= s[i];
  for (int i = a + 1; i < s.rank(); ++i) r.inner *= s[i];
  return r;
}
inline Shape reduced_shape(const Shape& s, int a, bool keepdim) {
  Shape r;
  for (int i = 0; i < s.rank(); ++i)
    if (i != a) r.push_back(s[i]);
    else if (keepdim) r.push_back(1);
  return r;
}
}  // namespace detail

template <Scalar T> Var<T> sum(const Var<T>& x, int axis, bool keepdim = false) {
  const int a = x.shape().normalize_axis(axis, "sum");
  const auto sp = detail::split_at(x.shape(), a);
  const Shape os = detail::reduced_shape(x.shape(), a, keepdim);
  auto out = Tensor<T>::zeros(os);
  const T* xv = x.value().data();
  T* ov = out.data();
  for (std::int64_t o = 0; o < sp.outer; ++o)
    for (std::int64_t k = 0; k < sp.n; ++k)
      for (std::int64_t i = 0; i < sp.inner; ++i) ov[o * sp.inner + i] += xv[(o * sp.n + k) * sp.inner + i];
  return record("sum", out, [x, sp](const Tensor<T>& g) {
    Tensor<T> gx(x.shape());
    for (std::int64_t o = 0; o < sp.outer; ++o)
      for (std::int64_t k = 0; k < sp.n; ++k)
        std::copy_n(g.data() + o * sp.inner, sp.inner, gx.data() + (o * sp.n + k) * sp.inner);
    add_grad(x, std::move(gx));
  }, x);
}

// Sum of all elements (a 0-d result).
template <Scalar T> Var<T> sum(const Var<T>& x) {
  T s(0);
  const T* xv = x.value().data();
  for (std::int64_t i = 0; i < x.numel(); ++i) s += xv[i];
  return record("sum_all", Tensor<T>::scalar(s), [x](const Tensor<T>& g) { add_grad(x, Tensor<T>::full(x.shape(), g.item())); }, x);
}

template <Scalar T> Var<T> sum(const Var<T>& x, std::vector<int> axes, bool keepdim = false) {
  for (auto& a : axes) a = x.shape().normalize_axis(a, "sum");
  std::sort(axes.rbegin(), axes.rend());  // reduce the last axes first so earlier indices stay valid
  Var<T> r = x;
  for (int a : axes) r = sum(r, a, keepdim);
  return r;
}

template <Scalar T> Var<T> mean(const Var<T>& x, int axis, bool keepdim = false) {
  const std::int64_t n = x.shape().dim(axis);
  return scale(sum(x, axis, keepdim), T(real_t<T>(1) / real_t<T>(n)));
}
template <Scalar T> Var<T> mean(const Var<T>& x) {
  return scale(sum(x), T(real_t<T>(1) / real_t<T>(x.numel())));
}
template <Scalar T> Var<T> mean(const Var<T>& x, std::vector<int> axes, bool keepdim = false) {
  std::int64_t n = 1;
  for (int a : axes) n *= x.shape().dim(a);
  return scale(sum(x, std::move(axes), keepdim), T(real_t<T>(1) / real_t<T>(n)));
}

template <RealScalar T> Var<T> max(const Var<T>& x, int axis, bool keepdim = false) {
  const int a = x.shape().normalize_axis(axis, "max");
  const auto sp = detail::split_at(x.shape(), a);
  if (sp.n == 0) throw ShapeError("max: reduction over an empty axis of shape " + x.shape().str());
  const Shape os = detail::reduced_shape(x.shape(), a, keepdim);
  Tensor<T> out(os);
  std::vector<std::int64_t> arg(static_cast<std::size_t>(sp.outer * sp.inner));
  const T* xv = x.value().data();
  for (std::int64_t o = 0; o < sp.outer; ++o)
    for (std::int64_t i = 0; i < sp.inner; ++i) {
      std::int64_t best = 0;
      T bv = xv[o * sp.n * sp.inner + i];
      for (std::int64_t k = 1; k < sp.n; ++k) {
        const T v = xv[(o * sp.n + k) * sp.inner + i];
        if (v > bv || (std::isnan(v) && !std::isnan(bv))) { bv = v; best = k; }
      }
      out.data()[o * sp.inner + i] = bv;
      arg[static_cast<std::size_t>(o * sp.inner + i)] = best;
    }
  return record("max", out, [x, sp, arg](const Tensor<T>& g) {
    auto gx = Tensor<T>::zeros(x.shape());
    for (std::int64_t o = 0; o < sp.outer; ++o)
      for (std::int64_t i = 0; i < sp.inner; ++i) {
        const std::int64_t j = o * sp.inner + i;
        gx.data()[(o * sp.n + arg[static_cast<std::size_t>(j)]) * sp.inner + i] = g.data()[j];
      }
    add_grad(x, std::move(gx));
  }, x);
}

}  // namespace erlmr
