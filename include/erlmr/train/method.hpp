// erlmr/train/method.hpp — what a training method is, and the gradient tools methods share.
//
// A Method turns one mini-batch into gradients in the parameters' grad() (the trainer
// zeroes them before and applies the optimiser after). Methods that need more than
// loss.backward() use the small explicit API below:
//   grads_of(loss, params, retain)   ∇ loss restricted to `params`    (torch.autograd.grad)
//   add_to_grads(params, g, k)       p.grad += k·g
//   scale_grads(params, k)           p.grad *= k
//   dot(g1, g2), norm(g)             over a list of tensors, in list order (deterministic)
// and the parameter groups of the model: encoder_parameters(model, Modality::a|g),
// head_parameters(model) (the fusion layer), shared Θ (model.shared_parameters()).
// Each baseline lives in its own file under erlmr/balance/, with its rule in one place.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "erlmr/data/npy.hpp"
#include "erlmr/erl/step.hpp"

namespace erlmr::train {

enum class Modality { a, g };

template <RealScalar R> struct Batch {
  Var<R> x1, x2;
  std::vector<std::int64_t> y;
};

// What a step reports. `signals` are the method's internal quantities (OGM-GE's k_u,
// PMR's ρ, ...), averaged over the epoch's steps and logged per epoch.
struct StepStats {
  double loss = 0, loss_ce = 0, loss_phase = 0, loss_uni = 0, gamma = 0;
  std::vector<std::pair<std::string, double>> signals;
};

// Read-only access to the training split for per-epoch estimates (prototypes, held-out sets).
template <RealScalar R> struct EpochView {
  int epoch = 0;                   // 0-based
  int epochs = 0;
  const std::vector<Batch<R>>* batches = nullptr;     // this epoch's training batches, in order
  const std::vector<Batch<R>>* validation = nullptr;  // held-out batches (empty unless the method asks)
};

template <RealScalar R>
class Method {
 public:
  virtual ~Method() = default;
  virtual std::string name() const = 0;
  // Fraction of the training split the trainer holds out (fixed for the run, never
  // trained on) and hands to begin_epoch as `validation` (G-Blending).
  virtual double holdout_fraction() const { return 0; }
  // Parameters the method adds (extra heads); they join the optimiser.
  virtual std::vector<Var<R>> extra_parameters() { return {}; }
  // Called before each epoch's steps.
  virtual void begin_epoch(erl::ErlmrModel<R>&, const EpochView<R>&) {}
  // One step: leave the gradient in grad() of the model's (and extra) parameters.
  virtual StepStats step(erl::ErlmrModel<R>& model, const Batch<R>& b, nn::Context& ctx, int epoch) = 0;
  // Evaluation-mode outputs (fused and unimodal logits). Methods that predict
  // differently at test time (MLA's gated fusion, MMCosine's cosine logits) override it.
  virtual erl::ModelOut<R> evaluate(erl::ErlmrModel<R>& model, const Var<R>& x1, const Var<R>& x2, nn::Context& ctx) {
    return model.forward(x1, x2, ctx);
  }
  // Method state that must survive a checkpoint (running averages, prototypes, gates).
  virtual void save_state(data::NpzMap&, const std::string& /*prefix*/) const {}
  virtual void load_state(const data::NpzMap&, const std::string& /*prefix*/) {}
};

// ---- parameter groups ------------------------------------------------------------------
template <RealScalar R> std::vector<Var<R>> encoder_parameters(erl::ErlmrModel<R>& m, Modality u) {
  const std::string enc = m.encoder_prefix(u == Modality::a ? 0 : 1);
  const std::string mu = u == Modality::a ? "mu1" : "mu2";
  std::vector<Var<R>> out;
  for (auto& p : m.state().params)
    if (p.name.rfind(enc, 0) == 0 || p.name == mu) out.push_back(p.var);
  return out;
}
template <RealScalar R> std::vector<Var<R>> head_parameters(erl::ErlmrModel<R>& m) {
  std::vector<Var<R>> out;
  for (auto& p : m.state().params)
    if (p.name.rfind("fusion.", 0) == 0) out.push_back(p.var);
  return out;
}

// ---- gradient tools ------------------------------------------------------------------------
template <RealScalar R> using Grads = std::vector<Tensor<R>>;

template <RealScalar R> Grads<R> grads_of(const Var<R>& loss, const std::vector<Var<R>>& params, bool retain_graph = true) {
  return grad(loss, params, retain_graph);
}
template <RealScalar R> void add_to_grads(const std::vector<Var<R>>& ps, const Grads<R>& g, double k = 1) {
  for (std::size_t i = 0; i < ps.size(); ++i) {
    auto& pg = ps[i].mutable_grad();
    if (!pg.defined()) pg = Tensor<R>::zeros(ps[i].shape());
    pg.vec() += R(k) * g[i].vec();
  }
}
template <RealScalar R> void scale_grads(const std::vector<Var<R>>& ps, double k) {
  for (const auto& p : ps)
    if (p.grad().defined()) p.grad().vec() *= R(k);
}
template <RealScalar R> Grads<R> current_grads(const std::vector<Var<R>>& ps) {
  Grads<R> out;
  for (const auto& p : ps) out.push_back(p.grad().defined() ? p.grad().clone() : Tensor<R>::zeros(p.shape()));
  return out;
}
template <RealScalar R> double dot(const Grads<R>& a, const Grads<R>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    for (std::int64_t k = 0; k < a[i].numel(); ++k) s += double(a[i].data()[k]) * double(b[i].data()[k]);
  return s;
}
template <RealScalar R> double norm(const Grads<R>& a) { return std::sqrt(dot(a, a)); }

// Losses of the model's standard outputs, reported by most methods.
template <RealScalar R> struct StandardLosses {
  Var<R> ce, ce_a, ce_g;
  double phase = 0;
};
template <RealScalar R> StandardLosses<R> standard_losses(const erl::ModelOut<R>& f, const std::vector<std::int64_t>& y) {
  StandardLosses<R> l{cross_entropy(f.out, y), cross_entropy(f.out_a, y), cross_entropy(f.out_g, y), 0};
  NoGradGuard ng;
  l.phase = double(erl::phase_cosine_loss(f.theta_a.detach(), f.theta_g.detach()).item());
  return l;
}
template <RealScalar R> StepStats stats_of(const StandardLosses<R>& l, const Var<R>& loss) {
  StepStats s;
  s.loss = double(loss.item());
  s.loss_ce = double(l.ce.item());
  s.loss_phase = l.phase;
  s.loss_uni = double(l.ce_a.item()) + double(l.ce_g.item());
  return s;
}

}  // namespace erlmr::train
