// erlmr/erl/step.hpp — one ERL-MR training step (spec §3.4), without the optimiser update.
//
// fused (default): one forward pass. g1 = ∇_Θ L_CE and g2 = ∇_Θ(2·L_ph) are taken
//   from the same graph (retain_graph), γ = min_norm_weight(g1, L_CE, g2, 2·L_ph), and
//   L = γ·L_CE + (1−γ)·(L_ph + CE_a + CE_g) is backpropagated into every parameter's grad().
// In both modes g1 and g2 come in factored form (grad_factored, grad_seeds): the shared
// projection's gradient is never formed for γ (on the host), only its factors (output
// adjoint, input), whose small Gram matrices give the dot products; only the final gradient
// of L forms W's.
// faithful: the released code's three passes with fresh dropout masks (A: unimodal
//   logits; B: L_CE for g1; C: θ for g2 and the L_CE, L_ph kept in the loss); the
//   final backward runs through A and C. Every pass updates batch-norm statistics.
// On the CPU both modes differentiate with grad_seeds, by linearity of backpropagation in
// the seed: fused, one walk for L_CE, 2·L_ph, L_uni gives g1, g2 and (combined with γ) the
// gradient of L, with no third pass; faithful, B's walk for g1, then one walk for 2·L_ph and
// L_CE through C and L_uni through A gives g2 and the final gradient. On a device: the
// passes one by one, as described above.
#pragma once
#include <string>
#include <vector>

#include "erlmr/erl/mmc.hpp"
#include "erlmr/erl/model.hpp"

namespace erlmr::erl {

enum class StepMode { fused, faithful };
inline StepMode parse_step_mode(const std::string& s) {
  if (s == "fused") return StepMode::fused;
  if (s == "faithful") return StepMode::faithful;
  throw std::invalid_argument("unknown step mode '" + s + "' (expected fused or faithful)");
}

template <RealScalar R, class D = CpuDevice> struct StepResult {
  ModelOut<R, D> fwd;          // the pass whose outputs are reported (C in faithful mode; A's unimodal logits)
  double loss_ce = 0, loss_phase = 0, loss_uni = 0, loss_ce_a = 0, loss_ce_g = 0, gamma = 0, loss = 0;
};

template <RealScalar R, class D> double value_of(const Var<R, D>& v) { return double(v.item()); }

// Runs the step and leaves the gradient of L in every parameter's grad() (accumulated;
// zero the gradients first). Returns the loss terms and γ.
template <RealScalar R, class D>
StepResult<R, D> erlmr_step(ErlmrModel<R, D>& model, const Var<R, D>& x1, const Var<R, D>& x2, const std::vector<std::int64_t>& y,
                         nn::Context& ctx, StepMode mode = StepMode::fused) {
  const auto& theta = model.shared_parameters();
  StepResult<R, D> r;
  auto finish = [&r](const Var<R, D>& l_ce, const Var<R, D>& l_ph, const Var<R, D>& l_a, const Var<R, D>& l_g,
                     const Var<R, D>& l_uni) {
    r.loss_ce = value_of(l_ce);
    r.loss_phase = value_of(l_ph);
    r.loss_ce_a = value_of(l_a);
    r.loss_ce_g = value_of(l_g);
    r.loss_uni = value_of(l_uni);
    const NoGradGuard no_graph;  // L's value only: its gradient has been taken
    r.loss = value_of(add(scale(l_ce, R(r.gamma)), scale(add(l_ph, l_uni), R(1 - r.gamma))));
    return r;
  };
  if (mode == StepMode::fused) {
    auto f = model.forward(x1, x2, ctx);
    auto l_ce = cross_entropy(f.out, y);
    auto l_ph = phase_cosine_loss(f.theta_a, f.theta_g);
    auto l_a = cross_entropy(f.out_a, y), l_g = cross_entropy(f.out_g, y);
    auto l_ph2 = scale(l_ph, R(2));
    auto l_uni = add(l_a, l_g);
    if constexpr (D::is_host) {
      // One walk of the tape for the three seeds L_CE, 2·L_ph, L_uni (grad_seeds): g1 and g2
      // are the first two seeds' gradients of Θ, and since backpropagation is linear in the
      // seed, the gradient of L = γ·L_CE + (1−γ)·(L_ph + L_uni) is γ·g(L_CE) + (1−γ)/2·g(2·L_ph)
      // + (1−γ)·g(L_uni) for every parameter — no third pass. W's gradient is formed once, as
      // (Σ c_s a_s)ᵀ·x from the three seeds' factors.
      const auto& params = model.shared_then_other_parameters();
      const Var<R, D> outs[3] = {l_ce, l_ph2, l_uni};
      const auto gs = grad_seeds<R, R, D>(std::span<const Var<R, D>>(outs, 3), params);
      r.gamma = min_norm_weight(std::span<const Gradient<R, D>>(gs[0].data(), theta.size()), value_of(l_ce),
                                std::span<const Gradient<R, D>>(gs[1].data(), theta.size()), value_of(l_ph2));
      const double c[3] = {r.gamma, (1 - r.gamma) / 2, 1 - r.gamma};
      accumulate_combination<R>(params, gs, c);
    } else {  // on a device: g1, g2, then the backward pass of L
      auto g1 = grad_factored(l_ce, theta, /*retain_graph=*/true);
      auto g2 = grad_factored(l_ph2, theta, /*retain_graph=*/true);
      r.gamma = min_norm_weight(g1, value_of(l_ce), g2, value_of(l_ph2));
      backward(add(scale(l_ce, R(r.gamma)), scale(add(l_ph, l_uni), R(1 - r.gamma))));
    }
    r.fwd = f;
    return finish(l_ce, l_ph, l_a, l_g, l_uni);
  }
  // faithful
  auto fa = model.forward(x1, x2, ctx);  // pass A: unimodal logits
  auto l_a = cross_entropy(fa.out_a, y), l_g = cross_entropy(fa.out_g, y);
  double l1;
  PoolVector<Gradient<R, D>> g1;
  {
    auto fb = model.forward(x1, x2, ctx);  // pass B: L_CE for g1
    auto l_ce_b = cross_entropy(fb.out, y);
    l1 = value_of(l_ce_b);
    g1 = grad_factored(l_ce_b, theta);
  }
  auto fc = model.forward(x1, x2, ctx);  // pass C: phases for g2, and the kept L_CE, L_ph
  auto l_ce = cross_entropy(fc.out, y);
  auto l_ph = phase_cosine_loss(fc.theta_a, fc.theta_g);
  auto l_ph2 = scale(l_ph, R(2));
  auto l_uni = add(l_a, l_g);
  if constexpr (D::is_host) {
    // One walk for 2·L_ph and L_CE through C and L_uni through A (grad_seeds): g2 is the
    // first seed's gradient of Θ, the final gradient the three seeds' combination.
    const auto& params = model.shared_then_other_parameters();
    const Var<R, D> outs[3] = {l_ph2, l_ce, l_uni};
    const auto gs = grad_seeds<R, R, D>(std::span<const Var<R, D>>(outs, 3), params);
    r.gamma = min_norm_weight(std::span<const Gradient<R, D>>(g1.data(), g1.size()), l1,
                              std::span<const Gradient<R, D>>(gs[0].data(), theta.size()), value_of(l_ph2));
    const double c[3] = {(1 - r.gamma) / 2, r.gamma, 1 - r.gamma};
    accumulate_combination<R>(params, gs, c);
  } else {
    auto g2 = grad_factored(l_ph2, theta, /*retain_graph=*/true);
    r.gamma = min_norm_weight(g1, l1, g2, value_of(l_ph2));
    backward(add(scale(l_ce, R(r.gamma)), scale(add(l_ph, l_uni), R(1 - r.gamma))));
  }
  r.fwd = fc;
  r.fwd.out_a = fa.out_a;
  r.fwd.out_g = fa.out_g;
  return finish(l_ce, l_ph, l_a, l_g, l_uni);
}

}  // namespace erlmr::erl
