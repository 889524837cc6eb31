// erlmr/erl/model.hpp — the ERL-MR models: the sensor reference model (spec §3) and the
// general two-modality models (spec §4).
//
// Sensor model (Arch::sensor, both inputs (B, 1, 3, T)):
//   x_m (B, 1, 3, T) ─ encoder_m ─▶ A_m (B, 16, T−2)           (phases)
//   Z_m = μ_m ⊙ exp(i·A_m), flattened to (B, D), D = 16(T−2)  (Euler map)
//   Z_m = dropout(Z_m)                                          (separate Re/Im masks)
//   Y_m = CReLU(Z_m Wᵀ + (1+i)·b),  W ∈ R^{D/2 × D} shared      (one real projection)
//   θ_m = arg Y_m ∈ [0, π/2],  h_m = [Re Y_m ; Im Y_m] ∈ R^{B×D}
//   (out, out_a, out_g) = fusion(h_a, h_g)
//
// The Euler block is written on complex tensors; it equals the released code's
// real-pair form r' = ReLU(W μcosA + b), p' = ReLU(W μsinA + b), θ = atan2(p', r'),
// h = [r'; p'] (tests/erl check this). Parameter names are the released code's
// PyTorch state_dict names, so checkpoints move between the two unchanged.
//
// General models (Arch::general, spec §4): each modality's encoder is chosen by the rank
// of its per-sample input shape — (C, H, W) → CnnEncoder (stem + two residual stages +
// global average pooling), (F) → MlpEncoder — and ends in d = `width` channels, so
// A_m is (B, d, 1): the Euler block runs unchanged with μ_m ∈ R^d, the shared projection
// d → d/2, h_m = [Re Y_m ; Im Y_m] ∈ R^d and a fusion width of 2d. Their state names follow torchvision's
// BasicBlock ("encoder.x1.layer1.conv1.weight", ".downsample.0.weight", ...).
#pragma once
#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "erlmr/nn/module.hpp"
#include "erlmr/ops/complex.hpp"

namespace erlmr::erl {

enum class FusionKind { concat, sum, film, gated };

inline FusionKind parse_fusion(const std::string& s) {
  if (s == "concat") return FusionKind::concat;
  if (s == "sum") return FusionKind::sum;
  if (s == "film") return FusionKind::film;
  if (s == "gated") return FusionKind::gated;
  throw std::invalid_argument("unknown fusion '" + s + "' (expected concat, sum, film or gated)");
}
inline const char* fusion_name(FusionKind f) {
  switch (f) {
    case FusionKind::concat: return "concat";
    case FusionKind::sum: return "sum";
    case FusionKind::film: return "film";
    case FusionKind::gated: return "gated";
  }
  return "?";
}

enum class Arch { sensor, general };
inline Arch parse_arch(const std::string& s) {
  if (s == "sensor") return Arch::sensor;
  if (s == "general") return Arch::general;
  throw std::invalid_argument("unknown architecture '" + s + "' (expected sensor or general)");
}
inline const char* arch_name(Arch a) { return a == Arch::sensor ? "sensor" : "general"; }

struct ModelConfig {
  Arch arch = Arch::sensor;
  std::int64_t window = 200;        // sensor: T
  std::int64_t classes = 12;        // K
  FusionKind fusion = FusionKind::concat;
  double dropout = 0.5;
  std::int64_t channels = 16;       // sensor: encoder output channels (phases per position)
  std::vector<std::int64_t> input_a, input_g;  // general: per-sample input shapes, (C, H, W) or (F)
  std::int64_t width = 64;          // general: d, the pooled feature width of both encoders (even)
  std::int64_t phase_channels() const { return arch == Arch::sensor ? channels : width; }  // length of μ_m
  std::int64_t positions() const { return arch == Arch::sensor ? window - 2 : 1; }
  std::int64_t feature_dim() const { return phase_channels() * positions(); }  // D: flattened Euler features
  std::int64_t projection_dim() const { return feature_dim() / 2; }            // D/2
  std::int64_t fused_dim() const { return 2 * projection_dim(); }              // width of h_m = [Re; Im]
};

// What every encoder provides: phases A_m of shape (B, C, P) (the sensor encoder: C = 16
// channels × P = T − 2 positions; the general encoders: C = d pooled channels, P = 1).
template <RealScalar R, class D = CpuDevice>
class Encoder {
 public:
  virtual ~Encoder() = default;
  virtual Var<R, D> forward(const Var<R, D>& x, nn::Context& ctx) = 0;
  virtual void collect(const std::string& prefix, nn::StateLists<R, D>& out) = 0;
  virtual std::string describe() const = 0;
};

// Conv(1→64, 2) BN ReLU Drop | Conv(64→64, 2) BN ReLU Drop | Conv(64→32, 1) BN ReLU Drop | Conv(32→16, 1) BN ReLU
template <RealScalar R, class D = CpuDevice>
class SensorEncoder final : public Encoder<R, D> {
 public:
  SensorEncoder(const ModelConfig& cfg, Generator& g) : cfg_(cfg) {
    auto block = [&](std::int64_t cin, std::int64_t cout, std::int64_t k, bool drop) {
      features.template add<nn::Conv2d<R, D>>(cin, cout, std::array<std::int64_t, 2>{k, k}, g);
      features.template add<nn::BatchNorm2d<R, D>>(cout);
      features.template add<nn::ReLU<R, D>>();
      if (drop) features.template add<nn::Dropout<R, D>>(cfg.dropout);
    };
    block(1, 64, 2, true);
    block(64, 64, 2, true);
    block(64, 32, 1, true);
    block(32, cfg.channels, 1, false);
  }
  // (B, 1, 3, T) -> (B, 16, T − 2)
  Var<R, D> forward(const Var<R, D>& x, nn::Context& ctx) override {
    const Shape& s = x.shape();
    if (s.rank() != 4 || s[1] != 1 || s[2] != 3 || s[3] != cfg_.window)
      throw ShapeError("SensorEncoder: input " + s.str() + " is not (B, 1, 3, " + std::to_string(cfg_.window) + ")");
    auto h = features.forward(x, ctx);  // (B, 16, 1, T − 2)
    return reshape(h, {s[0], cfg_.channels, cfg_.positions()});
  }
  void collect(const std::string& p, nn::StateLists<R, D>& out) override { features.collect(p + "features.", out); }
  std::string describe() const override { return "sensor CNN (1, 3, " + std::to_string(cfg_.window) + ") -> (16, T-2)"; }
  nn::Sequential<R, D> features;

 private:
  ModelConfig cfg_;
};

// torchvision's BasicBlock: relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut(x)), 3×3
// convolutions without bias, shortcut = 1×1 convolution + batch norm when the stride or the
// width changes (the identity otherwise).
template <RealScalar R, class D = CpuDevice>
class BasicBlock final : public nn::Module<R, D> {
 public:
  BasicBlock(std::int64_t cin, std::int64_t cout, std::int64_t stride, Generator& g)
      : conv1(cin, cout, {3, 3}, g, {stride, stride}, {1, 1}, false),
        bn1(cout),
        conv2(cout, cout, {3, 3}, g, {1, 1}, {1, 1}, false),
        bn2(cout) {
    if (stride != 1 || cin != cout) {
      down_conv = std::make_unique<nn::Conv2d<R, D>>(cin, cout, std::array<std::int64_t, 2>{1, 1}, g,
                                                  std::array<std::int64_t, 2>{stride, stride}, std::array<std::int64_t, 2>{0, 0}, false);
      down_bn = std::make_unique<nn::BatchNorm2d<R, D>>(cout);
    }
  }
  Var<R, D> forward(const Var<R, D>& x, nn::Context& ctx) override {
    auto h = relu(bn1.forward(conv1.forward(x, ctx), ctx));
    h = bn2.forward(conv2.forward(h, ctx), ctx);
    auto s = down_conv ? down_bn->forward(down_conv->forward(x, ctx), ctx) : x;
    return relu(add(h, s));
  }
  void collect(const std::string& p, nn::StateLists<R, D>& out) override {
    conv1.collect(p + "conv1.", out);
    bn1.collect(p + "bn1.", out);
    conv2.collect(p + "conv2.", out);
    bn2.collect(p + "bn2.", out);
    if (down_conv) {
      down_conv->collect(p + "downsample.0.", out);
      down_bn->collect(p + "downsample.1.", out);
    }
  }
  nn::Conv2d<R, D> conv1;
  nn::BatchNorm2d<R, D> bn1;
  nn::Conv2d<R, D> conv2;
  nn::BatchNorm2d<R, D> bn2;
  std::unique_ptr<nn::Conv2d<R, D>> down_conv;
  std::unique_ptr<nn::BatchNorm2d<R, D>> down_bn;
};

// Small ResNet for (C, H, W) inputs (images, spectrograms):
//   stem  Conv3×3(C → d/4, stride 2, pad 1) BN ReLU       (stage widths at least 4)
//   layer1 BasicBlock(d/4 → d/2, stride 2)
//   layer2 BasicBlock(d/2 → d,   stride 2)
//   global average pooling → (B, d) → (B, d, 1)
// Each stage halves the resolution, so a 64 × 101 spectrogram reaches 8 × 13 and a
// 28 × 28 image 4 × 4 before pooling. The pooled values follow a ReLU, so the phases are ≥ 0
// like the sensor encoder's.
template <RealScalar R, class D = CpuDevice>
class CnnEncoder final : public Encoder<R, D> {
 public:
  CnnEncoder(const std::vector<std::int64_t>& input, std::int64_t d, Generator& g) : input_(input), d_(d) {
    if (input.size() != 3 || input[0] < 1 || input[1] < 1 || input[2] < 1)
      throw ShapeError("CnnEncoder: per-sample input " + Shape(input).str() + " is not (C, H, W)");
    const std::int64_t w1 = std::max<std::int64_t>(d / 4, 4), w2 = std::max<std::int64_t>(d / 2, 4);
    stem.template add<nn::Conv2d<R, D>>(input[0], w1, std::array<std::int64_t, 2>{3, 3}, g, std::array<std::int64_t, 2>{2, 2},
                                     std::array<std::int64_t, 2>{1, 1}, false);
    stem.template add<nn::BatchNorm2d<R, D>>(w1);
    stem.template add<nn::ReLU<R, D>>();
    layer1 = std::make_unique<BasicBlock<R, D>>(w1, w2, 2, g);
    layer2 = std::make_unique<BasicBlock<R, D>>(w2, d, 2, g);
  }
  Var<R, D> forward(const Var<R, D>& x, nn::Context& ctx) override {
    const Shape& s = x.shape();
    if (s.rank() != 4 || s[1] != input_[0] || s[2] != input_[1] || s[3] != input_[2])
      throw ShapeError("CnnEncoder: input " + s.str() + " is not (B, " + std::to_string(input_[0]) + ", " + std::to_string(input_[1]) +
                       ", " + std::to_string(input_[2]) + ")");
    auto h = layer2->forward(layer1->forward(stem.forward(x, ctx), ctx), ctx);
    return reshape(global_avg_pool(h), {s[0], d_, 1});
  }
  void collect(const std::string& p, nn::StateLists<R, D>& out) override {
    stem.collect(p + "stem.", out);
    layer1->collect(p + "layer1.", out);
    layer2->collect(p + "layer2.", out);
  }
  std::string describe() const override { return "ResNet CNN " + Shape(input_).str() + " -> " + std::to_string(d_); }
  nn::Sequential<R, D> stem;
  std::unique_ptr<BasicBlock<R, D>> layer1, layer2;

 private:
  std::vector<std::int64_t> input_;
  std::int64_t d_;
};

// MLP for feature vectors (F): Linear(F → 2d) BN ReLU Linear(2d → d) BN ReLU → (B, d, 1).
template <RealScalar R, class D = CpuDevice>
class MlpEncoder final : public Encoder<R, D> {
 public:
  MlpEncoder(const std::vector<std::int64_t>& input, std::int64_t d, Generator& g) : input_(input), d_(d) {
    if (input.size() != 1 || input[0] < 1) throw ShapeError("MlpEncoder: per-sample input " + Shape(input).str() + " is not (F)");
    net.template add<nn::Linear<R, D>>(input[0], 2 * d, g);
    net.template add<nn::BatchNorm2d<R, D>>(2 * d);  // on (B, C) this is PyTorch's BatchNorm1d
    net.template add<nn::ReLU<R, D>>();
    net.template add<nn::Linear<R, D>>(2 * d, d, g);
    net.template add<nn::BatchNorm2d<R, D>>(d);
    net.template add<nn::ReLU<R, D>>();
  }
  Var<R, D> forward(const Var<R, D>& x, nn::Context& ctx) override {
    const Shape& s = x.shape();
    if (s.rank() != 2 || s[1] != input_[0])
      throw ShapeError("MlpEncoder: input " + s.str() + " is not (B, " + std::to_string(input_[0]) + ")");
    return reshape(net.forward(x, ctx), {s[0], d_, 1});
  }
  void collect(const std::string& p, nn::StateLists<R, D>& out) override { net.collect(p + "net.", out); }
  std::string describe() const override { return "MLP " + Shape(input_).str() + " -> " + std::to_string(d_); }
  nn::Sequential<R, D> net;

 private:
  std::vector<std::int64_t> input_;
  std::int64_t d_;
};

// The encoder a general model uses for a per-sample input shape (spec §4).
template <RealScalar R, class D = CpuDevice>
std::unique_ptr<Encoder<R, D>> make_general_encoder(const std::vector<std::int64_t>& input, std::int64_t d, Generator& g) {
  if (input.size() == 3) return std::make_unique<CnnEncoder<R, D>>(input, d, g);
  if (input.size() == 1) return std::make_unique<MlpEncoder<R, D>>(input, d, g);
  throw ShapeError("general model: per-sample input " + Shape(input).str() +
                   " has rank " + std::to_string(input.size()) + "; expected (F) for an MLP or (C, H, W) for a CNN");
}

template <RealScalar R, class D = CpuDevice> struct EulerOut {
  Var<R, D> theta;  // (B, D/2)
  Var<R, D> h;      // (B, D) = [Re Y ; Im Y]
};

template <RealScalar R, class D = CpuDevice> struct FusionOut {
  Var<R, D> out, out_a, out_g;
};

// The four fusions of spec §3.2 and their unimodal logits (OGM-GE convention).
template <RealScalar R, class D = CpuDevice>
class Fusion {
 public:
  Fusion(const ModelConfig& cfg, Generator& g) : kind(cfg.fusion), dim_(cfg.fused_dim()) {
    const std::int64_t d = dim_, k = cfg.classes;
    switch (kind) {
      case FusionKind::concat:
      case FusionKind::gated: fc_out = std::make_unique<nn::Linear<R, D>>(2 * d, k, g); break;
      case FusionKind::sum:
        fc_x = std::make_unique<nn::Linear<R, D>>(d, k, g);
        fc_y = std::make_unique<nn::Linear<R, D>>(d, k, g);
        break;
      case FusionKind::film:
        fc_x = std::make_unique<nn::Linear<R, D>>(d, 2 * d, g);
        fc_y = std::make_unique<nn::Linear<R, D>>(d, 2 * d, g);
        fc_out = std::make_unique<nn::Linear<R, D>>(2 * d, k, g);
        break;
    }
  }

  FusionOut<R, D> forward(const Var<R, D>& ha, const Var<R, D>& hg, nn::Context& ctx) {
    const R half = R(0.5);
    if (kind == FusionKind::sum) {
      auto oa = linear(ha, fc_x->weight, scale(fc_x->bias, half));
      auto og = linear(hg, fc_y->weight, scale(fc_y->bias, half));
      auto fy = fc_y->forward(hg, ctx);  // sequenced, in the order GCC has always used (see forward below)
      auto out = add(fc_x->forward(ha, ctx), fy);
      return {out, oa, og};
    }
    Var<R, D> xa = ha, yg = hg;  // the (possibly modulated) features entering fc_out
    if (kind == FusionKind::film) {
      auto fa = split(fc_x->forward(ha, ctx), {dim_, dim_}, 1);  // γ_a, β_a
      auto fg = split(fc_y->forward(hg, ctx), {dim_, dim_}, 1);  // γ_g, β_g
      xa = add(mul(fg[0], ha), fg[1]);
      yg = add(mul(fa[0], hg), fa[1]);
    } else if (kind == FusionKind::gated) {
      xa = mul(sigmoid(hg), ha);
      yg = mul(sigmoid(ha), hg);
    }
    auto& U = fc_out->weight;
    auto c2 = scale(fc_out->bias, half);
    auto out = linear(concat(xa, yg, 1), U, fc_out->bias);
    auto oa = linear(xa, slice(U, 1, 0, dim_), c2);
    auto og = linear(yg, slice(U, 1, dim_, dim_), c2);
    return {out, oa, og};
  }

  void collect(const std::string& p, nn::StateLists<R, D>& out) {
    if (fc_x) fc_x->collect(p + "fc_x.", out);
    if (fc_y) fc_y->collect(p + "fc_y.", out);
    if (fc_out) fc_out->collect(p + "fc_out.", out);
  }

  FusionKind kind;
  std::unique_ptr<nn::Linear<R, D>> fc_x, fc_y, fc_out;

 private:
  std::int64_t dim_;
};

template <RealScalar R, class D = CpuDevice> struct ModelOut {
  Var<R, D> out, out_a, out_g;  // fused and unimodal logits (B, K)
  Var<R, D> theta_a, theta_g;   // phases (B, D/2)
  Var<R, D> h_a, h_g;           // fused features (B, D), e.g. for linear probes
};

template <RealScalar R, class D = CpuDevice>
class ErlmrModel {
 public:
  ErlmrModel(const ModelConfig& cfg, Generator& g)
      : cfg(validated(cfg)),
        enc_a(make_encoder(cfg, cfg.input_a, g)),
        enc_g(make_encoder(cfg, cfg.input_g, g)),
        mu1(nn::param(Tensor<R, D>::ones(Shape{1, cfg.phase_channels(), 1}))),
        mu2(nn::param(Tensor<R, D>::ones(Shape{1, cfg.phase_channels(), 1}))),
        im(cfg.feature_dim(), cfg.projection_dim(), g),
        fusion(cfg, g) {}

  // State-name prefixes of the two encoders (the released names for the sensor model).
  std::string encoder_prefix(int m) const {
    if (cfg.arch == Arch::sensor) return m == 0 ? "encoder.acc_cnn_layers." : "encoder.gyr_cnn_layers.";
    return m == 0 ? "encoder.x1." : "encoder.x2.";
  }

  // Euler block of one modality: phases A (B, C, P) and modulus μ (1, C, 1).
  EulerOut<R, D> euler_block(const Var<R, D>& A, const Var<R, D>& mu, nn::Context& ctx) {
    const std::int64_t B = A.shape()[0];
    auto z = reshape(euler(mu, A), {B, cfg.feature_dim()});
    const double p = cfg.dropout * ctx.dropout_scale;
    if (ctx.training && p > 0) {
      if (!ctx.rng) throw std::logic_error("ErlmrModel: training forward pass without a Generator in the Context");
      z = dropout(z, p, true, *ctx.rng);
    }
    auto y = crelu(linear(z, im.weight, im.bias));
    return {arg(y), concat(real(y), imag(y), 1)};
  }

  // Both modalities' Euler blocks at once: the two (B, D) complex feature matrices are
  // stacked into one (2B, D) matrix, so the shared projection is ONE product — one pass
  // over W forward, and one weight-gradient product with inner dimension 4B (both
  // modalities, real and imaginary rows) backward. Row for row the values equal two
  // separate euler_block calls, and the dropout masks are the same (a's elements take the
  // counters first, as when a is processed before g).
  std::pair<EulerOut<R, D>, EulerOut<R, D>> euler_pair(const Var<R, D>& Aa, const Var<R, D>& Ag, nn::Context& ctx) {
    const std::int64_t B = Aa.shape()[0];
    auto za = reshape(euler(mu1, Aa), {B, cfg.feature_dim()});
    auto zg = reshape(euler(mu2, Ag), {B, cfg.feature_dim()});
    auto z = concat(za, zg, 0);
    const double p = cfg.dropout * ctx.dropout_scale;
    if (ctx.training && p > 0) {
      if (!ctx.rng) throw std::logic_error("ErlmrModel: training forward pass without a Generator in the Context");
      z = dropout(z, p, true, *ctx.rng);
    }
    auto y = crelu(linear(z, im.weight, im.bias));                              // (2B, D/2)
    auto theta = arg(y);
    auto h = concat(real(y), imag(y), 1);                  // (2B, D)
    return {{slice(theta, 0, 0, B), slice(h, 0, 0, B)}, {slice(theta, 0, B, B), slice(h, 0, B, B)}};
  }

  ModelOut<R, D> forward(const Var<R, D>& x1, const Var<R, D>& x2, nn::Context& ctx) {
    if (x1.shape()[0] != x2.shape()[0])
      throw ShapeError("ErlmrModel: modalities have different batch sizes: " + shapes_str(x1.shape(), x2.shape()));
    // Two statements, not two arguments of one call: the encoders draw dropout masks from
    // ctx.rng, and the order of a call's arguments is unspecified (GCC evaluates them right to
    // left, clang left to right), so the masks would depend on the compiler. The gyroscope
    // encoder runs first: the order every GCC build has used, so all results recorded so far
    // stand bit for bit.
    auto hg = enc_g->forward(x2, ctx);
    auto ha = enc_a->forward(x1, ctx);
    auto [ea, eg] = euler_pair(ha, hg, ctx);
    auto f = fusion.forward(ea.h, eg.h, ctx);
    return {f.out, f.out_a, f.out_g, ea.theta, eg.theta, ea.h, eg.h};
  }

  // Every parameter and buffer under its PyTorch state_dict name.
  nn::StateLists<R, D> state() {
    nn::StateLists<R, D> s;
    enc_a->collect(encoder_prefix(0), s);
    enc_g->collect(encoder_prefix(1), s);
    s.params.push_back({"mu1", mu1});
    s.params.push_back({"mu2", mu2});
    im.collect("im.", s);
    fusion.collect("fusion.", s);
    return s;
  }
  // The same model on device D2 (parameters, buffers and counters copied): how a model
  // moves between devices in one call, e.g. model.to<CudaDevice>() after building or
  // loading it on the CPU. The new model's initial draws are overwritten by the copy.
  template <class D2> std::unique_ptr<ErlmrModel<R, D2>> to() {
    Generator unused(0);
    auto m = std::make_unique<ErlmrModel<R, D2>>(cfg, unused);
    auto dst = m->state();
    nn::copy_state(state(), dst);
    return m;
  }

  // Θ of spec §3.4: both encoders, μ_a, μ_g (see docs/method.md), W and b — not the fusion layer.
  // The list is built once (the parameters are made at construction; loading a state
  // copies values into them), so a training step does not rebuild it.
  const std::vector<Var<R, D>>& shared_parameters() {
    if (shared_params_.empty())
      for (auto& p : state().params)
        if (p.name.rfind("fusion.", 0) != 0) shared_params_.push_back(p.var);
    return shared_params_;
  }
  // Θ followed by the remaining (fusion) parameters, built once like shared_parameters():
  // the list the fused step differentiates in one pass.
  const std::vector<Var<R, D>>& shared_then_other_parameters() {
    if (ordered_params_.empty()) {
      ordered_params_ = shared_parameters();
      for (auto& p : state().params)
        if (p.name.rfind("fusion.", 0) == 0) ordered_params_.push_back(p.var);
    }
    return ordered_params_;
  }
  std::vector<Var<R, D>> parameters() {
    std::vector<Var<R, D>> out;
    for (auto& p : state().params) out.push_back(p.var);
    return out;
  }

  ModelConfig cfg;
  std::unique_ptr<Encoder<R, D>> enc_a, enc_g;  // modality a (x1) and g (x2)
  Var<R, D> mu1, mu2;
  nn::Linear<R, D> im;
  Fusion<R, D> fusion;

 private:
  std::vector<Var<R, D>> shared_params_, ordered_params_;
  static const ModelConfig& validated(const ModelConfig& c) {
    if (c.classes < 2) throw std::invalid_argument("ErlmrModel: need at least 2 classes, got " + std::to_string(c.classes));
    if (c.arch == Arch::sensor) {
      if (c.window < 3) throw std::invalid_argument("ErlmrModel: window T = " + std::to_string(c.window) + " is below 3");
    } else if (c.width < 2 || c.width % 2 != 0) {
      throw std::invalid_argument("ErlmrModel: width d = " + std::to_string(c.width) + " must be even and >= 2 (projection d -> d/2)");
    }
    return c;
  }
  static std::unique_ptr<Encoder<R, D>> make_encoder(const ModelConfig& c, const std::vector<std::int64_t>& input, Generator& g) {
    if (c.arch == Arch::sensor) return std::make_unique<SensorEncoder<R, D>>(c, g);
    return make_general_encoder<R, D>(input, c.width, g);
  }
};

}  // namespace erlmr::erl
