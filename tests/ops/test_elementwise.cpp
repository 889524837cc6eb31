#include "test_util.hpp"

#include <limits>

using namespace erlmr;
using test::cd;
using test::check_grad;
using test::rnd;

TEST_CASE_TEMPLATE("elementwise: broadcasting arithmetic gradients", T, double, cd) {
  auto a = rnd<T>(Shape{3, 4}, 1);
  auto b = rnd<T>(Shape{4}, 2);
  auto c = rnd<T>(Shape{3, 1}, 3);
  SUBCASE("add") { check_grad([&] { return add(a, b); }, a, b); }
  SUBCASE("sub") { check_grad([&] { return sub(c, a); }, a, c); }
  SUBCASE("mul") { check_grad([&] { return mul(a, c); }, a, c); }
  SUBCASE("div") {
    auto d = test::rnd_uniform<T>(Shape{3, 1}, 4, 0.5, 2.0);
    check_grad([&] { return div(a, d); }, a, d);
  }
  SUBCASE("neg, scale, add_scalar") {
    check_grad([&] { return add_scalar(scale(neg(a), T(1.5)), T(0.25)); }, a);
  }
  SUBCASE("values") {
    auto s = add(a, b).value();
    CHECK(s.at({2, 3}) == a.value().at({2, 3}) + b.value().at({3}));
  }
}

TEST_CASE_TEMPLATE("elementwise: holomorphic functions", T, double, cd) {
  auto x = rnd<T>(Shape{2, 3}, 5, true, 0.7);
  auto p = test::rnd_uniform<T>(Shape{2, 3}, 6, 0.5, 2.0);  // right half-plane: away from log/sqrt branch cuts
  SUBCASE("exp") { check_grad([&] { return exp(x); }, x); }
  SUBCASE("log") { check_grad([&] { return log(p); }, p); }
  SUBCASE("sqrt") { check_grad([&] { return sqrt(p); }, p); }
  SUBCASE("pow") { check_grad([&] { return pow(p, 2.5); }, p); }
  SUBCASE("sin") { check_grad([&] { return sin(x); }, x); }
  SUBCASE("cos") { check_grad([&] { return cos(x); }, x); }
  SUBCASE("tanh") { check_grad([&] { return tanh(x); }, x); }
  SUBCASE("sigmoid") { check_grad([&] { return sigmoid(x); }, x); }
}

TEST_CASE("elementwise: real-only functions") {
  auto x = rnd<double>(Shape{4, 5}, 7);
  auto y = rnd<double>(Shape{4, 5}, 8);
  SUBCASE("relu") { check_grad([&] { return relu(x); }, x); }
  SUBCASE("abs") { check_grad([&] { return abs(x); }, x); }
  SUBCASE("atan2") { check_grad([&] { return atan2(y, x); }, x, y); }
  SUBCASE("atan2 at the origin is 0 with zero gradient") {
    Var<double> z0(Tensor<double>::zeros(Shape{1}), true), z1(Tensor<double>::zeros(Shape{1}), true);
    auto t = atan2(z0, z1);
    CHECK(t.value()[0] == 0.0);
    backward(sum(t));
    CHECK(z0.grad()[0] == 0.0);
    CHECK(z1.grad()[0] == 0.0);
  }
  SUBCASE("relu and abs have zero gradient at 0 (PyTorch's choice)") {
    Var<double> z(Tensor<double>::zeros(Shape{1}), true);
    backward(sum(add(relu(z), abs(z))));
    CHECK(z.grad()[0] == 0.0);
  }
}

TEST_CASE("relu and crelu: NaN passes through as in PyTorch; large tensors take the parallel path") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  auto r = relu(Var<double>(Tensor<double>::from_vector(Shape{3}, {nan, -1.0, 2.0}))).value();
  CHECK(std::isnan(r[0]));
  CHECK(r[1] == 0.0);
  CHECK(r[2] == 2.0);
  auto c = crelu(Var<cd>(Tensor<cd>::from_vector(Shape{2}, {cd(nan, -1.0), cd(-2.0, 3.0)}))).value();
  CHECK(std::isnan(c[0].real()));
  CHECK(c[0].imag() == 0.0);
  CHECK(c[1] == cd(0.0, 3.0));
  // 100 000 elements: several chunks of the parallel loops, each element checked.
  auto x = rnd<float>(Shape{100000}, 4);
  auto y = relu(x);
  Generator gen5(5);
  auto g = Tensor<float>::randn(Shape{100000}, gen5);
  backward(y, false, &g);
  std::int64_t wrong = 0;
  for (std::int64_t i = 0; i < 100000; ++i) {
    const float xi = x.value()[i];
    wrong += y.value()[i] != (xi > 0 ? xi : 0.0f);
    wrong += x.grad()[i] != (xi > 0 ? g[i] : 0.0f);
  }
  CHECK(wrong == 0);
}

TEST_CASE("elementwise: values match std:: in float and double") {
  auto x = rnd<float>(Shape{1000}, 9, false);
  auto e = exp(x).value();
  auto s = sigmoid(x).value();
  for (int i = 0; i < 1000; ++i) {
    CHECK(e[i] == doctest::Approx(std::exp(x.value()[i])).epsilon(1e-6));
    CHECK(s[i] == doctest::Approx(1 / (1 + std::exp(-x.value()[i]))).epsilon(1e-6));
  }
}

TEST_CASE("elementwise: a shape mismatch names the op and both shapes") {
  auto a = rnd<double>(Shape{2, 3}, 1), b = rnd<double>(Shape{4, 3}, 2);
  CHECK_THROWS_WITH_AS(mul(a, b), "mul: shapes (2, 3) and (4, 3) do not broadcast", ShapeError);
  CHECK_THROWS_WITH_AS(atan2(a, rnd<double>(Shape{3, 2}, 3)), "atan2: shapes (2, 3) and (3, 2) differ", ShapeError);
}
