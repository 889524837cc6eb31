// Parity with the independent PyTorch implementation (../shared/fixtures).
#include "test_util.hpp"

#include <erlmr/erl/step.hpp>
#include <erlmr/train/checkpoint.hpp>
#include <filesystem>

using namespace erlmr;

namespace {
double rel_err(const Tensor<double>& got, const data::NpyArray& want) {
  auto w = want.as<double>();
  REQUIRE(static_cast<std::int64_t>(w.size()) == got.numel());
  double num = 0, den = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    num = std::max(num, std::abs(got.data()[i] - w[i]));
    den = std::max(den, std::abs(w[i]));
  }
  // Relative to the array's scale, with a floor: gradients that are exactly zero in exact
  // arithmetic (conv biases followed by batch-norm) are rounding noise (~1e-17) on both sides.
  return num / std::max(den, 1e-6);
}

void check_fixture(const std::string& file, erl::FusionKind fusion) {
  const std::string path = std::string(ERLMR_FIXTURE_DIR) + "/" + file;
  if (!std::filesystem::exists(path)) {
    MESSAGE("fixture not found: " << path);
    REQUIRE(std::filesystem::exists(path));
  }
  auto npz = data::read_npz(path);
  auto x1a = npz.at("input/x1"), x2a = npz.at("input/x2");
  erl::ModelConfig cfg;
  cfg.window = x1a.shape[3];
  cfg.fusion = fusion;
  Generator g(0);
  erl::ErlmrModel<double> model(cfg, g);
  auto st = model.state();
  train::load_state(st, npz, path, {true, "param/"});
  Var<double> x1(train::from_npy<double>(x1a, "x1")), x2(train::from_npy<double>(x2a, "x2"));
  auto y = npz.at("input/y").as<std::int64_t>();
  nn::Context ctx{true, nullptr, 0.0};  // training mode, dropout off
  auto r = erl::erlmr_step(model, x1, x2, y, ctx);
  const double tol = 1e-8;
  auto scalar = [&](const char* k, double v) {
    INFO(k);
    CHECK(std::abs(v - npz.at(k).as<double>()[0]) <= tol * std::abs(npz.at(k).as<double>()[0]));
  };
  scalar("expect/loss_ce", r.loss_ce);
  scalar("expect/loss_phase", r.loss_phase);
  scalar("expect/loss_uni", r.loss_uni);
  scalar("expect/gamma", r.gamma);
  scalar("expect/loss", r.loss);
  for (const auto& kv : {std::pair<const char*, Var<double>>{"expect/out", r.fwd.out}, {"expect/out_a", r.fwd.out_a},
                          {"expect/out_g", r.fwd.out_g}, {"expect/theta_a", r.fwd.theta_a}, {"expect/theta_g", r.fwd.theta_g}}) {
    const char* k = kv.first;  // INFO's lambda cannot name a binding before clang 16
    const Var<double>& v = kv.second;
    INFO(k);
    CHECK(rel_err(v.value(), npz.at(k)) < tol);
  }
  for (auto& p : st.params) {
    INFO("grad/" << p.name);
    REQUIRE(p.var.grad().defined());
    CHECK(rel_err(p.var.grad(), npz.at("grad/" + p.name)) < tol);
  }
  for (auto& b : st.buffers) {
    INFO("after/" << b.name);
    CHECK(rel_err(b.tensor, npz.at("after/" + b.name)) < tol);
  }
}
}  // namespace

TEST_CASE("fixture: concat fusion step matches PyTorch") { check_fixture("erlmr-step-concat-t20-b8.npz", erl::FusionKind::concat); }
TEST_CASE("fixture: sum fusion step matches PyTorch") { check_fixture("erlmr-step-sum-t20-b8.npz", erl::FusionKind::sum); }
