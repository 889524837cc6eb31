// erlmr/balance/mla.hpp — MLA, Multimodal Learning with Alternating unimodal adaptation (Zhang et al.,
// CVPR 2024; ../shared/spec/baselines.md).
//
// Rule (spec): one linear head (U, c), U ∈ R^{K×D}, shared by the modalities, applied to each
// modality's feature alone: f_u = U h_u + c. It is an extra nn::Linear(D, K) (extra_parameters(),
// initialised from Generator(options.seed + kHeadSalt)); the model's fusion layer is not used.
// Each step trains the modalities in turn, u = a then g, each with its own CE through the head:
//   backward CE(f_u, y);  head weight gradient G_u (K×D) → G_u·P           (the bias is not projected)
//   then the recursive projector absorbs u's batch-mean feature r = mean_b h_u[b] (1×D):
//     k = P rᵀ,  P ← P − k kᵀ / (a + r k),  P ← P / ‖P‖_F,  a = a0^(1 + i/N)
//   (P starts as the D×D identity and persists across steps and epochs; a0 = options.mla_a0,
//   i = step index in the epoch, N = steps per epoch). So a's head gradient is projected by the P
//   left by the previous g update, and g's by the P that has just absorbed a's features.
// The released code takes one optimiser step per modality; the trainer takes one per batch, so both
// modalities' (projected) gradients are accumulated into grad() within one step() and applied by
// one optimiser step — the alternating update with one optimiser step per batch. Each encoder (and
// its μ) gets only its own modality's gradient; the shared projection im.* gets the sum of both
// (it is shared, like the head, but not projected).
// Test time (evaluate()): f = w_a f_a + w_g f_g with per-sample entropy gates
//   w_u ∝ exp(max(H_a, H_g) − H_u),  w_a + w_g = 1,  H_u = entropy of softmax(f_u);
// out_a = f_a, out_g = f_g.
// Reported: loss = loss_uni = CE(f_a) + CE(f_g) (the trained objective); loss_ce = CE of the gated
// fused logits of the training batch (what the method predicts with; no graph).
// Signals: mla_gate_a (batch mean of w_a, no graph), mla_proj_norm (‖P‖_F after the rank-one
// update and before normalisation, mean of the step's two updates: how much of P an update removes).
// The head (weight, bias) and P are saved in checkpoints (the trainer saves only the model).
#pragma once
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "erlmr/balance/options.hpp"
#include "erlmr/train/method.hpp"

namespace erlmr::balance {

// a = a0^(1 + i/N) (i/N taken as 0 when N is unknown).
inline double mla_alpha(double a0, std::int64_t i, std::int64_t N) {
  return std::pow(a0, 1.0 + (N > 0 ? double(i) / double(N) : 0.0));
}

// One recursive projector update in place: k = P rᵀ, P ← P − k kᵀ/(a + r k), P ← P/‖P‖_F.
// Returns ‖P‖_F before the normalisation.
template <RealScalar R> double mla_projector_update(Tensor<R>& P, const std::vector<R>& r, double a) {
  const std::int64_t D = P.shape()[0];
  if (P.shape() != Shape{D, D} || static_cast<std::int64_t>(r.size()) != D)
    throw ShapeError("mla_projector_update: P " + P.shape().str() + " and r of length " + std::to_string(r.size()));
  using Vec = Eigen::Matrix<R, Eigen::Dynamic, 1>;
  auto M = P.mat(D, D);
  const Eigen::Map<const Vec> rv(r.data(), D);
  const Vec k = M * rv;
  const R denom = R(a) + rv.dot(k);
  M.noalias() -= (k / denom) * k.transpose();
  const double n = double(M.norm());
  M /= R(n);
  return n;
}

// G·P for G (K, D) and P (D, D).
template <RealScalar R> Tensor<R> mla_project(const Tensor<R>& G, const Tensor<R>& P) {
  const std::int64_t K = G.shape()[0], D = G.shape()[1];
  Tensor<R> out(G.shape());
  detail::gemm_into<R>(detail::mmat(out, K, D), detail::cmat(G, K, D), detail::cmat(P, D, D), false);
  return out;
}

// Per-sample entropy gates: w_u = exp(max(H_a, H_g) − H_u) / Σ_v exp(max(H_a, H_g) − H_v).
template <RealScalar R> std::pair<std::vector<double>, std::vector<double>> mla_entropy_gates(const Tensor<R>& fa, const Tensor<R>& fg) {
  check_same_shape(fa.shape(), fg.shape(), "mla_entropy_gates");
  const std::int64_t B = fa.shape()[0], K = fa.shape()[1];
  auto entropy = [K](const R* x) {
    double mx = double(x[0]), s = 0, h = 0;
    for (std::int64_t k = 1; k < K; ++k) mx = std::max(mx, double(x[k]));
    for (std::int64_t k = 0; k < K; ++k) s += std::exp(double(x[k]) - mx);
    const double lse = mx + std::log(s);
    for (std::int64_t k = 0; k < K; ++k) {
      const double lp = double(x[k]) - lse;
      h -= std::exp(lp) * lp;
    }
    return h;
  };
  std::vector<double> wa(static_cast<std::size_t>(B)), wg(static_cast<std::size_t>(B));
  for (std::int64_t b = 0; b < B; ++b) {
    const double ha = entropy(fa.data() + b * K), hg = entropy(fg.data() + b * K), mx = std::max(ha, hg);
    const double ea = std::exp(mx - ha), eg = std::exp(mx - hg);
    wa[static_cast<std::size_t>(b)] = ea / (ea + eg);
    wg[static_cast<std::size_t>(b)] = eg / (ea + eg);
  }
  return {wa, wg};
}

// f = w_a f_a + w_g f_g, row by row (a plain tensor: no graph).
template <RealScalar R> Tensor<R> mla_fuse(const Tensor<R>& fa, const Tensor<R>& fg, const std::vector<double>& wa,
                                           const std::vector<double>& wg) {
  const std::int64_t B = fa.shape()[0], K = fa.shape()[1];
  Tensor<R> out(fa.shape());
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t k = 0; k < K; ++k)
      out.data()[b * K + k] = R(wa[static_cast<std::size_t>(b)] * double(fa.data()[b * K + k]) +
                                wg[static_cast<std::size_t>(b)] * double(fg.data()[b * K + k]));
  return out;
}

template <RealScalar R, class D = CpuDevice>
class Mla final : public train::Method<R, D> {
 public:
  static constexpr std::uint64_t kHeadSalt = 0x6D6C61;  // "mla"

  Mla(const MethodOptions& o, erl::ErlmrModel<R, D>& model, std::int64_t classes)
      : a0_(o.mla_a0), D_(model.cfg.fused_dim()), K_(classes), head_gen_(o.seed + kHeadSalt), head_(D_, K_, head_gen_),
        P_(identity(D_)) {}
  std::string name() const override { return "mla"; }
  std::vector<Var<R, D>> extra_parameters() override { return {head_.weight, head_.bias}; }

  void begin_epoch(erl::ErlmrModel<R, D>&, const train::EpochView<R, D>& v) override {
    step_ = 0;
    steps_ = v.batches ? static_cast<std::int64_t>(v.batches->size()) : 0;
  }

  train::StepStats step(erl::ErlmrModel<R, D>& m, const train::Batch<R, D>& b, nn::Context& ctx, int) override {
    const auto f = m.forward(b.x1, b.x2, ctx);
    const double a = mla_alpha(a0_, step_++, steps_);
    Var<R, D> logits[2];
    double ce[2], pnorm = 0;
    for (int u = 0; u < 2; ++u) {
      const Var<R, D>& h = u == 0 ? f.h_a : f.h_g;
      logits[u] = linear(h, head_.weight, head_.bias);
      auto loss = cross_entropy(logits[u], b.y);
      ce[u] = double(loss.item());
      auto& wg = head_.weight.mutable_grad();
      const Tensor<R, D> before = wg.defined() ? wg.clone() : Tensor<R, D>::zeros(head_.weight.shape());
      backward(loss, /*retain_graph=*/true);
      // G = this loss's share of the head gradient; grad ← before + G·P (P lives on the host:
      // a K×D gradient and a D-vector cross per step, the D×D update stays there).
      const std::int64_t n = before.numel();
      const Tensor<R, D> G = head_.weight.grad().clone();
      D::axpy(G.data(), R(-1), before.data(), n);
      const Tensor<R, D> GP = as_device<D>(mla_project(as_host(G), P_));
      const Tensor<R, D> updated = before.clone();
      D::axpy(updated.data(), R(1), GP.data(), n);
      head_.weight.mutable_grad() = updated;
      pnorm += mla_projector_update(P_, batch_mean(as_host(h.value())), a);
    }
    train::StepStats s;
    s.loss = s.loss_uni = ce[0] + ce[1];
    {
      NoGradGuard ng;
      const auto la = as_host(logits[0].value()), lg = as_host(logits[1].value());
      const auto [wa, wg] = mla_entropy_gates(la, lg);
      s.loss_ce = double(cross_entropy(Var<R>(mla_fuse(la, lg, wa, wg)), b.y).item());
      s.loss_phase = double(erl::phase_cosine_loss(f.theta_a.detach(), f.theta_g.detach()).item());
      double ga = 0;
      for (double w : wa) ga += w;
      s.signals = {{"mla_gate_a", ga / double(std::max<std::size_t>(wa.size(), 1))}, {"mla_proj_norm", pnorm / 2}};
    }
    return s;
  }

  erl::ModelOut<R, D> evaluate(erl::ErlmrModel<R, D>& m, const Var<R, D>& x1, const Var<R, D>& x2, nn::Context& ctx) override {
    NoGradGuard ng;
    auto f = m.forward(x1, x2, ctx);
    f.out_a = linear(f.h_a, head_.weight, head_.bias);
    f.out_g = linear(f.h_g, head_.weight, head_.bias);
    const auto la = as_host(f.out_a.value()), lg = as_host(f.out_g.value());
    const auto [wa, wg] = mla_entropy_gates(la, lg);
    f.out = Var<R, D>(as_device<D>(mla_fuse(la, lg, wa, wg)));
    return f;
  }

  void save_state(data::NpzMap& m, const std::string& p) const override {
    m[p + "mla/projector"] = data::NpyArray::make<R>({D_, D_}, P_.to_vector());
    m[p + "mla/head.weight"] = data::NpyArray::make<R>({K_, D_}, head_.weight.value().to_vector());
    m[p + "mla/head.bias"] = data::NpyArray::make<R>({K_}, head_.bias.value().to_vector());
  }
  void load_state(const data::NpzMap& m, const std::string& p) override {
    auto load = [&](const std::string& name, const auto& dst) {
      const auto it = m.find(p + name);
      if (it == m.end()) throw std::runtime_error("mla: checkpoint has no " + p + name);
      if (Shape(it->second.shape) != dst.shape())
        throw std::runtime_error("mla: " + p + name + " has shape " + Shape(it->second.shape).str() + ", expected " + dst.shape().str());
      const auto v = it->second.template as<R>();
      using T = std::remove_cvref_t<decltype(dst)>;
      dst.copy_(T::from_vector(dst.shape(), v));  // in place: the optimiser holds these tensors
    };
    load("mla/projector", P_);
    load("mla/head.weight", head_.weight.value());
    load("mla/head.bias", head_.bias.value());
  }

  const Tensor<R>& projector() const { return P_; }
  nn::Linear<R, D>& head() { return head_; }

 private:
  static Tensor<R> identity(std::int64_t n) {
    auto t = Tensor<R>::zeros(Shape{n, n});
    for (std::int64_t i = 0; i < n; ++i) t.data()[i * n + i] = R(1);
    return t;
  }
  static std::vector<R> batch_mean(const Tensor<R>& h) {
    const std::int64_t B = h.shape()[0], dim = h.shape()[1];
    std::vector<double> acc(static_cast<std::size_t>(dim), 0.0);
    for (std::int64_t i = 0; i < B; ++i)
      for (std::int64_t d = 0; d < dim; ++d) acc[static_cast<std::size_t>(d)] += double(h.data()[i * dim + d]);
    std::vector<R> r(static_cast<std::size_t>(dim));
    for (std::int64_t d = 0; d < dim; ++d) r[static_cast<std::size_t>(d)] = R(acc[static_cast<std::size_t>(d)] / double(B));
    return r;
  }

  double a0_;
  std::int64_t D_, K_;
  Generator head_gen_;
  nn::Linear<R, D> head_;
  Tensor<R> P_;  // (D, D), on the host
  std::int64_t step_ = 0, steps_ = 0;
};

}  // namespace erlmr::balance
