// erlmr/ops/shape_ops.hpp — reshape, flatten, transpose, concat, split, slice.
//
// All are linear maps that only move elements, so each backward is the
// inverse movement of the gradient: reshape ↔ reshape back, transpose ↔ the
// same transpose, concat ↔ split, slice ↔ scatter into zeros.
#pragma once
#include <array>
#include <initializer_list>
#include <span>
#include <vector>

#include "erlmr/ops/reduce.hpp"

namespace erlmr {

template <Scalar T> Var<T> reshape(const Var<T>& x, std::span<const std::int64_t> dims) {
  Tensor<T> y = x.value().reshape(dims);
  return record("reshape", y, [x](const Tensor<T>& g) {
    // g's buffer itself where the pass lets the rule take it (no copy); else add_grad copies
    // the shared buffer. (The temporary from take_adjoint is gone before add_grad runs.)
    Tensor<T> gx = take_adjoint(g).reshape(x.shape());
    add_grad(x, std::move(gx));
  }, x);
}
template <Scalar T> Var<T> reshape(const Var<T>& x, const std::vector<std::int64_t>& dims) {
  return reshape(x, std::span<const std::int64_t>(dims));
}
template <Scalar T> Var<T> reshape(const Var<T>& x, std::initializer_list<std::int64_t> dims) {
  return reshape(x, std::span<const std::int64_t>(dims.begin(), dims.size()));
}
// Flattens axes [start, end] into one.
namespace detail {
// Shape checks shared by the CPU ops here and their device twins (cuda/ops.hpp).
inline std::vector<std::int64_t> flatten_dims(const Shape& s, int start, int end) {
  const int a = s.normalize_axis(start, "flatten"), b = s.normalize_axis(end, "flatten");
  std::vector<std::int64_t> d;
  for (int i = 0; i < a; ++i) d.push_back(s[i]);
  std::int64_t m = 1;
  for (int i = a; i <= b; ++i) m *= s[i];
  d.push_back(m);
  for (int i = b + 1; i < s.rank(); ++i) d.push_back(s[i]);
  return d;
}
// The output shape of concatenating `shapes` along `axis`, and the normalised axis.
inline std::pair<int, Shape> concat_shape(std::span<const Shape> shapes, int axis) {
  if (shapes.empty()) throw ShapeError("concat: no inputs");
  const Shape& s0 = shapes[0];
  const int a = s0.normalize_axis(axis, "concat");
  Shape os = s0;
  os[a] = 0;
  for (const auto& s : shapes) {
    bool ok = s.rank() == s0.rank();
    for (int i = 0; ok && i < s.rank(); ++i) ok = (i == a) || s[i] == s0[i];
    if (!ok) throw ShapeError("concat: shapes " + shapes_str(s0, s) + " differ outside axis " + std::to_string(a));
    os[a] += s[a];
  }
  return {a, os};
}
template <class V> PoolVector<Shape> shapes_of(std::span<const V> xs) {
  PoolVector<Shape> out;
  out.reserve(xs.size());
  for (const auto& x : xs) out.push_back(x.shape());
  return out;
}
// The normalised axis of a slice [start, start + length), checked against s.
inline int check_slice(const Shape& s, int axis, std::int64_t start, std::int64_t length) {
  const int a = s.normalize_axis(axis, "slice");
  if (start < 0 || length < 0 || start + length > s[a])
    throw ShapeError("slice: [" + std::to_string(start) + ", " + std::to_string(start + length) + ") out of range for axis " +
                     std::to_string(a) + " of shape " + s.str());
  return a;
}
// The normalised axis of a split into `sizes`, which must add up to the extent.
inline int check_split(const Shape& s, const std::vector<std::int64_t>& sizes, int axis) {
  const int a = s.normalize_axis(axis, "split");
  std::int64_t total = 0;
  for (auto v : sizes) total += v;
  if (total != s[a])
    throw ShapeError("split: sizes add up to " + std::to_string(total) + " but axis " + std::to_string(a) + " of shape " +
                     s.str() + " has " + std::to_string(s[a]));
  return a;
}
}  // namespace detail

template <Scalar T> Var<T> flatten(const Var<T>& x, int start = 1, int end = -1) {
  return reshape(x, detail::flatten_dims(x.shape(), start, end));
}

namespace detail {
// Copies x with axes a and b swapped.
template <class T> Tensor<T> swap_axes(const Tensor<T>& x, int a, int b) {
  Shape os = x.shape();
  std::swap(os[a], os[b]);
  Tensor<T> y(os);
  Shape perm_src = x.shape();
  // Stride of each output axis in the source.
  std::array<std::int64_t, Shape::kMaxRank> st{};
  for (int i = 0; i < os.rank(); ++i) st[static_cast<std::size_t>(i)] = perm_src.stride(i);
  std::swap(st[static_cast<std::size_t>(a)], st[static_cast<std::size_t>(b)]);
  std::array<std::int64_t, Shape::kMaxRank> idx{};
  std::int64_t off = 0;
  for (std::int64_t i = 0; i < y.numel(); ++i) {
    y.data()[i] = x.data()[off];
    for (int k = os.rank() - 1; k >= 0; --k) {
      const auto uk = static_cast<std::size_t>(k);
      if (++idx[uk] < os[k]) { off += st[uk]; break; }
      off -= st[uk] * (os[k] - 1);
      idx[uk] = 0;
    }
  }
  return y;
}
}  // namespace detail

template <Scalar T> Var<T> transpose(const Var<T>& x, int a = -2, int b = -1) {
  const int ua = x.shape().normalize_axis(a, "transpose"), ub = x.shape().normalize_axis(b, "transpose");
  return record("transpose", detail::swap_axes(x.value(), ua, ub), [x, ua, ub](const Tensor<T>& g) {
    add_grad(x, detail::swap_axes(g, ua, ub));
  }, x);
}

// Concatenation along an axis; all other extents must agree.
// (The inputs and offsets the rule keeps live in pool blocks: no heap allocation.)
template <Scalar T> Var<T> concat(std::span<const Var<T>> in, int axis) {
  // Plain variables, not a structured binding: the rule captures the axis (clang < 16 rejects that).
  const std::pair<int, Shape> cs = detail::concat_shape(detail::shapes_of(in), axis);
  const int a = cs.first;
  const Shape& os = cs.second;
  const auto sp = detail::split_at(os, a);
  Tensor<T> y(os);
  PoolVector<Var<T>> xs(in.begin(), in.end());
  PoolVector<std::int64_t> offs;
  std::int64_t off = 0;
  for (const auto& x : xs) {
    const std::int64_t w = x.shape()[a] * sp.inner;
    for (std::int64_t o = 0; o < sp.outer; ++o)
      std::copy_n(x.value().data() + o * w, w, y.data() + o * sp.n * sp.inner + off);
    offs.push_back(off);
    off += w;
  }
  auto rule = [xs = std::move(xs), sp, offs = std::move(offs), a](const Tensor<T>& g) {
    for (std::size_t j = 0; j < xs.size(); ++j) {
      if (!xs[j].requires_grad()) continue;
      Tensor<T> gx(xs[j].shape());
      const std::int64_t w = xs[j].shape()[a] * sp.inner;
      for (std::int64_t o = 0; o < sp.outer; ++o)
        std::copy_n(g.data() + o * sp.n * sp.inner + offs[j], w, gx.data() + o * w);
      add_grad(xs[j], std::move(gx));  // handed over: the tape adopts it (a copy would be cloned)
    }
  };
  return record_n("concat", y, std::move(rule), in);
}
template <Scalar T> Var<T> concat(const std::vector<Var<T>>& xs, int axis) { return concat(std::span<const Var<T>>(xs), axis); }
template <Scalar T> Var<T> concat(const Var<T>& x0, const Var<T>& x1, int axis) {
  const std::array<Var<T>, 2> xs{x0, x1};
  return concat(std::span<const Var<T>>(xs), axis);
}

// Elements [start, start + length) along an axis.
template <Scalar T> Var<T> slice(const Var<T>& x, int axis, std::int64_t start, std::int64_t length) {
  const Shape& s = x.shape();
  const int a = detail::check_slice(s, axis, start, length);
  const auto sp = detail::split_at(s, a);
  Shape os = s;
  os[a] = length;
  Tensor<T> y(os);
  for (std::int64_t o = 0; o < sp.outer; ++o)
    std::copy_n(x.value().data() + (o * sp.n + start) * sp.inner, length * sp.inner, y.data() + o * length * sp.inner);
  // G_x is G in the slice's elements and 0 elsewhere. It is written into x's adjoint in
  // place: the first gradient to arrive is zeros with G copied in, a later one adds G into
  // the slice's elements only (the slices of one tensor — the two modalities' halves of the
  // stacked Euler features — then cost one pass over the tensor, not one per slice).
  return record("slice", y, [x, sp, start, length](const Tensor<T>& g) {
    bool fresh = false;
    Tensor<T>* a = adjoint_to_fill(x, fresh);
    if (!a) return;
    if (fresh) std::fill_n(a->data(), a->numel(), T(0));
    const std::int64_t w = length * sp.inner;
    for (std::int64_t o = 0; o < sp.outer; ++o) {
      T* dst = a->data() + (o * sp.n + start) * sp.inner;
      const T* src = g.data() + o * w;
      if (fresh)
        std::copy_n(src, w, dst);
      else
        CpuDevice::add_inplace(dst, src, w);
    }
  }, x);
}

// Splits along an axis into pieces of the given sizes (which must add up to the extent).
template <Scalar T> std::vector<Var<T>> split(const Var<T>& x, const std::vector<std::int64_t>& sizes, int axis) {
  const int a = detail::check_split(x.shape(), sizes, axis);
  std::vector<Var<T>> out;
  std::int64_t start = 0;
  for (auto v : sizes) {
    out.push_back(slice(x, a, start, v));
    start += v;
  }
  return out;
}

}  // namespace erlmr
