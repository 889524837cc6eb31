// erlmr/ops/broadcast.hpp — materialising broadcasts, and their adjoint (sum_to).
//
// expand(t, s) copies t into shape s by NumPy broadcasting. Its adjoint,
// sum_to(g, s), sums g over the broadcast axes. Both walk the output in
// row-major order, so sums are always taken in the same order (deterministic).
#pragma once
#include <array>

#include "erlmr/core/tensor.hpp"

namespace erlmr {

namespace detail {
// Calls f(out_index, in_offset) for every element of `out` in row-major order,
// where in_offset is the offset of the broadcast source element.
template <class F> void for_each_broadcast(const Shape& in, const Shape& out, F&& f) {
  const auto st = broadcast_strides(in, out);
  const int r = out.rank();
  const std::int64_t n = out.numel();
  if (n == 0) return;
  std::array<std::int64_t, Shape::kMaxRank> idx{};
  std::int64_t off = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    f(i, off);
    for (int a = r - 1; a >= 0; --a) {  // odometer increment
      const auto ua = static_cast<std::size_t>(a);
      if (++idx[ua] < out[a]) {
        off += st[ua];
        break;
      }
      off -= st[ua] * (idx[ua] - 1);
      idx[ua] = 0;
    }
  }
}
}  // namespace detail

template <class T, class D> Tensor<T, D> expand(const Tensor<T, D>& t, const Shape& out, const char* op = "expand") {
  if (t.shape() == out) return t;
  const Shape b = broadcast_shapes(t.shape(), out, op);
  if (!(b == out)) throw ShapeError(std::string(op) + ": cannot broadcast " + shapes_str(t.shape(), out));
  Tensor<T, D> r(out);
  T* dst = r.data();
  const T* src = t.data();
  detail::for_each_broadcast(t.shape(), out, [&](std::int64_t i, std::int64_t o) { dst[i] = src[o]; });
  return r;
}

// Adjoint of expand: sums g (of the broadcast shape) down to shape s.
template <class T, class D> Tensor<T, D> sum_to(const Tensor<T, D>& g, const Shape& s) {
  if (g.shape() == s) return g;
  auto r = Tensor<T, D>::zeros(s);
  T* dst = r.data();
  const T* src = g.data();
  detail::for_each_broadcast(s, g.shape(), [&](std::int64_t i, std::int64_t o) { dst[o] += src[i]; });
  return r;
}

}  // namespace erlmr
