#include "test_util.hpp"

using namespace erlmr;
using test::cd;

TEST_CASE("tape: backward accumulates into leaves and grad() leaves them alone") {
  Var<double> a(Tensor<double>::scalar(3.0), true), b(Tensor<double>::scalar(4.0), true);
  auto f = [&] { return add(mul(a, b), mul(a, a)); };  // f = ab + a², df/da = b + 2a = 10, df/db = a = 3
  backward(f());
  CHECK(a.grad().item() == 10.0);
  CHECK(b.grad().item() == 3.0);
  backward(f());  // accumulation
  CHECK(a.grad().item() == 20.0);
  auto gs = grad(f(), std::vector<Var<double>>{b});  // only b, a.grad untouched
  CHECK(gs[0].item() == 3.0);
  CHECK(a.grad().item() == 20.0);
  CHECK(b.grad().item() == 6.0);
  a.zero_grad();
  CHECK_FALSE(a.grad().defined());
}

TEST_CASE("tape: grad() skips nodes that do not lead to the chosen inputs") {
  Var<double> a(Tensor<double>::scalar(2.0), true), b(Tensor<double>::scalar(5.0), true);
  int calls = 0;
  auto eb = record("spy", b.value().clone(), [&, b](const Tensor<double>& g) { ++calls; add_grad(b, g); }, b);
  auto out = add(mul(a, a), eb);
  auto g = grad(out, std::vector<Var<double>>{a});
  CHECK(g[0].item() == 4.0);
  CHECK(calls == 0);
}

TEST_CASE("tape: retain_graph allows several passes; without it a second pass throws") {
  Var<double> a(Tensor<double>::scalar(1.5), true);
  auto y = exp(mul(a, a));
  auto g1 = grad(y, std::vector<Var<double>>{a}, /*retain_graph=*/true);
  auto g2 = grad(y, std::vector<Var<double>>{a}, /*retain_graph=*/true);
  CHECK(g1[0].item() == g2[0].item());
  backward(y);  // frees
  CHECK(a.grad().item() == doctest::Approx(2 * 1.5 * std::exp(2.25)));
  CHECK_THROWS_AS(backward(y), AutogradError);
}

TEST_CASE("tape: no_grad and detach record nothing") {
  Var<double> a(Tensor<double>::scalar(2.0), true);
  {
    NoGradGuard ng;
    auto y = mul(a, a);
    CHECK_FALSE(y.requires_grad());
  }
  auto d = a.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.value().shares_storage(a.value()));
  auto y = mul(a, d);  // gradient flows through a only: dy/da = d = 2
  backward(y);
  CHECK(a.grad().item() == 2.0);
  CHECK_THROWS_AS(backward(mul(d, d)), AutogradError);
}

TEST_CASE("tape: a deep graph is walked without recursion") {
  Var<double> a(Tensor<double>::scalar(1.0), true);
  Var<double> y = a;
  for (int i = 0; i < 200000; ++i) y = add_scalar(y, 1e-6);
  backward(y);
  CHECK(a.grad().item() == 1.0);
  // Dropping a long chain must not overflow the stack either (nodes hold parents).
}

TEST_CASE("tape: gradient w.r.t. an intermediate node, and through it") {
  Var<double> a(Tensor<double>::scalar(3.0), true);
  auto m = mul(a, a);           // 9
  auto y = mul(m, a);           // a³
  auto g = grad(y, std::vector<Var<double>>{m}, true);
  CHECK(g[0].item() == 3.0);    // dy/dm = a
  auto ga = grad(y, std::vector<Var<double>>{a});
  CHECK(ga[0].item() == doctest::Approx(27.0));
}

TEST_CASE("tape: complex gradient follows dL/dx + i dL/dy") {
  // L = |z|² = x² + y²  ⇒ grad = 2x + 2iy = 2z.
  Var<cd> z(Tensor<cd>::scalar(cd(1.5, -2.0)), true);
  auto L = mul(abs(z), abs(z));
  backward(L);
  CHECK(std::abs(z.grad().item() - cd(3.0, -4.0)) < 1e-12);
}

TEST_CASE("tape: seed gradient for a non-scalar output") {
  Var<double> a(Tensor<double>::from_vector(Shape{2}, {1, 2}), true);
  auto y = mul(a, a);
  CHECK_THROWS_AS(backward(y), AutogradError);
  auto seed = Tensor<double>::from_vector(Shape{2}, {1, 10});
  backward(y, false, &seed);
  CHECK(a.grad()[0] == 2.0);
  CHECK(a.grad()[1] == 40.0);
}

TEST_CASE("tape: one adjoint handed to several parents is not shared between them") {
  // add() passes its incoming gradient unchanged to both operands; each parent must
  // get its own buffer, or a later accumulation into one corrupts the other.
  Var<double> a(Tensor<double>::scalar(1.0), true), b(Tensor<double>::scalar(2.0), true);
  backward(add(add(a, b), a));
  CHECK(a.grad().item() == 2.0);
  CHECK(b.grad().item() == 1.0);
  Var<double> x(Tensor<double>::scalar(0.7), true);
  auto ea = exp(x), sb = sin(x);
  auto y = add(add(ea, sb), scale(ea, 3.0));
  backward(y);
  CHECK(x.grad().item() == doctest::Approx(4 * std::exp(0.7) + std::cos(0.7)));
  Var<double> z(Tensor<double>::scalar(1.5), true);
  auto r = add_scalar(z, 1.0);
  auto gs = grad(add(mul(z, z), r), std::vector<Var<double>>{r, z});
  CHECK(gs[0].item() == 1.0);
  CHECK(gs[1].item() == doctest::Approx(4.0));
}
