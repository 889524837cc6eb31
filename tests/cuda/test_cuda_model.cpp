// The ERL-MR model and step on the CUDA device: the PyTorch fixtures, and a short
// training run that must give the CPU's numbers to rounding. Runs only where a CUDA
// device exists (test_cuda_main.cpp).
#include <doctest/doctest.h>

#include <erlmr/cuda.hpp>
#include <erlmr/erl/step.hpp>
#include <erlmr/train/checkpoint.hpp>
#include <filesystem>

using namespace erlmr;

namespace {

double rel_err(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  double num = 0, den = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    num = std::max(num, std::abs(got[i] - want[i]));
    den = std::max(den, std::abs(want[i]));
  }
  return num / std::max(den, 1e-6);
}

void fixture_on_gpu(const std::string& file, erl::FusionKind fusion) {
  const std::string path = std::string(ERLMR_FIXTURE_DIR) + "/" + file;
  REQUIRE(std::filesystem::exists(path));
  auto npz = data::read_npz(path);
  auto x1a = npz.at("input/x1"), x2a = npz.at("input/x2");
  erl::ModelConfig cfg;
  cfg.window = x1a.shape[3];
  cfg.fusion = fusion;
  Generator g(0);
  erl::ErlmrModel<double> host(cfg, g);
  auto hs = host.state();
  train::load_state(hs, npz, path, {true, "param/"});
  erl::ErlmrModel<double, CudaDevice> model(cfg, g);  // built on the device, then given the host's state
  auto st = model.state();
  nn::copy_state(hs, st);
  CudaVar<double> x1(train::from_npy<double>(x1a, "x1").to<CudaDevice>()), x2(train::from_npy<double>(x2a, "x2").to<CudaDevice>());
  auto y = npz.at("input/y").as<std::int64_t>();
  nn::Context ctx{true, nullptr, 0.0};
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
  for (const auto& kv : {std::pair<const char*, CudaVar<double>>{"expect/out", r.fwd.out}, {"expect/out_a", r.fwd.out_a},
                          {"expect/out_g", r.fwd.out_g}, {"expect/theta_a", r.fwd.theta_a}, {"expect/theta_g", r.fwd.theta_g}}) {
    const char* k = kv.first;  // INFO's lambda cannot name a binding before clang 16
    const CudaVar<double>& v = kv.second;
    INFO(k);
    CHECK(rel_err(v.value().to_vector(), npz.at(k).as<double>()) < tol);
  }
  for (auto& p : st.params) {
    INFO("grad/" << p.name);
    REQUIRE(p.var.grad().defined());
    CHECK(rel_err(p.var.grad().to_vector(), npz.at("grad/" + p.name).as<double>()) < tol);
  }
  for (auto& b : st.buffers) {
    INFO("after/" << b.name);
    CHECK(rel_err(b.tensor.to_vector(), npz.at("after/" + b.name).as<double>()) < tol);
  }
}

}  // namespace

TEST_CASE("CUDA: fixture concat step matches PyTorch") { fixture_on_gpu("erlmr-step-concat-t20-b8.npz", erl::FusionKind::concat); }
TEST_CASE("CUDA: fixture sum step matches PyTorch") { fixture_on_gpu("erlmr-step-sum-t20-b8.npz", erl::FusionKind::sum); }

TEST_CASE_TEMPLATE("CUDA: a short ERL-MR training run gives the CPU's numbers", R, double, float) {
  // Same initial state, same data, same dropout generator state: the masks are identical,
  // so losses, γ and parameters may differ only by rounding.
  erl::ModelConfig cfg;
  cfg.window = 24;
  cfg.dropout = 0.3;
  Generator init(5);
  erl::ErlmrModel<R> cpu(cfg, init);
  auto moved = cpu.template to<CudaDevice>();  // the model moves in one call
  auto& gpu = *moved;
  optim::SGD<R> oc(0.05, 0.9);
  optim::CudaSGD<R> og(0.05, 0.9);
  oc.add_params(cpu.parameters());
  og.add_params(gpu.parameters());
  Generator data(11), drop_c(3), drop_g(3);
  const double tol = std::is_same_v<R, double> ? 1e-9 : 2e-4;
  for (int step = 0; step < 4; ++step) {
    CAPTURE(step);
    const auto x1 = Tensor<R>::randn(Shape{8, 1, 3, cfg.window}, data), x2 = Tensor<R>::randn(Shape{8, 1, 3, cfg.window}, data);
    std::vector<std::int64_t> y(8);
    for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<std::int64_t>((i * 5 + step) % 12);
    nn::Context cc{true, &drop_c, 1.0}, cg{true, &drop_g, 1.0};
    for (auto& p : cpu.parameters()) p.zero_grad();
    for (auto& p : gpu.parameters()) p.zero_grad();
    const auto mode = step % 2 ? erl::StepMode::faithful : erl::StepMode::fused;
    auto rc = erl::erlmr_step(cpu, Var<R>(x1), Var<R>(x2), y, cc, mode);
    auto rg = erl::erlmr_step(gpu, CudaVar<R>(x1.template to<CudaDevice>()), CudaVar<R>(x2.template to<CudaDevice>()), y, cg, mode);
    CHECK(std::abs(rc.loss - rg.loss) <= tol * std::abs(rc.loss));
    CHECK(std::abs(rc.gamma - rg.gamma) <= tol * 10);
    CHECK(drop_c.offset() == drop_g.offset());
    oc.step();
    og.step();
  }
  auto pc = cpu.parameters();
  auto pg = gpu.parameters();
  REQUIRE(pc.size() == pg.size());
  for (std::size_t i = 0; i < pc.size(); ++i) {
    CAPTURE(i);
    std::vector<double> a, b;
    for (auto v : pc[i].value().to_vector()) a.push_back(double(v));
    for (auto v : pg[i].value().to_vector()) b.push_back(double(v));
    CHECK(rel_err(b, a) <= tol * 10);
  }
}
