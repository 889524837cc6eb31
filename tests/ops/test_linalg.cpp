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

// ---- gradients in factored form (grad_factored, to_dense, factored_gram) ----------------

namespace {
// ⟨a,a⟩, ⟨a,b⟩, ⟨b,b⟩ of two dense tensors, plainly.
std::array<double, 3> dense_gram(const Tensor<double>& a, const Tensor<double>& b) {
  std::array<double, 3> v{0, 0, 0};
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    v[0] += a[i] * a[i];
    v[1] += a[i] * b[i];
    v[2] += b[i] * b[i];
  }
  return v;
}
}  // namespace

TEST_CASE("grad_factored: a linear layer's weight gradient arrives as factors whose product is grad()'s") {
  auto x = rnd<double>(Shape{2, 3, 6}, 1), w = rnd<double>(Shape{5, 6}, 2), b = rnd<double>(Shape{5}, 3);
  auto zc = rnd<cd>(Shape{4, 6}, 4);
  // W seen twice: by a real input over leading axes and by a complex input (stacked [Re; Im]).
  auto loss = [&] {
    auto y1 = linear(x, w, b);
    auto y2 = linear(zc, w, b);
    return add(sum(mul(y1, y1)), sum(abs(y2)));
  };
  auto l = loss();
  auto dense = grad(l, std::vector<Var<double>>{x, w, b, w}, true);
  auto fac = grad_factored(l, std::vector<Var<double>>{x, w, b, w}, true);
  REQUIRE(fac.size() == 4);
  CHECK(!fac[0].factored());  // x and b: no weight products, dense as with grad()
  CHECK(!fac[2].factored());
  REQUIRE(fac[1].factored());
  CHECK(!fac[1].dense.defined());  // nothing reached W densely
  REQUIRE(fac[1].terms.size() == 2);
  const auto rows = [&](const GradFactor<double>& t) { return t.rows_of(t.a, w.shape()[0]); };
  CHECK(rows(fac[1].terms[0]) + rows(fac[1].terms[1]) == 6 + 2 * 4);  // 6 real rows, 4 complex rows stacked
  CHECK(test::max_abs_diff(to_dense(fac[1]), dense[1]) < 1e-12);
  CHECK(test::max_abs_diff(to_dense(fac[3]), dense[3]) < 1e-12);  // a repeated input gets the same gradient
  CHECK(test::bitwise_equal(fac[0].dense, dense[0]));
  CHECK(test::bitwise_equal(fac[2].dense, dense[2]));
  // The sinks are gone after the pass: backward() forms W's gradient densely.
  CHECK(w.node()->factor_sink == nullptr);
  backward(l);
  CHECK(test::max_abs_diff(w.grad(), dense[1]) < 1e-12);
}

TEST_CASE("grad_factored: a weight also used by an op without factors gets dense + factors") {
  auto x = rnd<double>(Shape{3, 4}, 1), w = rnd<double>(Shape{2, 4}, 2);
  auto l = add(sum(mul(linear(x, w), linear(x, w))), sum(mul(w, w)));
  auto dense = grad(l, std::vector<Var<double>>{w}, true);
  auto fac = grad_factored(l, std::vector<Var<double>>{w}, true);
  REQUIRE(fac[0].factored());
  REQUIRE(fac[0].dense.defined());
  CHECK(test::max_abs_diff(to_dense(fac[0]), dense[0]) < 1e-12);
}

TEST_CASE("grad_factored: the sinks are cleared when the pass throws") {
  auto x = rnd<double>(Shape{3, 4}, 1), w = rnd<double>(Shape{2, 4}, 2);
  auto y = linear(x, w);  // not a scalar: needs a seed
  CHECK_THROWS_AS(grad_factored(y, std::vector<Var<double>>{w}), AutogradError);
  CHECK(w.node()->factor_sink == nullptr);
  auto bad = Tensor<double>::ones(Shape{2, 2});
  CHECK_THROWS_AS(grad_factored(y, std::vector<Var<double>>{w}, false, &bad), ShapeError);
  CHECK(w.node()->factor_sink == nullptr);
}

TEST_CASE("factored_gram: dot products from the factors' Gram matrices equal the dense ones") {
  const std::int64_t out = 7, in = 9;
  Generator g(5);
  auto t = [&](std::int64_t rows) { return Tensor<double>::randn(Shape{rows, out}, g); };
  auto xs = [&](std::int64_t rows) { return Tensor<double>::randn(Shape{rows, in}, g); };
  const auto x1 = xs(3), x2 = xs(5);
  // Terms share x buffers across and within the two gradients, in both orders (the
  // x-Gram of a swapped pair is read transposed).
  PoolVector<GradFactor<double>> f{{t(3), x1}, {t(5), x2}};
  PoolVector<GradFactor<double>> h{{t(5), x2}, {t(3), x1}, {t(3), x1}};
  Gradient<double> gf{Shape{out, in}, Tensor<double>(), f}, gh{Shape{out, in}, Tensor<double>(), h};
  const auto ref = dense_gram(to_dense(gf), to_dense(gh));
  const auto v = factored_gram<double>(f, h, out, in);
  for (int k = 0; k < 3; ++k) CHECK(v[std::size_t(k)] == doctest::Approx(ref[std::size_t(k)]).epsilon(1e-12));
  // The same numbers with one thread and with two.
  auto& pool = ThreadPool::instance();
  const int saved = pool.num_threads();
  pool.set_num_threads(1);
  const auto v1 = factored_gram<double>(f, h, out, in);
  pool.set_num_threads(2);
  const auto v2 = factored_gram<double>(f, h, out, in);
  pool.set_num_threads(saved);
  CHECK(std::memcmp(v1.data(), v2.data(), sizeof v1) == 0);
  // Factors that do not fit the weight's shape are refused.
  PoolVector<GradFactor<double>> wrong{{t(3), xs(4)}};
  CHECK_THROWS_AS(factored_gram<double>(wrong, h, out, in), ShapeError);
}
