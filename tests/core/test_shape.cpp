#include "test_util.hpp"

using namespace erlmr;

TEST_CASE("shape: numel, strides, str") {
  Shape s{2, 3, 4};
  CHECK(s.rank() == 3);
  CHECK(s.numel() == 24);
  CHECK(s.stride(0) == 12);
  CHECK(s.stride(2) == 1);
  CHECK(s.str() == "(2, 3, 4)");
  CHECK(Shape{5}.str() == "(5,)");
  CHECK(Shape{}.numel() == 1);
  CHECK(s.dim(-1) == 4);
  CHECK_THROWS_AS(s.dim(3), ShapeError);
  CHECK_THROWS_AS(Shape({1, 2, 3, 4, 5, 6, 7, 8, 9}), ShapeError);
}

TEST_CASE("shape: broadcasting follows NumPy") {
  CHECK(broadcast_shapes(Shape{3, 1}, Shape{1, 4}, "t") == Shape{3, 4});
  CHECK(broadcast_shapes(Shape{16, 1}, Shape{8, 16, 198}, "t") == Shape{8, 16, 198});
  CHECK(broadcast_shapes(Shape{}, Shape{2, 2}, "t") == Shape{2, 2});
  try {
    broadcast_shapes(Shape{2, 3}, Shape{4, 3}, "add");
    FAIL("no throw");
  } catch (const ShapeError& e) {
    CHECK(std::string(e.what()) == "add: shapes (2, 3) and (4, 3) do not broadcast");
  }
}

TEST_CASE("shape: rank 5 tensors work end to end") {
  auto x = test::rnd<double>(Shape{2, 1, 3, 1, 2}, 1);
  auto y = test::rnd<double>(Shape{1, 2, 1, 2, 1}, 2);
  test::check_grad([&] { return mul(x, y); }, x, y);
}
