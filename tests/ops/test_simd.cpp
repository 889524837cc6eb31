#include "test_util.hpp"

using namespace erlmr;
using test::cd;

namespace {
template <class F> void both_paths(F&& f) {
  simd::set_enabled(false);
  auto a = f();
  simd::set_enabled(true);
  auto b = f();
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("output " << i);
    const double scale = std::max(1.0, double(a[i].vec().abs().maxCoeff()));
    CHECK(test::max_abs_diff(a[i], b[i]) <= 8 * std::numeric_limits<typename real_type<typename std::decay_t<decltype(a[i])>::value_type>::type>::epsilon() * scale);
  }
}
}  // namespace

TEST_CASE_TEMPLATE("simd: vector and scalar paths agree to a few ulps", T, float, double) {
  INFO("SIMD compiled in: " << simd::compiled());
  const std::int64_t n = 1003;  // not a multiple of any vector width: exercises the tail
  Generator g(3);
  auto x = Tensor<T>::uniform(Shape{n}, g, -4, 4);
  auto p = Tensor<T>::uniform(Shape{n}, g, 0.1, 4);
  auto y = Tensor<T>::uniform(Shape{n}, g, -4, 4);
  for (auto op : {simd::Unary::exp, simd::Unary::sin, simd::Unary::cos, simd::Unary::tanh, simd::Unary::sigmoid}) {
    both_paths([&] {
      Tensor<T> o(Shape{n});
      simd::unary(op, x.data(), o.data(), n);
      return std::vector<Tensor<T>>{o};
    });
  }
  for (auto op : {simd::Unary::log, simd::Unary::sqrt}) {
    both_paths([&] {
      Tensor<T> o(Shape{n});
      simd::unary(op, p.data(), o.data(), n);
      return std::vector<Tensor<T>>{o};
    });
  }
  both_paths([&] {
    Tensor<T> o(Shape{n});
    simd::atan2(y.data(), x.data(), o.data(), n);
    return std::vector<Tensor<T>>{o};
  });
  both_paths([&] {
    Tensor<std::complex<T>> o(Shape{n});
    simd::euler(p.data(), x.data(), o.data(), n);
    return std::vector<Tensor<std::complex<T>>>{o};
  });
  auto a = Tensor<std::complex<T>>::randn(Shape{n}, g), b = Tensor<std::complex<T>>::randn(Shape{n}, g);
  both_paths([&] {
    Tensor<std::complex<T>> o(Shape{n});
    simd::complex_mul(a.data(), b.data(), o.data(), n);
    return std::vector<Tensor<std::complex<T>>>{o};
  });
}

TEST_CASE("simd: atan2 vector path keeps atan2(0, 0) = 0") {
  std::vector<double> z(16, 0.0);
  std::vector<double> o(16, 1.0);
  simd::atan2(z.data(), z.data(), o.data(), 16);
  for (double v : o) CHECK(v == 0.0);
}
