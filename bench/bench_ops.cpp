// bench/bench_ops.cpp — Google Benchmark programs for erlmr's hot ops.
//
//   * matrix products through erlmr's matmul(Var, Var) / linear(...) forward
//     (no graph recorded), next to the same product in plain Eigen, so the
//     overhead (or the gain from erlmr's panel threading) is visible;
//   * the Euler map kernel simd::euler with the xsimd path on and off;
//   * one end-to-end number for the ERL-MR Euler block
//     (euler -> linear complex×real -> crelu -> arg -> sum), forward and
//     forward+backward.
//
// Threads: erlmr's pool is set from the environment variable ERLMR_THREADS
// (default: std::thread::hardware_concurrency()). The Eigen baselines are
// single-threaded (Eigen is built without OpenMP here). Every benchmark uses
// real (wall-clock) time, because erlmr's worker threads are not counted in the
// main thread's CPU time; rates (GFLOP/s, items/s) are per wall-clock second.
#include <benchmark/benchmark.h>

#include <complex>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>

#include <sys/resource.h>

#include "erlmr/erlmr.hpp"

namespace {

using erlmr::Shape;
using erlmr::Tensor;
using erlmr::Var;
template <class T> using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Uniform values in [-1, 1] (Eigen's Random: cheap, unlike Philox randn, since
// Google Benchmark may call a benchmark function several times).
template <class T> Tensor<T> random_tensor(const Shape& s) {
  Tensor<T> t(s);
  t.vec().setRandom();
  return t;
}

// Shapes (M, K, N): C(M, N) = A(M, K) · B(K, N).
// The last one is the ERL-MR projection: x (32, 3168) times Wᵀ with W (1584, 3168).
void square_and_projection(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "K", "N"});
  for (std::int64_t s : {64, 256, 512}) b->Args({s, s, s});
  b->Args({32, 3168, 1584});
  b->Unit(benchmark::kMicrosecond)->UseRealTime();
}
void projection_only(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "K", "N"});
  b->Args({32, 3168, 1584});
  b->Unit(benchmark::kMicrosecond)->UseRealTime();
}

// Real FLOPs of one product: a complex multiply-add is 8 real flops, a
// complex×real one 4, a real one 2. The counter holds flops per iteration and is
// turned into flops per (wall-clock) second, which the console prints with an SI
// prefix: "GFLOP/s=150.2G/s" reads 150.2 GFLOP/s.
template <class A, class B> constexpr double flops_per_mac() {
  if constexpr (erlmr::is_complex_v<A> && erlmr::is_complex_v<B>) return 8;
  else if constexpr (erlmr::is_complex_v<A> || erlmr::is_complex_v<B>) return 4;
  else return 2;
}
template <class A, class B> void set_gflops(benchmark::State& state, double m, double k, double n) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_mac<A, B>() * m * n * k, benchmark::Counter::kIsIterationInvariantRate);
}

// ---- matmul: erlmr vs Eigen ------------------------------------------------------
// A is T, B is U: (T, T) real×real or complex×complex, (complex, real) complex×real.
template <class T, class U> void BM_erlmr_matmul(benchmark::State& state) {
  const std::int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  erlmr::NoGradGuard no_grad;
  const Var<T> a(random_tensor<T>(Shape{m, k}));
  const Var<U> b(random_tensor<U>(Shape{k, n}));
  for (auto _ : state) {
    auto c = erlmr::matmul(a, b);
    benchmark::DoNotOptimize(c.value().data());
    benchmark::ClobberMemory();
  }
  set_gflops<T, U>(state, double(m), double(k), double(n));
}
template <class T, class U> void BM_eigen_matmul(benchmark::State& state) {
  const Eigen::Index m = state.range(0), k = state.range(1), n = state.range(2);
  const RowMat<T> a = RowMat<T>::Random(m, k);
  const RowMat<U> b = RowMat<U>::Random(k, n);
  RowMat<T> c(m, n);
  for (auto _ : state) {
    c.noalias() = a * b;
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_gflops<T, U>(state, double(m), double(k), double(n));
}

// ---- linear: y = x·Wᵀ + b, x (M, K), W (N, K), b (N) --------------------------------
// Same element type T throughout, or complex x with real W and b (U = real_t<T>),
// where erlmr adds the bias to both parts: y = x·Wᵀ + (1+i)·b.
template <class T, class U> void BM_erlmr_linear(benchmark::State& state) {
  const std::int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  erlmr::NoGradGuard no_grad;
  const Var<T> x(random_tensor<T>(Shape{m, k}));
  const Var<U> w(random_tensor<U>(Shape{n, k}));
  const Var<U> bias(random_tensor<U>(Shape{n}));
  for (auto _ : state) {
    auto y = erlmr::linear(x, w, bias);
    benchmark::DoNotOptimize(y.value().data());
    benchmark::ClobberMemory();
  }
  set_gflops<T, U>(state, double(m), double(k), double(n));
}
template <class T, class U> void BM_eigen_linear(benchmark::State& state) {
  const Eigen::Index m = state.range(0), k = state.range(1), n = state.range(2);
  const RowMat<T> x = RowMat<T>::Random(m, k);
  const RowMat<U> w = RowMat<U>::Random(n, k);
  Eigen::Matrix<T, 1, Eigen::Dynamic> bias(n);
  if constexpr (erlmr::is_complex_v<T> && !erlmr::is_complex_v<U>)
    bias = Eigen::Matrix<U, 1, Eigen::Dynamic>::Random(n).template cast<T>() * T(1, 1);
  else
    bias = Eigen::Matrix<T, 1, Eigen::Dynamic>::Random(n);
  RowMat<T> y(m, n);
  for (auto _ : state) {
    y.noalias() = x * w.transpose();
    y.rowwise() += bias;
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_gflops<T, U>(state, double(m), double(k), double(n));
}

using cf = std::complex<float>;
using cd = std::complex<double>;

// real × real
BENCHMARK_TEMPLATE(BM_erlmr_matmul, float, float)->Apply(square_and_projection);
BENCHMARK_TEMPLATE(BM_eigen_matmul, float, float)->Apply(square_and_projection);
BENCHMARK_TEMPLATE(BM_erlmr_matmul, double, double)->Apply(square_and_projection);
BENCHMARK_TEMPLATE(BM_eigen_matmul, double, double)->Apply(square_and_projection);
// complex × complex
BENCHMARK_TEMPLATE(BM_erlmr_matmul, cf, cf)->Apply(square_and_projection);
BENCHMARK_TEMPLATE(BM_eigen_matmul, cf, cf)->Apply(square_and_projection);
BENCHMARK_TEMPLATE(BM_erlmr_matmul, cd, cd)->Apply(square_and_projection);
BENCHMARK_TEMPLATE(BM_eigen_matmul, cd, cd)->Apply(square_and_projection);
// complex × real (erlmr: one real GEMM on the stacked [Re; Im] rows; Eigen: its mixed product)
BENCHMARK_TEMPLATE(BM_erlmr_matmul, cf, float)->Apply(projection_only);
BENCHMARK_TEMPLATE(BM_eigen_matmul, cf, float)->Apply(projection_only);
BENCHMARK_TEMPLATE(BM_erlmr_matmul, cd, double)->Apply(projection_only);
BENCHMARK_TEMPLATE(BM_eigen_matmul, cd, double)->Apply(projection_only);
// linear at the projection shape
BENCHMARK_TEMPLATE(BM_erlmr_linear, float, float)->Apply(projection_only);
BENCHMARK_TEMPLATE(BM_eigen_linear, float, float)->Apply(projection_only);
BENCHMARK_TEMPLATE(BM_erlmr_linear, double, double)->Apply(projection_only);
BENCHMARK_TEMPLATE(BM_eigen_linear, double, double)->Apply(projection_only);
BENCHMARK_TEMPLATE(BM_erlmr_linear, cf, float)->Apply(projection_only);
BENCHMARK_TEMPLATE(BM_eigen_linear, cf, float)->Apply(projection_only);
BENCHMARK_TEMPLATE(BM_erlmr_linear, cd, double)->Apply(projection_only);
BENCHMARK_TEMPLATE(BM_eigen_linear, cd, double)->Apply(projection_only);

// ---- the Euler map kernel ---------------------------------------------------------
// z[i] = mu[i]·(cos θ[i] + i sin θ[i]) over n elements; Simd picks the xsimd path
// (simd::set_enabled(true)) or the scalar std::cos/std::sin path (false).
template <class R, bool Simd> void BM_simd_euler(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  const Tensor<R> mu = random_tensor<R>(Shape{n});
  Tensor<R> theta = random_tensor<R>(Shape{n});
  theta.vec() *= R(3.14159265358979);  // θ in [-π, π]
  Tensor<std::complex<R>> z(Shape{n});
  erlmr::simd::set_enabled(Simd);
  if (Simd && !erlmr::simd::enabled()) {
    state.SkipWithError("xsimd path not compiled in (ERLMR_SIMD=OFF)");
    return;
  }
  for (auto _ : state) {
    erlmr::simd::euler(mu.data(), theta.data(), z.data(), n);
    benchmark::DoNotOptimize(z.data());
    benchmark::ClobberMemory();
  }
  erlmr::simd::set_enabled(true);  // back to the default for the benchmarks that follow
  state.SetItemsProcessed(state.iterations() * n);
  state.SetBytesProcessed(state.iterations() * n * std::int64_t(4 * sizeof(R)));  // read μ, θ; write z
}
void euler_sizes(benchmark::internal::Benchmark* b) {
  b->ArgName("n")->Arg(1 << 16)->Arg(1 << 20)->Unit(benchmark::kMicrosecond)->UseRealTime();
}
BENCHMARK_TEMPLATE(BM_simd_euler, float, true)->Apply(euler_sizes);
BENCHMARK_TEMPLATE(BM_simd_euler, float, false)->Apply(euler_sizes);
BENCHMARK_TEMPLATE(BM_simd_euler, double, true)->Apply(euler_sizes);
BENCHMARK_TEMPLATE(BM_simd_euler, double, false)->Apply(euler_sizes);

// ---- the ERL-MR Euler block, end to end -----------------------------------------------
// One modality at batch B = 16: μ, θ (16, 3168) → z = euler(μ, θ) (complex) →
// y = linear(z, W, b) with real W (1584, 3168), b (1584) → crelu → arg → sum.
// Forward only (no graph), and forward + backward with every input requiring a
// gradient (μ, θ, W, b), as in training. "GEMM GFLOP/s" counts the products only:
// a complex (B, K) × real (K, N) product is one real GEMM on 2B stacked rows,
// 2·(2B)·K·N = 4·B·K·N flops; forward has one, backward two more (G_x, G_W).
// items_per_second is samples (rows of the batch) per second.
constexpr std::int64_t kBatch = 16, kIn = 3168, kOut = 1584;

template <class R> struct EulerBlock {
  Var<R> mu, theta, w, b;
  explicit EulerBlock(bool requires_grad) {
    Tensor<R> t = random_tensor<R>(Shape{kBatch, kIn});
    t.vec() *= R(3.14159265358979);
    mu = Var<R>(random_tensor<R>(Shape{kBatch, kIn}), requires_grad);
    theta = Var<R>(t, requires_grad);
    w = Var<R>(random_tensor<R>(Shape{kOut, kIn}), requires_grad);
    b = Var<R>(random_tensor<R>(Shape{kOut}), requires_grad);
  }
  Var<R> forward() const {
    auto z = erlmr::euler(mu, theta);
    auto y = erlmr::linear(z, w, b);
    return erlmr::sum(erlmr::arg(erlmr::crelu(y)));
  }
};

// Minor page faults of the process so far: a fresh multi-megabyte buffer costs one
// fault per 4 KiB page when first written, which the block's timings include.
double minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_minflt);
}

template <class R> void BM_euler_block_forward(benchmark::State& state) {
  erlmr::NoGradGuard no_grad;
  const EulerBlock<R> blk(false);
  const double faults0 = minor_faults();
  for (auto _ : state) {
    auto loss = blk.forward();
    benchmark::DoNotOptimize(loss.value().data());
  }
  state.counters["faults/iter"] = benchmark::Counter(minor_faults() - faults0, benchmark::Counter::kAvgIterations);
  state.counters["GEMM GFLOP/s"] = benchmark::Counter(4.0 * kBatch * kIn * kOut,
                                                      benchmark::Counter::kIsIterationInvariantRate);
  state.SetItemsProcessed(state.iterations() * kBatch);  // samples/s
}
// zero_grad:1 drops every .grad after each pass (each pass starts from empty
// gradients, so .grad of W is a fresh clone of its adjoint); zero_grad:0 lets
// the gradients accumulate (.grad += adjoint), as with gradient accumulation.
template <class R> void BM_euler_block_forward_backward(benchmark::State& state) {
  const bool zero_grad = state.range(0) != 0;
  const EulerBlock<R> blk(true);
  const double faults0 = minor_faults();
  for (auto _ : state) {
    auto loss = blk.forward();
    erlmr::backward(loss);
    benchmark::DoNotOptimize(blk.w.grad().data());
    benchmark::DoNotOptimize(blk.mu.grad().data());
    benchmark::ClobberMemory();
    if (zero_grad) {
      blk.mu.zero_grad();
      blk.theta.zero_grad();
      blk.w.zero_grad();
      blk.b.zero_grad();
    }
  }
  state.counters["faults/iter"] = benchmark::Counter(minor_faults() - faults0, benchmark::Counter::kAvgIterations);
  state.counters["GEMM GFLOP/s"] = benchmark::Counter(3 * 4.0 * kBatch * kIn * kOut,
                                                      benchmark::Counter::kIsIterationInvariantRate);
  state.SetItemsProcessed(state.iterations() * kBatch);  // samples/s
}
BENCHMARK_TEMPLATE(BM_euler_block_forward, float)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_euler_block_forward, double)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_euler_block_forward_backward, float)
    ->ArgName("zero_grad")->Arg(1)->Arg(0)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_euler_block_forward_backward, double)
    ->ArgName("zero_grad")->Arg(1)->Arg(0)->Unit(benchmark::kMicrosecond)->UseRealTime();

int threads_from_env() {
  unsigned hw = std::thread::hardware_concurrency();
  int n = hw == 0 ? 1 : static_cast<int>(hw);
  if (const char* e = std::getenv("ERLMR_THREADS"); e && *e) {
    char* end = nullptr;
    const long v = std::strtol(e, &end, 10);
    if (end && *end == '\0' && v > 0 && v <= 1024) n = static_cast<int>(v);
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  erlmr::set_num_threads(threads_from_env());
  benchmark::AddCustomContext("erlmr_threads", std::to_string(erlmr::num_threads()));
  benchmark::AddCustomContext("erlmr_simd_compiled", erlmr::simd::compiled() ? "yes (xsimd)" : "no (scalar only)");
#ifdef ERLMR_USE_XSIMD
  benchmark::AddCustomContext("xsimd_arch", xsimd::default_arch::name());
#endif
  benchmark::AddCustomContext("eigen_simd", Eigen::SimdInstructionSetsInUse());
  benchmark::AddCustomContext("eigen_threads", std::to_string(Eigen::nbThreads()));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
