// erlmr/nn/module.hpp — layers with PyTorch's names, shapes and default initialisation.
//
// A Module owns parameters (leaf Vars with requires_grad) and buffers (tensors
// such as batch-norm running statistics) and lists them under PyTorch
// state_dict names, so that a checkpoint maps one-to-one onto a PyTorch model.
// Sequential names its children by index, counting parameter-free layers too
// (ReLU, Dropout), exactly as torch.nn.Sequential does: "features.4.weight".
//
// Initialisation follows PyTorch's defaults (so training behaves like the
// released code): Linear and Conv2d use kaiming_uniform(a = √5), which is
// U(−1/√fan_in, 1/√fan_in) for the weight, and U(−1/√fan_in, 1/√fan_in) for
// the bias; BatchNorm starts at γ = 1, β = 0, running mean 0, running var 1.
// The random numbers come from erlmr's Generator, so values differ from
// PyTorch's while the distributions are the same.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "erlmr/ops/conv.hpp"
#include "erlmr/ops/loss.hpp"
#include "erlmr/ops/norm.hpp"

namespace erlmr::nn {

// What a forward pass needs besides its input.
struct Context {
  bool training = true;
  Generator* rng = nullptr;  // dropout masks; required when training with dropout
  double dropout_scale = 1.0;  // multiplies every dropout p (0 turns dropout off, as the fixtures need)
};

template <class T> struct NamedParam {
  std::string name;
  Var<T> var;
};
template <class T> struct NamedBuffer {
  std::string name;
  Tensor<T> tensor;
};

template <RealScalar R>
struct StateLists {
  std::vector<NamedParam<R>> params;
  std::vector<NamedParam<std::complex<R>>> complex_params;
  std::vector<NamedBuffer<R>> buffers;
  std::vector<NamedBuffer<std::int64_t>> counters;  // num_batches_tracked
};

template <RealScalar R>
class Module {
 public:
  virtual ~Module() = default;
  virtual Var<R> forward(const Var<R>& x, Context& ctx) = 0;
  // Appends this module's state with names prefixed by `prefix` ("" or "a.b.").
  virtual void collect(const std::string& prefix, StateLists<R>& out) = 0;
};

inline std::string join(const std::string& prefix, const std::string& name) { return prefix + name; }

template <RealScalar R> Var<R> param(Tensor<R> t) { return Var<R>(std::move(t), true); }

template <RealScalar R>
class Linear final : public Module<R> {
 public:
  Linear(std::int64_t in, std::int64_t out, Generator& g, bool bias = true) {
    const R bound = R(1) / std::sqrt(R(in));
    weight = param(Tensor<R>::uniform(Shape{out, in}, g, -bound, bound));
    if (bias) this->bias = param(Tensor<R>::uniform(Shape{out}, g, -bound, bound));
  }
  Var<R> forward(const Var<R>& x, Context&) override { return linear(x, weight, bias); }
  void collect(const std::string& p, StateLists<R>& out) override {
    out.params.push_back({p + "weight", weight});
    if (bias.defined()) out.params.push_back({p + "bias", bias});
  }
  Var<R> weight, bias;
};

template <RealScalar R>
class Conv2d final : public Module<R> {
 public:
  Conv2d(std::int64_t cin, std::int64_t cout, std::array<std::int64_t, 2> kernel, Generator& g,
         std::array<std::int64_t, 2> stride = {1, 1}, std::array<std::int64_t, 2> padding = {0, 0}, bool bias = true)
      : stride(stride), padding(padding) {
    const R bound = R(1) / std::sqrt(R(cin * kernel[0] * kernel[1]));
    weight = param(Tensor<R>::uniform(Shape{cout, cin, kernel[0], kernel[1]}, g, -bound, bound));
    if (bias) this->bias = param(Tensor<R>::uniform(Shape{cout}, g, -bound, bound));
  }
  Var<R> forward(const Var<R>& x, Context&) override { return conv2d(x, weight, bias, stride, padding); }
  void collect(const std::string& p, StateLists<R>& out) override {
    out.params.push_back({p + "weight", weight});
    if (bias.defined()) out.params.push_back({p + "bias", bias});
  }
  Var<R> weight, bias;
  std::array<std::int64_t, 2> stride, padding;
};

template <RealScalar R>
class BatchNorm2d final : public Module<R> {
 public:
  explicit BatchNorm2d(std::int64_t c, double eps = 1e-5, double momentum = 0.1)
      : weight(param(Tensor<R>::ones(Shape{c}))),
        bias(param(Tensor<R>::zeros(Shape{c}))),
        running_mean(Tensor<R>::zeros(Shape{c})),
        running_var(Tensor<R>::ones(Shape{c})),
        num_batches_tracked(Tensor<std::int64_t>::zeros(Shape{})),
        eps(eps),
        momentum(momentum) {}
  Var<R> forward(const Var<R>& x, Context& ctx) override {
    if (ctx.training) num_batches_tracked.data()[0] += 1;
    return batch_norm(x, weight, bias, running_mean, running_var, ctx.training, momentum, eps);
  }
  void collect(const std::string& p, StateLists<R>& out) override {
    out.params.push_back({p + "weight", weight});
    out.params.push_back({p + "bias", bias});
    out.buffers.push_back({p + "running_mean", running_mean});
    out.buffers.push_back({p + "running_var", running_var});
    out.counters.push_back({p + "num_batches_tracked", num_batches_tracked});
  }
  Var<R> weight, bias;
  Tensor<R> running_mean, running_var;
  Tensor<std::int64_t> num_batches_tracked;
  double eps, momentum;
};

template <RealScalar R>
class ReLU final : public Module<R> {
 public:
  Var<R> forward(const Var<R>& x, Context&) override { return relu(x); }
  void collect(const std::string&, StateLists<R>&) override {}
};

template <RealScalar R>
class Dropout final : public Module<R> {
 public:
  explicit Dropout(double p) : p(p) {}
  Var<R> forward(const Var<R>& x, Context& ctx) override {
    const double q = p * ctx.dropout_scale;
    if (!ctx.training || q == 0) return x;
    if (!ctx.rng) throw std::logic_error("Dropout: training forward pass without a Generator in the Context");
    return dropout(x, q, true, *ctx.rng);
  }
  void collect(const std::string&, StateLists<R>&) override {}
  double p;
};

template <RealScalar R>
class Sequential final : public Module<R> {
 public:
  template <class M, class... Args> M& add(Args&&... args) {
    auto m = std::make_unique<M>(std::forward<Args>(args)...);
    M& ref = *m;
    layers.push_back(std::move(m));
    return ref;
  }
  Var<R> forward(const Var<R>& x, Context& ctx) override {
    Var<R> h = x;
    for (auto& l : layers) h = l->forward(h, ctx);
    return h;
  }
  void collect(const std::string& p, StateLists<R>& out) override {
    for (std::size_t i = 0; i < layers.size(); ++i) layers[i]->collect(p + std::to_string(i) + ".", out);
  }
  std::vector<std::unique_ptr<Module<R>>> layers;
};

}  // namespace erlmr::nn
