// bench_step — Google Benchmark of whole training steps and the hot ops, each figure also
// shown as a fraction of the machine's GEMM rate measured in the same run.
//
//   ERLMR_THREADS=2 ./build/bench/bench_step --benchmark_min_time=1
//
// Counters: samples/s, GFLOP/s (the analytic product FLOP count of step_common.hpp over the
// time), flop_count (per step), and for BM_GemmRate the machine's large-product rate. Every
// benchmark here runs on the thread pool, so all use wall-clock time (UseRealTime): the rates
// are then over the time the column "Time" shows, not over the main thread's CPU time.
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "step_common.hpp"

using namespace erlmr;

// Every registration below goes through these, so that none falls back to CPU time.
#define ERLMR_BENCH(fn) BENCHMARK(fn)->UseRealTime()
#define ERLMR_BENCH_CAPTURE(fn, name, ...) BENCHMARK_CAPTURE(fn, name, __VA_ARGS__)->UseRealTime()

namespace {

void set_counters(benchmark::State& st, double flops, std::int64_t samples) {
  st.counters["GFLOP"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["flop_count"] = flops;
  if (samples > 0) st.counters["samples/s"] = benchmark::Counter(double(samples), benchmark::Counter::kIsIterationInvariantRate);
}

// The machine's GEMM rate: a large float product through the same panel-parallel path.
void BM_GemmRate(benchmark::State& st) {
  const std::int64_t n = st.range(0);
  Generator g(1);
  auto A = Tensor<float>::randn(Shape{n, n}, g), B = Tensor<float>::randn(Shape{n, n}, g), C = Tensor<float>(Shape{n, n});
  for (auto _ : st) {
    detail::gemm_into<float>(detail::mmat(C, n, n), detail::cmat(A, n, n), detail::cmat(B, n, n), false);
    benchmark::DoNotOptimize(C.data());
  }
  set_counters(st, 2.0 * n * n * n, 0);
}
ERLMR_BENCH(BM_GemmRate)->Arg(1024)->Arg(2048)->Unit(benchmark::kMillisecond);

// The same square product through simd::gemm_nn (no packing): the better of the two rates
// is the machine's rate that the FLOP floor uses (docs/performance.md).
void BM_GemmRateUnpacked(benchmark::State& st) {
  const std::int64_t n = st.range(0);
  if (!simd::gemm_available()) {
    st.SkipWithError("compiled without SIMD");
    return;
  }
  Generator g(1);
  auto A = Tensor<float>::randn(Shape{n, n}, g), B = Tensor<float>::randn(Shape{n, n}, g), C = Tensor<float>(Shape{n, n});
  for (auto _ : st) {
    simd::gemm_nn<float>(n, n, n, A.data(), n, B.data(), n, C.data(), n, false);
    benchmark::DoNotOptimize(C.data());
  }
  set_counters(st, 2.0 * n * n * n, 0);
}
ERLMR_BENCH(BM_GemmRateUnpacked)->Arg(1024)->Unit(benchmark::kMillisecond);

// The step's dominant product shape, the shared projection's input gradient at batch 16
// (64 × 1584)·(1584 × 3168), through Eigen (arg 0) and through simd::gemm_nn (arg 1).
void BM_ThinGemm(benchmark::State& st) {
  const bool unpacked = st.range(0) == 1;
  if (unpacked && !simd::gemm_available()) {
    st.SkipWithError("compiled without SIMD");
    return;
  }
  const std::int64_t m = 64, k = 1584, n = 3168;
  Generator g(2);
  auto A = Tensor<float>::randn(Shape{m, k}, g), B = Tensor<float>::randn(Shape{k, n}, g), C = Tensor<float>(Shape{m, n});
  for (auto _ : st) {
    if (unpacked) simd::gemm_nn<float>(m, n, k, A.data(), k, B.data(), n, C.data(), n, false);
    else detail::gemm_into<float>(detail::mmat(C, m, n), detail::cmat(A, m, k), detail::cmat(B, k, n), false);
    benchmark::DoNotOptimize(C.data());
  }
  set_counters(st, 2.0 * m * n * k, 0);
}
ERLMR_BENCH(BM_ThinGemm)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// The convolution weight gradients' shape, G·colsᵀ with O output channels and K patch rows
// over the batch-16 positions (16·198 = 3168): product_abt (arg 1: O, arg 2: K), which takes
// simd::gemm_nt below 128 patch rows and the transposing gemm_nn route above.
void BM_ConvWeightGrad(benchmark::State& st) {
  const std::int64_t O = st.range(0), K = st.range(1), P = 3168;
  Generator g(3);
  auto G = Tensor<float>::randn(Shape{O, P}, g), cols = Tensor<float>::randn(Shape{K, P}, g), gw = Tensor<float>(Shape{O, K});
  for (auto _ : st) {
    detail::product_abt<float>(detail::mmat(gw, O, K), detail::cmat(G, O, P), detail::cmat(cols, K, P));
    benchmark::DoNotOptimize(gw.data());
  }
  set_counters(st, 2.0 * O * K * P, 0);
}
ERLMR_BENCH(BM_ConvWeightGrad)->Args({64, 4})->Args({32, 64})->Args({16, 32})->Args({64, 256})->Unit(benchmark::kMicrosecond);

void BM_Step(benchmark::State& st, const std::string& config) {
  const auto c = bench::StepConfig::parse(config);
  bench::StepRunner r(c);
  for (int i = 0; i < 2; ++i) r.run();
  for (auto _ : st) r.run();
  set_counters(st, bench::step_flops(c), c.batch);
}
ERLMR_BENCH_CAPTURE(BM_Step, fused_b16, std::string("fused-b16"))->Unit(benchmark::kMillisecond);
ERLMR_BENCH_CAPTURE(BM_Step, fused_b64, std::string("fused-b64"))->Unit(benchmark::kMillisecond);
ERLMR_BENCH_CAPTURE(BM_Step, faithful_b16, std::string("faithful-b16"))->Unit(benchmark::kMillisecond);
ERLMR_BENCH_CAPTURE(BM_Step, faithful_b64, std::string("faithful-b64"))->Unit(benchmark::kMillisecond);
ERLMR_BENCH_CAPTURE(BM_Step, joint_b16, std::string("joint-b16"))->Unit(benchmark::kMillisecond);
ERLMR_BENCH_CAPTURE(BM_Step, joint_b64, std::string("joint-b64"))->Unit(benchmark::kMillisecond);
ERLMR_BENCH_CAPTURE(BM_Step, infer_b1, std::string("infer-b1"))->Unit(benchmark::kMillisecond);
ERLMR_BENCH_CAPTURE(BM_Step, infer_b64, std::string("infer-b64"))->Unit(benchmark::kMillisecond);

// ---- hot ops ------------------------------------------------------------------------------
// The shared projection: (4B × 3168) complex-as-stacked-real rows through W (1584 × 3168).
void BM_ProjectionForwardBackward(benchmark::State& st) {
  const std::int64_t B = st.range(0), D = 3168;
  Generator g(1);
  Var<std::complex<float>> z(Tensor<std::complex<float>>::randn(Shape{2 * B, D}, g), true);
  Var<float> W(Tensor<float>::randn(Shape{D / 2, D}, g, 0.02f), true), b(Tensor<float>::zeros(Shape{D / 2}), true);
  for (auto _ : st) {
    z.zero_grad();
    W.zero_grad();
    b.zero_grad();
    auto y = linear(z, W, b);
    backward(real(sum(y)));
  }
  set_counters(st, 3 * 2.0 * (4 * B) * D * (D / 2), 0);
}
ERLMR_BENCH(BM_ProjectionForwardBackward)->Arg(16)->Arg(64)->Unit(benchmark::kMillisecond);

void BM_EulerMap(benchmark::State& st) {
  const std::int64_t B = st.range(0);
  Generator g(1);
  Var<float> mu(Tensor<float>::ones(Shape{1, 16, 1}), true), th(Tensor<float>::randn(Shape{B, 16, 198}, g), true);
  for (auto _ : st) {
    auto z = euler(mu, th);
    benchmark::DoNotOptimize(z.value().data());
  }
  st.SetItemsProcessed(st.iterations() * B * 16 * 198);
}
ERLMR_BENCH(BM_EulerMap)->Arg(16)->Arg(64);

void BM_Conv2dForwardBackward(benchmark::State& st) {
  const std::int64_t B = st.range(0);
  Generator g(1);
  Var<float> x(Tensor<float>::randn(Shape{B, 64, 2, 199}, g), true), w(Tensor<float>::randn(Shape{64, 64, 2, 2}, g, 0.05f), true),
      b(Tensor<float>::zeros(Shape{64}), true);
  for (auto _ : st) {
    x.zero_grad();
    w.zero_grad();
    b.zero_grad();
    backward(sum(conv2d(x, w, b)));
  }
  set_counters(st, 3 * 2.0 * B * 64 * 198 * 256, 0);
}
ERLMR_BENCH(BM_Conv2dForwardBackward)->Arg(16)->Arg(64)->Unit(benchmark::kMillisecond);

void BM_BatchNormForwardBackward(benchmark::State& st) {
  const std::int64_t B = st.range(0);
  Generator g(1);
  Var<float> x(Tensor<float>::randn(Shape{B, 64, 2, 199}, g), true), ga(Tensor<float>::ones(Shape{64}), true),
      be(Tensor<float>::zeros(Shape{64}), true);
  auto rm = Tensor<float>::zeros(Shape{64}), rv = Tensor<float>::ones(Shape{64});
  for (auto _ : st) {
    x.zero_grad();
    backward(sum(batch_norm(x, ga, be, rm, rv, true)));
  }
  st.SetItemsProcessed(st.iterations() * B * 64 * 2 * 199);
}
ERLMR_BENCH(BM_BatchNormForwardBackward)->Arg(16)->Arg(64)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  if (const char* t = std::getenv("ERLMR_THREADS")) set_num_threads(std::atoi(t));
  benchmark::AddCustomContext("erlmr_threads", std::to_string(num_threads()));
  benchmark::AddCustomContext("erlmr_simd", simd::compiled() ? "xsimd" : "scalar");
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
