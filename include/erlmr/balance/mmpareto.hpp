// erlmr/balance/mmpareto.hpp — MMPareto (Wei & Hu, ICML 2024), `--method mmpareto`.
//
// Heads: the fused loss uses the model's fused logits, L_mm = CE(out); the unimodal losses use
// two EXTRA linear heads (as the released code's separate unimodal classifiers),
// L_a = CE(V_a h_a + d_a), L_g = CE(V_g h_g + d_g), V_u ∈ R^{K×D} (extra_parameters()).
// Per encoder u ∈ {a, g} (encoder_parameters(model, u): encoder + μ_u), over all its tensors:
//   g_mm = ∇_u L_mm,  g_u = ∇_u L_u,  c = cos(g_mm, g_u)
//   (α1, α2) = (½, ½)                                  if c > 0
//            = (γ, 1 − γ), γ = min_norm_weight(⟨g_mm,g_mm⟩, ⟨g_mm,g_u⟩, ⟨g_u,g_u⟩)   otherwise
//   g = 2(α1 g_mm + α2 g_u)
//   per tensor t:  g_t ← g_t · max(1, ‖g_mm,t + g_u,t‖ / ‖g_t‖) · boost,  boost = 1.5
//   ("rescaled up to at least the norm of the plain summed gradient, times 1.5").
// Everything else — the fusion layer, the two extra heads and the shared projection im.* —
// takes the plain summed gradient ∇(L_mm + L_a + L_g). im.* is shared by both modalities, so it
// belongs to neither encoder's Pareto problem and is treated like a head (plain sum).
// Details follow the spec wherever a released-code detail might differ: the cosine and the
// min-norm weights use the raw (unnormalised) gradients of the whole encoder (zero cosine when
// either is zero), and every encoder tensor (conv, batch-norm, μ_u) is rescaled; a tensor whose
// combined gradient is exactly zero stays zero (nothing to scale).
// Test-time predictions are the model's own (default evaluate()): acc_a / acc_g stay the fusion
// layer's unimodal slices f_u = U_u h_u + c/2, measured the same way for every method.
#pragma once
#include <cmath>
#include <memory>
#include <stdexcept>

#include "erlmr/balance/options.hpp"
#include "erlmr/erl/mmc.hpp"
#include "erlmr/train/method.hpp"

namespace erlmr::balance {

// The result of combining one encoder's two gradients.
template <RealScalar R, class D = CpuDevice> struct MMParetoCombined {
  double cos = 0;            // cos(g_mm, g_u) over the whole encoder (0 if either is zero)
  double w_mm = 0.5;         // α1 (weight of g_mm)
  double w_u = 0.5;          // α2 (weight of g_u)
  train::Grads<R, D> grad;   // the new encoder gradient, tensor by tensor
};

// MMPareto's rule for one encoder (see the header comment). On the host each tensor is
// combined in double; on a device by D::axpy, with ‖g_t‖ and ‖g_mm,t + g_u,t‖ from one
// fixed-order D::gram (so they differ from the host's only by rounding).
template <RealScalar R, class D>
MMParetoCombined<R, D> mmpareto_combine(const train::Grads<R, D>& g_mm, const train::Grads<R, D>& g_u, double boost) {
  MMParetoCombined<R, D> r;
  const double v11 = train::dot(g_mm, g_mm), v12 = train::dot(g_mm, g_u), v22 = train::dot(g_u, g_u);
  const double den = std::sqrt(v11) * std::sqrt(v22);
  r.cos = den > 0 ? v12 / den : 0.0;
  if (r.cos > 0) {
    r.w_mm = r.w_u = 0.5;
  } else {
    r.w_mm = erl::min_norm_weight(v11, v12, v22);
    r.w_u = 1 - r.w_mm;
  }
  r.grad.reserve(g_mm.size());
  for (std::size_t t = 0; t < g_mm.size(); ++t) {
    const std::int64_t n = g_mm[t].numel();
    double ng = 0, ns = 0;  // ‖g_t‖², ‖g_mm,t + g_u,t‖²
    Tensor<R, D> g;
    if constexpr (D::is_host) {
      g = Tensor<R, D>(g_mm[t].shape());
      for (std::int64_t k = 0; k < n; ++k) {
        const double a = double(g_mm[t].data()[k]), b = double(g_u[t].data()[k]);
        const double v = 2 * (r.w_mm * a + r.w_u * b);
        g.data()[k] = R(v);
        ng += v * v;
        ns += (a + b) * (a + b);
      }
    } else {
      g = Tensor<R, D>::zeros(g_mm[t].shape());
      D::axpy(g.data(), R(2 * r.w_mm), g_mm[t].data(), n);
      D::axpy(g.data(), R(2 * r.w_u), g_u[t].data(), n);
      const Tensor<R, D> s = g_mm[t].clone();
      D::axpy(s.data(), R(1), g_u[t].data(), n);
      double v[3];
      D::gram(g.data(), s.data(), n, v);
      ng = v[0];
      ns = v[2];
    }
    ng = std::sqrt(ng);
    ns = std::sqrt(ns);
    const double k = (ng > 0 && ng < ns ? ns / ng : 1.0) * boost;
    D::scale_inplace(g.data(), R(k), n);
    r.grad.push_back(std::move(g));
  }
  return r;
}

template <RealScalar R, class D = CpuDevice>
class MMPareto final : public train::Method<R, D> {
 public:
  MMPareto(const MethodOptions& o, erl::ErlmrModel<R, D>& model, std::int64_t classes) : boost_(o.mmpareto_boost) {
    Generator g(o.seed * 131 + 29);  // the extra heads' own stream (model: seed, dropout: seed + 1)
    const std::int64_t dim = model.cfg.fused_dim();
    head_a_ = std::make_unique<nn::Linear<R, D>>(dim, classes, g);
    head_g_ = std::make_unique<nn::Linear<R, D>>(dim, classes, g);
  }
  std::string name() const override { return "mmpareto"; }
  std::vector<Var<R, D>> extra_parameters() override {
    return {head_a_->weight, head_a_->bias, head_g_->weight, head_g_->bias};
  }

  train::StepStats step(erl::ErlmrModel<R, D>& m, const train::Batch<R, D>& b, nn::Context& ctx, int) override {
    auto f = m.forward(b.x1, b.x2, ctx);
    auto l_mm = cross_entropy(f.out, b.y);
    auto l_a = cross_entropy(head_a_->forward(f.h_a, ctx), b.y);
    auto l_g = cross_entropy(head_g_->forward(f.h_g, ctx), b.y);
    const auto enc_a = train::encoder_parameters(m, train::Modality::a);
    const auto enc_g = train::encoder_parameters(m, train::Modality::g);
    auto both = enc_a;
    both.insert(both.end(), enc_g.begin(), enc_g.end());
    const auto g_mm = train::grads_of(l_mm, both, true);
    const train::Grads<R, D> g_mm_a(g_mm.begin(), g_mm.begin() + std::ptrdiff_t(enc_a.size()));
    const train::Grads<R, D> g_mm_g(g_mm.begin() + std::ptrdiff_t(enc_a.size()), g_mm.end());
    const auto g_a = train::grads_of(l_a, enc_a, true);
    const auto g_g = train::grads_of(l_g, enc_g, true);
    // Heads, extra heads and im.*: the plain summed gradient.
    auto loss = add(add(l_mm, l_a), l_g);
    backward(loss);
    // Encoders: the Pareto-combined gradient replaces the summed one.
    const auto ca = mmpareto_combine(g_mm_a, g_a, boost_), cg = mmpareto_combine(g_mm_g, g_g, boost_);
    for (std::size_t i = 0; i < enc_a.size(); ++i) enc_a[i].mutable_grad() = ca.grad[i];
    for (std::size_t i = 0; i < enc_g.size(); ++i) enc_g[i].mutable_grad() = cg.grad[i];

    train::StepStats s;
    s.loss = double(loss.item());
    s.loss_ce = double(l_mm.item());
    s.loss_uni = double(l_a.item()) + double(l_g.item());
    {
      NoGradGuard ng;
      s.loss_phase = double(erl::phase_cosine_loss(f.theta_a.detach(), f.theta_g.detach()).item());
    }
    s.signals = {{"mmp_cos_a", ca.cos}, {"mmp_cos_g", cg.cos}, {"mmp_w_a", ca.w_mm}, {"mmp_w_g", cg.w_mm}};
    return s;
  }

  void save_state(data::NpzMap& m, const std::string& prefix) const override {
    for (const auto& [k, v] : named()) m[prefix + k] = data::NpyArray::make<R>(v.shape().vec(), v.value().to_vector());
  }
  void load_state(const data::NpzMap& m, const std::string& prefix) override {
    for (const auto& [k, v] : named()) {
      auto it = m.find(prefix + k);
      if (it == m.end()) throw std::runtime_error("mmpareto: checkpoint lacks " + prefix + k);
      const auto x = it->second.template as<R>();
      if (static_cast<std::int64_t>(x.size()) != v.numel()) throw std::runtime_error("mmpareto: " + prefix + k + " has the wrong size");
      v.value().copy_(Tensor<R, D>::from_vector(v.shape(), x));  // in place: the optimiser holds these Vars
    }
  }

 private:
  std::vector<std::pair<std::string, Var<R, D>>> named() const {
    return {{"mmpareto/head_a.weight", head_a_->weight},
            {"mmpareto/head_a.bias", head_a_->bias},
            {"mmpareto/head_g.weight", head_g_->weight},
            {"mmpareto/head_g.bias", head_g_->bias}};
  }

  double boost_;
  std::unique_ptr<nn::Linear<R, D>> head_a_, head_g_;
};

}  // namespace erlmr::balance
