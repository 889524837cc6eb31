// Host-side checks of the per-element math the CUDA kernels run: erlmr/cuda/philox.hpp
// and erlmr/cuda/functors.hpp are compiled here by the ordinary C++ compiler (no GPU,
// no CUDA headers) and compared with the CPU implementation (core/rng.hpp, ops/*.hpp)
// and with finite differences.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <complex>
#include <cstdint>
#include <vector>

#include "erlmr/cuda/functors.hpp"
#include "erlmr/cuda/philox.hpp"
#include "test_util.hpp"

using namespace erlmr;
namespace fn = erlmr::cuda::fn;
using cuda::Binary;
using cuda::Unary;
using cd = std::complex<double>;
using cf = std::complex<float>;

namespace {

// A tiny deterministic source of test points (splitmix64).
struct Points {
  std::uint64_t s;
  explicit Points(std::uint64_t seed) : s(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform(double lo, double hi) { return lo + (hi - lo) * double(next() >> 11) * (1.0 / 9007199254740992.0); }
};

bool close(double a, double b, double rel) { return std::abs(a - b) <= rel * std::max(1.0, std::abs(b)); }
bool close(cd a, cd b, double rel) { return std::abs(a - b) <= rel * std::max(1.0, std::abs(b)); }

cd un_c(Unary op, cd z) {
  double re, im;
  fn::unary_complex(op, z.real(), z.imag(), re, im);
  return {re, im};
}
cf un_cf(Unary op, cf z) {
  float re, im;
  fn::unary_complex(op, z.real(), z.imag(), re, im);
  return {re, im};
}
cd bwd_c(Unary op, cd x, cd y, cd g) {
  double re, im;
  fn::unary_backward_complex(op, x.real(), x.imag(), y.real(), y.imag(), g.real(), g.imag(), re, im);
  return {re, im};
}
cd bin_c(Binary op, cd a, cd b) {
  double re, im;
  fn::binary_complex(op, a.real(), a.imag(), b.real(), b.imag(), re, im);
  return {re, im};
}

// The std:: reference of each complex unary op (the CPU's scalar path, simd/kernels.hpp).
cd ref_c(Unary op, cd z) {
  switch (op) {
    case Unary::neg: return -z;
    case Unary::exp: return std::exp(z);
    case Unary::log: return std::log(z);
    case Unary::sqrt: return std::sqrt(z);
    case Unary::sin: return std::sin(z);
    case Unary::cos: return std::cos(z);
    case Unary::tanh: return std::tanh(z);
    case Unary::sigmoid: return cd(1) / (cd(1) + std::exp(-z));
    case Unary::conj: return std::conj(z);
    default: return {};
  }
}
cf ref_cf(Unary op, cf z) {
  switch (op) {
    case Unary::neg: return -z;
    case Unary::exp: return std::exp(z);
    case Unary::log: return std::log(z);
    case Unary::sqrt: return std::sqrt(z);
    case Unary::sin: return std::sin(z);
    case Unary::cos: return std::cos(z);
    case Unary::tanh: return std::tanh(z);
    case Unary::sigmoid: return cf(1) / (cf(1) + std::exp(-z));
    case Unary::conj: return std::conj(z);
    default: return {};
  }
}

const Unary kSmooth[] = {Unary::exp, Unary::log, Unary::sqrt, Unary::sin, Unary::cos, Unary::tanh, Unary::sigmoid};
const char* name(Unary op) {
  switch (op) {
    case Unary::neg: return "neg";
    case Unary::exp: return "exp";
    case Unary::log: return "log";
    case Unary::sqrt: return "sqrt";
    case Unary::sin: return "sin";
    case Unary::cos: return "cos";
    case Unary::tanh: return "tanh";
    case Unary::sigmoid: return "sigmoid";
    case Unary::relu: return "relu";
    case Unary::abs: return "abs";
    case Unary::conj: return "conj";
  }
  return "?";
}

// The CPU op (ops/elementwise.hpp) for a Unary, on a Var.
template <class T> Var<T> cpu_op(Unary op, const Var<T>& x) {
  switch (op) {
    case Unary::neg: return neg(x);
    case Unary::exp: return exp(x);
    case Unary::log: return log(x);
    case Unary::sqrt: return sqrt(x);
    case Unary::sin: return sin(x);
    case Unary::cos: return cos(x);
    case Unary::tanh: return tanh(x);
    case Unary::sigmoid: return sigmoid(x);
    default: break;
  }
  if constexpr (RealScalar<T>) {
    if (op == Unary::relu) return relu(x);
    if (op == Unary::abs) return abs(x);
    return x;
  } else {
    return conj(x);
  }
}

}  // namespace

// ---- Philox ---------------------------------------------------------------------------------

TEST_CASE("cuda philox: philox_bits equals Generator::bits") {
  std::vector<std::uint64_t> seeds = {0,
                                      1,
                                      42,
                                      0xFFFFFFFFull,
                                      0x100000000ull,
                                      0xDEADBEEFCAFEF00Dull,
                                      0x8000000000000000ull,
                                      0xFFFFFFFFFFFFFFFFull};
  Points pts(7);
  for (int i = 0; i < 8; ++i) seeds.push_back(pts.next());
  std::vector<std::uint64_t> counters;
  for (std::uint64_t c = 0; c < 64; ++c) counters.push_back(c);
  for (std::uint64_t base : {0xFFFFFFF0ull, 0x3FFFFFFF0ull, 0x100000000ull * 4 - 8, 0x7FFFFFFFFFFFFFF8ull,
                             0xFFFFFFFFFFFFFFF0ull})
    for (std::uint64_t k = 0; k < 16; ++k) counters.push_back(base + k);
  for (int i = 0; i < 64; ++i) counters.push_back(pts.next());
  int checked = 0;
  for (std::uint64_t s : seeds) {
    const Generator g(s);
    for (std::uint64_t c : counters) {
      const std::uint32_t got = cuda::philox_bits(s, c), want = g.bits(c);
      if (got != want) {
        INFO("seed " << s << " counter " << c);
        CHECK(got == want);
      }
      ++checked;
    }
    for (std::uint64_t b : {std::uint64_t(0), std::uint64_t(5), std::uint64_t(0x123456789ull), ~std::uint64_t(0)}) {
      std::uint32_t w[4];
      cuda::philox_block(s, b, w);
      const auto ref = g.block(b);
      for (int k = 0; k < 4; ++k) CHECK(w[k] == ref[static_cast<std::size_t>(k)]);
    }
  }
  CHECK(checked == int(seeds.size() * counters.size()));
}

TEST_CASE("cuda philox: philox_normal equals Generator::normal bitwise") {
  std::vector<std::uint64_t> seeds = {0, 1, 42, 0xFFFFFFFFull, 0x100000000ull, 0xDEADBEEFCAFEF00Dull,
                                      0xFFFFFFFFFFFFFFFFull};
  Points pts(13);
  for (int i = 0; i < 4; ++i) seeds.push_back(pts.next());
  std::vector<std::uint64_t> counters;
  for (std::uint64_t i = 0; i <= 2000; ++i) counters.push_back(i);
  // lane blocks i >> 1 straddling 2^32 (the counter's high word) and near the top of the range
  for (std::uint64_t base : {0xFFFFFFF0ull, 0x1FFFFFFF0ull, 0x200000000ull - 3, 0x7FFFFFFFFFFFFFF8ull,
                             0xFFFFFFFFFFFFFFF0ull})
    for (std::uint64_t k = 0; k < 16; ++k) counters.push_back(base + k);
  for (int i = 0; i < 64; ++i) counters.push_back(pts.next());
  int mism = 0;
  for (std::uint64_t s : seeds) {
    const Generator g(s);
    for (std::uint64_t i : counters) {
      const double got = cuda::philox_normal(s, i), want = g.normal(i);
      if (std::bit_cast<std::uint64_t>(got) != std::bit_cast<std::uint64_t>(want)) {
        INFO("seed " << s << " counter " << i << ": " << got << " vs " << want);
        CHECK(false);
        ++mism;
      }
    }
  }
  CHECK(mism == 0);
  // and the pair helper the noise kernel uses: (r cos θ, r sin θ) of lane block b are normal(2b), normal(2b + 1)
  for (std::uint64_t b : {std::uint64_t(0), std::uint64_t(7), std::uint64_t(0x80000000ull), ~std::uint64_t(0) >> 1}) {
    double r, theta;
    cuda::philox_box_muller(42, b, r, theta);
    CHECK(r * std::cos(theta) == Generator(42).normal(2 * b));
    CHECK(r * std::sin(theta) == Generator(42).normal(2 * b + 1));
  }
}

TEST_CASE("cuda philox: the dropout mask rule reproduces the CPU dropout") {
  for (double p : {0.1, 0.5, 0.9}) {
    const std::uint64_t seed = 0xABCDEF0123456789ull;
    Generator gen(seed, 0x1FFFFFFFDull);  // odd offset near 2^33: blocks straddle the 32-bit boundary
    const std::uint64_t first = gen.offset();
    Var<double> x(Tensor<double>::ones(Shape{1001}), false);
    const auto y = dropout(x, p, true, gen).value();
    const double keep = 1.0 / (1.0 - p);
    const auto threshold = static_cast<std::uint32_t>(std::ceil(p * 16777216.0));
    int mism = 0;
    for (std::int64_t i = 0; i < y.numel(); ++i) {
      const double m = cuda::dropout_keep(cuda::philox_bits(seed, first + std::uint64_t(i)), threshold) ? keep : 0.0;
      mism += m != y.data()[i];
    }
    CHECK(mism == 0);
  }
}

// ---- unary forward ------------------------------------------------------------------------------

TEST_CASE("cuda functors: real unary forward equals the CPU scalar path") {
  Points pts(11);
  for (int t = 0; t < 200; ++t) {
    const double x = pts.uniform(-5, 5), xp = std::abs(x) + 1e-3;
    CHECK(fn::unary_real(Unary::exp, x) == simd::scalar_unary(simd::Unary::exp, x));
    CHECK(fn::unary_real(Unary::log, xp) == simd::scalar_unary(simd::Unary::log, xp));
    CHECK(fn::unary_real(Unary::sqrt, xp) == simd::scalar_unary(simd::Unary::sqrt, xp));
    CHECK(fn::unary_real(Unary::sin, x) == simd::scalar_unary(simd::Unary::sin, x));
    CHECK(fn::unary_real(Unary::cos, x) == simd::scalar_unary(simd::Unary::cos, x));
    CHECK(fn::unary_real(Unary::tanh, x) == simd::scalar_unary(simd::Unary::tanh, x));
    CHECK(fn::unary_real(Unary::sigmoid, x) == simd::scalar_unary(simd::Unary::sigmoid, x));
    CHECK(fn::unary_real(Unary::neg, x) == -x);
    CHECK(fn::unary_real(Unary::conj, x) == x);
    CHECK(fn::unary_real(Unary::abs, x) == std::abs(x));
    CHECK(fn::unary_real(Unary::relu, x) == std::max(x, 0.0));
    const float xf = float(x);
    CHECK(fn::unary_real(Unary::tanh, xf) == std::tanh(xf));
    CHECK(fn::unary_real(Unary::sigmoid, xf) == simd::scalar_unary(simd::Unary::sigmoid, xf));
  }
  CHECK(fn::unary_real(Unary::relu, 0.0) == 0.0);
  CHECK(std::isnan(fn::unary_real(Unary::relu, std::nan(""))));  // relu keeps NaN, as max(x, 0)
}

TEST_CASE("cuda functors: complex unary forward matches std::complex") {
  Points pts(12);
  std::vector<cd> zs = {cd(0, 0), cd(1, 0), cd(-4, 0), cd(-4, -0.0), cd(0, 2), cd(0, -2), cd(-1e-3, 1e-9),
                        cd(3, 1e-12), cd(25, 0.4), cd(-30, 2.0), cd(1e3, -1.0), cd(-1e4, 0.1), cd(21.9, 1.3),
                        cd(0.5, 1.5707963267948966)};
  for (int t = 0; t < 300; ++t) zs.emplace_back(pts.uniform(-4, 4), pts.uniform(-4, 4));
  for (Unary op : {Unary::neg, Unary::exp, Unary::log, Unary::sqrt, Unary::sin, Unary::cos, Unary::tanh,
                   Unary::sigmoid, Unary::conj}) {
    int bad = 0;
    for (cd z : zs) {
      if (op == Unary::log && z == cd(0, 0)) continue;
      if ((op == Unary::exp || op == Unary::sin || op == Unary::cos || op == Unary::sigmoid) && std::abs(z) > 100) continue;
      const cd got = un_c(op, z), want = ref_c(op, z);
      if (!close(got, want, 1e-13)) {
        ++bad;
        INFO(name(op) << "(" << z << ") = " << got << ", std gives " << want);
        CHECK(close(got, want, 1e-13));
      }
    }
    CHECK(bad == 0);
    for (int t = 0; t < 100; ++t) {  // the float instantiation
      const cf z(float(pts.uniform(-3, 3)), float(pts.uniform(-3, 3)));
      const cf got = un_cf(op, z), want = ref_cf(op, z);
      INFO(name(op) << "<float>(" << z << ") = " << got << ", std gives " << want);
      CHECK(std::abs(got - want) <= 2e-5f * std::max(1.0f, std::abs(want)));
    }
  }
  // sqrt on the negative real axis follows the sign of the zero imaginary part.
  CHECK(un_c(Unary::sqrt, cd(-4, 0.0)) == cd(0, 2));
  CHECK(un_c(Unary::sqrt, cd(-4, -0.0)) == cd(0, -2));
  // sigmoid far in the left half plane is a finite 0, not NaN (Annex G division).
  const cd s = un_c(Unary::sigmoid, cd(-800, 0.3));
  CHECK(s == cd(0, 0));
  const cd s1 = un_c(Unary::sigmoid, cd(800, 0.3));
  CHECK(close(s1, cd(1, 0), 1e-15));
  CHECK(close(un_c(Unary::tanh, cd(400, 0.7)), cd(1, 0), 1e-15));
}

// ---- unary backward -----------------------------------------------------------------------------

TEST_CASE("cuda functors: real unary backward against finite differences") {
  Points pts(13);
  for (Unary op : kSmooth) {
    int bad = 0;
    for (int t = 0; t < 100; ++t) {
      double x = pts.uniform(-3, 3);
      if (op == Unary::log || op == Unary::sqrt) x = std::abs(x) + 0.1;
      const double g = pts.uniform(-2, 2), h = 1e-5;
      const double y = fn::unary_real(op, x);
      const double fd = g * (fn::unary_real(op, x + h) - fn::unary_real(op, x - h)) / (2 * h);
      const double got = fn::unary_backward_real(op, x, y, g);
      if (!close(got, fd, 1e-7)) {
        ++bad;
        INFO(name(op) << "' at " << x << ": " << got << " vs fd " << fd);
        CHECK(close(got, fd, 1e-7));
      }
    }
    CHECK(bad == 0);
  }
  CHECK(fn::unary_backward_real(Unary::neg, 1.5, -1.5, 2.0) == -2.0);
  CHECK(fn::unary_backward_real(Unary::conj, 1.5, 1.5, 2.0) == 2.0);
  CHECK(fn::unary_backward_real(Unary::relu, 0.5, 0.5, 3.0) == 3.0);
  CHECK(fn::unary_backward_real(Unary::relu, 0.0, 0.0, 3.0) == 0.0);
  CHECK(fn::unary_backward_real(Unary::relu, -0.5, 0.0, 3.0) == 0.0);
  CHECK(fn::unary_backward_real(Unary::abs, 0.5, 0.5, 3.0) == 3.0);
  CHECK(fn::unary_backward_real(Unary::abs, -0.5, 0.5, 3.0) == -3.0);
  CHECK(fn::unary_backward_real(Unary::abs, 0.0, 0.0, 3.0) == 0.0);
}

TEST_CASE("cuda functors: unary backward equals the CPU backward rules") {
  Points pts(14);
  const std::int64_t n = 64;
  for (Unary op : {Unary::neg, Unary::exp, Unary::log, Unary::sqrt, Unary::sin, Unary::cos, Unary::tanh,
                   Unary::sigmoid, Unary::relu, Unary::abs}) {
    Tensor<double> xv(Shape{n}), gv(Shape{n});
    for (std::int64_t i = 0; i < n; ++i) {
      double x = pts.uniform(-3, 3);
      if (op == Unary::log || op == Unary::sqrt) x = std::abs(x) + 0.1;
      if ((op == Unary::relu || op == Unary::abs) && i % 8 == 0) x = 0;
      xv.data()[i] = x;
      gv.data()[i] = pts.uniform(-2, 2);
    }
    Var<double> x(xv, true);
    auto y = cpu_op(op, x);
    backward(y, false, &gv);
    int bad = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      const double got = fn::unary_backward_real(op, xv.data()[i], y.value().data()[i], gv.data()[i]);
      bad += !close(got, x.grad().data()[i], 1e-15);
    }
    INFO(name(op));
    CHECK(bad == 0);
  }
  for (Unary op : {Unary::neg, Unary::exp, Unary::log, Unary::sqrt, Unary::sin, Unary::cos, Unary::tanh,
                   Unary::sigmoid, Unary::conj}) {
    Tensor<cd> xv(Shape{n}), gv(Shape{n});
    for (std::int64_t i = 0; i < n; ++i) {
      xv.data()[i] = cd(pts.uniform(-2, 2), pts.uniform(-2, 2));
      gv.data()[i] = cd(pts.uniform(-2, 2), pts.uniform(-2, 2));
    }
    Var<cd> x(xv, true);
    auto y = cpu_op(op, x);
    backward(y, false, &gv);
    int bad = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      const cd got = bwd_c(op, xv.data()[i], y.value().data()[i], gv.data()[i]);
      bad += !close(got, x.grad().data()[i], 1e-13);
    }
    INFO(name(op) << " (complex)");
    CHECK(bad == 0);
  }
}

TEST_CASE("cuda functors: complex unary backward is G·conj(f'(z)) by finite differences") {
  Points pts(15);
  for (Unary op : kSmooth) {
    int bad = 0;
    for (int t = 0; t < 100; ++t) {
      const cd z(pts.uniform(-2, 2), pts.uniform(-2, 2)), g(pts.uniform(-2, 2), pts.uniform(-2, 2));
      const double h = 1e-5;
      const cd d = (un_c(op, z + h) - un_c(op, z - h)) / (2 * h);  // f'(z), holomorphic
      const cd want = g * std::conj(d);
      const cd got = bwd_c(op, z, un_c(op, z), g);
      if (!close(got, want, 1e-7)) {
        ++bad;
        INFO(name(op) << "' at " << z << ": " << got << " vs " << want);
        CHECK(close(got, want, 1e-7));
      }
    }
    CHECK(bad == 0);
  }
  CHECK(bwd_c(Unary::conj, cd(1, 2), cd(1, -2), cd(3, 4)) == cd(3, -4));
  CHECK(bwd_c(Unary::neg, cd(1, 2), cd(-1, -2), cd(3, 4)) == cd(-3, -4));
}

// ---- binary -------------------------------------------------------------------------------------

TEST_CASE("cuda functors: binary ops, including Annex G division") {
  Points pts(16);
  for (int t = 0; t < 200; ++t) {
    const cd a(pts.uniform(-3, 3), pts.uniform(-3, 3)), b(pts.uniform(-3, 3), pts.uniform(-3, 3));
    CHECK(bin_c(Binary::add, a, b) == a + b);
    CHECK(bin_c(Binary::sub, a, b) == a - b);
    CHECK(close(bin_c(Binary::mul, a, b), a * b, 1e-15));
    CHECK(close(bin_c(Binary::div, a, b), a / b, 1e-15));
    CHECK(close(bin_c(Binary::mul_conj, a, b), a * std::conj(b), 1e-15));
    CHECK(close(bin_c(Binary::div_conj, a, b), a / std::conj(b), 1e-15));
    const double x = a.real(), y = b.real();
    CHECK(fn::binary_real(Binary::add, x, y) == x + y);
    CHECK(fn::binary_real(Binary::sub, x, y) == x - y);
    CHECK(fn::binary_real(Binary::mul, x, y) == x * y);
    CHECK(fn::binary_real(Binary::div, x, y) == x / y);
    CHECK(fn::binary_real(Binary::mul_conj, x, y) == x * y);
    CHECK(fn::binary_real(Binary::div_conj, x, y) == x / y);
  }
  // No overflow for huge or tiny divisors thanks to the power-of-two scaling.
  CHECK(close(bin_c(Binary::div, cd(1e300, 1e300), cd(1e300, 1e300)), cd(1, 0), 1e-15));
  CHECK(close(bin_c(Binary::div, cd(1e-300, 2e-300), cd(1e-300, 1e-300)), cd(1.5, 0.5), 1e-15));
  const double inf = HUGE_VAL;
  const cd q0 = bin_c(Binary::div, cd(1, 1), cd(0, 0));
  CHECK((std::isinf(q0.real()) && std::isinf(q0.imag())));
  const cd q1 = bin_c(Binary::div, cd(inf, 0), cd(1, 1));
  CHECK((std::isinf(q1.real()) && std::isinf(q1.imag())));
  CHECK(bin_c(Binary::div, cd(1, 1), cd(inf, inf)) == cd(0, 0));
  float re, im;
  fn::cdiv(3.0f, 4.0f, 1.0f, -2.0f, re, im);
  CHECK(std::abs(cf(re, im) - cf(3, 4) / cf(1, -2)) < 1e-6f);
}

// ---- complex ops (ops/complex.hpp) ----------------------------------------------------------------

TEST_CASE("cuda functors: Euler map and its adjoints equal the CPU op") {
  Points pts(17);
  const std::int64_t n = 40;
  Tensor<double> mv(Shape{n}), tv(Shape{n});
  Tensor<cd> gv(Shape{n});
  for (std::int64_t i = 0; i < n; ++i) {
    mv.data()[i] = i % 5 == 0 ? 0.0 : pts.uniform(-2, 2);  // μ = 0 included
    tv.data()[i] = pts.uniform(-4, 4);
    gv.data()[i] = cd(pts.uniform(-2, 2), pts.uniform(-2, 2));
  }
  Var<double> mu(mv, true), th(tv, true);
  auto z = euler(mu, th);
  backward(z, false, &gv);
  for (std::int64_t i = 0; i < n; ++i) {
    double zr, zi, gm, gt;
    fn::euler(mv.data()[i], tv.data()[i], zr, zi);
    CHECK(close(cd(zr, zi), z.value().data()[i], 1e-15));
    fn::euler_backward(gv.data()[i].real(), gv.data()[i].imag(), zr, zi, tv.data()[i], gm, gt);
    CHECK(close(gm, mu.grad().data()[i], 1e-14));
    CHECK(close(gt, th.grad().data()[i], 1e-14));
    // and by finite differences
    const double h = 1e-6;
    double ar, ai, br, bi;
    fn::euler(mv.data()[i] + h, tv.data()[i], ar, ai);
    fn::euler(mv.data()[i] - h, tv.data()[i], br, bi);
    const cd dmu = (cd(ar, ai) - cd(br, bi)) / (2 * h);
    fn::euler(mv.data()[i], tv.data()[i] + h, ar, ai);
    fn::euler(mv.data()[i], tv.data()[i] - h, br, bi);
    const cd dth = (cd(ar, ai) - cd(br, bi)) / (2 * h);
    CHECK(close(gm, (std::conj(gv.data()[i]) * dmu).real(), 1e-8));
    CHECK(close(gt, (std::conj(gv.data()[i]) * dth).real(), 1e-8));
  }
}

TEST_CASE("cuda functors: abs, arg, crelu and their adjoints equal the CPU ops") {
  Points pts(18);
  const std::int64_t n = 48;
  Tensor<cd> zv(Shape{n}), gc(Shape{n});
  Tensor<double> gr(Shape{n});
  for (std::int64_t i = 0; i < n; ++i) {
    zv.data()[i] = i % 7 == 0 ? cd(0, 0) : cd(pts.uniform(-2, 2), pts.uniform(-2, 2));
    if (i % 11 == 3) zv.data()[i] = cd(0, pts.uniform(-1, 1));  // on the axes
    if (i % 11 == 5) zv.data()[i] = cd(pts.uniform(-1, 1), 0);
    gr.data()[i] = pts.uniform(-2, 2);
    gc.data()[i] = cd(pts.uniform(-2, 2), pts.uniform(-2, 2));
  }
  SUBCASE("abs") {
    Var<cd> z(zv, true);
    auto s = abs(z);
    backward(s, false, &gr);
    for (std::int64_t i = 0; i < n; ++i) {
      const cd zi = zv.data()[i];
      CHECK(fn::complex_abs(zi.real(), zi.imag()) == s.value().data()[i]);
      double gx, gy;
      fn::complex_abs_backward(zi.real(), zi.imag(), gr.data()[i], gx, gy);
      CHECK(close(cd(gx, gy), z.grad().data()[i], 1e-15));
    }
  }
  SUBCASE("arg") {
    Var<cd> z(zv, true);
    auto s = arg(z);
    backward(s, false, &gr);
    for (std::int64_t i = 0; i < n; ++i) {
      const cd zi = zv.data()[i];
      // The CPU's arg uses xsimd's atan2 when built with SIMD (a few ulps from std::atan2).
      CHECK(std::abs(fn::complex_arg(zi.real(), zi.imag()) - s.value().data()[i]) <= 1e-15 * 4);
      double gx, gy;
      fn::complex_arg_backward(zi.real(), zi.imag(), gr.data()[i], gx, gy);
      CHECK(close(cd(gx, gy), z.grad().data()[i], 1e-15));
      if (zi != cd(0, 0) && zi.real() > 0.05) {  // finite differences away from the branch cut
        const double h = 1e-6;
        const double dx = (fn::complex_arg(zi.real() + h, zi.imag()) - fn::complex_arg(zi.real() - h, zi.imag())) / (2 * h);
        const double dy = (fn::complex_arg(zi.real(), zi.imag() + h) - fn::complex_arg(zi.real(), zi.imag() - h)) / (2 * h);
        CHECK(close(gx, gr.data()[i] * dx, 1e-6));
        CHECK(close(gy, gr.data()[i] * dy, 1e-6));
      }
    }
    double gx = 1, gy = 1;
    fn::complex_arg_backward(0.0, 0.0, 5.0, gx, gy);
    CHECK((gx == 0 && gy == 0));
    CHECK(fn::complex_arg(-0.0, 0.0) == 0.0);
    CHECK(fn::complex_arg(-0.0, -0.0) == 0.0);
    fn::complex_abs_backward(0.0, 0.0, 5.0, gx, gy);
    CHECK((gx == 0 && gy == 0));
  }
  SUBCASE("crelu") {
    Var<cd> z(zv, true);
    auto s = crelu(z);
    backward(s, false, &gc);
    for (std::int64_t i = 0; i < n; ++i) {
      const cd zi = zv.data()[i], gi = gc.data()[i];
      double re, im;
      fn::crelu(zi.real(), zi.imag(), re, im);
      CHECK(cd(re, im) == s.value().data()[i]);
      fn::crelu_backward(zi.real(), zi.imag(), gi.real(), gi.imag(), re, im);
      CHECK(cd(re, im) == z.grad().data()[i]);
    }
  }
}

TEST_CASE("cuda functors: complex times real and its adjoints equal the CPU op") {
  Points pts(19);
  const std::int64_t n = 30;
  Tensor<cd> zv(Shape{n}), gv(Shape{n});
  Tensor<double> rv(Shape{n});
  for (std::int64_t i = 0; i < n; ++i) {
    zv.data()[i] = cd(pts.uniform(-2, 2), pts.uniform(-2, 2));
    gv.data()[i] = cd(pts.uniform(-2, 2), pts.uniform(-2, 2));
    rv.data()[i] = pts.uniform(-2, 2);
  }
  Var<cd> z(zv, true);
  Var<double> r(rv, true);
  auto s = mul(z, r);
  backward(s, false, &gv);
  for (std::int64_t i = 0; i < n; ++i) {
    const cd zi = zv.data()[i], gi = gv.data()[i];
    double re, im;
    fn::mul_complex_real(zi.real(), zi.imag(), rv.data()[i], re, im);
    CHECK(close(cd(re, im), s.value().data()[i], 1e-15));
    // G_z = G·r is mul_complex_real of G; G_r = Re(conj(G)·z).
    fn::mul_complex_real(gi.real(), gi.imag(), rv.data()[i], re, im);
    CHECK(close(cd(re, im), z.grad().data()[i], 1e-15));
    CHECK(close(fn::re_conj_mul(gi.real(), gi.imag(), zi.real(), zi.imag()), r.grad().data()[i], 1e-15));
  }
}
