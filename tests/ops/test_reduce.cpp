#include "test_util.hpp"

using namespace erlmr;
using test::cd;
using test::check_grad;
using test::rnd;

TEST_CASE_TEMPLATE("reduce: sum and mean over axes", T, double, cd) {
  auto x = rnd<T>(Shape{2, 3, 4}, 1);
  CHECK(sum(x, 1).shape() == Shape{2, 4});
  CHECK(sum(x, 1, true).shape() == Shape{2, 1, 4});
  CHECK(sum(x, std::vector<int>{0, 2}).shape() == Shape{3});
  T s(0);
  for (int j = 0; j < 3; ++j) s += x.value().at({1, j, 2});
  CHECK(std::abs(sum(x, 1).value().at({1, 2}) - s) < 1e-12);
  CHECK(std::abs(mean(x).item() - T(x.value().vec().sum()) / T(24.0)) < 1e-12);
  SUBCASE("sum axis") { check_grad([&] { return sum(x, -1); }, x); }
  SUBCASE("sum axes keepdim") { check_grad([&] { return sum(x, std::vector<int>{0, 2}, true); }, x); }
  SUBCASE("sum all") { check_grad([&] { return sum(x); }, x); }
  SUBCASE("mean axis") { check_grad([&] { return mean(x, 0); }, x); }
  SUBCASE("mean axes") { check_grad([&] { return mean(x, std::vector<int>{1, 2}); }, x); }
}

TEST_CASE("reduce: max routes the gradient to the first maximum") {
  auto x = rnd<double>(Shape{3, 5}, 2);
  check_grad([&] { return max(x, 1); }, x);
  check_grad([&] { return max(x, 0, true); }, x);
  Var<double> t(Tensor<double>::from_vector(Shape{3}, {1, 4, 4}), true);
  auto m = max(t, 0);
  CHECK(m.item() == 4.0);
  backward(m);
  CHECK(t.grad()[1] == 1.0);
  CHECK(t.grad()[2] == 0.0);
}

TEST_CASE("reduce: axis errors") {
  auto x = rnd<double>(Shape{2, 3}, 1);
  CHECK_THROWS_WITH_AS(sum(x, 2), "sum: axis 2 out of range for shape (2, 3)", ShapeError);
}
