#include "test_util.hpp"

using namespace erlmr;

TEST_CASE_TEMPLATE("tensor: construction, row-major layout, clone and reshape", T, float, double, std::complex<float>,
                   std::complex<double>) {
  auto t = Tensor<T>::from_vector(Shape{2, 3}, {T(0), T(1), T(2), T(3), T(4), T(5)});
  CHECK(t.at({1, 0}) == T(3));  // row-major: (1, 0) is the 4th element
  CHECK(t.at({0, 2}) == T(2));
  auto r = t.reshape({3, -1});
  CHECK(r.shape() == Shape{3, 2});
  CHECK(r.shares_storage(t));
  auto c = t.clone();
  CHECK_FALSE(c.shares_storage(t));
  c[0] = T(7);
  CHECK(t[0] == T(0));
  CHECK(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0);
  CHECK_THROWS_AS(t.reshape({4, -1}), ShapeError);
  CHECK_THROWS_AS(Tensor<T>::from_vector(Shape{2, 2}, {T(1)}), ShapeError);
  CHECK_THROWS_AS(t.at({2, 0}), ShapeError);
}

TEST_CASE("tensor: Eigen maps see the same buffer") {
  auto t = Tensor<double>::zeros(Shape{2, 3});
  t.mat()(1, 2) = 5;
  CHECK(t.at({1, 2}) == 5);
  t.vec() += 1;
  CHECK(t[0] == 1);
}

TEST_CASE("tensor: reshape error names both shapes") {
  auto t = Tensor<float>::zeros(Shape{2, 3});
  try {
    t.reshape({4, 2});
    FAIL("no throw");
  } catch (const ShapeError& e) {
    CHECK(std::string(e.what()) == "reshape: cannot reshape (2, 3) to (4, 2)");
  }
}
