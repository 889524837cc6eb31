// erlmr/balance/agm.hpp — AGM: adaptive gradient modulation (Li et al., "Boosting Multi-modal
// Model Performance with Adaptive Gradient Modulation", ICCV 2023; code
// github.com/lihong2303/AGM_ICCV2023, BalanceBenchmark's AGM_trainer.py). Spec:
// ../shared/spec/baselines.md, row `agm`.
//
// Rule, per step (one mini-batch); f(x1, x2) is the fused logits `out`, 0 a zero-filled input:
//   φ_a = ½[f(a,g) − f(0,g) + f(a,0) − f(0,0)]        (two-player Shapley mono-modal logits)
//   φ_g = ½[f(a,g) − f(a,0) + f(0,g) − f(0,0)]
//   s_u = mean_batch −log softmax(φ_u)_y
//   r_u = exp(2(s̄ − s_u)),  s̄ = (s_a + s_g)/2         (r_a > 1: a is ahead)
//   k_u = exp(clip(α(r̄_u − r_u), −7, 7))              α = agm_alpha (0.1)
//   r̄_u ← β r̄_u + (1 − β) r_u                          β = agm_average (0.9); r̄ := r at the first step
//   L = CE(f(a,g)); after backward, every gradient of encoder_parameters(model, u) *= k_u.
// k_u compares this step's r_u with the average of the previous steps (as the released code:
// the coefficient uses the average before this step's update), so the first step has k = 1.
//
// Choices:
//  - The four Shapley passes run in evaluation mode (nn::Context{training = false}) under
//    NoGradGuard, as BalanceBenchmark's AGM does (model.eval() + torch.no_grad()): batch-norm
//    uses its running statistics, which the zero-filled batches therefore never update
//    (a training-mode pass on a zero batch would drag the running variance of that encoder
//    towards 0 and corrupt evaluation); no dropout masks are drawn, so the dropout Generator
//    advances exactly as in `joint`; and all four outputs come from one deterministic
//    function, so φ_a + φ_g = f(a,g) − f(0,0) holds exactly. The loss uses a separate
//    training-mode pass of f(a,g) with the graph.
//  - Spec over released code: the released code averages the scores s_u over all steps and
//    builds the reference ratio from them, clips only (r̄ − r) ≤ 7 before multiplying by α,
//    and skips 1-D parameters (biases, BN); here r̄ is the spec's running average of r, the
//    exponent α(r̄ − r) is clipped to ±7, and every tensor of encoder_parameters(model, u)
//    (encoder + μ_u) is scaled. The released gradient-norm clipping (not in the spec) is not
//    reproduced. There is no modulation window: AGM modulates every epoch.
//  - The shared projection im.* (W, b, both modalities) and the fusion head keep the plain
//    joint gradient: they belong to neither modality.
//  - State: r̄_a, r̄_g and whether they are initialised (checkpointed).
//  - Signals: agm_k_a, agm_k_g (applied coefficients), agm_s_a, agm_s_g.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "erlmr/balance/options.hpp"
#include "erlmr/train/method.hpp"

namespace erlmr::balance {

template <RealScalar R> struct ShapleyLogits {
  Tensor<R> a, g;  // φ_a, φ_g (B, K)
};

// Two-player Shapley values of the logits from the four passes f(a,g), f(0,g), f(a,0), f(0,0).
template <RealScalar R>
ShapleyLogits<R> agm_shapley(const Tensor<R>& f_ag, const Tensor<R>& f_0g, const Tensor<R>& f_a0, const Tensor<R>& f_00) {
  ShapleyLogits<R> s{Tensor<R>(f_ag.shape()), Tensor<R>(f_ag.shape())};
  s.a.vec() = R(0.5) * ((f_ag.vec() - f_0g.vec()) + (f_a0.vec() - f_00.vec()));
  s.g.vec() = R(0.5) * ((f_ag.vec() - f_a0.vec()) + (f_0g.vec() - f_00.vec()));
  return s;
}

// mean over the batch of −log softmax(φ)_y, in double.
template <RealScalar R> double agm_score(const Tensor<R>& phi, const std::vector<std::int64_t>& y) {
  const std::int64_t B = phi.shape()[0], K = phi.shape()[1];
  double s = 0;
  for (std::int64_t b = 0; b < B; ++b) {
    const R* row = phi.data() + b * K;
    double mx = double(row[0]);
    for (std::int64_t k = 1; k < K; ++k) mx = std::max(mx, double(row[k]));
    double z = 0;
    for (std::int64_t k = 0; k < K; ++k) z += std::exp(double(row[k]) - mx);
    s += mx + std::log(z) - double(row[y[static_cast<std::size_t>(b)]]);
  }
  return s / double(std::max<std::int64_t>(B, 1));
}

// r_u = exp(2(s̄ − s_u)), s̄ = (s_a + s_g)/2.
inline std::pair<double, double> agm_ratios(double s_a, double s_g) {
  const double m = (s_a + s_g) / 2;
  return {std::exp(2 * (m - s_a)), std::exp(2 * (m - s_g))};
}

// k = exp(α(r̄ − r)) with the exponent clipped to ±7.
inline double agm_coefficient(double r_bar, double r, double alpha) {
  return std::exp(std::clamp(alpha * (r_bar - r), -7.0, 7.0));
}

template <RealScalar R, class D = CpuDevice>
class Agm final : public train::Method<R, D> {
 public:
  Agm(const MethodOptions& o, erl::ErlmrModel<R, D>&, std::int64_t) : alpha_(o.agm_alpha), beta_(o.agm_average) {}
  std::string name() const override { return "agm"; }

  train::StepStats step(erl::ErlmrModel<R, D>& m, const train::Batch<R, D>& b, nn::Context& ctx, int) override {
    ShapleyLogits<R> phi;
    {
      NoGradGuard ng;
      nn::Context ev{false, nullptr, 1.0};
      const Var<R, D> z1(Tensor<R, D>::zeros(b.x1.shape())), z2(Tensor<R, D>::zeros(b.x2.shape()));
      auto logits = [&](const Var<R, D>& x1, const Var<R, D>& x2) { return as_host(m.forward(x1, x2, ev).out.value()); };
      phi = agm_shapley(logits(b.x1, b.x2), logits(z1, b.x2), logits(b.x1, z2), logits(z1, z2));
    }
    auto f = m.forward(b.x1, b.x2, ctx);
    auto l = train::standard_losses(f, b.y);
    backward(l.ce);

    const double s_a = agm_score(phi.a, b.y), s_g = agm_score(phi.g, b.y);
    const auto [r_a, r_g] = agm_ratios(s_a, s_g);
    if (!init_) {
      r_bar_ = {r_a, r_g};
      init_ = true;
    }
    const double k_a = agm_coefficient(r_bar_[0], r_a, alpha_), k_g = agm_coefficient(r_bar_[1], r_g, alpha_);
    r_bar_[0] = beta_ * r_bar_[0] + (1 - beta_) * r_a;
    r_bar_[1] = beta_ * r_bar_[1] + (1 - beta_) * r_g;
    train::scale_grads(train::encoder_parameters(m, train::Modality::a), k_a);
    train::scale_grads(train::encoder_parameters(m, train::Modality::g), k_g);

    auto s = train::stats_of(l, l.ce);
    s.signals = {{"agm_k_a", k_a}, {"agm_k_g", k_g}, {"agm_s_a", s_a}, {"agm_s_g", s_g}};
    return s;
  }

  void save_state(data::NpzMap& m, const std::string& prefix) const override {
    m[prefix + "agm_r_bar"] = data::NpyArray::make<double>({3}, {init_ ? 1.0 : 0.0, r_bar_[0], r_bar_[1]});
  }
  void load_state(const data::NpzMap& m, const std::string& prefix) override {
    auto it = m.find(prefix + "agm_r_bar");
    if (it == m.end()) return;
    const auto v = it->second.template as<double>();
    init_ = v.at(0) != 0;
    r_bar_ = {v.at(1), v.at(2)};
  }

  // r̄_a, r̄_g (meaningful once initialised).
  std::array<double, 2> running_ratios() const { return r_bar_; }
  bool initialised() const { return init_; }

 private:
  double alpha_, beta_;
  bool init_ = false;
  std::array<double, 2> r_bar_{1, 1};
};

}  // namespace erlmr::balance
