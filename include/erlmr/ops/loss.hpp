// erlmr/ops/loss.hpp — softmax, log-softmax, cross-entropy, cosine similarity.
//
//   softmax:      y = e^x / Σe^x (along an axis, max-shifted);  G_x = y·(G − Σ G·y)
//   log_softmax:  y = x − logΣe^x;                              G_x = G − softmax(x)·Σ G
//   cross_entropy(logits (B, K), labels): mean over b of −log_softmax(x)[b, y_b];
//                 G_x = G·(softmax(x) − onehot(y))/B
//   cosine_similarity(a, b, axis, ε): c = Σ a·b / (max(‖a‖, ε)·max(‖b‖, ε))
//     (PyTorch's per-norm clamp). With n_a = max(‖a‖, ε):
//     G_a = G·(b/(n_a n_b) − c·a/n_a²) where ‖a‖ > ε, and G·b/(n_a n_b) where clamped.
#pragma once
#include <vector>

#include "erlmr/ops/shape_ops.hpp"

namespace erlmr {

namespace detail {
// Row-wise log-sum-exp over the middle axis of (outer, n, inner).
template <class T> void softmax_rows(const T* x, T* y, const AxisSplit& sp, bool log) {
  for (std::int64_t o = 0; o < sp.outer; ++o)
    for (std::int64_t i = 0; i < sp.inner; ++i) {
      const T* xr = x + o * sp.n * sp.inner + i;
      T* yr = y + o * sp.n * sp.inner + i;
      T mx = xr[0];
      for (std::int64_t k = 1; k < sp.n; ++k) mx = std::max(mx, xr[k * sp.inner]);
      T s = 0;
      for (std::int64_t k = 0; k < sp.n; ++k) s += std::exp(xr[k * sp.inner] - mx);
      const T lse = mx + std::log(s);
      for (std::int64_t k = 0; k < sp.n; ++k) yr[k * sp.inner] = log ? xr[k * sp.inner] - lse : std::exp(xr[k * sp.inner] - lse);
    }
}
}  // namespace detail

template <RealScalar T> Var<T> softmax(const Var<T>& x, int axis = -1) {
  const int a = x.shape().normalize_axis(axis, "softmax");
  const auto sp = detail::split_at(x.shape(), a);
  Tensor<T> y(x.shape());
  detail::softmax_rows(x.value().data(), y.data(), sp, false);
  return record("softmax", y, [x, y, sp](const Tensor<T>& g) {
    Tensor<T> gx(x.shape());
    for (std::int64_t o = 0; o < sp.outer; ++o)
      for (std::int64_t i = 0; i < sp.inner; ++i) {
        const std::int64_t base = o * sp.n * sp.inner + i;
        T dot = 0;
        for (std::int64_t k = 0; k < sp.n; ++k) dot += g.data()[base + k * sp.inner] * y.data()[base + k * sp.inner];
        for (std::int64_t k = 0; k < sp.n; ++k) {
          const std::int64_t j = base + k * sp.inner;
          gx.data()[j] = y.data()[j] * (g.data()[j] - dot);
        }
      }
    add_grad(x, std::move(gx));
  }, x);
}

template <RealScalar T> Var<T> log_softmax(const Var<T>& x, int axis = -1) {
  const int a = x.shape().normalize_axis(axis, "log_softmax");
  const auto sp = detail::split_at(x.shape(), a);
  Tensor<T> y(x.shape());
  detail::softmax_rows(x.value().data(), y.data(), sp, true);
  return record("log_softmax", y, [x, y, sp](const Tensor<T>& g) {
    Tensor<T> gx(x.shape());
    for (std::int64_t o = 0; o < sp.outer; ++o)
      for (std::int64_t i = 0; i < sp.inner; ++i) {
        const std::int64_t base = o * sp.n * sp.inner + i;
        T gs = 0;
        for (std::int64_t k = 0; k < sp.n; ++k) gs += g.data()[base + k * sp.inner];
        for (std::int64_t k = 0; k < sp.n; ++k) {
          const std::int64_t j = base + k * sp.inner;
          gx.data()[j] = g.data()[j] - std::exp(y.data()[j]) * gs;
        }
      }
    add_grad(x, std::move(gx));
  }, x);
}

namespace detail {
// Logits (B, K) and B labels in [0, K) (shared with the device version, cuda/ops.hpp).
inline void check_cross_entropy(const Shape& s, const std::vector<std::int64_t>& labels) {
  if (s.rank() != 2 || static_cast<std::int64_t>(labels.size()) != s[0])
    throw ShapeError("cross_entropy: logits " + s.str() + " and " + std::to_string(labels.size()) + " labels do not match (B, K) and (B,)");
  for (std::size_t b = 0; b < labels.size(); ++b)
    if (labels[b] < 0 || labels[b] >= s[1])
      throw std::out_of_range("cross_entropy: label " + std::to_string(labels[b]) + " at index " + std::to_string(b) +
                              " is outside [0, " + std::to_string(s[1]) + ")");
}
}  // namespace detail

// Mean softmax cross-entropy of logits (B, K) against integer labels in [0, K).
template <RealScalar T> Var<T> cross_entropy(const Var<T>& logits, const std::vector<std::int64_t>& labels) {
  const Shape& s = logits.shape();
  detail::check_cross_entropy(s, labels);
  const std::int64_t B = s[0], K = s[1];
  Tensor<T> lp(s);
  detail::softmax_rows(logits.value().data(), lp.data(), detail::AxisSplit{B, K, 1}, true);
  T loss = 0;
  for (std::int64_t b = 0; b < B; ++b) loss -= lp.data()[b * K + labels[static_cast<std::size_t>(b)]];
  loss /= T(B);
  return record("cross_entropy", Tensor<T>::scalar(loss), [logits, labels = PoolVector<std::int64_t>(labels.begin(), labels.end()), lp, B, K](const Tensor<T>& g) {
    Tensor<T> gx(logits.shape());
    const T k = g.item() / T(B);
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t j = 0; j < K; ++j)
        gx.data()[b * K + j] = k * (std::exp(lp.data()[b * K + j]) - (j == labels[static_cast<std::size_t>(b)] ? T(1) : T(0)));
    add_grad(logits, std::move(gx));
  }, logits);
}

template <RealScalar T> Var<T> cosine_similarity(const Var<T>& a, const Var<T>& b, int axis = 1, double eps = 1e-8) {
  check_same_shape(a.shape(), b.shape(), "cosine_similarity");
  const int ax = a.shape().normalize_axis(axis, "cosine_similarity");
  const auto sp = detail::split_at(a.shape(), ax);
  const Shape os = detail::reduced_shape(a.shape(), ax, false);
  Tensor<T> c(os), na(os), nb(os);
  const T* av = a.value().data();
  const T* bv = b.value().data();
  for (std::int64_t o = 0; o < sp.outer; ++o)
    for (std::int64_t i = 0; i < sp.inner; ++i) {
      T d = 0, sa = 0, sb = 0;
      for (std::int64_t k = 0; k < sp.n; ++k) {
        const std::int64_t j = (o * sp.n + k) * sp.inner + i;
        d += av[j] * bv[j];
        sa += av[j] * av[j];
        sb += bv[j] * bv[j];
      }
      const std::int64_t r = o * sp.inner + i;
      na.data()[r] = std::sqrt(sa);
      nb.data()[r] = std::sqrt(sb);
      c.data()[r] = d / (std::max(na.data()[r], T(eps)) * std::max(nb.data()[r], T(eps)));
    }
  return record("cosine_similarity", c, [a, b, c, na, nb, sp, eps](const Tensor<T>& g) {
    Tensor<T> ga(a.shape()), gb(b.shape());
    const T* av = a.value().data();
    const T* bv = b.value().data();
    for (std::int64_t o = 0; o < sp.outer; ++o)
      for (std::int64_t i = 0; i < sp.inner; ++i) {
        const std::int64_t r = o * sp.inner + i;
        const T A = std::max(na.data()[r], T(eps)), B = std::max(nb.data()[r], T(eps));
        const T cr = c.data()[r], gr = g.data()[r];
        const T ka = na.data()[r] > T(eps) ? cr / (A * A) : T(0);
        const T kb = nb.data()[r] > T(eps) ? cr / (B * B) : T(0);
        for (std::int64_t k = 0; k < sp.n; ++k) {
          const std::int64_t j = (o * sp.n + k) * sp.inner + i;
          ga.data()[j] = gr * (bv[j] / (A * B) - ka * av[j]);
          gb.data()[j] = gr * (av[j] / (A * B) - kb * bv[j]);
        }
      }
    add_grad(a, std::move(ga));
    add_grad(b, std::move(gb));
  }, a, b);
}

}  // namespace erlmr
