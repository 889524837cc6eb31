// erlmr/balance/gblending.hpp — Gradient-Blending (Wang, Tran & Feiszli, CVPR 2020), `--method gblending`.
//
//   L = w_a CE(out_a) + w_g CE(out_g) + w_fused CE(out)        (k ∈ {a, g, fused})
//   w_k ∝ |ΔG_k| / ΔO_k²,  normalised to Σ_k w_k = 1,
//   ΔG_k = L^V_k(prev) − L^V_k(now)                           (generalisation gain)
//   O_k  = L^V_k − L^T_k,  ΔO_k = O_k(now) − O_k(prev)          (overfitting change)
// with ΔO_k² guarded below by 1e-12. L^T_k / L^V_k are the mean CEs of output k, in evaluation mode,
// over this epoch's training batches and over a held-out split (holdout_fraction() =
// options.gb_holdout of the training data, never trained on). They are measured at the start of
// every super-epoch (every options.gb_super_epoch epochs, epoch 0 included); from the second
// measurement on, the weights are re-estimated from the last two. Before the first estimate — or
// if every weight is zero or any is non-finite, or there is no held-out data — w_k = 1/3.
// The unimodal outputs are the fusion layer's f_u = U_u h_u + c/2 (spec), not separate heads as in
// the paper's late-fusion set-up; the shared projection im.* simply receives the blended gradient.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>

#include "erlmr/balance/options.hpp"
#include "erlmr/train/method.hpp"

namespace erlmr::balance {

using GbTriple = std::array<double, 3>;  // (a, g, fused)

// G-Blending's weights from two successive measurements of validation (V) and training (T) losses.
inline GbTriple gblending_weights(const GbTriple& prevV, const GbTriple& nowV, const GbTriple& prevT, const GbTriple& nowT,
                                  double eps = 1e-12) {
  const GbTriple uniform{1.0 / 3, 1.0 / 3, 1.0 / 3};
  GbTriple w{};
  double s = 0;
  for (std::size_t k = 0; k < 3; ++k) {
    const double dG = prevV[k] - nowV[k];
    const double dO = (nowV[k] - nowT[k]) - (prevV[k] - prevT[k]);
    w[k] = std::abs(dG) / std::max(dO * dO, eps);
    if (!std::isfinite(w[k])) return uniform;
    s += w[k];
  }
  if (!(s > 0) || !std::isfinite(s)) return uniform;
  for (auto& x : w) x /= s;
  return w;
}

template <RealScalar R, class D = CpuDevice>
class GBlending final : public train::Method<R, D> {
 public:
  GBlending(const MethodOptions& o, erl::ErlmrModel<R, D>&, std::int64_t)
      : super_epoch_(std::max(1, o.gb_super_epoch)), holdout_(o.gb_holdout) {}
  std::string name() const override { return "gblending"; }
  double holdout_fraction() const override { return holdout_; }

  void begin_epoch(erl::ErlmrModel<R, D>& m, const train::EpochView<R, D>& v) override {
    if (v.epoch % super_epoch_ != 0 || !v.batches || !v.validation || v.validation->empty()) return;
    const GbTriple nowT = mean_losses(m, *v.batches), nowV = mean_losses(m, *v.validation);
    if (have_prev_) w_ = gblending_weights(prevV_, nowV, prevT_, nowT);
    prevV_ = nowV;
    prevT_ = nowT;
    have_prev_ = true;
  }

  train::StepStats step(erl::ErlmrModel<R, D>& m, const train::Batch<R, D>& b, nn::Context& ctx, int) override {
    auto f = m.forward(b.x1, b.x2, ctx);
    auto l = train::standard_losses(f, b.y);
    auto loss = add(add(scale(l.ce_a, R(w_[0])), scale(l.ce_g, R(w_[1]))), scale(l.ce, R(w_[2])));
    backward(loss);
    auto s = train::stats_of(l, loss);
    s.signals = {{"gb_w_a", w_[0]}, {"gb_w_g", w_[1]}, {"gb_w_fused", w_[2]}};
    return s;
  }

  void save_state(data::NpzMap& m, const std::string& p) const override {
    auto vec = [](const GbTriple& t) { return std::vector<double>(t.begin(), t.end()); };
    m[p + "gblending/weights"] = data::NpyArray::make<double>({3}, vec(w_));
    m[p + "gblending/prev_val"] = data::NpyArray::make<double>({3}, vec(prevV_));
    m[p + "gblending/prev_train"] = data::NpyArray::make<double>({3}, vec(prevT_));
    m[p + "gblending/have_prev"] = data::NpyArray::make<std::int64_t>({}, {have_prev_ ? 1 : 0});
  }
  void load_state(const data::NpzMap& m, const std::string& p) override {
    auto get = [&](const std::string& k) -> const data::NpyArray& {
      auto it = m.find(p + k);
      if (it == m.end()) throw std::runtime_error("gblending: checkpoint lacks " + p + k);
      return it->second;
    };
    auto tri = [&](const std::string& k) {
      const auto x = get(k).template as<double>();
      if (x.size() != 3) throw std::runtime_error("gblending: " + p + k + " does not hold 3 values");
      return GbTriple{x[0], x[1], x[2]};
    };
    w_ = tri("gblending/weights");
    prevV_ = tri("gblending/prev_val");
    prevT_ = tri("gblending/prev_train");
    have_prev_ = get("gblending/have_prev").template as<std::int64_t>().at(0) != 0;
  }

  const GbTriple& weights() const { return w_; }

 private:
  // Sample-weighted mean CE of (out_a, out_g, out) over the batches, evaluation mode, no graph.
  static GbTriple mean_losses(erl::ErlmrModel<R, D>& m, const std::vector<train::Batch<R, D>>& batches) {
    NoGradGuard ng;
    nn::Context ctx{false, nullptr, 1.0};
    GbTriple s{};
    double n = 0;
    for (const auto& b : batches) {
      auto f = m.forward(b.x1, b.x2, ctx);
      const double nb = double(b.y.size());
      s[0] += double(cross_entropy(f.out_a, b.y).item()) * nb;
      s[1] += double(cross_entropy(f.out_g, b.y).item()) * nb;
      s[2] += double(cross_entropy(f.out, b.y).item()) * nb;
      n += nb;
    }
    if (n > 0)
      for (auto& x : s) x /= n;
    return s;
  }

  int super_epoch_;
  double holdout_;
  GbTriple w_{1.0 / 3, 1.0 / 3, 1.0 / 3};
  GbTriple prevV_{}, prevT_{};
  bool have_prev_ = false;
};

}  // namespace erlmr::balance
