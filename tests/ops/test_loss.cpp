#include "test_util.hpp"

using namespace erlmr;
using test::check_grad;
using test::rnd;

TEST_CASE("softmax and log_softmax") {
  auto x = rnd<double>(Shape{3, 5}, 1, true, 3.0);
  auto s = softmax(x).value();
  for (int r = 0; r < 3; ++r) {
    double t = 0;
    for (int k = 0; k < 5; ++k) t += s.at({r, k});
    CHECK(t == doctest::Approx(1.0));
  }
  auto l = log_softmax(x).value();
  CHECK(std::exp(l.at({1, 2})) == doctest::Approx(s.at({1, 2})));
  check_grad([&] { return softmax(x); }, x);
  check_grad([&] { return log_softmax(x); }, x);
  check_grad([&] { return softmax(x, 0); }, x);
  // Large logits do not overflow.
  auto big = Var<double>(Tensor<double>::from_vector(Shape{1, 2}, {1000, 0}));
  CHECK(softmax(big).value()[0] == doctest::Approx(1.0));
}

TEST_CASE("cross_entropy: value, gradient, label checks") {
  auto x = rnd<double>(Shape{4, 3}, 1);
  std::vector<std::int64_t> y{0, 2, 1, 2};
  auto l = cross_entropy(x, y).item();
  double want = 0;
  auto lp = log_softmax(x.detach()).value();
  for (int b = 0; b < 4; ++b) want -= lp.at({b, int(y[b])});
  CHECK(l == doctest::Approx(want / 4));
  check_grad([&] { return cross_entropy(x, y); }, x);
  CHECK_THROWS_AS(cross_entropy(x, {0, 3, 1, 2}), std::out_of_range);
  CHECK_THROWS_AS(cross_entropy(x, {0, 1}), ShapeError);
}

TEST_CASE("cosine_similarity: value, gradient, and PyTorch's per-norm eps clamp") {
  auto a = rnd<double>(Shape{6, 4}, 1), b = rnd<double>(Shape{6, 4}, 2);
  auto c = cosine_similarity(a, b, 0).value();
  CHECK(c.shape() == Shape{4});
  double d = 0, na = 0, nb = 0;
  for (int i = 0; i < 6; ++i) {
    d += a.value().at({i, 1}) * b.value().at({i, 1});
    na += std::pow(a.value().at({i, 1}), 2);
    nb += std::pow(b.value().at({i, 1}), 2);
  }
  CHECK(c[1] == doctest::Approx(d / std::sqrt(na * nb)));
  check_grad([&] { return cosine_similarity(a, b, 0); }, a, b);
  check_grad([&] { return cosine_similarity(a, b, 1); }, a, b);
  // A zero column: each norm is clamped to eps separately, so c = 0 and the gradient is finite.
  Var<double> z(Tensor<double>::zeros(Shape{6, 1}), true);
  auto b1 = slice(b, 1, 0, 1);
  auto cz = cosine_similarity(z, b1, 0);
  CHECK(cz.item() == 0.0);
  backward(cz);
  for (int i = 0; i < 6; ++i) CHECK(std::isfinite(z.grad()[i]));
  // Tiny but nonzero norms below eps take the clamped branch, checked by finite differences.
  Generator g(4);
  Var<double> t(Tensor<double>::uniform(Shape{3, 2}, g, -1e-10, 1e-10), true);
  auto u = rnd<double>(Shape{3, 2}, 5);
  GradCheck gc;
  gc.input(t);
  auto r = gc.run([&] { return project(cosine_similarity(t, u, 0)); }, 1e-13, 1e-4, 1e-6);
  INFO(r.message);
  CHECK(r.ok);
}
