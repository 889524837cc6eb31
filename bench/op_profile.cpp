// bench/op_profile.cpp — where one ERL-MR training step spends its time, by phase and by op.
//
//   cmake --build build -j2 --target op_profile
//   ERLMR_THREADS=2 ./build/bench/op_profile [batch=16] [steps=40]
//
// Runs the fused step of the sensor reference model (as bench_step's fused_bN: T = 200,
// 12 classes, SGD), phase by phase as erl::erlmr_step does it on the CPU, and prints the mean
// wall time per step of each phase (forward, the one backward pass for the three seeds L_CE,
// 2·L_ph, L_uni, γ, their combination into the gradients, the optimiser update) and, from the
// op profiler (erlmr/autograd/profile.hpp, compiled in here with ERLMR_OP_PROFILE), each op's
// forward and backward time per step (a node's backward is timed and counted once per walk,
// all the seeds that reached it together). The
// per-op timers add a little to every op; the phase times are the ones to compare with
// bench_step.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "erlmr/erlmr.hpp"

using namespace erlmr;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  if (const char* t = std::getenv("ERLMR_THREADS")) set_num_threads(std::atoi(t));
  const std::int64_t B = argc > 1 ? std::atoll(argv[1]) : 16;
  const int steps = argc > 2 ? std::atoi(argv[2]) : 40, warmup = 5;
  if (B < 2 || steps < 1) {
    std::fprintf(stderr, "usage: op_profile [batch >= 2] [steps >= 1]\n");
    return 2;
  }
  Generator gen(1), drop(2);
  erl::ModelConfig mc;
  mc.window = 200;
  mc.classes = 12;
  erl::ErlmrModel<float> model(mc, gen);
  Var<float> x1(Tensor<float>::randn(Shape{B, 1, 3, 200}, gen)), x2(Tensor<float>::randn(Shape{B, 1, 3, 200}, gen));
  std::vector<std::int64_t> y;
  for (std::int64_t i = 0; i < B; ++i) y.push_back(i % 12);
  auto params = model.parameters();
  optim::SGD<float> opt(1e-3, 0.9, 1e-4);
  opt.add_params(params);
  const char* names[] = {"forward", "seeds pass", "gamma", "combination", "optimiser"};
  constexpr int kPhases = 5;
  double phase[kPhases] = {};
  auto ms = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  const auto& ordered = model.shared_then_other_parameters();
  const std::size_t n_theta = model.shared_parameters().size();
  for (int it = 0; it < warmup + steps; ++it) {
    if (it == warmup) {
      profile::reset();
      std::fill(phase, phase + kPhases, 0.0);
    }
    nn::Context ctx{true, &drop, 1.0};
    optim::zero_grad(params);
    Clock::time_point t[kPhases + 1];
    t[0] = Clock::now();
    profile::mark();
    auto f = model.forward(x1, x2, ctx);
    auto l_ce = cross_entropy(f.out, y);
    auto l_ph = erl::phase_cosine_loss(f.theta_a, f.theta_g);
    auto l_a = cross_entropy(f.out_a, y), l_g = cross_entropy(f.out_g, y);
    auto l_ph2 = scale(l_ph, 2.0f);
    auto l_uni = add(l_a, l_g);
    t[1] = Clock::now();
    const Var<float> outs[3] = {l_ce, l_ph2, l_uni};
    const auto gs = grad_seeds<float, float, CpuDevice>(std::span<const Var<float>>(outs, 3), ordered);
    t[2] = Clock::now();
    const std::span<const Gradient<float>> g1(gs[0].data(), n_theta), g2(gs[1].data(), n_theta);
    const double gamma = erl::min_norm_weight(g1, erl::value_of(l_ce), g2, erl::value_of(l_ph2));
    t[3] = Clock::now();
    const double c[3] = {gamma, (1 - gamma) / 2, 1 - gamma};
    erl::accumulate_combination<float>(ordered, gs, c);
    t[4] = Clock::now();
    opt.step();
    t[5] = Clock::now();
    for (int p = 0; p < kPhases; ++p) phase[p] += ms(t[p], t[p + 1]);
  }
  std::printf("op_profile: fused step, batch %lld, %d steps after %d warm-up, %d threads (ms per step)\n", static_cast<long long>(B), steps,
              warmup, num_threads());
  double total = 0;
  for (int p = 0; p < kPhases; ++p) {
    std::printf("  %-16s %8.3f\n", names[p], phase[p] / steps);
    total += phase[p] / steps;
  }
  std::printf("  %-16s %8.3f\n", "step", total);
  std::vector<std::pair<std::string, profile::OpTimes>> ops(profile::table().begin(), profile::table().end());
  std::sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) {
    return a.second.forward_ms + a.second.backward_ms > b.second.forward_ms + b.second.backward_ms;
  });
  std::printf("\n  %-26s %10s %10s %8s %8s\n", "op", "fwd ms", "bwd ms", "fwd n", "bwd n");
  for (const auto& [op, e] : ops)
    std::printf("  %-26s %10.3f %10.3f %8.1f %8.1f\n", op.c_str(), e.forward_ms / steps, e.backward_ms / steps,
                double(e.forward_calls) / steps, double(e.backward_calls) / steps);
  return 0;
}
