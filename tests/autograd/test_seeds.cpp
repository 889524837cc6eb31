// grad_seeds: several outputs differentiated in one walk of the tape (autograd/backward.hpp).
#include "test_util.hpp"

using namespace erlmr;

namespace {
// Each seed's gradients against its own grad_factored pass: the same bits, dense and factored.
template <class R>
void check_same_as_separate_passes(const PoolVector<PoolVector<Gradient<R>>>& gs, const std::vector<Var<R>>& outs,
                                   const std::vector<Var<R>>& inputs) {
  REQUIRE(gs.size() == outs.size());
  for (std::size_t s = 0; s < outs.size(); ++s) {
    CAPTURE(s);
    const auto ref = grad_factored(outs[s], inputs, /*retain_graph=*/true);
    REQUIRE(gs[s].size() == ref.size());
    for (std::size_t i = 0; i < ref.size(); ++i) {
      CAPTURE(i);
      CHECK(gs[s][i].shape == ref[i].shape);
      CHECK(gs[s][i].dense.defined() == ref[i].dense.defined());
      if (ref[i].dense.defined()) CHECK(test::bitwise_equal(gs[s][i].dense, ref[i].dense));
      REQUIRE(gs[s][i].terms.size() == ref[i].terms.size());
      for (std::size_t k = 0; k < ref[i].terms.size(); ++k) {
        CHECK(test::bitwise_equal(gs[s][i].terms[k].a, ref[i].terms[k].a));
        CHECK(test::bitwise_equal(gs[s][i].terms[k].x, ref[i].terms[k].x));
      }
    }
  }
}
}  // namespace

TEST_CASE_TEMPLATE("grad_seeds: each seed's gradients are its own pass's, bit for bit", R, float, double) {
  // A graph like the fused step's: a convolution and a rectifier below a complex-by-real
  // linear layer (which runs one rule for all seeds), three heads above it, and a leaf
  // (v) that only one output reaches.
  auto x = test::rnd<R>(Shape{3, 2, 4, 6}, 1, false);
  auto k = test::rnd<R>(Shape{4, 2, 2, 2}, 2), kb = test::rnd<R>(Shape{4}, 3);
  auto w = test::rnd<R>(Shape{5, 60}, 4), b = test::rnd<R>(Shape{5}, 5), v = test::rnd<R>(Shape{5}, 6);
  auto h = reshape(relu(conv2d(x, k, kb)), {3, 60});
  auto z = euler(h, h);  // complex (3, 60)
  auto y = linear(z, w, b);
  auto o1 = sum(mul(real(y), real(y)));
  auto o2 = mean(sin(imag(y)));
  auto o3 = sum(mul(abs(y), v));
  const std::vector<Var<R>> outs{o1, o2, o3}, inputs{k, kb, w, b, v};
  const auto gs = grad_seeds<R, R, CpuDevice>(std::span<const Var<R>>(outs), inputs, /*retain_graph=*/true);
  CHECK(gs[0][2].factored());  // W's gradient left as factors, as grad_factored leaves it
  CHECK(test::max_abs_diff(gs[0][4].dense, Tensor<R>::zeros(Shape{5})) == 0);  // v: not reached by o1
  check_same_as_separate_passes(gs, outs, inputs);
}

TEST_CASE_TEMPLATE("grad_seeds: batch norm with rectifier and dropout, all seeds channel by channel", R, float, double) {
  // batch_norm_relu_dropout runs one rule for all seeds (batch_norm_backward_seeds): each
  // seed's gradients must be its own pass's bits. Two blocks (with dropout, then without), in
  // training and in evaluation; a third output reaches neither block.
  for (const bool training : {true, false}) {
    CAPTURE(training);
    Generator gen(7);
    auto x = test::rnd<R>(Shape{4, 3, 2, 5}, 11);
    auto g1 = test::rnd<R>(Shape{3}, 12), b1 = test::rnd<R>(Shape{3}, 13), g2 = test::rnd<R>(Shape{3}, 14),
         b2 = test::rnd<R>(Shape{3}, 15), u = test::rnd<R>(Shape{3}, 16);
    auto rm1 = Tensor<R>::zeros(Shape{3}), rv1 = Tensor<R>::ones(Shape{3}), rm2 = Tensor<R>::zeros(Shape{3}),
         rv2 = Tensor<R>::ones(Shape{3});
    auto h = batch_norm_relu_dropout(x, g1, b1, rm1, rv1, training, 0.1, 1e-5, 0.5, &gen);
    auto h2 = batch_norm_relu_dropout(h, g2, b2, rm2, rv2, training, 0.1, 1e-5, 0.0, nullptr);
    CHECK(bool(h.node()->seeds_rule));  // the walk below runs the multi-seed rule, not the per-seed one
    CHECK(bool(h2.node()->seeds_rule));
    auto o1 = sum(mul(h2, h2));
    auto o2 = mean(sin(h2));
    auto o3 = sum(mul(u, u));
    const std::vector<Var<R>> outs{o1, o2, o3}, inputs{x, g1, b1, g2, b2, u};
    check_same_as_separate_passes(grad_seeds<R, R, CpuDevice>(std::span<const Var<R>>(outs), inputs, true), outs, inputs);
  }
}

TEST_CASE_TEMPLATE("grad_seeds: the Euler map by rows, all seeds in one pass over theta and z", R, float, double) {
  // euler with μ (1, C, 1) against θ (B, C, P ≥ 16) runs one rule for all seeds
  // (euler_rows_backward_seeds): each seed's gradients of μ and θ must be its own pass's bits,
  // with both, either one, or (SIMD off) the scalar loop; a third output does not reach it.
  auto run = [](bool mu_grad, bool theta_grad) {
    CAPTURE(mu_grad);
    CAPTURE(theta_grad);
    auto mu = test::rnd<R>(Shape{1, 3, 1}, 21, mu_grad), th = test::rnd<R>(Shape{4, 3, 37}, 22, theta_grad);
    auto u = test::rnd<R>(Shape{5}, 23);
    auto z = euler(mu, th);
    CHECK(bool(z.node()->seeds_rule));
    auto o1 = sum(mul(real(z), imag(z)));
    auto o2 = mean(arg(crelu(z)));
    auto o3 = sum(mul(u, u));
    std::vector<Var<R>> inputs{u};
    if (mu_grad) inputs.push_back(mu);
    if (theta_grad) inputs.push_back(th);
    const std::vector<Var<R>> outs{o1, o2, o3};
    check_same_as_separate_passes(grad_seeds<R, R, CpuDevice>(std::span<const Var<R>>(outs), inputs, true), outs, inputs);
  };
  run(true, true);
  run(true, false);
  run(false, true);
  {
    const test::SimdOff off;  // the scalar loop
    run(true, true);
    run(true, false);
    run(false, true);
  }
}

TEST_CASE("grad_seeds: the projection's stacked product past 1024 rows, and with SIMD off") {
  // Three seeds of 2·200 stacked rows each (1200 > kThinMax = 1024: one gemm_nn for all, as each
  // seed's own 400-row product); then the same graph with SIMD off (Eigen, seed by seed).
  auto run = [](std::int64_t rows, std::int64_t in, std::int64_t out) {
    auto z = euler(test::rnd<float>(Shape{rows, in}, 1), test::rnd<float>(Shape{rows, in}, 2));
    auto w = test::rnd<float>(Shape{out, in}, 3), b = test::rnd<float>(Shape{out}, 4);
    auto mu = test::rnd<float>(Shape{rows, in}, 5);
    auto y = linear(mul(z, make_complex(mu, mu)), w, b);
    auto o1 = sum(mul(real(y), real(y)));
    auto o2 = mean(sin(imag(y)));
    auto o3 = sum(abs(y));
    const std::vector<Var<float>> outs{o1, o2, o3}, inputs{mu, w, b};
    check_same_as_separate_passes(grad_seeds<float, float, CpuDevice>(std::span<const Var<float>>(outs), inputs, true), outs,
                                  inputs);
  };
  SUBCASE("SIMD as built") { run(200, 64, 32); }
  SUBCASE("SIMD off") {
    const test::SimdOff off;
    run(37, 97, 53);
    run(64, 300, 100);
  }
}

TEST_CASE("grad_seeds: a seed that does not reach the multi-seed rule's node, a repeated input, one seed") {
  auto w = test::rnd<double>(Shape{3, 4}, 1), u = test::rnd<double>(Shape{3}, 2);
  auto z = euler(test::rnd<double>(Shape{2, 4}, 3, false), test::rnd<double>(Shape{2, 4}, 4, false));
  auto y = linear(z, w);
  auto o1 = sum(real(y));
  auto o2 = sum(mul(u, u));  // reaches u only: the linear layer's rule sees one seed of two
  const std::vector<Var<double>> outs{o1, o2}, inputs{w, u, w};
  const auto gs = grad_seeds<double, double, CpuDevice>(std::span<const Var<double>>(outs), inputs, true);
  check_same_as_separate_passes(gs, outs, inputs);
  const std::vector<Var<double>> one{o1};
  check_same_as_separate_passes(grad_seeds<double, double, CpuDevice>(std::span<const Var<double>>(one), inputs, true), one, inputs);
}

TEST_CASE("grad_seeds: errors, and the graph is freed without retain_graph") {
  auto a = test::rnd<double>(Shape{3}, 1);
  auto s = sum(mul(a, a));
  const std::vector<Var<double>> inputs{a};
  const std::vector<Var<double>> five(5, s);
  CHECK_THROWS_AS((grad_seeds<double, double, CpuDevice>(std::span<const Var<double>>(five), inputs)), AutogradError);
  const std::vector<Var<double>> vec{mul(a, a)};
  CHECK_THROWS_WITH_AS((grad_seeds<double, double, CpuDevice>(std::span<const Var<double>>(vec), inputs)),
                       "grad_seeds: output of shape (3,) is not a scalar", AutogradError);
  const std::vector<Var<double>> outs{s};
  const std::vector<Var<double>> not_leaf{mul(a, a)};
  CHECK_THROWS_WITH_AS((grad_seeds<double, double, CpuDevice>(std::span<const Var<double>>(outs), not_leaf)),
                       "grad_seeds: the inputs must be leaves", AutogradError);
  const auto g = grad_seeds<double, double, CpuDevice>(std::span<const Var<double>>(outs), inputs);
  for (int i = 0; i < 3; ++i) CHECK(g[0][0].dense.data()[i] == doctest::Approx(2 * a.value().data()[i]));
  CHECK_THROWS_AS((grad_seeds<double, double, CpuDevice>(std::span<const Var<double>>(outs), inputs)), AutogradError);
  CHECK(!a.grad().defined());  // no leaf's grad() is touched
}
