#include "test_util.hpp"

using namespace erlmr;
using test::cd;
using test::check_grad;
using test::rnd;

TEST_CASE("complex: construction and parts") {
  auto x = rnd<double>(Shape{3, 2}, 1), y = rnd<double>(Shape{3, 2}, 2);
  auto z = rnd<cd>(Shape{3, 2}, 3);
  SUBCASE("make_complex") { check_grad([&] { return make_complex(x, y); }, x, y); }
  SUBCASE("real") { check_grad([&] { return real(z); }, z); }
  SUBCASE("imag") { check_grad([&] { return imag(z); }, z); }
  SUBCASE("conj") { check_grad([&] { return conj(z); }, z); }
  SUBCASE("abs") { check_grad([&] { return abs(z); }, z); }
  SUBCASE("arg") { check_grad([&] { return arg(z); }, z); }
  SUBCASE("crelu") { check_grad([&] { return crelu(z); }, z); }
  SUBCASE("complex times real, broadcast") {
    auto r = rnd<double>(Shape{2}, 4);
    check_grad([&] { return mul(z, r); }, z, r);
  }
  SUBCASE("round trip") {
    auto w = make_complex(real(z), imag(z)).value();
    CHECK(test::bitwise_equal(w, z.value()));
  }
}

TEST_CASE("complex: Euler map equals the real-pair form and broadcasts the modulus") {
  auto mu = rnd<double>(Shape{4, 1}, 5);
  auto th = rnd<double>(Shape{2, 4, 6}, 6);
  auto z = euler(mu, th);
  CHECK(z.shape() == Shape{2, 4, 6});
  for (int b = 0; b < 2; ++b)
    for (int c = 0; c < 4; ++c)
      for (int k = 0; k < 6; ++k) {
        const double m = mu.value().at({c, 0}), t = th.value().at({b, c, k});
        CHECK(std::abs(z.value().at({b, c, k}) - cd(m * std::cos(t), m * std::sin(t))) < 1e-12);
      }
  check_grad([&] { return euler(mu, th); }, mu, th);
}

TEST_CASE("complex: Euler gradient for mu is right at mu = 0") {
  Var<double> mu(Tensor<double>::zeros(Shape{3}), true);
  auto th = rnd<double>(Shape{3}, 7);
  check_grad([&] { return euler(mu, th); }, mu, th);
}

TEST_CASE("complex: arg at the origin is 0 with zero gradient; abs likewise") {
  Var<cd> z(Tensor<cd>::zeros(Shape{2}), true);
  auto t = arg(z);
  CHECK(t.value()[0] == 0.0);
  backward(sum(add(t, abs(z))));
  CHECK(z.grad()[0] == cd(0, 0));
}

TEST_CASE("complex: arg of CReLU output lies in [0, pi/2]") {
  auto z = rnd<cd>(Shape{1000}, 8, false);
  auto t = arg(crelu(z)).value();
  CHECK(t.vec().minCoeff() >= 0.0);
  CHECK(t.vec().maxCoeff() <= M_PI / 2 + 1e-15);
}
