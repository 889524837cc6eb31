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

// Everything below is templated on the device D (CpuDevice by default): a method runs
// wherever the model and the batch live. Gradient arithmetic runs on D (D::axpy,
// D::scale_inplace, D::gram); the small per-batch statistics the methods read (logits,
// confidences) are copied to the host with as_host, which is free on the CPU.
template <RealScalar R, class D = CpuDevice> struct Batch {
  Var<R, D> x1, x2;
  std::vector<std::int64_t> y;
};

// What a step reports. `signals` are the method's internal quantities (OGM-GE's k_u,
// PMR's ρ, ...), averaged over the epoch's steps and logged per epoch.
struct StepStats {
  double loss = 0, loss_ce = 0, loss_phase = 0, loss_uni = 0, gamma = 0;
  std::vector<std::pair<std::string, double>> signals;
};

// Read-only access to the training split for per-epoch estimates (prototypes, held-out sets).
template <RealScalar R, class D = CpuDevice> struct EpochView {
  int epoch = 0;                   // 0-based
  int epochs = 0;
  const std::vector<Batch<R, D>>* batches = nullptr;     // this epoch's training batches, in order
  const std::vector<Batch<R, D>>* validation = nullptr;  // held-out batches (empty unless the method asks)
};

template <RealScalar R, class D = CpuDevice>
class Method {
 public:
  using Model = erl::ErlmrModel<R, D>;
  virtual ~Method() = default;
  virtual std::string name() const = 0;
  // Fraction of the training split the trainer holds out (fixed for the run, never
  // trained on) and hands to begin_epoch as `validation` (G-Blending).
  virtual double holdout_fraction() const { return 0; }
  // Parameters the method adds (extra heads); they join the optimiser.
  virtual std::vector<Var<R, D>> extra_parameters() { return {}; }
  // Called before each epoch's steps.
  virtual void begin_epoch(Model&, const EpochView<R, D>&) {}
  // One step: leave the gradient in grad() of the model's (and extra) parameters.
  virtual StepStats step(Model& model, const Batch<R, D>& b, nn::Context& ctx, int epoch) = 0;
  // Evaluation-mode outputs (fused and unimodal logits). Methods that predict
  // differently at test time (MLA's gated fusion, MMCosine's cosine logits) override it.
  virtual erl::ModelOut<R, D> evaluate(Model& model, const Var<R, D>& x1, const Var<R, D>& x2, nn::Context& ctx) {
    return model.forward(x1, x2, ctx);
  }
  // Method state that must survive a checkpoint (running averages, prototypes, gates).
  virtual void save_state(data::NpzMap&, const std::string& /*prefix*/) const {}
  virtual void load_state(const data::NpzMap&, const std::string& /*prefix*/) {}
};

// ---- parameter groups ------------------------------------------------------------------
template <RealScalar R, class D> std::vector<Var<R, D>> encoder_parameters(erl::ErlmrModel<R, D>& m, Modality u) {
  const std::string enc = m.encoder_prefix(u == Modality::a ? 0 : 1);
  const std::string mu = u == Modality::a ? "mu1" : "mu2";
  std::vector<Var<R, D>> out;
  for (auto& p : m.state().params)
    if (p.name.rfind(enc, 0) == 0 || p.name == mu) out.push_back(p.var);
  return out;
}
template <RealScalar R, class D> std::vector<Var<R, D>> head_parameters(erl::ErlmrModel<R, D>& m) {
  std::vector<Var<R, D>> out;
  for (auto& p : m.state().params)
    if (p.name.rfind("fusion.", 0) == 0) out.push_back(p.var);
  return out;
}

// ---- gradient tools ------------------------------------------------------------------------
template <RealScalar R, class D = CpuDevice> using Grads = std::vector<Tensor<R, D>>;

template <RealScalar R, class D>
Grads<R, D> grads_of(const Var<R, D>& loss, const std::vector<Var<R, D>>& params, bool retain_graph = true) {
  return grad(loss, params, retain_graph);
}
template <RealScalar R, class D> void add_to_grads(const std::vector<Var<R, D>>& ps, const Grads<R, D>& g, double k = 1) {
  for (std::size_t i = 0; i < ps.size(); ++i) {
    auto& pg = ps[i].mutable_grad();
    if (!pg.defined()) pg = Tensor<R, D>::zeros(ps[i].shape());
    D::axpy(pg.data(), R(k), g[i].data(), pg.numel());
  }
}
template <RealScalar R, class D> void scale_grads(const std::vector<Var<R, D>>& ps, double k) {
  for (const auto& p : ps)
    if (p.grad().defined()) D::scale_inplace(p.grad().data(), R(k), p.grad().numel());
}
template <RealScalar R, class D> Grads<R, D> current_grads(const std::vector<Var<R, D>>& ps) {
  Grads<R, D> out;
  for (const auto& p : ps) out.push_back(p.grad().defined() ? p.grad().clone() : Tensor<R, D>::zeros(p.shape()));
  return out;
}
// Σ over the list of Σ_k a_k b_k, in double: on the host one running sum in list order;
// on a device one fixed-order reduction per tensor (D::gram), summed in list order.
template <RealScalar R, class D> double dot(const Grads<R, D>& a, const Grads<R, D>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if constexpr (D::is_host) {
      for (std::int64_t k = 0; k < a[i].numel(); ++k) s += double(a[i].data()[k]) * double(b[i].data()[k]);
    } else {
      double v[3];
      D::gram(a[i].data(), b[i].data(), a[i].numel(), v);
      s += v[1];
    }
  }
  return s;
}
template <RealScalar R, class D> double norm(const Grads<R, D>& a) { return std::sqrt(dot(a, a)); }

// Losses of the model's standard outputs, reported by most methods.
template <RealScalar R, class D = CpuDevice> struct StandardLosses {
  Var<R, D> ce, ce_a, ce_g;
  double phase = 0;
};
template <RealScalar R, class D>
StandardLosses<R, D> standard_losses(const erl::ModelOut<R, D>& f, const std::vector<std::int64_t>& y) {
  StandardLosses<R, D> l{cross_entropy(f.out, y), cross_entropy(f.out_a, y), cross_entropy(f.out_g, y), 0};
  NoGradGuard ng;
  l.phase = double(erl::phase_cosine_loss(f.theta_a.detach(), f.theta_g.detach()).item());
  return l;
}
template <RealScalar R, class D> StepStats stats_of(const StandardLosses<R, D>& l, const Var<R, D>& loss) {
  StepStats s;
  s.loss = double(loss.item());
  s.loss_ce = double(l.ce.item());
  s.loss_phase = l.phase;
  s.loss_uni = double(l.ce_a.item()) + double(l.ce_g.item());
  return s;
}

}  // namespace erlmr::train
