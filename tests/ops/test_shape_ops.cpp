#include "test_util.hpp"

using namespace erlmr;
using test::cd;
using test::check_grad;
using test::rnd;

TEST_CASE_TEMPLATE("shape ops: gradients", T, double, cd) {
  auto x = rnd<T>(Shape{2, 3, 4}, 1);
  auto y = rnd<T>(Shape{2, 2, 4}, 2);
  SUBCASE("reshape") { check_grad([&] { return reshape(x, {4, -1}); }, x); }
  SUBCASE("flatten") { check_grad([&] { return flatten(x, 1); }, x); }
  SUBCASE("transpose") { check_grad([&] { return transpose(x, 0, 2); }, x); }
  SUBCASE("concat") { check_grad([&] { return concat(std::vector<Var<T>>{x, y}, 1); }, x, y); }
  SUBCASE("slice") { check_grad([&] { return slice(x, 2, 1, 2); }, x); }
  SUBCASE("split") {
    check_grad([&] {
      auto parts = split(x, {1, 2}, 1);
      return add(sum(parts[0], 1), scale(sum(parts[1], 1), T(3)));
    }, x);
  }
}

TEST_CASE("shape ops: values") {
  auto x = Var<double>(Tensor<double>::from_vector(Shape{2, 3}, {0, 1, 2, 3, 4, 5}));
  auto t = transpose(x).value();
  CHECK(t.shape() == Shape{3, 2});
  CHECK(t.at({2, 1}) == 5);
  CHECK(t.at({1, 0}) == 1);
  auto c = concat(std::vector<Var<double>>{x, x}, 0).value();
  CHECK(c.shape() == Shape{4, 3});
  CHECK(c.at({3, 2}) == 5);
  auto s = slice(x, 1, 1, 2).value();
  CHECK(s.to_vector() == std::vector<double>{1, 2, 4, 5});
  auto f = flatten(Var<double>(Tensor<double>::zeros(Shape{2, 3, 4, 5})), 1, 2);
  CHECK(f.shape() == Shape{2, 12, 5});
}

TEST_CASE("shape ops: errors name the shapes") {
  auto x = rnd<double>(Shape{2, 3}, 1), y = rnd<double>(Shape{3, 3}, 2);
  CHECK_THROWS_WITH_AS(concat(std::vector<Var<double>>{x, y}, 1), "concat: shapes (2, 3) and (3, 3) differ outside axis 1", ShapeError);
  CHECK_THROWS_AS(slice(x, 1, 2, 2), ShapeError);
  CHECK_THROWS_AS(split(x, {1, 1}, 1), ShapeError);
}
