// erlmr/balance/mmcosine.hpp — MMCosine (Xu et al., "MMCosine: Multi-Modal Cosine Loss Towards
// Balanced Audio-Visual Fine-Grained Learning", ICASSP 2023; ../shared/spec/baselines.md).
//
// Rule (spec): the unimodal logits are scaled cosines between each sample's feature and each
// class's weight row of that modality's slice of the fusion weight, with no bias:
//   f_u[b, k] = s · ⟨h_u[b] / ‖h_u[b]‖, U_u[k] / ‖U_u[k]‖⟩         (u ∈ {a, g})
//   f = f_a + f_g,   L = CE(f, y),   s = options.mmcosine_scale (10)
// U_a, U_g: concat fusion fc_out.weight[:, :D] and fc_out.weight[:, D:]; sum fusion fc_x.weight and
// fc_y.weight. FiLM and gated fusion feed fc_out modulated features, for which the spec defines no
// cosine logits: the constructor throws std::invalid_argument. The fusion biases take no part
// (they get no gradient). Rows are normalised with differentiable ops, x / √(Σx² + 1e-12)
// (normalize_rows), so the whole rule is ordinary autograd.
// evaluate() returns the cosine logits (out = f, out_a = f_a, out_g = f_g), which is what the
// method predicts with. The shared projection im.* receives the gradient of L through both
// modalities, as in joint training.
// Signals: mmc_cos_a, mmc_cos_g = batch mean of the true-class cosine f_u[b, y_b] / s.
#pragma once
#include <stdexcept>
#include <string>

#include "erlmr/balance/options.hpp"
#include "erlmr/train/method.hpp"

namespace erlmr::balance {

// Each row of x (B, D) divided by its Euclidean norm: x / √(Σ_d x² + tiny).
template <RealScalar R, class D> Var<R, D> normalize_rows(const Var<R, D>& x, double tiny = 1e-12) {
  return div(x, sqrt(add_scalar(sum(mul(x, x), 1, true), R(tiny))));
}

// s · normalize_rows(h) · normalize_rows(U)ᵀ for h (B, D) and U (K, D): (B, K) scaled cosines.
template <RealScalar R, class D> Var<R, D> cosine_logits(const Var<R, D>& h, const Var<R, D>& U, double s) {
  return scale(linear(normalize_rows(h), normalize_rows(U)), R(s));
}

template <RealScalar R, class D = CpuDevice>
class MMCosine final : public train::Method<R, D> {
 public:
  MMCosine(const MethodOptions& o, erl::ErlmrModel<R, D>& model, std::int64_t /*classes*/) : s_(o.mmcosine_scale) {
    const auto k = model.fusion.kind;
    if (k != erl::FusionKind::concat && k != erl::FusionKind::sum)
      throw std::invalid_argument(std::string("mmcosine supports concat and sum fusion, not ") + erl::fusion_name(k));
  }
  std::string name() const override { return "mmcosine"; }

  train::StepStats step(erl::ErlmrModel<R, D>& m, const train::Batch<R, D>& b, nn::Context& ctx, int) override {
    const auto f = cosine_out(m, m.forward(b.x1, b.x2, ctx));
    auto l = train::standard_losses(f, b.y);
    backward(l.ce);
    auto s = train::stats_of(l, l.ce);
    s.signals = {{"mmc_cos_a", true_class_mean(f.out_a, b.y) / s_}, {"mmc_cos_g", true_class_mean(f.out_g, b.y) / s_}};
    return s;
  }

  erl::ModelOut<R, D> evaluate(erl::ErlmrModel<R, D>& m, const Var<R, D>& x1, const Var<R, D>& x2, nn::Context& ctx) override {
    return cosine_out(m, m.forward(x1, x2, ctx));
  }

 private:
  // The model's outputs with the logits replaced by the cosine logits.
  erl::ModelOut<R, D> cosine_out(erl::ErlmrModel<R, D>& m, erl::ModelOut<R, D> f) const {
    Var<R, D> Ua, Ug;
    if (m.fusion.kind == erl::FusionKind::concat) {
      const std::int64_t dim = f.h_a.shape()[1];
      Ua = slice(m.fusion.fc_out->weight, 1, 0, dim);
      Ug = slice(m.fusion.fc_out->weight, 1, dim, dim);
    } else {
      Ua = m.fusion.fc_x->weight;
      Ug = m.fusion.fc_y->weight;
    }
    f.out_a = cosine_logits(f.h_a, Ua, s_);
    f.out_g = cosine_logits(f.h_g, Ug, s_);
    f.out = add(f.out_a, f.out_g);
    return f;
  }
  static double true_class_mean(const Var<R, D>& logits, const std::vector<std::int64_t>& y) {
    const std::int64_t B = logits.shape()[0], K = logits.shape()[1];
    const auto host = as_host(logits.value());
    double acc = 0;
    for (std::int64_t i = 0; i < B; ++i) acc += double(host.data()[i * K + y[static_cast<std::size_t>(i)]]);
    return acc / double(std::max<std::int64_t>(B, 1));
  }
  double s_;
};

}  // namespace erlmr::balance
