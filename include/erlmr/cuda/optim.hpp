// erlmr/cuda/optim.hpp — SGD and Adam/AdamW for parameters on the CUDA device.
//
// The same update rules as optim/optimizer.hpp (PyTorch's), run by the kernels of
// src/cuda/optim.cu on each parameter viewed as a flat array of real components
// (2 per complex element, so a complex parameter behaves like its (Re, Im) pair).
// Momentum and moment buffers live on the device; get_state() copies them out
// in the CPU optimizer's layout for checkpoints (get_state/set_state).
#pragma once
#include <cmath>
#include <functional>
#include <stdexcept>
#include <vector>

#include "erlmr/cuda/ops.hpp"
#include "erlmr/optim/optimizer.hpp"

namespace erlmr::optim {

template <RealScalar R>
class CudaOptimizer : public ParamViews<R, CudaDevice> {
 public:
  // Checkpoint slots in the CPU optimizers' order (state_buffers()), copied through the host.
  std::size_t state_count() const override { return slots().size(); }
  std::vector<R> get_state(std::size_t i) const override {
    const CudaTensor<R>& t = *slots().at(i);
    return t.defined() ? t.to_vector() : std::vector<R>{};
  }

 protected:
  // Every state tensor, in checkpoint order (undefined until created).
  virtual std::vector<CudaTensor<R>*> slots() const = 0;
  void set_state_unchecked(std::size_t i, const std::vector<R>& v) override {
    CudaTensor<R>& t = *slots().at(i);
    t = v.empty() ? CudaTensor<R>() : CudaTensor<R>::from_vector(Shape{static_cast<std::int64_t>(v.size())}, v);
  }
};

template <RealScalar R>
class CudaSGD final : public CudaOptimizer<R>, public SgdOptions {
 public:
  CudaSGD(double lr, double momentum = 0, double weight_decay = 0, bool nesterov = false, double dampening = 0)
      : SgdOptions(momentum, weight_decay, nesterov, dampening) {
    this->lr = lr;
  }
  void step() override {
    for (std::size_t k = 0; k < this->views_.size(); ++k) {
      const auto v = this->views_[k]();
      if (!v.grad) continue;
      const bool first = momentum != 0 && !buf_[k].defined();
      if (first) buf_[k] = CudaTensor<R>(Shape{v.n});
      cuda::sgd_step<R>(v.value, v.grad, momentum != 0 ? buf_[k].data() : nullptr, v.n, this->lr, momentum, dampening,
                        weight_decay, nesterov, first);
    }
    ++this->steps;
  }
  std::vector<CudaTensor<R>*> slots() const override {
    std::vector<CudaTensor<R>*> out;
    for (auto& b : buf_) out.push_back(&b);
    return out;
  }

 private:
  void grow_state() override { buf_.resize(this->views_.size()); }
  mutable std::vector<CudaTensor<R>> buf_;  // mutable: slots() hands out handles for checkpoints
};

template <RealScalar R>
class CudaAdam final : public CudaOptimizer<R>, public AdamOptions {
 public:
  CudaAdam(double lr, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weight_decay = 0, bool decoupled = false)
      : AdamOptions{beta1, beta2, eps, weight_decay, decoupled} {
    this->lr = lr;
  }
  void step() override {
    ++this->steps;
    const auto [bc1, bc2] = bias_corrections(this->steps);
    for (std::size_t k = 0; k < this->views_.size(); ++k) {
      const auto v = this->views_[k]();
      if (!v.grad) continue;
      if (!m_[k].defined()) {
        m_[k] = CudaTensor<R>::zeros(Shape{v.n});
        v_[k] = CudaTensor<R>::zeros(Shape{v.n});
      }
      cuda::adam_step<R>(v.value, v.grad, m_[k].data(), v_[k].data(), v.n, this->lr, beta1, beta2, eps, weight_decay, decoupled,
                         bc1, bc2);
    }
  }
  std::vector<CudaTensor<R>*> slots() const override {
    std::vector<CudaTensor<R>*> out;
    for (auto& b : m_) out.push_back(&b);
    for (auto& b : v_) out.push_back(&b);
    return out;
  }

 private:
  void grow_state() override {
    m_.resize(this->views_.size());
    v_.resize(this->views_.size());
  }
  mutable std::vector<CudaTensor<R>> m_, v_;
};

// The trainer's optimisers for parameters on the GPU (optim::make_optimizer<R, CudaDevice>).
template <> struct OptimizersFor<CudaDevice> {
  template <RealScalar R> using SGD = CudaSGD<R>;
  template <RealScalar R> using Adam = CudaAdam<R>;
};

}  // namespace erlmr::optim
