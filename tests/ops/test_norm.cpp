#include "test_util.hpp"

using namespace erlmr;
using test::cd;
using test::check_grad;
using test::rnd;

TEST_CASE("batch_norm: training statistics, running update and gradient") {
  auto x = rnd<double>(Shape{4, 3, 2, 5}, 1, true, 2.0);
  auto g = rnd<double>(Shape{3}, 2), b = rnd<double>(Shape{3}, 3);
  auto rm = Tensor<double>::zeros(Shape{3}), rv = Tensor<double>::ones(Shape{3});
  auto y = batch_norm(x, g, b, rm, rv, true, 0.1, 1e-5).value();
  for (int c = 0; c < 3; ++c) {
    double m = 0, v = 0;
    const int cnt = 4 * 10;
    for (int n = 0; n < 4; ++n)
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 5; ++j) m += x.value().at({n, c, i, j});
    m /= cnt;
    for (int n = 0; n < 4; ++n)
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 5; ++j) v += std::pow(x.value().at({n, c, i, j}) - m, 2);
    const double vb = v / cnt;
    CHECK(rm[c] == doctest::Approx(0.1 * m).epsilon(1e-12));
    CHECK(rv[c] == doctest::Approx(0.9 + 0.1 * v / (cnt - 1)).epsilon(1e-12));  // unbiased running variance
    const double want = g.value()[c] * (x.value().at({2, c, 1, 3}) - m) / std::sqrt(vb + 1e-5) + b.value()[c];
    CHECK(y.at({2, c, 1, 3}) == doctest::Approx(want).epsilon(1e-12));
  }
  check_grad([&] {
    auto m = Tensor<double>::zeros(Shape{3}), v = Tensor<double>::ones(Shape{3});
    return batch_norm(x, g, b, m, v, true);
  }, x, g, b);
}

TEST_CASE("batch_norm: evaluation uses running statistics") {
  auto x = rnd<double>(Shape{2, 3, 4}, 1);
  auto g = rnd<double>(Shape{3}, 2), b = rnd<double>(Shape{3}, 3);
  auto rm = Tensor<double>::from_vector(Shape{3}, {0.1, -0.2, 0.3});
  auto rv = Tensor<double>::from_vector(Shape{3}, {1.5, 0.5, 2.0});
  auto y = batch_norm(x, g, b, rm, rv, false).value();
  CHECK(y.at({1, 2, 3}) == doctest::Approx(g.value()[2] * (x.value().at({1, 2, 3}) - 0.3) / std::sqrt(2.0 + 1e-5) + b.value()[2]));
  CHECK(rm[0] == 0.1);  // untouched
  check_grad([&] { return batch_norm(x, g, b, rm, rv, false); }, x, g, b);
}

TEST_CASE_TEMPLATE("dropout: masks from the counter-based RNG", T, double, cd) {
  auto x = rnd<T>(Shape{200, 50}, 1);
  Generator g1(5), g2(5);
  auto a = dropout(x, 0.5, true, g1).value();
  auto b = dropout(x, 0.5, true, g2).value();
  CHECK(test::bitwise_equal(a, b));
  CHECK(g1.offset() == std::uint64_t((is_complex_v<T> ? 2 : 1) * 10000));
  // About half the (real) parts are dropped, survivors are scaled by 2.
  std::int64_t zeros = 0, parts = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    if constexpr (is_complex_v<T>) {
      zeros += (a[i].real() == 0) + (a[i].imag() == 0);
      parts += 2;
      if (a[i].real() != 0) CHECK(a[i].real() == doctest::Approx(2 * x.value()[i].real()));
    } else {
      zeros += a[i] == 0;
      parts += 1;
      if (a[i] != 0) CHECK(a[i] == doctest::Approx(2 * x.value()[i]));
    }
  }
  CHECK(double(zeros) / parts == doctest::Approx(0.5).epsilon(0.03));
  // Evaluation mode is the identity.
  CHECK(test::bitwise_equal(dropout(x, 0.5, false, g1).value(), x.value()));
  auto small = rnd<T>(Shape{3, 4}, 2);
  check_grad([&] {
    Generator g(11);
    return dropout(small, 0.3, true, g);
  }, small);
}

TEST_CASE("dropout: element i is kept iff uniform(first + i) >= p, on the 64-wide block path and the scalar edges") {
  for (std::uint64_t offset : {0u, 3u, 6u}) {
    CAPTURE(offset);
    Generator g(9, offset), ref(9, offset);
    Var<float> x(Tensor<float>::ones(Shape{1003}));
    const auto y = dropout(x, 0.3, true, g).value();
    const std::uint64_t first = ref.reserve(1003);
    for (std::int64_t i = 0; i < 1003; ++i) {
      const bool keep = ref.uniform(first + static_cast<std::uint64_t>(i)) >= 0.3;
      if (keep != (y[i] != 0.f)) {
        FAIL_CHECK("element " << i << " kept=" << (y[i] != 0.f) << ", expected " << keep);
        break;
      }
      if (keep) CHECK(y[i] == doctest::Approx(1 / 0.7));
    }
  }
}

TEST_CASE("dropout: complex parts get independent masks") {
  auto x = Var<cd>(Tensor<cd>::full(Shape{10000}, cd(1, 1)));
  Generator g(3);
  auto y = dropout(x, 0.5, true, g).value();
  int differ = 0;
  for (int i = 0; i < 10000; ++i) differ += (y[i].real() == 0) != (y[i].imag() == 0);
  CHECK(differ > 4000);  // independent: about half the elements lose exactly one part
  CHECK(differ < 6000);
}
