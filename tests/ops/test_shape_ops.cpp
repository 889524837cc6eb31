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

// slice writes its gradient into x's adjoint in place: the first slice to arrive fills it
// (zeros elsewhere), the next ones add into their own elements only.
TEST_CASE_TEMPLATE("shape ops: slices of one tensor share its adjoint", T, double, cd) {
  auto x = rnd<T>(Shape{4, 3, 5}, 3);
  SUBCASE("disjoint, overlapping and along two axes") {
    check_grad([&] {
      auto a = flatten(slice(x, 1, 0, 2), 0), b = flatten(slice(x, 1, 1, 2), 0), c = flatten(slice(x, 0, 3, 1), 0);
      return concat(std::vector<Var<T>>{a, b, c}, 0);
    }, x);
  }
  SUBCASE("along the last axis (one element per run), and a -0 outside a slice stays -0") {
    auto a = slice(x, 2, 1, 2), b = slice(x, 2, 4, 1);
    auto wa = rnd<T>(a.shape(), 5, false);
    Tensor<T> neg(x.shape());
    for (std::int64_t k = 0; k < neg.numel(); ++k) neg.data()[k] = T(-0.0);
    // the -0 seed reaches x first (through scale: -0·1 = -0), then the two slices add into theirs
    auto c = scale(x, T(1));
    backward(add(add(sum(mul(a, wa)), sum(b)), sum(mul(c, Var<T>(neg)))));
    for (std::int64_t r = 0; r < 12; ++r)
      for (std::int64_t k = 0; k < 5; ++k) {
        CAPTURE(r);
        CAPTURE(k);
        const T got = x.grad().data()[r * 5 + k];
        T want = T(1);  // d/da Σ a·w is w (its conjugate for complex tensors, the library's convention)
        if (k == 1 || k == 2) {
          want = wa.value().data()[r * 2 + (k - 1)];
          if constexpr (!std::is_same_v<T, double>) want = std::conj(want);
        }
        if (k == 1 || k == 2) CHECK(got == want);
        else if (k == 4) CHECK(got == T(1));
        else if constexpr (std::is_same_v<T, double>) CHECK(std::signbit(got));  // untouched by the slices
        else CHECK(got == T(0));  // (a complex seed's product with −0 loses the sign)
      }
  }
  SUBCASE("the values: G in each slice's elements, summed where slices overlap") {
    auto a = slice(x, 0, 0, 2), b = slice(x, 0, 1, 3);
    backward(add(sum(a), scale(sum(b), T(2))));
    for (std::int64_t r = 0; r < 4; ++r)
      for (std::int64_t k = 0; k < 15; ++k) {
        CAPTURE(r);
        const T want = T(r < 2 ? 1 : 0) + T(r >= 1 ? 2 : 0);
        CHECK(x.grad().data()[r * 15 + k] == want);
      }
  }
}

// reshape hands its adjoint's buffer on where the pass drops it anyway; where the adjoint is
// itself a result (grad() with an intermediate input), it is copied, so both come out whole.
TEST_CASE("shape ops: reshape's adjoint is handed on only where the pass drops it") {
  auto x = rnd<double>(Shape{2, 6}, 4);
  auto r = reshape(x, {3, 4});
  auto y = sum(mul(r, r));
  const auto g = grad(y, std::vector<Var<double>>{r, x}, /*retain_graph=*/true);
  REQUIRE(g[0].defined());
  REQUIRE(g[1].defined());
  CHECK(g[0].shape() == Shape{3, 4});
  CHECK(g[1].shape() == Shape{2, 6});
  for (std::int64_t i = 0; i < 12; ++i) {
    CHECK(g[0].data()[i] == 2 * x.value().data()[i]);
    CHECK(g[1].data()[i] == 2 * x.value().data()[i]);
  }
  backward(y);
  CHECK(test::bitwise_equal(x.grad(), g[1]));
}
