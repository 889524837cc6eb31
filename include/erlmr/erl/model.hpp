// erlmr/erl/model.hpp — the ERL-MR sensor reference model (spec §3).
//
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
#pragma once
#include <stdexcept>
#include <string>

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

struct ModelConfig {
  std::int64_t window = 200;        // T
  std::int64_t classes = 12;        // K
  FusionKind fusion = FusionKind::concat;
  double dropout = 0.5;
  std::int64_t channels = 16;       // encoder output channels (phases per position)
  std::int64_t positions() const { return window - 2; }
  std::int64_t feature_dim() const { return channels * positions(); }  // D: flattened Euler features
  std::int64_t projection_dim() const { return feature_dim() / 2; }     // D/2
  std::int64_t fused_dim() const { return 2 * projection_dim(); }       // width of h_m = [Re; Im]
};

// Conv(1→64, 2) BN ReLU Drop | Conv(64→64, 2) BN ReLU Drop | Conv(64→32, 1) BN ReLU Drop | Conv(32→16, 1) BN ReLU
template <RealScalar R>
class SensorEncoder {
 public:
  SensorEncoder(const ModelConfig& cfg, Generator& g) : cfg_(cfg) {
    auto block = [&](std::int64_t cin, std::int64_t cout, std::int64_t k, bool drop) {
      features.template add<nn::Conv2d<R>>(cin, cout, std::array<std::int64_t, 2>{k, k}, g);
      features.template add<nn::BatchNorm2d<R>>(cout);
      features.template add<nn::ReLU<R>>();
      if (drop) features.template add<nn::Dropout<R>>(cfg.dropout);
    };
    block(1, 64, 2, true);
    block(64, 64, 2, true);
    block(64, 32, 1, true);
    block(32, cfg.channels, 1, false);
  }
  // (B, 1, 3, T) -> (B, 16, T − 2)
  Var<R> forward(const Var<R>& x, nn::Context& ctx) {
    const Shape& s = x.shape();
    if (s.rank() != 4 || s[1] != 1 || s[2] != 3 || s[3] != cfg_.window)
      throw ShapeError("SensorEncoder: input " + s.str() + " is not (B, 1, 3, " + std::to_string(cfg_.window) + ")");
    auto h = features.forward(x, ctx);  // (B, 16, 1, T − 2)
    return reshape(h, {s[0], cfg_.channels, cfg_.positions()});
  }
  void collect(const std::string& p, nn::StateLists<R>& out) { features.collect(p + "features.", out); }
  nn::Sequential<R> features;

 private:
  ModelConfig cfg_;
};

template <RealScalar R> struct EulerOut {
  Var<R> theta;  // (B, D/2)
  Var<R> h;      // (B, D) = [Re Y ; Im Y]
};

template <RealScalar R> struct FusionOut {
  Var<R> out, out_a, out_g;
};

// The four fusions of spec §3.2 and their unimodal logits (OGM-GE convention).
template <RealScalar R>
class Fusion {
 public:
  Fusion(const ModelConfig& cfg, Generator& g) : kind(cfg.fusion), dim_(cfg.fused_dim()) {
    const std::int64_t d = dim_, k = cfg.classes;
    switch (kind) {
      case FusionKind::concat:
      case FusionKind::gated: fc_out = std::make_unique<nn::Linear<R>>(2 * d, k, g); break;
      case FusionKind::sum:
        fc_x = std::make_unique<nn::Linear<R>>(d, k, g);
        fc_y = std::make_unique<nn::Linear<R>>(d, k, g);
        break;
      case FusionKind::film:
        fc_x = std::make_unique<nn::Linear<R>>(d, 2 * d, g);
        fc_y = std::make_unique<nn::Linear<R>>(d, 2 * d, g);
        fc_out = std::make_unique<nn::Linear<R>>(2 * d, k, g);
        break;
    }
  }

  FusionOut<R> forward(const Var<R>& ha, const Var<R>& hg, nn::Context& ctx) {
    const R half = R(0.5);
    if (kind == FusionKind::sum) {
      auto oa = linear(ha, fc_x->weight, scale(fc_x->bias, half));
      auto og = linear(hg, fc_y->weight, scale(fc_y->bias, half));
      auto out = add(fc_x->forward(ha, ctx), fc_y->forward(hg, ctx));
      return {out, oa, og};
    }
    Var<R> xa = ha, yg = hg;  // the (possibly modulated) features entering fc_out
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
    auto out = linear(concat(std::vector<Var<R>>{xa, yg}, 1), U, fc_out->bias);
    auto oa = linear(xa, slice(U, 1, 0, dim_), c2);
    auto og = linear(yg, slice(U, 1, dim_, dim_), c2);
    return {out, oa, og};
  }

  void collect(const std::string& p, nn::StateLists<R>& out) {
    if (fc_x) fc_x->collect(p + "fc_x.", out);
    if (fc_y) fc_y->collect(p + "fc_y.", out);
    if (fc_out) fc_out->collect(p + "fc_out.", out);
  }

  FusionKind kind;
  std::unique_ptr<nn::Linear<R>> fc_x, fc_y, fc_out;

 private:
  std::int64_t dim_;
};

template <RealScalar R> struct ModelOut {
  Var<R> out, out_a, out_g;  // fused and unimodal logits (B, K)
  Var<R> theta_a, theta_g;   // phases (B, D/2)
  Var<R> h_a, h_g;           // fused features (B, D), e.g. for linear probes
};

template <RealScalar R>
class ErlmrModel {
 public:
  ErlmrModel(const ModelConfig& cfg, Generator& g)
      : cfg(cfg),
        acc(cfg, g),
        gyr(cfg, g),
        mu1(nn::param(Tensor<R>::ones(Shape{1, cfg.channels, 1}))),
        mu2(nn::param(Tensor<R>::ones(Shape{1, cfg.channels, 1}))),
        im(cfg.feature_dim(), cfg.projection_dim(), g),
        fusion(cfg, g) {}

  // Euler block of one modality: phases A (B, C, P) and modulus μ (1, C, 1).
  EulerOut<R> euler_block(const Var<R>& A, const Var<R>& mu, nn::Context& ctx) {
    const std::int64_t B = A.shape()[0];
    auto z = reshape(euler(mu, A), {B, cfg.feature_dim()});
    const double p = cfg.dropout * ctx.dropout_scale;
    if (ctx.training && p > 0) {
      if (!ctx.rng) throw std::logic_error("ErlmrModel: training forward pass without a Generator in the Context");
      z = dropout(z, p, true, *ctx.rng);
    }
    auto y = crelu(linear(z, im.weight, im.bias));
    return {arg(y), concat(std::vector<Var<R>>{real(y), imag(y)}, 1)};
  }

  // Both modalities' Euler blocks at once: the two (B, D) complex feature matrices are
  // stacked into one (2B, D) matrix, so the shared projection is ONE product — one pass
  // over W forward, and one weight-gradient product with inner dimension 4B (both
  // modalities, real and imaginary rows) backward. Row for row the values equal two
  // separate euler_block calls, and the dropout masks are the same (a's elements take the
  // counters first, as when a is processed before g).
  std::pair<EulerOut<R>, EulerOut<R>> euler_pair(const Var<R>& Aa, const Var<R>& Ag, nn::Context& ctx) {
    const std::int64_t B = Aa.shape()[0];
    auto za = reshape(euler(mu1, Aa), {B, cfg.feature_dim()});
    auto zg = reshape(euler(mu2, Ag), {B, cfg.feature_dim()});
    auto z = concat(std::vector<Var<std::complex<R>>>{za, zg}, 0);
    const double p = cfg.dropout * ctx.dropout_scale;
    if (ctx.training && p > 0) {
      if (!ctx.rng) throw std::logic_error("ErlmrModel: training forward pass without a Generator in the Context");
      z = dropout(z, p, true, *ctx.rng);
    }
    auto y = crelu(linear(z, im.weight, im.bias));                              // (2B, D/2)
    auto theta = arg(y);
    auto h = concat(std::vector<Var<R>>{real(y), imag(y)}, 1);                  // (2B, D)
    return {{slice(theta, 0, 0, B), slice(h, 0, 0, B)}, {slice(theta, 0, B, B), slice(h, 0, B, B)}};
  }

  ModelOut<R> forward(const Var<R>& x1, const Var<R>& x2, nn::Context& ctx) {
    if (x1.shape()[0] != x2.shape()[0])
      throw ShapeError("ErlmrModel: modalities have different batch sizes: " + shapes_str(x1.shape(), x2.shape()));
    auto [ea, eg] = euler_pair(acc.forward(x1, ctx), gyr.forward(x2, ctx), ctx);
    auto f = fusion.forward(ea.h, eg.h, ctx);
    return {f.out, f.out_a, f.out_g, ea.theta, eg.theta, ea.h, eg.h};
  }

  // Every parameter and buffer under its PyTorch state_dict name.
  nn::StateLists<R> state() {
    nn::StateLists<R> s;
    acc.collect("encoder.acc_cnn_layers.", s);
    gyr.collect("encoder.gyr_cnn_layers.", s);
    s.params.push_back({"mu1", mu1});
    s.params.push_back({"mu2", mu2});
    im.collect("im.", s);
    fusion.collect("fusion.", s);
    return s;
  }
  // Θ of spec §3.4: both encoders, μ_a, μ_g (see docs/method.md), W and b — not the fusion layer.
  std::vector<Var<R>> shared_parameters() {
    std::vector<Var<R>> out;
    for (auto& p : state().params)
      if (p.name.rfind("fusion.", 0) != 0) out.push_back(p.var);
    return out;
  }
  std::vector<Var<R>> parameters() {
    std::vector<Var<R>> out;
    for (auto& p : state().params) out.push_back(p.var);
    return out;
  }

  ModelConfig cfg;
  SensorEncoder<R> acc, gyr;
  Var<R> mu1, mu2;
  nn::Linear<R> im;
  Fusion<R> fusion;
};

}  // namespace erlmr::erl
