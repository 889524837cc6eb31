// erlmr/balance/pmr.hpp — PMR, Prototypical Modal Rebalance (Fan et al., CVPR 2023;
// ../shared/spec/baselines.md).
//
// Rule (spec):
//   prototypes   c_k^u = mean of h_u over the epoch's training samples of class k, recomputed at each
//                epoch start (eval mode, no graph: dropout off, batch-norm statistics untouched),
//                with an optional EMA  c ← m·c_old + (1−m)·c_new  (m = options.pmr_momentum; 0 means
//                recomputed). A class's first estimate is taken as is; a class absent from the
//                epoch keeps its previous prototype (zero before any estimate).
//   proto logits p_u[b, k] = −‖h_u[b] − c_k^u‖  (differentiable in h_u, prototypes constant)
//   imbalance    ρ = Σ_b softmax(p_a)[b, y_b] / Σ_b softmax(p_g)[b, y_b]   (per step, no graph)
//   loss         L = CE(f, y) + α·CE(p_weak, y),  weak = g if ρ > 1 else a,  α = options.pmr_alpha
// The released PMR also has a second term acting on the dominant modality, and estimates the
// prototypes from a fraction of the training loader; the spec has only the α term and the mean
// over the epoch's training batches, and we follow the spec. The distance is √(Σ(h − c)² + 1e-12)
// so its gradient stays finite at zero distance. The shared projection im.* gets the gradient of L
// (through both modalities for CE(f), through the weak one for the prototype term).
// Signals: pmr_rho (ρ), pmr_weak_is_g (1 when g is the weak modality: its epoch mean is the
// fraction of steps where g was weak). Prototypes are saved in checkpoints.
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

#include "erlmr/balance/options.hpp"
#include "erlmr/train/method.hpp"

namespace erlmr::balance {

// Per-class sums (K·D, row-major) and counts (K) of feature rows, accumulated in double.
struct ClassSums {
  std::vector<double> sum;  // K·D
  std::vector<std::int64_t> count;
};
template <RealScalar R> void accumulate_class_sums(ClassSums& acc, const Tensor<R>& h, const std::vector<std::int64_t>& y) {
  const std::int64_t N = h.shape()[0], D = h.shape()[1];
  for (std::int64_t i = 0; i < N; ++i) {
    const auto k = y[static_cast<std::size_t>(i)];
    ++acc.count[static_cast<std::size_t>(k)];
    for (std::int64_t d = 0; d < D; ++d) acc.sum[static_cast<std::size_t>(k * D + d)] += double(h.data()[i * D + d]);
  }
}

// New prototypes from class sums: c_k ← mean_k for a class seen for the first time, the EMA
// m·c_old + (1−m)·mean_k for a class seen before, unchanged for a class without samples.
template <RealScalar R>
void update_prototypes(Tensor<R>& c, std::vector<std::uint8_t>& seen, const ClassSums& acc, double momentum) {
  const std::int64_t K = c.shape()[0], D = c.shape()[1];
  for (std::int64_t k = 0; k < K; ++k) {
    const auto n = acc.count[static_cast<std::size_t>(k)];
    if (n == 0) continue;
    const double m = seen[static_cast<std::size_t>(k)] ? momentum : 0.0;
    for (std::int64_t d = 0; d < D; ++d) {
      const double mean = acc.sum[static_cast<std::size_t>(k * D + d)] / double(n);
      R& v = c.data()[k * D + d];
      v = R(m * double(v) + (1 - m) * mean);
    }
    seen[static_cast<std::size_t>(k)] = 1;
  }
}

// p[b, k] = −√(Σ_d (h[b, d] − c[k, d])² + tiny) for h (B, D) and constant prototypes c (K, D)
// (kept on the host; copied to h's device).
template <RealScalar R, class D> Var<R, D> prototype_logits(const Var<R, D>& h, const Tensor<R>& c, double tiny = 1e-12) {
  const std::int64_t B = h.shape()[0], dim = h.shape()[1], K = c.shape()[0];
  auto diff = sub(reshape(h, {B, 1, dim}), Var<R, D>(as_device<D>(c).reshape({1, K, dim})));  // (B, K, D)
  return neg(sqrt(add_scalar(sum(mul(diff, diff), 2), R(tiny))));
}

// Σ_b softmax(p)[b, y_b] (no graph).
template <RealScalar R> double true_class_softmax_sum(const Tensor<R>& logits, const std::vector<std::int64_t>& y) {
  NoGradGuard ng;
  const auto p = softmax(Var<R>(logits), 1).value();
  const std::int64_t B = p.shape()[0], K = p.shape()[1];
  double s = 0;
  for (std::int64_t b = 0; b < B; ++b) s += double(p.data()[b * K + y[static_cast<std::size_t>(b)]]);
  return s;
}
// ρ = Σ softmax(p_a)_y / Σ softmax(p_g)_y.
template <RealScalar R> double pmr_rho(const Tensor<R>& pa, const Tensor<R>& pg, const std::vector<std::int64_t>& y) {
  return true_class_softmax_sum(pa, y) / true_class_softmax_sum(pg, y);
}
// The weak modality gets the prototype loss: g when ρ > 1, otherwise a.
inline train::Modality pmr_weak(double rho) { return rho > 1 ? train::Modality::g : train::Modality::a; }

template <RealScalar R, class D = CpuDevice>
class Pmr final : public train::Method<R, D> {
 public:
  Pmr(const MethodOptions& o, erl::ErlmrModel<R, D>& model, std::int64_t classes)
      : alpha_(o.pmr_alpha), momentum_(o.pmr_momentum), K_(classes), D_(model.cfg.fused_dim()) {
    if (momentum_ < 0 || momentum_ >= 1) throw std::invalid_argument("pmr: momentum must be in [0, 1), got " + std::to_string(momentum_));
    for (int u = 0; u < 2; ++u) {
      proto_[u] = Tensor<R>::zeros(Shape{K_, D_});
      seen_[u].assign(static_cast<std::size_t>(K_), 0);
    }
  }
  std::string name() const override { return "pmr"; }

  void begin_epoch(erl::ErlmrModel<R, D>& m, const train::EpochView<R, D>& v) override {
    if (!v.batches) return;
    NoGradGuard ng;
    nn::Context ctx{false, nullptr, 1.0};
    ClassSums acc[2];
    for (auto& a : acc) a = {std::vector<double>(static_cast<std::size_t>(K_ * D_), 0.0), std::vector<std::int64_t>(static_cast<std::size_t>(K_), 0)};
    for (const auto& b : *v.batches) {
      const auto f = m.forward(b.x1, b.x2, ctx);
      accumulate_class_sums(acc[0], as_host(f.h_a.value()), b.y);
      accumulate_class_sums(acc[1], as_host(f.h_g.value()), b.y);
    }
    for (int u = 0; u < 2; ++u) update_prototypes(proto_[u], seen_[u], acc[u], momentum_);
  }

  train::StepStats step(erl::ErlmrModel<R, D>& m, const train::Batch<R, D>& b, nn::Context& ctx, int) override {
    auto f = m.forward(b.x1, b.x2, ctx);
    auto l = train::standard_losses(f, b.y);
    auto pa = prototype_logits(f.h_a, proto_[0]), pg = prototype_logits(f.h_g, proto_[1]);
    const double rho = pmr_rho(as_host(pa.value()), as_host(pg.value()), b.y);
    const bool g_weak = pmr_weak(rho) == train::Modality::g;
    auto loss = add(l.ce, scale(cross_entropy(g_weak ? pg : pa, b.y), R(alpha_)));
    backward(loss);
    auto s = train::stats_of(l, loss);
    s.signals = {{"pmr_rho", rho}, {"pmr_weak_is_g", g_weak ? 1.0 : 0.0}};
    return s;
  }

  void save_state(data::NpzMap& m, const std::string& p) const override {
    for (int u = 0; u < 2; ++u) {
      const std::string n = p + "pmr/proto_" + (u ? "g" : "a");
      m[n] = data::NpyArray::make<R>({K_, D_}, proto_[u].to_vector());
      m[n + "_seen"] = data::NpyArray::make<std::uint8_t>({K_}, seen_[u]);
    }
  }
  void load_state(const data::NpzMap& m, const std::string& p) override {
    for (int u = 0; u < 2; ++u) {
      const std::string n = p + "pmr/proto_" + (u ? "g" : "a");
      if (!m.count(n) || !m.count(n + "_seen")) throw std::runtime_error("pmr: checkpoint has no prototypes (" + n + ")");
      const auto& a = m.at(n);
      if (a.shape != std::vector<std::int64_t>{K_, D_})
        throw std::runtime_error("pmr: " + n + " has shape " + Shape(a.shape).str() + ", expected " + Shape{K_, D_}.str());
      proto_[u] = Tensor<R>::from_vector(Shape{K_, D_}, a.template as<R>());
      seen_[u] = m.at(n + "_seen").template as<std::uint8_t>();
      if (static_cast<std::int64_t>(seen_[u].size()) != K_) throw std::runtime_error("pmr: " + n + "_seen has the wrong length");
    }
  }

  const Tensor<R>& prototypes(train::Modality u) const { return proto_[u == train::Modality::a ? 0 : 1]; }

 private:
  double alpha_, momentum_;
  std::int64_t K_, D_;
  Tensor<R> proto_[2];                 // a, g: (K, D), on the host
  std::vector<std::uint8_t> seen_[2];  // whether class k has had an estimate
};

}  // namespace erlmr::balance
