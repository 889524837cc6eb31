// erlmr/optim/optimizer.hpp — SGD (momentum, weight decay, Nesterov) and Adam/AdamW.
//
// Update rules are PyTorch's (torch.optim.SGD, Adam, AdamW), applied in place to
// each parameter's value from its grad(). A complex parameter behaves exactly
// like its (real, imaginary) pair of real parameters: the gradient convention
// of spec §2 makes z ← z − lr·g the same step on x and y, and Adam's second
// moment is kept per real component (|g|² would couple the two parts).
// State (momentum buffers, step counts) is exposed for checkpoints, so a
// resumed run continues bitwise identically.
#pragma once
#include <cmath>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "erlmr/autograd/variable.hpp"

namespace erlmr::optim {

// A parameter seen as a flat array of real components (2 per complex element), on device D.
template <RealScalar R, class D = CpuDevice> struct RealView {
  R* value;
  const R* grad;  // null when the parameter received no gradient
  std::int64_t n;
};

template <RealScalar R, class D> RealView<R, D> real_view(const Var<R, D>& v) {
  return {v.value().data(), v.grad().defined() ? v.grad().data() : nullptr, v.numel()};
}
template <RealScalar R, class D> RealView<R, D> real_view(const Var<std::complex<R>, D>& v) {
  return {reinterpret_cast<R*>(v.value().data()), v.grad().defined() ? reinterpret_cast<const R*>(v.grad().data()) : nullptr,
          2 * v.numel()};
}

// The parameters an optimiser updates (real and complex, on device D), each read through
// a RealView when the step runs; the CPU optimisers below and the device ones
// (cuda/optim.hpp) derive from it.
template <RealScalar R, class D = CpuDevice>
class ParamViews {
 public:
  virtual ~ParamViews() = default;
  void add_params(const std::vector<Var<R, D>>& ps) {
    for (const auto& p : ps) views_.push_back([p] { return real_view(p); });
    grow_state();
  }
  void add_params(const std::vector<Var<std::complex<R>, D>>& ps) {
    for (const auto& p : ps) views_.push_back([p] { return real_view(p); });
    grow_state();
  }
  double lr = 1e-3;
  std::int64_t steps = 0;
  virtual void step() = 0;

  // Checkpoint state as host vectors: state_count() slots (slot i belongs to parameter
  // i mod #parameters; kinds such as Adam's m and v follow each other), each empty until
  // the optimiser has created it.
  virtual std::size_t state_count() const = 0;
  virtual std::vector<R> get_state(std::size_t i) const = 0;
  // Sets slot i (empty: not created yet); a vector of the wrong length throws instead of
  // letting a later step read past it.
  void set_state(std::size_t i, const std::vector<R>& v) {
    if (i >= state_count()) throw std::out_of_range("optimizer state slot " + std::to_string(i) + " does not exist");
    const std::int64_t n = views_[i % views_.size()]().n;
    if (!v.empty() && static_cast<std::int64_t>(v.size()) != n)
      throw std::runtime_error("optimizer state slot " + std::to_string(i) + " holds " + std::to_string(v.size()) +
                               " values; its parameter has " + std::to_string(n));
    set_state_unchecked(i, v);
  }

 protected:
  virtual void grow_state() = 0;  // size the per-parameter state for views_
  virtual void set_state_unchecked(std::size_t i, const std::vector<R>& v) = 0;
  std::vector<std::function<RealView<R, D>()>> views_;
};

template <RealScalar R>
class Optimizer : public ParamViews<R> {
 public:
  // Flat state for checkpoints: one vector per parameter and slot.
  virtual std::vector<std::vector<R>*> state_buffers() = 0;
  std::size_t state_count() const override { return mutable_self().state_buffers().size(); }
  std::vector<R> get_state(std::size_t i) const override { return *mutable_self().state_buffers().at(i); }

 protected:
  void set_state_unchecked(std::size_t i, const std::vector<R>& v) override { *state_buffers().at(i) = v; }

 private:
  Optimizer& mutable_self() const { return const_cast<Optimizer&>(*this); }
};

// SGD's and Adam's hyper-parameters (with their checks and Adam's bias corrections), shared
// by the CPU optimisers below and the device ones (cuda/optim.hpp).
struct SgdOptions {
  SgdOptions(double momentum, double weight_decay, bool nesterov, double dampening)
      : momentum(momentum), weight_decay(weight_decay), dampening(dampening), nesterov(nesterov) {
    if (nesterov && (momentum <= 0 || dampening != 0))
      throw std::invalid_argument("SGD: Nesterov momentum requires momentum > 0 and dampening = 0");
  }
  double momentum, weight_decay, dampening;
  bool nesterov;
};
struct AdamOptions {
  double beta1, beta2, eps, weight_decay;
  bool decoupled;  // AdamW
  // 1 − β1ᵗ and 1 − β2ᵗ after t steps.
  std::pair<double, double> bias_corrections(std::int64_t t) const {
    return {1 - std::pow(beta1, double(t)), 1 - std::pow(beta2, double(t))};
  }
};

// torch.optim.SGD: g ← g + wd·p; b ← μ·b + (1−dampening)·g (b = g on the first step);
// g ← g + μ·b (Nesterov) or g ← b; p ← p − lr·g.
template <RealScalar R>
class SGD final : public Optimizer<R>, public SgdOptions {
 public:
  SGD(double lr, double momentum = 0, double weight_decay = 0, bool nesterov = false, double dampening = 0)
      : SgdOptions(momentum, weight_decay, nesterov, dampening) {
    this->lr = lr;
  }
  void step() override {
    for (std::size_t k = 0; k < this->views_.size(); ++k) {
      auto v = this->views_[k]();
      if (!v.grad) continue;
      auto& buf = buffers_[k];
      const bool first = buf.empty();
      if (momentum != 0 && first) buf.assign(static_cast<std::size_t>(v.n), R(0));
      // Elementwise, in parallel chunks (any split gives the same bits), each variant its own
      // branch-free loop over local restrict pointers so that it vectorises.
      const R wd = R(weight_decay), mu = R(momentum), damp = R(1 - dampening), lr = R(this->lr);
      R* const value = v.value;
      const R* const grad = v.grad;
      R* const bp = buf.data();
      auto run = [&]<bool Momentum, bool First, bool Nesterov>() {
        CpuDevice::parallel_for(v.n, 1 << 14, [=](std::int64_t b, std::int64_t e) {
          R* __restrict p = value;
          const R* __restrict gr = grad;
          R* __restrict mb = bp;
          for (std::int64_t i = b; i < e; ++i) {
            R g = gr[i] + wd * p[i];
            if constexpr (Momentum) {
              if constexpr (First) mb[i] = g;
              else mb[i] = mu * mb[i] + damp * g;
              g = Nesterov ? g + mu * mb[i] : mb[i];
            }
            p[i] -= lr * g;
          }
        });
      };
      if (momentum == 0) run.template operator()<false, false, false>();
      else if (first) nesterov ? run.template operator()<true, true, true>() : run.template operator()<true, true, false>();
      else nesterov ? run.template operator()<true, false, true>() : run.template operator()<true, false, false>();
    }
    ++this->steps;
  }
  std::vector<std::vector<R>*> state_buffers() override {
    std::vector<std::vector<R>*> out;
    for (auto& b : buffers_) out.push_back(&b);
    return out;
  }

 private:
  void grow_state() override { buffers_.resize(this->views_.size()); }
  std::vector<std::vector<R>> buffers_;
};

// torch.optim.Adam / AdamW (decoupled = true):
//   Adam:  g ← g + wd·p.   AdamW: p ← p·(1 − lr·wd).
//   m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²;  p ← p − lr·(m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + ε).
template <RealScalar R>
class Adam final : public Optimizer<R>, public AdamOptions {
 public:
  Adam(double lr, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weight_decay = 0, bool decoupled = false)
      : AdamOptions{beta1, beta2, eps, weight_decay, decoupled} {
    this->lr = lr;
  }
  void step() override {
    ++this->steps;
    const auto [bc1, bc2] = bias_corrections(this->steps);
    for (std::size_t k = 0; k < this->views_.size(); ++k) {
      auto v = this->views_[k]();
      if (!v.grad) continue;
      auto& m = m_[k];
      auto& s = v_[k];
      if (m.empty()) {
        m.assign(static_cast<std::size_t>(v.n), R(0));
        s.assign(static_cast<std::size_t>(v.n), R(0));
      }
      const R shrink = R(1 - this->lr * weight_decay), wd = R(weight_decay), b1 = R(beta1), c1 = R(1 - beta1), b2 = R(beta2),
              c2 = R(1 - beta2), lr = R(this->lr), r1 = R(bc1), r2 = R(bc2), ep = R(eps);
      R* const value = v.value;
      const R* const grad = v.grad;
      R* const mp = m.data();
      R* const sp = s.data();
      auto run = [&]<bool Decoupled>() {  // elementwise, parallel chunks, vectorisable (as in SGD)
        CpuDevice::parallel_for(v.n, 1 << 14, [=](std::int64_t b, std::int64_t e) {
          R* __restrict p = value;
          const R* __restrict gr = grad;
          R* __restrict mm = mp;
          R* __restrict ss = sp;
          for (std::int64_t i = b; i < e; ++i) {
            R g = gr[i];
            if constexpr (Decoupled) p[i] *= shrink;
            else g += wd * p[i];
            mm[i] = b1 * mm[i] + c1 * g;
            ss[i] = b2 * ss[i] + c2 * g * g;
            p[i] -= lr * (mm[i] / r1) / (std::sqrt(ss[i] / r2) + ep);
          }
        });
      };
      if (decoupled) run.template operator()<true>();
      else run.template operator()<false>();
    }
  }
  std::vector<std::vector<R>*> state_buffers() override {
    std::vector<std::vector<R>*> out;
    for (auto& b : m_) out.push_back(&b);
    for (auto& b : v_) out.push_back(&b);
    return out;
  }

 private:
  void grow_state() override {
    m_.resize(this->views_.size());
    v_.resize(this->views_.size());
  }
  std::vector<std::vector<R>> m_, v_;
};

template <RealScalar R, class D> void zero_grad(const std::vector<Var<R, D>>& ps) {
  for (const auto& p : ps) p.zero_grad();
}

// The SGD and Adam classes for device D (the CUDA ones are named in cuda/optim.hpp).
template <class D> struct OptimizersFor;
template <> struct OptimizersFor<CpuDevice> {
  template <RealScalar R> using SGD = optim::SGD<R>;
  template <RealScalar R> using Adam = optim::Adam<R>;
};

// An optimiser by name for parameters on device D: sgd (momentum, weight decay, Nesterov),
// adam (L2 weight decay) or adamw (decoupled), with PyTorch's default betas and ε.
template <RealScalar R, class D = CpuDevice>
std::unique_ptr<ParamViews<R, D>> make_optimizer(const std::string& kind, double lr, double momentum, double weight_decay,
                                                 bool nesterov) {
  using O = OptimizersFor<D>;
  if (kind == "sgd") return std::make_unique<typename O::template SGD<R>>(lr, momentum, weight_decay, nesterov);
  if (kind == "adam") return std::make_unique<typename O::template Adam<R>>(lr, 0.9, 0.999, 1e-8, weight_decay, false);
  if (kind == "adamw") return std::make_unique<typename O::template Adam<R>>(lr, 0.9, 0.999, 1e-8, weight_decay, true);
  throw std::invalid_argument("unknown optimizer '" + kind + "' (expected sgd, adam or adamw)");
}

}  // namespace erlmr::optim
