// erlmr/cuda/optim.hpp — SGD and Adam/AdamW for parameters on the CUDA device.
//
// The same update rules as optim/optimizer.hpp (PyTorch's), run by the kernels of
// src/cuda/optim.cu on each parameter viewed as a flat array of real components
// (2 per complex element, so a complex parameter behaves like its (Re, Im) pair).
// Momentum and moment buffers live on the device; state_to_host() copies them out
// in the CPU optimizer's layout for checkpoints.
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
  // Every state buffer copied to the host (empty for buffers not created yet), in the
  // order of the CPU optimizer's state_buffers().
  virtual std::vector<std::vector<R>> state_to_host() const = 0;

 protected:
  static std::vector<R> host(const CudaTensor<R>& t) { return t.defined() ? t.to_vector() : std::vector<R>{}; }
};

template <RealScalar R>
class CudaSGD final : public CudaOptimizer<R> {
 public:
  CudaSGD(double lr, double momentum = 0, double weight_decay = 0, bool nesterov = false, double dampening = 0)
      : momentum(momentum), weight_decay(weight_decay), dampening(dampening), nesterov(nesterov) {
    this->lr = lr;
    if (nesterov && (momentum <= 0 || dampening != 0))
      throw std::invalid_argument("SGD: Nesterov momentum requires momentum > 0 and dampening = 0");
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
  std::vector<std::vector<R>> state_to_host() const override {
    std::vector<std::vector<R>> out;
    for (const auto& b : buf_) out.push_back(this->host(b));
    return out;
  }
  double momentum, weight_decay, dampening;
  bool nesterov;

 private:
  void grow_state() override { buf_.resize(this->views_.size()); }
  std::vector<CudaTensor<R>> buf_;
};

template <RealScalar R>
class CudaAdam final : public CudaOptimizer<R> {
 public:
  CudaAdam(double lr, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weight_decay = 0, bool decoupled = false)
      : beta1(beta1), beta2(beta2), eps(eps), weight_decay(weight_decay), decoupled(decoupled) {
    this->lr = lr;
  }
  void step() override {
    ++this->steps;
    const double t = double(this->steps);
    const double bc1 = 1 - std::pow(beta1, t), bc2 = 1 - std::pow(beta2, t);
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
  std::vector<std::vector<R>> state_to_host() const override {
    std::vector<std::vector<R>> out;
    for (const auto& b : m_) out.push_back(this->host(b));
    for (const auto& b : v_) out.push_back(this->host(b));
    return out;
  }
  double beta1, beta2, eps, weight_decay;
  bool decoupled;

 private:
  void grow_state() override {
    m_.resize(this->views_.size());
    v_.resize(this->views_.size());
  }
  std::vector<CudaTensor<R>> m_, v_;
};

}  // namespace erlmr::optim
