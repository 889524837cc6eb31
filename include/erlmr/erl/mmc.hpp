// erlmr/erl/mmc.hpp — the Multi-Modal Constrained loss and the two-task min-norm weight.
//
// Spec §3.3: c_j = Σ_b θ_a[b,j] θ_g[b,j] / (max(‖θ_a[:,j]‖, ε)·max(‖θ_g[:,j]‖, ε)),
//            L_ph = 1 − mean_j c_j,  L_MMC = L_ph + CE(out_a, y) + CE(out_g, y).
// Spec §3.4: γ from the normalised gradients ĝ_k = g_k / (L_k‖g_k‖) of L_CE and 2·L_ph.
#pragma once
#include <cmath>
#include <span>
#include <vector>

#include "erlmr/autograd/backward.hpp"
#include "erlmr/ops/linalg.hpp"
#include "erlmr/ops/loss.hpp"

namespace erlmr::erl {

// Phase agreement loss: 1 − mean over feature dimensions of the cosine down the batch.
template <RealScalar R, class D> Var<R, D> phase_cosine_loss(const Var<R, D>& theta_a, const Var<R, D>& theta_g) {
  return add_scalar(neg(mean(cosine_similarity(theta_a, theta_g, 0, 1e-8))), R(1));
}

// Dot products of two gradient lists (flattened over all tensors, in list order).
struct GradGram {
  double v11 = 0, v12 = 0, v22 = 0;
};

namespace detail {
// Adds ⟨a,a⟩, ⟨a,b⟩, ⟨b,b⟩ of two same-shaped tensors into m.
template <RealScalar R, class D> void gram_add(GradGram& m, const Tensor<R, D>& ta, const Tensor<R, D>& tb) {
  check_same_shape(ta.shape(), tb.shape(), "gram");
  if constexpr (!D::is_host) {  // the device's fixed-order reduction (e.g. CudaDevice::gram on the GPU)
    double v[3];
    D::gram(ta.data(), tb.data(), ta.numel(), v);
    m.v11 += v[0];
    m.v12 += v[1];
    m.v22 += v[2];
  } else {
    // Double-precision sums in a fixed order (the result depends only on the data).
    const R* a = ta.data();
    const R* b = tb.data();
    const std::int64_t n = ta.numel();
    m.v11 += erlmr::detail::dot_sum8(a, a, n);
    m.v12 += erlmr::detail::dot_sum8(a, b, n);
    m.v22 += erlmr::detail::dot_sum8(b, b, n);
  }
}
}  // namespace detail

// Gram entries of two gradient lists, summed tensor by tensor in list order.
template <RealScalar R, class D>
GradGram gram(const std::vector<Tensor<R, D>>& g1, const std::vector<Tensor<R, D>>& g2) {
  if (g1.size() != g2.size()) throw std::invalid_argument("gram: gradient lists of different lengths");
  GradGram m;
  for (std::size_t t = 0; t < g1.size(); ++t) detail::gram_add(m, g1[t], g2[t]);
  return m;
}

// The same for gradients from grad_factored: a weight whose two gradients are both wholly
// factored (the shared projection W) contributes through factored_gram's small Gram
// matrices, anything else through its dense form.
template <RealScalar R, class D>
GradGram gram(std::span<const Gradient<R, D>> g1, std::span<const Gradient<R, D>> g2) {
  if (g1.size() != g2.size()) throw std::invalid_argument("gram: gradient lists of different lengths");
  GradGram m;
  for (std::size_t t = 0; t < g1.size(); ++t) {
    const auto& a = g1[t];
    const auto& b = g2[t];
    if (!a.factored() && !b.factored()) {
      detail::gram_add(m, a.dense, b.dense);
    } else if constexpr (D::is_host) {
      if (!a.dense.defined() && !b.dense.defined()) {
        const auto v = factored_gram<R>(a.terms, b.terms, a.shape[0], a.shape[1]);
        m.v11 += v[0];
        m.v12 += v[1];
        m.v22 += v[2];
      } else {
        detail::gram_add(m, to_dense(a), to_dense(b));
      }
    } else {
      throw std::logic_error("gram: factored gradients exist only on the host");
    }
  }
  return m;
}
template <RealScalar R, class D>
GradGram gram(const PoolVector<Gradient<R, D>>& g1, const PoolVector<Gradient<R, D>>& g2) {
  return gram(std::span<const Gradient<R, D>>(g1), std::span<const Gradient<R, D>>(g2));
}

// grad ← grad + Σ_s c[s]·g_s for each parameter (host): gs[s][i] is seed s's gradient of
// params[i] (grad_seeds). Dense parts are combined element by element in seed order. Factored
// terms are grouped by their input x (the same buffer: one use of a layer, seen by several
// seeds) and each group's output factors combined, a = Σ c_s a_s; the groups then make one
// product [a_1; a_2; …]ᵀ·[x_1; x_2; …] (rows stacked) — for the fused step's shared projection
// one product for all three seeds, for the faithful step's one product for its two passes.
// A parameter some seed reached gets a gradient even where all coefficients are 0 (zeros, as
// backward(Σ c_s out_s) gives).
template <RealScalar R>
void accumulate_combination(const std::vector<Var<R>>& params, const PoolVector<PoolVector<Gradient<R>>>& gs,
                            std::span<const double> c) {
  if (gs.size() != c.size()) throw std::invalid_argument("accumulate_combination: one coefficient per seed");
  struct Group {
    const Tensor<R>* x;
    Tensor<R> a;  // Σ c_s a_s over the group's terms
  };
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Shape& shape = params[i].shape();
    const std::int64_t n = shape.numel();
    Tensor<R> sum;  // Σ c_s dense_s
    PoolVector<Group> groups;
    for (std::size_t s = 0; s < gs.size(); ++s) {
      const R k = R(c[s]);
      const auto& g = gs[s][i];
      if (g.dense.defined()) {
        const R* src = g.dense.data();
        if (!sum.defined()) {
          sum = Tensor<R>(shape);
          R* dst = sum.data();
          for (std::int64_t e = 0; e < n; ++e) dst[e] = k * src[e];
        } else {
          R* dst = sum.data();
          for (std::int64_t e = 0; e < n; ++e) dst[e] += k * src[e];
        }
      }
      for (const auto& t : g.terms) {
        Group* grp = nullptr;
        for (auto& q : groups)
          if (q.x->data() == t.x.data() && q.x->numel() == t.x.numel() && q.a.numel() == t.a.numel()) grp = &q;
        if (!grp) {
          groups.push_back({&t.x, Tensor<R>::zeros(t.a.shape())});
          grp = &groups.back();
        }
        R* dst = grp->a.data();
        const R* src = t.a.data();
        for (std::int64_t e = 0, m = grp->a.numel(); e < m; ++e) dst[e] += k * src[e];
      }
    }
    if (!groups.empty()) {
      if (shape.rank() != 2) throw ShapeError("accumulate_combination: factored gradient of shape " + shape.str() + " is not 2-D");
      const std::int64_t out = shape[0], in = shape[1];
      for (const auto& q : groups)
        if (!GradFactor<R>{q.a, *q.x}.fits(out, in))
          throw ShapeError("accumulate_combination: a factored term does not fit the gradient's shape " + shape.str());
      const bool accumulate = sum.defined();  // else the product writes a fresh tensor (no memset)
      if (!accumulate) sum = Tensor<R>(shape);
      auto product = [&](const Tensor<R>& a, const Tensor<R>& x, std::int64_t rows) {
        erlmr::detail::product_atb<R>(erlmr::detail::mmat(sum, out, in), erlmr::detail::cmat(a, rows, out),
                                      erlmr::detail::cmat(x, rows, in), accumulate);
      };
      if (groups.size() == 1) {
        product(groups[0].a, *groups[0].x, GradFactor<R>::rows_of(groups[0].a, out));
      } else {  // one product over the stacked rows of all groups
        std::int64_t rows = 0;
        for (const auto& q : groups) rows += GradFactor<R>::rows_of(q.a, out);
        Tensor<R> as(Shape{rows, out}), xs(Shape{rows, in});
        std::int64_t r = 0;
        for (const auto& q : groups) {
          const std::int64_t m = GradFactor<R>::rows_of(q.a, out);
          std::copy_n(q.a.data(), m * out, as.data() + r * out);
          std::copy_n(q.x->data(), m * in, xs.data() + r * in);
          r += m;
        }
        product(as, xs, rows);
      }
    }
    if (!sum.defined()) continue;
    auto& grad = params[i].mutable_grad();
    if (!grad.defined()) grad = std::move(sum);
    else CpuDevice::add_inplace(grad.data(), sum.data(), n);
  }
}

// The min-norm point of the segment between two (normalised) gradients, as in
// the released code (Sener & Koltun's MinNormSolver for two tasks):
//   γ = 0.999 if v12 ≥ v11;  0.001 if v12 ≥ v22;  else (v22 − v12)/(v11 + v22 − 2 v12).
inline double min_norm_weight(double v11, double v12, double v22) {
  if (v12 >= v11) return 0.999;
  if (v12 >= v22) return 0.001;
  return (v22 - v12) / (v11 + v22 - 2 * v12);
}

// γ from raw gradients g1 (of L1) and g2 (of L2): normalise by L_k·‖g_k‖, then min-norm.
// A zero gradient or loss leaves its direction at zero (no division by zero).
// (g1, g2 are lists of tensors, or of Gradients from grad_factored.)
template <class Gs>
double min_norm_weight(const Gs& g1, double L1, const Gs& g2, double L2) {
  const GradGram m = gram(g1, g2);
  const double n1 = L1 * std::sqrt(m.v11), n2 = L2 * std::sqrt(m.v22);
  const double s1 = n1 > 0 ? 1 / n1 : 0, s2 = n2 > 0 ? 1 / n2 : 0;
  return min_norm_weight(m.v11 * s1 * s1, m.v12 * s1 * s2, m.v22 * s2 * s2);
}

}  // namespace erlmr::erl
