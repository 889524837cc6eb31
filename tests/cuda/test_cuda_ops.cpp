// CPU-vs-GPU agreement of every op on the CUDA device, forward and backward.
//
// Each check builds the same inputs on both devices (drawn on the host, copied with
// Tensor::to), runs the op through the generic lambda on CPU Vars and on CUDA Vars
// (overload resolution picks the device's implementation), seeds both backward passes
// with the same random output gradient, and compares the outputs and every input
// gradient: float64 within 1e-10 relative to the largest magnitude, float32 within 1e-5
// (issue "CUDA backend"). Runs only where a CUDA device exists (test_cuda_main.cpp).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <tuple>

#include "erlmr/cuda.hpp"

using namespace erlmr;

namespace {

template <class T> double tol() { return std::is_same_v<real_t<T>, double> ? 1e-10 : 1e-5; }

template <class T> double rel_diff(const Tensor<T>& cpu, const std::vector<T>& gpu) {
  REQUIRE(static_cast<std::size_t>(cpu.numel()) == gpu.size());
  double scale = 0, diff = 0;
  for (std::int64_t i = 0; i < cpu.numel(); ++i) {
    scale = std::max(scale, double(std::abs(cpu[i])));
    diff = std::max(diff, double(std::abs(cpu[i] - gpu[static_cast<std::size_t>(i)])));
  }
  return diff / std::max(scale, 1e-30);
}

template <class T> Tensor<T> random(const Shape& s, std::uint64_t seed, real_t<T> lo = -1, real_t<T> hi = 1) {
  Generator g(seed);
  return Tensor<T>::uniform(s, g, lo, hi);
}

// Runs f on CPU leaves and on CUDA leaves with the same values and compares the output
// and the gradients of every input.
template <class F, class... In> void agree(const char* what, F f, const Tensor<In>&... in) {
  CAPTURE(what);
  const auto cpu_in = std::make_tuple(Var<In>(in.clone(), true)...);
  const auto gpu_in = std::make_tuple(Var<In, CudaDevice>(in.template to<CudaDevice>(), true)...);
  auto yc = std::apply(f, cpu_in);
  auto yg = std::apply(f, gpu_in);
  using Out = typename decltype(yc)::value_type;
  REQUIRE(yc.shape() == yg.shape());
  CHECK(rel_diff(yc.value(), yg.value().to_vector()) <= tol<Out>());
  const Tensor<Out> seed = random<Out>(yc.shape(), 99);
  const auto seed_gpu = seed.template to<CudaDevice>();
  backward(yc, false, &seed);
  backward(yg, false, &seed_gpu);
  std::size_t k = 0;
  auto cmp = [&](const auto& c, const auto& g) {
    CAPTURE(k);
    using T = typename std::decay_t<decltype(c)>::value_type;
    REQUIRE(c.grad().defined() == g.grad().defined());
    if (c.grad().defined()) CHECK(rel_diff(c.grad(), g.grad().to_vector()) <= tol<T>());
    ++k;
  };
  std::apply([&](const auto&... c) { std::apply([&](const auto&... g) { (cmp(c, g), ...); }, gpu_in); }, cpu_in);
}

template <class T> void arithmetic() {
  const auto a = random<T>(Shape{3, 4}, 1), b = random<T>(Shape{4}, 2), c = random<T>(Shape{3, 1}, 3);
  const auto pos = random<T>(Shape{3, 4}, 4, 0.5, 2);
  agree("add", [](const auto& x, const auto& y) { return add(x, y); }, a, b);
  agree("sub", [](const auto& x, const auto& y) { return sub(x, y); }, c, a);
  agree("mul", [](const auto& x, const auto& y) { return mul(x, y); }, a, c);
  agree("div", [](const auto& x, const auto& y) { return div(x, y); }, a, pos);
  agree("neg", [](const auto& x) { return neg(x); }, a);
  agree("scale", [](const auto& x) { return scale(x, T(0.5)); }, a);
  agree("add_scalar", [](const auto& x) { return add_scalar(x, T(2)); }, a);
  agree("exp", [](const auto& x) { return exp(x); }, a);
  agree("log", [](const auto& x) { return log(x); }, pos);
  agree("sqrt", [](const auto& x) { return sqrt(x); }, pos);
  agree("sin", [](const auto& x) { return sin(x); }, a);
  agree("cos", [](const auto& x) { return cos(x); }, a);
  agree("tanh", [](const auto& x) { return tanh(x); }, a);
  agree("sigmoid", [](const auto& x) { return sigmoid(x); }, a);
  agree("sum axis", [](const auto& x) { return sum(x, 0); }, a);
  agree("sum all", [](const auto& x) { return sum(x); }, a);
  agree("mean axes", [](const auto& x) { return mean(x, std::vector<int>{0, 1}); }, random<T>(Shape{2, 3, 4}, 5));
  agree("reshape", [](const auto& x) { return flatten(reshape(x, {2, 6}), 0); }, a);
  agree("transpose", [](const auto& x) { return transpose(x, 0, 2); }, random<T>(Shape{2, 3, 4}, 6));
  agree("concat", [](const auto& x, const auto& y) { return concat(std::vector<std::decay_t<decltype(x)>>{x, y, x}, 1); }, a,
        random<T>(Shape{3, 2}, 7));
  agree("slice", [](const auto& x) { return slice(x, 1, 1, 2); }, random<T>(Shape{2, 4, 3}, 8));
  agree("matmul", [](const auto& x, const auto& y) { return matmul(x, y); }, a, random<T>(Shape{4, 5}, 9));
  agree("linear", [](const auto& x, const auto& w, const auto& b) { return linear(x, w, b); }, random<T>(Shape{2, 3, 4}, 10),
        random<T>(Shape{5, 4}, 11), random<T>(Shape{5}, 12));
  agree("conv2d", [](const auto& x, const auto& w, const auto& b) { return conv2d(x, w, b, {2, 1}, {1, 1}); },
        random<T>(Shape{2, 3, 7, 6}, 13), random<T>(Shape{4, 3, 3, 2}, 14), random<T>(Shape{4}, 15));
  agree("global_avg_pool", [](const auto& x) { return global_avg_pool(x); }, random<T>(Shape{2, 3, 4, 5}, 16));
}

template <class R> void real_only() {
  const auto a = random<R>(Shape{3, 5}, 21);
  agree("relu", [](const auto& x) { return relu(x); }, a);
  agree("abs", [](const auto& x) { return abs(x); }, a);
  agree("max", [](const auto& x) { return max(x, 1); }, a);
  agree("softmax", [](const auto& x) { return softmax(x, 1); }, random<R>(Shape{2, 4, 3}, 22));
  agree("log_softmax", [](const auto& x) { return log_softmax(x); }, a);
  agree("cross_entropy", [](const auto& x) { return cross_entropy(x, {0, 4, 2}); }, a);
  agree("cosine_similarity", [](const auto& x, const auto& y) { return cosine_similarity(x, y, 1); }, a, random<R>(Shape{3, 5}, 23));
  using C = std::complex<R>;
  const auto z = random<C>(Shape{3, 5}, 24);
  agree("make_complex", [](const auto& x, const auto& y) { return make_complex(x, y); }, a, random<R>(Shape{3, 5}, 25));
  agree("euler", [](const auto& m, const auto& t) { return euler(m, t); }, random<R>(Shape{3, 1}, 26), a);
  agree("real", [](const auto& x) { return real(x); }, z);
  agree("imag", [](const auto& x) { return imag(x); }, z);
  agree("conj", [](const auto& x) { return conj(x); }, z);
  agree("abs complex", [](const auto& x) { return abs(x); }, z);
  agree("arg", [](const auto& x) { return arg(x); }, z);
  agree("crelu", [](const auto& x) { return crelu(x); }, z);
  agree("mul complex real", [](const auto& x, const auto& r) { return mul(x, r); }, z, random<R>(Shape{5}, 27));
  agree("matmul complex real", [](const auto& x, const auto& w) { return matmul(x, w); }, z, random<R>(Shape{5, 2}, 28));
  agree("linear complex real", [](const auto& x, const auto& w, const auto& b) { return linear(x, w, b); }, z,
        random<R>(Shape{4, 5}, 29), random<R>(Shape{4}, 30));
}

template <class R> void batch_norm_agrees(bool training) {
  const auto x = random<R>(Shape{4, 3, 5}, 31), gamma = random<R>(Shape{3}, 32), beta = random<R>(Shape{3}, 33);
  Tensor<R> rm = random<R>(Shape{3}, 34), rv = random<R>(Shape{3}, 35, 0.5, 2);
  auto rm_g = rm.template to<CudaDevice>(), rv_g = rv.template to<CudaDevice>();
  Tensor<R> rm_c = rm.clone(), rv_c = rv.clone();
  agree("batch_norm", [&](const auto& a, const auto& g, const auto& b) {
    if constexpr (std::is_same_v<typename std::decay_t<decltype(a)>::device_type, CudaDevice>)
      return batch_norm(a, g, b, rm_g, rv_g, training);
    else
      return batch_norm(a, g, b, rm_c, rv_c, training);
  }, x, gamma, beta);
  CHECK(rel_diff(rm_c, rm_g.to_vector()) <= tol<R>());
  CHECK(rel_diff(rv_c, rv_g.to_vector()) <= tol<R>());
}

}  // namespace

TEST_CASE_TEMPLATE("CUDA ops agree with the CPU (all element types)", T, float, double, std::complex<float>, std::complex<double>) {
  arithmetic<T>();
}
TEST_CASE_TEMPLATE("CUDA real and complex-building ops agree with the CPU", R, float, double) {
  real_only<R>();
  batch_norm_agrees<R>(true);
  batch_norm_agrees<R>(false);
}

TEST_CASE_TEMPLATE("CUDA dropout draws the CPU's masks", T, float, double, std::complex<float>) {
  // Same generator state on both sides: the kept elements (and the scale) must be identical.
  const auto x = random<T>(Shape{3, 1000}, 41);
  Generator gc(7, 12345), gg(7, 12345);
  Var<T> xc(x.clone(), true);
  Var<T, CudaDevice> xg(x.template to<CudaDevice>(), true);
  const auto yc = dropout(xc, 0.3, true, gc);
  const auto yg = dropout(xg, 0.3, true, gg);
  CHECK(gc.offset() == gg.offset());
  const auto hv = yg.value().to_vector();
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    const bool zc = yc.value()[i] == T(0), zg = hv[static_cast<std::size_t>(i)] == T(0);
    REQUIRE(zc == zg);
  }
  CHECK(rel_diff(yc.value(), hv) <= tol<T>());
}

TEST_CASE("CUDA optimisers match the CPU's updates") {
  for (int adam = 0; adam < 2; ++adam) {
    const auto p0 = random<double>(Shape{257}, 51), g0 = random<double>(Shape{257}, 52);
    Var<double> pc(p0.clone(), true);
    Var<double, CudaDevice> pg(p0.to<CudaDevice>(), true);
    std::unique_ptr<optim::Optimizer<double>> oc;
    std::unique_ptr<optim::CudaOptimizer<double>> og;
    if (adam) {
      oc = std::make_unique<optim::Adam<double>>(0.01, 0.9, 0.99, 1e-8, 0.1, true);
      og = std::make_unique<optim::CudaAdam<double>>(0.01, 0.9, 0.99, 1e-8, 0.1, true);
    } else {
      oc = std::make_unique<optim::SGD<double>>(0.1, 0.9, 0.01, true);
      og = std::make_unique<optim::CudaSGD<double>>(0.1, 0.9, 0.01, true);
    }
    oc->add_params(std::vector<Var<double>>{pc});
    og->add_params(std::vector<Var<double, CudaDevice>>{pg});
    for (int s = 0; s < 3; ++s) {
      pc.mutable_grad() = g0.clone();
      pg.mutable_grad() = g0.to<CudaDevice>();
      oc->step();
      og->step();
    }
    CHECK(rel_diff(pc.value(), pg.value().to_vector()) <= 1e-12);
  }
}

TEST_CASE("Tensors move between devices in one call, and errors name the op") {
  const auto a = random<float>(Shape{2, 3}, 61);
  const auto g = a.to<CudaDevice>();
  CHECK(g.shape() == a.shape());
  const auto back = g.to<CpuDevice>();
  for (std::int64_t i = 0; i < a.numel(); ++i) CHECK(back[i] == a[i]);
  CudaVar<float> x(g, true), y(CudaTensor<float>::zeros(Shape{4}), true);
  CHECK_THROWS_WITH_AS(add(x, y), doctest::Contains("add"), ShapeError);
  const auto moved = Var<float>(a, true).to<CudaDevice>();
  CHECK(moved.requires_grad());
}
