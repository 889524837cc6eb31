// erlmr/balance/ogm_ge.hpp — OGM-GE: on-the-fly gradient modulation with generalisation
// enhancement (Peng et al., "Balanced Multimodal Learning via On-the-fly Gradient
// Modulation", CVPR 2022; code github.com/GeWu-Lab/OGM-GE_CVPR2022, BalanceBenchmark's
// OGM_trainer.py). Spec: ../shared/spec/baselines.md, row `ogm-ge`.
//
// Rule, per step (one mini-batch), after backward of the joint loss L = CE(f):
//   s_u = Σ_batch softmax(f_u)_y            f_u = out_a / out_g (the OGM-GE unimodal logits)
//   ρ_a = s_a / s_g,  ρ_g = 1 / ρ_a
//   k_u = 1 − tanh(α·ρ_u)  for the modality with ρ_u > 1 (the dominant one), k_u = 1 otherwise
//   G ← k_u·G + N(0, std(G)²)               for every encoder weight gradient G of modality u
// only in epochs [ogm_start, ogm_end] (0-based, inclusive; outside it the step is `joint`);
// α = ogm_alpha (0.1; 0.8 suggested for strongly imbalanced data).
//
// Choices:
//  - "Encoder weights" = the tensors of encoder_parameters(model, u) of rank ≥ 2: the four
//    conv kernels and μ_u. Conv biases and batch-norm γ/β (rank 1) are left alone. This is the
//    released code's filter: the original repo modulates `len(grad.size()) == 4` (conv
//    kernels) and BalanceBenchmark `len(grad.size()) != 1` ("don't change the grad of bias");
//    neither touches biases. Set `all_parameters = true` to modulate every tensor of
//    encoder_parameters(model, u) instead.
//  - The shared projection im.* (W, b, used by both modalities) and the fusion head are not
//    modulated: they belong to neither modality.
//  - std(G) is the unbiased (n − 1) standard deviation of the tensor's entries (torch's
//    `grad.std()`); the released `+ 1e-8` is dropped so a constant gradient gets no noise
//    (the spec's N(0, std(G)²)). Tensors with one entry get no noise.
//  - At ρ_a = ρ_g = 1 neither modality is modulated (spec: ρ_u > 1; the original repo's
//    `else` branch would modulate a).
//  - The noise comes from a counter-based Generator seeded from MethodOptions::seed, which
//    reserves numel(G) counters per modulated tensor in parameter order, only in modulated
//    epochs; its (seed, offset) is checkpointed, so runs and resumed runs are bitwise equal.
//  - Signals: ogm_k_a, ogm_k_g (the coefficients applied: 1 outside [start, end]) and
//    ogm_rho (ρ_a, every step).
#pragma once
#include <algorithm>
#include <cmath>

#include "erlmr/balance/options.hpp"
#include "erlmr/train/method.hpp"
#include "erlmr/train/metrics.hpp"

namespace erlmr::balance {

struct OgmCoefficients {
  double rho_a = 1, k_a = 1, k_g = 1;
};

// k_u from the summed true-class confidences s_a, s_g.
inline OgmCoefficients ogm_coefficients(double s_a, double s_g, double alpha) {
  OgmCoefficients c;
  c.rho_a = s_a / s_g;
  const double rho_g = 1 / c.rho_a;
  if (c.rho_a > 1) c.k_a = 1 - std::tanh(alpha * c.rho_a);
  else if (rho_g > 1) c.k_g = 1 - std::tanh(alpha * rho_g);
  return c;
}

// Unbiased standard deviation of a tensor's entries (0 for fewer than two): two passes
// (mean, then Σ(x − mean)²) in double on the host; on a device the same two passes as
// fixed-order device reductions.
template <RealScalar R, class D> double tensor_std(const Tensor<R, D>& t) {
  const std::int64_t n = t.numel();
  if (n < 2) return 0;
  if constexpr (D::is_host) {
    double m = 0;
    for (std::int64_t i = 0; i < n; ++i) m += double(t.data()[i]);
    m /= double(n);
    double v = 0;
    for (std::int64_t i = 0; i < n; ++i) v += (double(t.data()[i]) - m) * (double(t.data()[i]) - m);
    return std::sqrt(v / double(n - 1));
  } else {
    NoGradGuard ng;
    const double m = double(D::sum(t.data(), n)) / double(n);
    const auto c = add_scalar(Var<R, D>(t), R(-m)).value();
    double v[3];
    D::gram(c.data(), c.data(), n, v);
    return std::sqrt(v[0] / double(n - 1));
  }
}

// G ← k·G + N(0, std(G)²), in place; consumes numel(G) counters of `gen` (the device draws
// the same normals as the host: philox_normal = Generator::normal).
template <RealScalar R, class D> void ogm_modulate(const Tensor<R, D>& G, double k, Generator& gen) {
  const double sd = tensor_std(G);
  const std::int64_t n = G.numel();
  const std::uint64_t o = gen.reserve(static_cast<std::uint64_t>(n));
  if constexpr (D::is_host) {
    R* g = G.data();
    for (std::int64_t i = 0; i < n; ++i) g[i] = R(k * double(g[i]) + sd * gen.normal(o + static_cast<std::uint64_t>(i)));
  } else {
    D::add_normal_noise(G.data(), n, k, sd, gen.seed(), o);
  }
}

template <RealScalar R, class D = CpuDevice>
class OgmGe final : public train::Method<R, D> {
 public:
  OgmGe(const MethodOptions& o, erl::ErlmrModel<R, D>&, std::int64_t)
      : alpha_(o.ogm_alpha), start_(o.ogm_start), end_(o.ogm_end), noise_(o.seed ^ 0x4F474D2D4745ull) {}
  std::string name() const override { return "ogm-ge"; }

  train::StepStats step(erl::ErlmrModel<R, D>& m, const train::Batch<R, D>& b, nn::Context& ctx, int epoch) override {
    auto f = m.forward(b.x1, b.x2, ctx);
    auto l = train::standard_losses(f, b.y);
    backward(l.ce);
    const double s_a = train::true_class_confidence(as_host(f.out_a.value()), b.y);
    const double s_g = train::true_class_confidence(as_host(f.out_g.value()), b.y);
    auto c = ogm_coefficients(s_a, s_g, alpha_);
    if (epoch >= start_ && epoch <= end_) {
      for (auto [u, k] : {std::pair{train::Modality::a, c.k_a}, std::pair{train::Modality::g, c.k_g}})
        for (auto& p : train::encoder_parameters(m, u))
          if (p.grad().defined() && (all_parameters || p.shape().rank() >= 2)) ogm_modulate(p.grad(), k, noise_);
    } else {
      c.k_a = c.k_g = 1;
    }
    auto s = train::stats_of(l, l.ce);
    s.signals = {{"ogm_k_a", c.k_a}, {"ogm_k_g", c.k_g}, {"ogm_rho", c.rho_a}};
    return s;
  }

  void save_state(data::NpzMap& m, const std::string& prefix) const override {
    m[prefix + "ogm_rng"] = data::NpyArray::make<std::int64_t>(
        {2}, {static_cast<std::int64_t>(noise_.seed()), static_cast<std::int64_t>(noise_.offset())});
  }
  void load_state(const data::NpzMap& m, const std::string& prefix) override {
    auto it = m.find(prefix + "ogm_rng");
    if (it == m.end()) return;
    const auto v = it->second.template as<std::int64_t>();
    noise_.set_state(static_cast<std::uint64_t>(v.at(0)), static_cast<std::uint64_t>(v.at(1)));
  }

  const Generator& noise_generator() const { return noise_; }
  bool all_parameters = false;  // true: modulate biases and batch-norm parameters too

 private:
  double alpha_;
  int start_, end_;
  Generator noise_;
};

}  // namespace erlmr::balance
