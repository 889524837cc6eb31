#include "test_util.hpp"

using namespace erlmr;
using test::cd;
using test::check_grad;
using test::rnd;

TEST_CASE_TEMPLATE("linalg: same-type matmul value and gradient", T, double, cd) {
  auto a = rnd<T>(Shape{3, 5}, 1), b = rnd<T>(Shape{5, 4}, 2);
  auto c = matmul(a, b).value();
  Eigen::Matrix<T, -1, -1> ref = a.value().mat() * b.value().mat();
  CHECK((ref - Eigen::Matrix<T, -1, -1>(c.mat())).cwiseAbs().maxCoeff() < 1e-12);
  check_grad([&] { return matmul(a, b); }, a, b);
}

TEST_CASE("linalg: complex x real matmul equals the complex product with a real matrix") {
  auto a = rnd<cd>(Shape{3, 5}, 1);
  auto b = rnd<double>(Shape{5, 4}, 2);
  auto c = matmul(a, b).value();
  Eigen::MatrixXcd ref = a.value().mat() * b.value().mat().cast<cd>();
  CHECK((ref - Eigen::MatrixXcd(c.mat())).cwiseAbs().maxCoeff() < 1e-12);
  check_grad([&] { return matmul(a, b); }, a, b);
}

TEST_CASE("linalg: large products take the parallel panel path and stay correct") {
  auto a = rnd<double>(Shape{40, 300}, 3, true, 0.1), b = rnd<double>(Shape{300, 260}, 4, true, 0.1);
  auto c = matmul(a, b).value();
  Eigen::MatrixXd ref = a.value().mat() * b.value().mat();
  CHECK((ref - Eigen::MatrixXd(c.mat())).cwiseAbs().maxCoeff() < 1e-12);
  auto x = rnd<cd>(Shape{8, 300}, 5, true, 0.1);
  auto W = rnd<double>(Shape{260, 300}, 6, true, 0.1);
  auto y = linear(x, W).value();
  Eigen::MatrixXcd ry = x.value().mat() * W.value().mat().transpose().cast<cd>();
  CHECK((ry - Eigen::MatrixXcd(y.mat())).cwiseAbs().maxCoeff() < 1e-12);
}

TEST_CASE_TEMPLATE("linalg: linear with bias over leading axes", T, double, cd) {
  auto x = rnd<T>(Shape{2, 3, 4}, 1), w = rnd<T>(Shape{5, 4}, 2), b = rnd<T>(Shape{5}, 3);
  CHECK(linear(x, w, b).shape() == Shape{2, 3, 5});
  check_grad([&] { return linear(x, w, b); }, x, w, b);
  check_grad([&] { return linear(x, w); }, x, w);
}

TEST_CASE("linalg: complex input, real shared weight: y = x W^T + (1+i) b") {
  auto x = rnd<cd>(Shape{3, 4}, 1);
  auto w = rnd<double>(Shape{5, 4}, 2), b = rnd<double>(Shape{5}, 3);
  auto y = linear(x, w, b).value();
  // Equals the real-pair form: Re y = Re(x) Wᵀ + b, Im y = Im(x) Wᵀ + b.
  auto yr = linear(real(x.detach()), w.detach(), b.detach()).value();
  auto yi = linear(imag(x.detach()), w.detach(), b.detach()).value();
  for (int i = 0; i < y.numel(); ++i) {
    CHECK(y[i].real() == doctest::Approx(yr[i]).epsilon(1e-14));
    CHECK(y[i].imag() == doctest::Approx(yi[i]).epsilon(1e-14));
  }
  check_grad([&] { return linear(x, w, b); }, x, w, b);
}

TEST_CASE("linalg: shape errors") {
  auto a = rnd<double>(Shape{3, 5}, 1), b = rnd<double>(Shape{4, 4}, 2);
  CHECK_THROWS_WITH_AS(matmul(a, b), "matmul: shapes (3, 5) and (4, 4) are not (m, k) and (k, n)", ShapeError);
  CHECK_THROWS_AS(linear(a, b), ShapeError);
}
