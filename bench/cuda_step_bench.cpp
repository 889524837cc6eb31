// bench/cuda_step_bench.cpp — one ERL-MR training step of the sensor reference model
// (spec §3: T = 200, 12 classes, concat fusion, float32, dropout 0.5, SGD lr 1e-3 momentum
// 0.9 weight decay 1e-4 included) on the CUDA device, in fused or faithful mode, and
// evaluation-mode inference; the GPU twin of erlmr_step_bench.
//
//   ./build-cuda/bench/cuda_step_bench fused-b16 fused-b64 faithful-b16 faithful-b64 infer-b64
//
// Every step reads its losses back to the host (as training does), so the timing includes
// the synchronisation; inference steps synchronise explicitly. Prints one JSON line per
// configuration: {"config", "device", "ms_per_step", "samples_per_s", "gflop_per_s"}.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "erlmr/cuda.hpp"
#include "erlmr/erl/step.hpp"
#include "step_common.hpp"

using namespace erlmr;

int main(int argc, char** argv) {
  std::string why;
  if (!cuda::available(&why)) {
    std::fprintf(stderr, "cuda_step_bench: no usable CUDA device (%s)\n", why.c_str());
    return 77;
  }
  std::vector<std::string> configs;
  for (int i = 1; i < argc; ++i) configs.push_back(argv[i]);
  if (configs.empty()) configs = {"fused-b16", "fused-b64", "faithful-b16", "faithful-b64", "infer-b1", "infer-b64"};
  cudaDeviceProp prop{};
  int dev = 0;
  cuda::check(cudaGetDevice(&dev), "cudaGetDevice");
  cuda::check(cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties");
  for (const auto& name : configs) {
    const auto c = bench::StepConfig::parse(name);
    if (c.kind == "joint") {
      std::fprintf(stderr, "cuda_step_bench: %s skipped (the baselines are not on the device yet)\n", name.c_str());
      continue;
    }
    Generator gen(1), drop(2);
    erl::ModelConfig mc;
    mc.window = c.window;
    mc.classes = 12;
    erl::ErlmrModel<float, CudaDevice> model(mc, gen);
    CudaVar<float> x1(Tensor<float>::randn(Shape{c.batch, 1, 3, c.window}, gen).to<CudaDevice>());
    CudaVar<float> x2(Tensor<float>::randn(Shape{c.batch, 1, 3, c.window}, gen).to<CudaDevice>());
    std::vector<std::int64_t> y;
    for (std::int64_t i = 0; i < c.batch; ++i) y.push_back(i % 12);
    auto params = model.parameters();
    optim::CudaSGD<float> opt(1e-3, 0.9, 1e-4);
    opt.add_params(params);
    const auto mode = c.kind == "faithful" ? erl::StepMode::faithful : erl::StepMode::fused;
    auto step = [&] {
      if (c.kind == "infer") {
        NoGradGuard ng;
        nn::Context ctx{false, nullptr, 1.0};
        model.forward(x1, x2, ctx);
        cuda::synchronize();
        return;
      }
      nn::Context ctx{true, &drop, 1.0};
      for (auto& p : params) p.zero_grad();
      erl::erlmr_step(model, x1, x2, y, ctx, mode);
      opt.step();
      cuda::synchronize();
    };
    for (int i = 0; i < 5; ++i) step();
    int steps = 0;
    const auto t0 = std::chrono::steady_clock::now();
    double elapsed = 0;
    while (elapsed < 3.0 || steps < 10) {
      step();
      ++steps;
      elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    const double ms = 1e3 * elapsed / steps;
    std::printf("{\"config\": \"%s\", \"device\": \"%s\", \"ms_per_step\": %.4f, \"samples_per_s\": %.1f, \"gflop_per_s\": %.1f}\n",
                name.c_str(), prop.name, ms, double(c.batch) * 1e3 / ms, bench::step_flops(c) / (ms * 1e6));
    std::fflush(stdout);
  }
  return 0;
}
