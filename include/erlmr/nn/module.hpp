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
#include <stdexcept>
#include <type_traits>
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

// Every module is templated on the device D of its parameters and buffers (CPU by
// default); the same code builds the model on the CUDA device (erlmr/cuda.hpp), where
// the ops resolve to their CUDA overloads. Step counters (num_batches_tracked) stay
// on the host.
template <class T, class D = CpuDevice> struct NamedParam {
  std::string name;
  Var<T, D> var;
};
template <class T, class D = CpuDevice> struct NamedBuffer {
  std::string name;
  Tensor<T, D> tensor;
};

template <RealScalar R, class D = CpuDevice>
struct StateLists {
  std::vector<NamedParam<R, D>> params;
  std::vector<NamedParam<std::complex<R>, D>> complex_params;
  std::vector<NamedBuffer<R, D>> buffers;
  std::vector<NamedBuffer<std::int64_t>> counters;  // num_batches_tracked (host)
};

// Copies every parameter, buffer and counter of `from` into `to`, matched by position
// and checked by name and shape: how a model moves between devices (build it on the
// target device from the same configuration, then copy the state).
template <RealScalar R, class D1, class D2> void copy_state(const StateLists<R, D1>& from, StateLists<R, D2>& to) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("copy_state: " + what); };
  if (from.params.size() != to.params.size() || from.complex_params.size() != to.complex_params.size() ||
      from.buffers.size() != to.buffers.size() || from.counters.size() != to.counters.size())
    fail("the two models have different numbers of parameters or buffers");
  auto copy = [&](const std::string& n1, const std::string& n2, const auto& src, const auto& dst) {
    if (n1 != n2) fail("parameter '" + n1 + "' does not match '" + n2 + "'");
    if (!(src.shape() == dst.shape())) fail("'" + n1 + "' has shape " + src.shape().str() + " and " + dst.shape().str());
    using DT = typename std::decay_t<decltype(dst)>::device_type;
    const auto moved = src.template to<DT>();
    DT::copy(dst.data(), moved.data(), dst.nbytes());
  };
  for (std::size_t i = 0; i < from.params.size(); ++i)
    copy(from.params[i].name, to.params[i].name, from.params[i].var.value(), to.params[i].var.value());
  for (std::size_t i = 0; i < from.complex_params.size(); ++i)
    copy(from.complex_params[i].name, to.complex_params[i].name, from.complex_params[i].var.value(),
         to.complex_params[i].var.value());
  for (std::size_t i = 0; i < from.buffers.size(); ++i)
    copy(from.buffers[i].name, to.buffers[i].name, from.buffers[i].tensor, to.buffers[i].tensor);
  for (std::size_t i = 0; i < from.counters.size(); ++i)
    copy(from.counters[i].name, to.counters[i].name, from.counters[i].tensor, to.counters[i].tensor);
}

template <RealScalar R, class D = CpuDevice>
class Module {
 public:
  virtual ~Module() = default;
  virtual Var<R, D> forward(const Var<R, D>& x, Context& ctx) = 0;
  // Appends this module's state with names prefixed by `prefix` ("" or "a.b.").
  virtual void collect(const std::string& prefix, StateLists<R, D>& out) = 0;
};

inline std::string join(const std::string& prefix, const std::string& name) { return prefix + name; }

template <RealScalar R, class D> Var<R, D> param(Tensor<R, D> t) { return Var<R, D>(std::move(t), true); }

template <RealScalar R, class D = CpuDevice>
class Linear final : public Module<R, D> {
 public:
  Linear(std::int64_t in, std::int64_t out, Generator& g, bool bias = true) {
    const R bound = R(1) / std::sqrt(R(in));
    weight = param(Tensor<R, D>::uniform(Shape{out, in}, g, -bound, bound));
    if (bias) this->bias = param(Tensor<R, D>::uniform(Shape{out}, g, -bound, bound));
  }
  Var<R, D> forward(const Var<R, D>& x, Context&) override { return linear(x, weight, bias); }
  void collect(const std::string& p, StateLists<R, D>& out) override {
    out.params.push_back({p + "weight", weight});
    if (bias.defined()) out.params.push_back({p + "bias", bias});
  }
  Var<R, D> weight, bias;
};

template <RealScalar R, class D = CpuDevice>
class Conv2d final : public Module<R, D> {
 public:
  Conv2d(std::int64_t cin, std::int64_t cout, std::array<std::int64_t, 2> kernel, Generator& g,
         std::array<std::int64_t, 2> stride = {1, 1}, std::array<std::int64_t, 2> padding = {0, 0}, bool bias = true)
      : stride(stride), padding(padding) {
    const R bound = R(1) / std::sqrt(R(cin * kernel[0] * kernel[1]));
    weight = param(Tensor<R, D>::uniform(Shape{cout, cin, kernel[0], kernel[1]}, g, -bound, bound));
    if (bias) this->bias = param(Tensor<R, D>::uniform(Shape{cout}, g, -bound, bound));
  }
  Var<R, D> forward(const Var<R, D>& x, Context&) override { return conv2d(x, weight, bias, stride, padding); }
  void collect(const std::string& p, StateLists<R, D>& out) override {
    out.params.push_back({p + "weight", weight});
    if (bias.defined()) out.params.push_back({p + "bias", bias});
  }
  Var<R, D> weight, bias;
  std::array<std::int64_t, 2> stride, padding;
};

template <RealScalar R, class D = CpuDevice>
class BatchNorm2d final : public Module<R, D> {
 public:
  explicit BatchNorm2d(std::int64_t c, double eps = 1e-5, double momentum = 0.1)
      : weight(param(Tensor<R, D>::ones(Shape{c}))),
        bias(param(Tensor<R, D>::zeros(Shape{c}))),
        running_mean(Tensor<R, D>::zeros(Shape{c})),
        running_var(Tensor<R, D>::ones(Shape{c})),
        num_batches_tracked(Tensor<std::int64_t>::zeros(Shape{})),
        eps(eps),
        momentum(momentum) {}
  Var<R, D> forward(const Var<R, D>& x, Context& ctx) override {
    if (ctx.training) num_batches_tracked.data()[0] += 1;
    return batch_norm(x, weight, bias, running_mean, running_var, ctx.training, momentum, eps);
  }
  // This layer followed by a ReLU and a dropout of probability p (0: none) as one op
  // (batch_norm_relu_dropout: the same values, statistics and gradients). CPU only.
  Var<R, D> forward_relu_dropout(const Var<R, D>& x, Context& ctx, double p) {
    const double q = ctx.training ? p * ctx.dropout_scale : 0.0;
    if (q > 0 && !ctx.rng) throw std::logic_error("Dropout: training forward pass without a Generator in the Context");
    if (ctx.training) num_batches_tracked.data()[0] += 1;
    return batch_norm_relu_dropout(x, weight, bias, running_mean, running_var, ctx.training, momentum, eps, q, ctx.rng);
  }
  void collect(const std::string& p, StateLists<R, D>& out) override {
    out.params.push_back({p + "weight", weight});
    out.params.push_back({p + "bias", bias});
    out.buffers.push_back({p + "running_mean", running_mean});
    out.buffers.push_back({p + "running_var", running_var});
    out.counters.push_back({p + "num_batches_tracked", num_batches_tracked});
  }
  Var<R, D> weight, bias;
  Tensor<R, D> running_mean, running_var;
  Tensor<std::int64_t> num_batches_tracked;
  double eps, momentum;
};

template <RealScalar R, class D = CpuDevice>
class ReLU final : public Module<R, D> {
 public:
  Var<R, D> forward(const Var<R, D>& x, Context&) override { return relu(x); }
  void collect(const std::string&, StateLists<R, D>&) override {}
};

template <RealScalar R, class D = CpuDevice>
class Dropout final : public Module<R, D> {
 public:
  explicit Dropout(double p) : p(p) {}
  Var<R, D> forward(const Var<R, D>& x, Context& ctx) override {
    const double q = p * ctx.dropout_scale;
    if (!ctx.training || q == 0) return x;
    if (!ctx.rng) throw std::logic_error("Dropout: training forward pass without a Generator in the Context");
    return dropout(x, q, true, *ctx.rng);
  }
  void collect(const std::string&, StateLists<R, D>&) override {}
  double p;
};

template <RealScalar R, class D = CpuDevice>
class Sequential final : public Module<R, D> {
 public:
  template <class M, class... Args> M& add(Args&&... args) {
    auto m = std::make_unique<M>(std::forward<Args>(args)...);
    M& ref = *m;
    layers.push_back(std::move(m));
    return ref;
  }
  // Runs the layers in order. On the CPU, BatchNorm2d → ReLU [→ Dropout] runs as one fused
  // op (BatchNorm2d::forward_relu_dropout) unless fuse is false; the results are the same.
  Var<R, D> forward(const Var<R, D>& x, Context& ctx) override {
    Var<R, D> h = x;
    for (std::size_t i = 0; i < layers.size(); ++i) {
      if constexpr (std::is_same_v<D, CpuDevice>) {
        auto* bn = fuse ? dynamic_cast<BatchNorm2d<R, D>*>(layers[i].get()) : nullptr;
        if (bn && i + 1 < layers.size() && dynamic_cast<ReLU<R, D>*>(layers[i + 1].get())) {
          auto* drop = i + 2 < layers.size() ? dynamic_cast<Dropout<R, D>*>(layers[i + 2].get()) : nullptr;
          // A dropout that would throw (no Generator) runs unfused, so that it throws after
          // the batch norm has updated its statistics, as the layers one by one do.
          const bool throws = drop && ctx.training && drop->p * ctx.dropout_scale > 0 && !ctx.rng;
          if (!throws) {
            h = bn->forward_relu_dropout(h, ctx, drop ? drop->p : 0.0);
            i += drop ? 2 : 1;
            continue;
          }
        }
      }
      h = layers[i]->forward(h, ctx);
    }
    return h;
  }
  void collect(const std::string& p, StateLists<R, D>& out) override {
    for (std::size_t i = 0; i < layers.size(); ++i) layers[i]->collect(p + std::to_string(i) + ".", out);
  }
  std::vector<std::unique_ptr<Module<R, D>>> layers;
  bool fuse = true;
};

}  // namespace erlmr::nn
