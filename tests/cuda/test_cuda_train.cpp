// The trainer and every rebalancing method on the CUDA device: the same configuration
// trained on the CPU and on the GPU must give the same epoch metrics, method signals and
// final weights to rounding (float64), and checkpoints must move between the two devices.
// Runs only where a CUDA device exists (test_cuda_main.cpp) and on the CPU emulation of
// CUDA (tools/cuda_emu).
#include <doctest/doctest.h>

#include <cmath>
#include <erlmr/cuda.hpp>
#include <erlmr/data/synthetic.hpp>
#include <erlmr/train/trainer.hpp>
#include <string>
#include <vector>

using namespace erlmr;

namespace {

// A tiny sensor set (window 12; small, because the CPU emulation of CUDA runs these tests
// in CI): 32 training windows (2 steps of 16), 16 test windows.
template <RealScalar R> data::Dataset<R> tiny_data() {
  data::SyntheticConfig c;
  c.train = 32;
  c.test = 16;
  c.window = 12;
  return data::synthetic_sensor<R>(c);
}

train::TrainConfig tiny_run(const std::string& method) {
  train::TrainConfig t;
  t.method = method;
  t.epochs = 2;
  t.batch = 16;
  t.lr = 0.02;
  t.eval_batch = 16;
  t.probe_epochs = 1;
  t.options.gb_super_epoch = 1;  // G-Blending re-estimates its weights every epoch
  t.options.gb_holdout = 0.34;   // 10 held-out windows, 22 trained on (1 step)
  return t;
}

// |a − b| ≤ tol·max(1, |a|, |b|)
bool close(double a, double b, double tol) { return std::abs(a - b) <= tol * std::max({1.0, std::abs(a), std::abs(b)}); }

template <RealScalar R, class D1, class D2>
void check_same_history(const train::Trainer<R, D1>& a, const train::Trainer<R, D2>& b, double tol) {
  REQUIRE(a.history().size() == b.history().size());
  for (std::size_t e = 0; e < a.history().size(); ++e) {
    const auto ra = a.history()[e].to_row(), rb = b.history()[e].to_row();
    for (std::size_t k = 0; k < ra.size(); ++k) {
      CAPTURE(e);
      CAPTURE(k);
      CHECK(close(ra[k], rb[k], tol));
    }
    const auto& sa = a.history()[e].signals;
    const auto& sb = b.history()[e].signals;
    REQUIRE(sa.size() == sb.size());
    for (std::size_t k = 0; k < sa.size(); ++k) {
      CAPTURE(sa[k].first);
      CHECK(sa[k].first == sb[k].first);
      CHECK(close(sa[k].second, sb[k].second, tol));
    }
  }
}

// Largest relative difference between the two trainers' checkpoints over every array
// (model state, optimiser state, method state, history).
template <RealScalar R, class D1, class D2> double checkpoint_diff(train::Trainer<R, D1>& a, train::Trainer<R, D2>& b) {
  const auto ma = a.checkpoint(), mb = b.checkpoint();
  REQUIRE(ma.size() == mb.size());
  double worst = 0;
  for (const auto& kva : ma) {
    const std::string& k = kva.first;  // CAPTURE's lambda cannot name a binding before clang 16
    const auto& va = kva.second;
    CAPTURE(k);
    REQUIRE(mb.count(k));
    const auto& vb = mb.at(k);
    REQUIRE(va.shape == vb.shape);
    if (va.dtype == data::DType::u1) {  // names
      CHECK(va.template as<std::uint8_t>() == vb.template as<std::uint8_t>());
      continue;
    }
    const auto x = va.template as<double>(), y = vb.template as<double>();
    double num = 0, den = 1e-12;
    for (std::size_t i = 0; i < x.size(); ++i) {
      num = std::max(num, std::abs(x[i] - y[i]));
      den = std::max(den, std::abs(x[i]));
    }
    worst = std::max(worst, num / den);
  }
  return worst;
}

// Trains `cfg` on the CPU and on the GPU, epoch by epoch, and checks that the histories
// agree within `tol_history` and the checkpoints within `tol_state`.
template <RealScalar R>
void check_cpu_and_gpu_runs(const train::TrainConfig& cfg, const data::Dataset<R>& data, double tol_history, double tol_state) {
  train::Trainer<R> cpu(cfg, data);
  train::Trainer<R, CudaDevice> gpu(cfg, data);
  for (int e = 0; e < cfg.epochs; ++e) {
    cpu.train_epoch();
    gpu.train_epoch();
  }
  check_same_history(cpu, gpu, tol_history);
  CHECK(checkpoint_diff(cpu, gpu) < tol_state);
}

}  // namespace

TEST_CASE("CUDA trainer: every method trains on the GPU as on the CPU (float64)") {
  const auto data = tiny_data<double>();
  for (const auto& method : balance::method_names()) {
    CAPTURE(method);
    auto cfg = tiny_run(method);
    // One epoch each (two steps, an evaluation); G-Blending needs a second one to re-estimate
    // its weights from two measurements.
    cfg.epochs = method == "gblending" ? 2 : 1;
    check_cpu_and_gpu_runs(cfg, data, 1e-8, 1e-8);
  }
}

TEST_CASE("CUDA trainer: float32 ERL-MR (fused and faithful) and OGM-GE agree with the CPU") {
  const auto data = tiny_data<float>();
  for (const std::string method : {"erlmr", "ogm-ge"}) {
    for (auto mode : {erl::StepMode::fused, erl::StepMode::faithful}) {
      if (method != "erlmr" && mode == erl::StepMode::faithful) continue;
      CAPTURE(method);
      auto cfg = tiny_run(method);
      cfg.epochs = 1;
      cfg.options.erlmr_mode = mode;
      // float32 with different summation orders: the epoch's metrics agree to ~1e-5; two
      // momentum-SGD steps leave the weights and momentum buffers within ~1e-3 (relative
      // to each array's largest entry).
      check_cpu_and_gpu_runs(cfg, data, 2e-4, 2e-3);
    }
  }
}

TEST_CASE("CUDA trainer: checkpoints move between the CPU and the GPU") {
  const auto data = tiny_data<double>();
  for (const std::string method : {"mla", "pmr"}) {  // two methods with state of their own
    CAPTURE(method);
    auto cfg = tiny_run(method);
    cfg.optimizer = "adam";
    cfg.lr = 1e-3;
    train::Trainer<double> cpu(cfg, data);
    cpu.train_epoch();
    const std::string path = "test_cuda_train_" + method + ".npz";
    cpu.save_checkpoint(path);
    // Resume the CPU run on the GPU: one more epoch on each must agree.
    train::Trainer<double, CudaDevice> gpu(cfg, data);
    gpu.load_checkpoint(path);
    CHECK(gpu.epoch() == 1);
    CHECK(checkpoint_diff(cpu, gpu) == 0.0);  // a copy: bitwise
    cpu.train_epoch();
    gpu.train_epoch();
    check_same_history(cpu, gpu, 1e-8);
    CHECK(checkpoint_diff(cpu, gpu) < 1e-8);
    // And back: the GPU's checkpoint loads into a fresh CPU trainer.
    gpu.save_checkpoint(path);
    train::Trainer<double> back(cfg, data);
    back.load_checkpoint(path);
    CHECK(back.epoch() == 2);
    CHECK(checkpoint_diff(back, gpu) == 0.0);
    std::remove(path.c_str());
  }
}

TEST_CASE("CUDA trainer: evaluation and linear probes read device features") {
  const auto data = tiny_data<double>();
  auto cfg = tiny_run("mmcosine");
  cfg.epochs = 1;
  train::Trainer<double> cpu(cfg, data);
  train::Trainer<double, CudaDevice> gpu(cfg, data);
  cpu.train_epoch();
  gpu.train_epoch();
  train::Predictions pc, pg;
  const auto ec = cpu.evaluate(data.test, &pc), eg = gpu.evaluate(data.test, &pg);
  CHECK(pc.fused == pg.fused);
  CHECK(pc.a == pg.a);
  CHECK(pc.g == pg.g);
  CHECK(close(ec.loss, eg.loss, 1e-9));
  CHECK(close(ec.rho, eg.rho, 1e-9));
  const auto qc = cpu.probe(2), qg = gpu.probe(2);
  CHECK(close(qc.acc_a, qg.acc_a, 1e-9));
  CHECK(close(qc.acc_g, qg.acc_g, 1e-9));
}
