// erlmr/balance/basic.hpp — ERL-MR and the plain objectives.
//   erlmr       spec §3.4 (fused or faithful step), erl/step.hpp
//   joint       L = CE(f)
//   uniform     L = CE(f) + CE(f_a) + CE(f_g)
//   unimodal-u  L = CE(f_u): one encoder and its slice of the head, the stand-alone reference
#pragma once
#include "erlmr/balance/options.hpp"
#include "erlmr/train/method.hpp"

namespace erlmr::balance {

template <RealScalar R, class D = CpuDevice>
class ErlmrMethod final : public train::Method<R, D> {
 public:
  explicit ErlmrMethod(erl::StepMode mode) : mode_(mode) {}
  std::string name() const override { return "erlmr"; }
  train::StepStats step(erl::ErlmrModel<R, D>& m, const train::Batch<R, D>& b, nn::Context& ctx, int) override {
    const auto r = erl::erlmr_step(m, b.x1, b.x2, b.y, ctx, mode_);
    train::StepStats s;
    s.loss = r.loss;
    s.loss_ce = r.loss_ce;
    s.loss_phase = r.loss_phase;
    s.loss_uni = r.loss_uni;
    s.gamma = r.gamma;
    return s;
  }

 private:
  erl::StepMode mode_;
};

template <RealScalar R, class D = CpuDevice>
class PlainMethod final : public train::Method<R, D> {
 public:
  enum class Kind { joint, uniform, unimodal_a, unimodal_g };
  explicit PlainMethod(Kind k) : kind_(k) {}
  std::string name() const override {
    switch (kind_) {
      case Kind::joint: return "joint";
      case Kind::uniform: return "uniform";
      case Kind::unimodal_a: return "unimodal-a";
      case Kind::unimodal_g: return "unimodal-g";
    }
    return "?";
  }
  train::StepStats step(erl::ErlmrModel<R, D>& m, const train::Batch<R, D>& b, nn::Context& ctx, int) override {
    auto f = m.forward(b.x1, b.x2, ctx);
    auto l = train::standard_losses(f, b.y);
    Var<R, D> loss;
    switch (kind_) {
      case Kind::joint: loss = l.ce; break;
      case Kind::uniform: loss = add(add(l.ce, l.ce_a), l.ce_g); break;
      case Kind::unimodal_a: loss = l.ce_a; break;
      case Kind::unimodal_g: loss = l.ce_g; break;
    }
    backward(loss);
    return train::stats_of(l, loss);
  }

 private:
  Kind kind_;
};

}  // namespace erlmr::balance
