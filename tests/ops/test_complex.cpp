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

TEST_CASE("complex: Euler map by rows (mu one value per row) and the general broadcast agree with the formula") {
  // Shapes for the row path (μ's non-1 axes a middle run of θ's, rows of >= 16: SIMD
  // vectors and a scalar tail) and for the general path (gaps in μ's axes, θ broadcast,
  // short rows).
  struct Case {
    Shape mu, th;
  };
  const Case cases[] = {{Shape{1, 4, 1}, Shape{3, 4, 37}}, {Shape{4, 1}, Shape{2, 4, 16}}, {Shape{1}, Shape{5, 19}},
                        {Shape{2, 1, 1}, Shape{2, 3, 21}}, {Shape{2, 1, 5}, Shape{2, 4, 5}},  {Shape{3, 20}, Shape{20}},
                        {Shape{3, 4, 5}, Shape{3, 4, 5}}};
  std::uint64_t seed = 40;
  for (const auto& c : cases) {
    CAPTURE(c.mu.str());
    CAPTURE(c.th.str());
    auto mu = rnd<double>(c.mu, seed++), th = rnd<double>(c.th, seed++);
    auto z = euler(mu, th);
    const Shape s = broadcast_shapes(c.mu, c.th, "test");
    REQUIRE(z.shape() == s);
    const auto m = expand(mu.value(), s), t = expand(th.value(), s);
    double err = 0;
    for (std::int64_t i = 0; i < s.numel(); ++i)
      err = std::max(err, std::abs(z.value().data()[i] - cd(m.data()[i] * std::cos(t.data()[i]), m.data()[i] * std::sin(t.data()[i]))));
    CHECK(err < 1e-12);
    check_grad([&] { return euler(mu, th); }, mu, th);
  }
}

TEST_CASE("complex: Euler gradient for mu is right at mu = 0") {
  Var<double> mu(Tensor<double>::zeros(Shape{3}), true);
  auto th = rnd<double>(Shape{3}, 7);
  check_grad([&] { return euler(mu, th); }, mu, th);
  Var<double> mu_rows(Tensor<double>::zeros(Shape{2, 1}), true);  // the row path
  auto th_rows = rnd<double>(Shape{2, 2, 20}, 8);
  check_grad([&] { return euler(mu_rows, th_rows); }, mu_rows, th_rows);
}

TEST_CASE("complex: arg at the origin is 0 with zero gradient; abs likewise") {
  Var<cd> z(Tensor<cd>::zeros(Shape{2}), true);
  auto t = arg(z);
  CHECK(t.value()[0] == 0.0);
  backward(sum(add(t, abs(z))));
  CHECK(z.grad()[0] == cd(0, 0));
}

TEST_CASE("complex: arg's gradient is exactly +0 at the origin (either zero's sign) and for NaN parts") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Var<cd> z(Tensor<cd>::from_vector(Shape{4}, {cd(0, 0), cd(-0.0, 0), cd(nan, 1), cd(1, nan)}), true);
  backward(sum(arg(z)));
  for (int i = 0; i < 4; ++i) {
    CAPTURE(i);
    const cd g = z.grad().data()[i];
    CHECK(!std::signbit(g.real()));
    CHECK(!std::signbit(g.imag()));
    CHECK(g.real() == 0.0);
    CHECK(g.imag() == 0.0);
  }
}

TEST_CASE("complex: arg of CReLU output lies in [0, pi/2]") {
  auto z = rnd<cd>(Shape{1000}, 8, false);
  auto t = arg(crelu(z)).value();
  CHECK(t.vec().minCoeff() >= 0.0);
  CHECK(t.vec().maxCoeff() <= M_PI / 2 + 1e-15);
}

// real, imag and arg of one tensor (the Euler block's projection output) put their gradients
// into its adjoint in place, whichever arrives first: the same values as separate tensors
// added up, for every order of the three and for each seed of a grad_seeds pass.
TEST_CASE("complex: real, imag and arg of one tensor fill its adjoint in place") {
  auto z = rnd<cd>(Shape{3, 40}, 8);
  auto wr = rnd<double>(Shape{3, 40}, 9, false), wi = rnd<double>(Shape{3, 40}, 10, false), wa = rnd<double>(Shape{3, 40}, 11, false);
  SUBCASE("gradient check") {
    check_grad([&] { return concat(std::vector<Var<double>>{real(z), imag(z), arg(z)}, 1); }, z);
  }
  SUBCASE("every order of the three, against the formula") {
    // G_z = Gr + i·Gi + i·Ga·z/|z|²
    Tensor<cd> want(z.shape());
    for (std::int64_t k = 0; k < z.numel(); ++k) {
      const cd v = z.value().data()[k];
      want.data()[k] = cd(wr.value().data()[k], wi.value().data()[k]) + cd(0, 1) * wa.value().data()[k] * v / std::norm(v);
    }
    const int orders[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (const auto& o : orders) {
      CAPTURE(o[0]);
      CAPTURE(o[1]);
      z.zero_grad();
      Var<double> parts[3];
      for (int k : o) parts[k] = k == 0 ? mul(real(z), wr) : k == 1 ? mul(imag(z), wi) : mul(arg(z), wa);
      backward(add(add(sum(parts[0]), sum(parts[1])), sum(parts[2])));
      CHECK(test::max_abs_diff(z.grad(), want) < 1e-12);
    }
  }
  SUBCASE("past one buffer block and one parallel chunk (kPutBlock, 1 << 14 elements)") {
    for (const std::int64_t n : {std::int64_t(detail::kPutBlock) + 3, std::int64_t(2 * (1 << 14) + 77)}) {
      CAPTURE(n);
      auto zl = rnd<cd>(Shape{n}, 12);
      auto ur = rnd<double>(Shape{n}, 13, false), ui = rnd<double>(Shape{n}, 14, false), ua = rnd<double>(Shape{n}, 15, false);
      backward(add(add(sum(mul(real(zl), ur)), sum(mul(imag(zl), ui))), sum(mul(arg(zl), ua))));
      double worst = 0;
      for (std::int64_t k = 0; k < n; ++k) {
        const cd v = zl.value().data()[k];
        const cd want = cd(ur.value().data()[k], ui.value().data()[k]) + cd(0, 1) * ua.value().data()[k] * v / std::norm(v);
        worst = std::max(worst, std::abs(zl.grad().data()[k] - want));
      }
      CHECK(worst < 1e-12);
    }
  }
  SUBCASE("grad_seeds: each seed's gradient is its own backward pass's") {
    const Var<double> outs[3] = {sum(mul(real(z), wr)), add(sum(mul(imag(z), wi)), sum(mul(arg(z), wa))), sum(mul(arg(z), wr))};
    const auto gs = grad_seeds<double, cd, CpuDevice>(std::span<const Var<double>>(outs, 3), std::vector<Var<cd>>{z}, true);
    for (int s = 0; s < 3; ++s) {
      CAPTURE(s);
      z.zero_grad();
      backward(outs[s], true);
      CHECK(test::bitwise_equal(gs[static_cast<std::size_t>(s)][0].dense, z.grad()));
    }
  }
}
