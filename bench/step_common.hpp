// bench/step_common.hpp — the configurations measured by bench_step and erlmr_step_bench:
// one training step of the sensor reference model (spec §3: T = 200, 12 classes, concat
// fusion, float32, SGD update included) in fused or faithful ERL-MR mode or as the joint
// baseline, and evaluation-mode inference.
#pragma once
#include <erlmr/balance/registry.hpp>
#include <erlmr/erlmr.hpp>
#include <memory>
#include <stdexcept>
#include <string>

namespace erlmr::bench {

struct StepConfig {
  std::string kind = "fused";  // fused | faithful | joint | infer
  std::int64_t batch = 16;
  std::int64_t window = 200;
  static StepConfig parse(const std::string& name) {  // e.g. "fused-b16", "infer-b1"
    const auto dash = name.find("-b");
    if (dash == std::string::npos) throw std::invalid_argument("config '" + name + "' is not KIND-bN");
    StepConfig c;
    c.kind = name.substr(0, dash);
    c.batch = std::stoll(name.substr(dash + 2));
    if (c.kind != "fused" && c.kind != "faithful" && c.kind != "joint" && c.kind != "infer")
      throw std::invalid_argument("config kind '" + c.kind + "' is not fused, faithful, joint or infer");
    return c;
  }
};

// Floating-point operations of the products (convolutions as GEMMs, the projection, the
// fusion layer) of one forward pass; elementwise work is not counted. A backward pass
// through a layer costs two such products (input and weight gradients).
inline double forward_flops(std::int64_t B, std::int64_t T, std::int64_t K = 12) {
  const double P = double(T - 2), D = 16 * P;
  double enc = 2.0 * B * 64 * 2 * (T - 1) * 4      // conv 1→64, 2×2
               + 2.0 * B * 64 * P * 256            // conv 64→64, 2×2
               + 2.0 * B * 32 * P * 64             // conv 64→32, 1×1
               + 2.0 * B * 16 * P * 32;            // conv 32→16, 1×1
  const double proj = 2.0 * (2 * B) * D * (D / 2);  // Re and Im rows through W (D/2 × D)
  const double head = 2.0 * B * (2 * D) * K + 2 * (2.0 * B * D * K);  // fused + two unimodal logits
  return 2 * enc + 2 * proj + head;
}
// The shared projection's weight-gradient product (rows: Re and Im of both modalities).
inline double projection_product_flops(std::int64_t B, std::int64_t T) {
  const double D = 16.0 * double(T - 2);
  return 2.0 * (4 * B) * D * (D / 2);
}
// The Gram matrices that replace that product in the g1 and g2 passes (grad_factored):
// three (4B × 4B) Gram matrices of the output adjoints (inner dimension D/2) and `x_grams`
// of the inputs (inner dimension D).
inline double factored_gram_flops(std::int64_t B, std::int64_t T, int x_grams) {
  const double D = 16.0 * double(T - 2), n = 4.0 * double(B);
  return 3 * 2 * n * n * (D / 2) + x_grams * 2 * n * n * D;
}
// Passes over the graph: fused = 1 forward + 3 backward (g1, g2, final);
// faithful = 3 forwards + backward through B (g1), C (g2), A and C (final);
// joint = 1 forward + 1 backward; infer = 1 forward. In the g1 and g2 passes the
// projection's weight-gradient product is not formed: Gram matrices of its factors
// stand in for it (one x-Gram in fused mode, where both passes share the input; three
// in faithful mode, passes B and C).
inline double step_flops(const StepConfig& c) {
  const double F = forward_flops(c.batch, c.window);
  const double saved = 2 * projection_product_flops(c.batch, c.window);
  if (c.kind == "fused") return F + 3 * 2 * F - saved + factored_gram_flops(c.batch, c.window, 1);
  if (c.kind == "faithful") return 3 * F + 2 * F + 2 * F + 2 * 2 * F - saved + factored_gram_flops(c.batch, c.window, 3);
  if (c.kind == "joint") return F + 2 * F;
  return F;
}

class StepRunner {
 public:
  explicit StepRunner(const StepConfig& c) : c_(c), gen_(1), drop_(2) {
    erl::ModelConfig mc;
    mc.window = c.window;
    mc.classes = 12;
    model_ = std::make_unique<erl::ErlmrModel<float>>(mc, gen_);
    x1_ = Var<float>(Tensor<float>::randn(Shape{c.batch, 1, 3, c.window}, gen_));
    x2_ = Var<float>(Tensor<float>::randn(Shape{c.batch, 1, 3, c.window}, gen_));
    for (std::int64_t i = 0; i < c.batch; ++i) y_.push_back(i % 12);
    batch_ = train::Batch<float>{x1_, x2_, y_};
    params_ = model_->parameters();
    opt_ = std::make_unique<optim::SGD<float>>(1e-3, 0.9, 1e-4);
    opt_->add_params(params_);
    balance::MethodOptions o;
    o.erlmr_mode = c.kind == "faithful" ? erl::StepMode::faithful : erl::StepMode::fused;
    method_ = balance::make_method<float>(c.kind == "joint" ? "joint" : "erlmr", o, *model_, 12);
  }
  // One step (or one inference forward).
  void run() {
    if (c_.kind == "infer") {
      NoGradGuard ng;
      nn::Context ctx{false, nullptr, 1.0};
      auto f = model_->forward(x1_, x2_, ctx);
      sink_ += f.out.value().data()[0];
      return;
    }
    nn::Context ctx{true, &drop_, 1.0};
    optim::zero_grad(params_);
    method_->step(*model_, batch_, ctx, 0);  // the batch is built once: a step itself allocates nothing
    opt_->step();
  }
  float sink_ = 0;

 private:
  StepConfig c_;
  Generator gen_, drop_;
  std::unique_ptr<erl::ErlmrModel<float>> model_;
  Var<float> x1_, x2_;
  std::vector<std::int64_t> y_;
  train::Batch<float> batch_;
  std::vector<Var<float>> params_;
  std::unique_ptr<optim::SGD<float>> opt_;
  std::unique_ptr<train::Method<float>> method_;
};

}  // namespace erlmr::bench
