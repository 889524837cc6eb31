// MLA: the recursive projector, the entropy gates, the step's projected head gradient, a short
// training run and a checkpoint round trip.
#include "test_util.hpp"
#include "balance/balance_test_util.hpp"

#include <erlmr/balance/mla.hpp>
#include <erlmr/data/synthetic.hpp>
#include <erlmr/train/trainer.hpp>
#include <filesystem>

using namespace erlmr;
namespace fs = std::filesystem;


TEST_CASE("mla: one projector update by hand, a = a0^(1 + i/N), and G·P") {
  // P = I, r = (1, 0), a = 0.1: k = (1, 0), r k = 1, P ← I − diag(1, 0)/1.1 = diag(1/11, 1);
  // ‖P‖_F = √(1/121 + 1) = 1.0041237288; normalised diag(0.0905357460, 0.9958932065).
  auto P = Tensor<double>::from_vector(Shape{2, 2}, {1, 0, 0, 1});
  const double n = balance::mla_projector_update(P, std::vector<double>{1, 0}, 0.1);
  CHECK(n == doctest::Approx(1.0041237288352056).epsilon(1e-12));
  CHECK(P.at({0, 0}) == doctest::Approx(0.09053574604251853).epsilon(1e-12));
  CHECK(P.at({1, 1}) == doctest::Approx(0.9958932064677037).epsilon(1e-12));
  CHECK(P.at({0, 1}) == 0.0);
  CHECK(P.at({1, 0}) == 0.0);
  CHECK(balance::mla_alpha(0.1, 0, 10) == doctest::Approx(0.1));
  CHECK(balance::mla_alpha(0.1, 5, 10) == doctest::Approx(0.0316227766016838));
  CHECK(balance::mla_alpha(0.1, 7, 0) == doctest::Approx(0.1));
  // G = [[1, 2]], P = diag(0.5, 2) → G·P = [[0.5, 4]].
  const auto GP = balance::mla_project(Tensor<double>::from_vector(Shape{1, 2}, {1, 2}),
                                       Tensor<double>::from_vector(Shape{2, 2}, {0.5, 0, 0, 2}));
  CHECK(GP.to_vector() == std::vector<double>{0.5, 4});
}

TEST_CASE("mla: entropy gates on hand-made logits") {
  // Row 0: f_a = (0, 0) → H_a = ln 2 = 0.693147; f_g = (ln 3, 0) → p = (3/4, 1/4),
  // H_g = −(¾ ln ¾ + ¼ ln ¼) = 0.562335. w_a = e^{−H_a}/(e^{−H_a} + e^{−H_g}) = 0.5/(0.5 + 0.569880)
  // = 0.467344, w_g = 0.532656; fused row 0 = w_g·(ln 3, 0) = (0.585183, 0).
  // Row 1: equal logits in both modalities → 0.5 / 0.5.
  const double l3 = std::log(3.0);
  const auto fa = Tensor<double>::from_vector(Shape{2, 2}, {0, 0, 1, 2});
  const auto fg = Tensor<double>::from_vector(Shape{2, 2}, {l3, 0, 1, 2});
  const auto [wa, wg] = balance::mla_entropy_gates(fa, fg);
  CHECK(wa[0] == doctest::Approx(0.467343545268778).epsilon(1e-12));
  CHECK(wg[0] == doctest::Approx(0.532656454731222).epsilon(1e-12));
  CHECK(wa[1] == doctest::Approx(0.5));
  CHECK(wg[1] == doctest::Approx(0.5));
  const auto f = balance::mla_fuse(fa, fg, wa, wg);
  CHECK(f.at({0, 0}) == doctest::Approx(0.5851829268061093).epsilon(1e-12));
  CHECK(f.at({0, 1}) == 0.0);
  CHECK(f.at({1, 0}) == doctest::Approx(1.0));
  CHECK(f.at({1, 1}) == doctest::Approx(2.0));
}

TEST_CASE("mla: the step accumulates G_a·P0 + G_g·P1 into the head, own-modality gradients into the encoders") {
  data::SyntheticConfig sc;
  sc.train = 16;
  sc.test = 16;
  sc.window = 24;
  const auto d = data::synthetic_sensor<double>(sc);
  train::Batch<double> b{Var<double>(d.train.x1), Var<double>(d.train.x2), d.train.y};
  erl::ModelConfig mc;
  mc.window = 24;
  Generator g(5), dg(6);
  erl::ErlmrModel<double> m(mc, g);
  balance::Mla<double> meth(balance::MethodOptions{}, m, 12);
  const std::int64_t D = mc.fused_dim();
  // Two steps so that P0 is no longer the identity at the second one.
  nn::Context ctx{true, &dg, 0.0};  // dropout off: a second forward pass is identical
  auto params = m.parameters();
  for (auto& p : meth.extra_parameters()) params.push_back(p);
  for (int s = 0; s < 2; ++s) {
    const Tensor<double> P0 = meth.projector().clone();
    for (auto& p : params) p.zero_grad();
    const auto st = meth.step(m, b, ctx, 0);
    REQUIRE(st.signals.size() == 2);
    CHECK(st.signals[0].first == "mla_gate_a");
    CHECK(st.signals[1].first == "mla_proj_norm");
    CHECK(st.signals[0].second > 0);
    CHECK(st.signals[0].second < 1);
    CHECK(st.loss == doctest::Approx(st.loss_uni));
    // Reference: raw gradients, P1 = P0 updated with mean h_a and a = a0 = 0.1 (no epoch view: i/N = 0).
    auto f = m.forward(b.x1, b.x2, ctx);
    auto& W = meth.head().weight;
    auto& c = meth.head().bias;
    auto la = cross_entropy(linear(f.h_a, W, c), b.y), lg = cross_entropy(linear(f.h_g, W, c), b.y);
    const auto ea = train::encoder_parameters(m, train::Modality::a), eg = train::encoder_parameters(m, train::Modality::g);
    auto ga = grad(la, std::vector<Var<double>>{W, c, ea[0], eg[0]}, true);
    auto gg = grad(lg, std::vector<Var<double>>{W, c, ea[0], eg[0]}, true);
    std::vector<double> r(static_cast<std::size_t>(D), 0.0);
    for (std::int64_t i = 0; i < 16; ++i)
      for (std::int64_t j = 0; j < D; ++j) r[static_cast<std::size_t>(j)] += f.h_a.value().data()[i * D + j] / 16;
    Tensor<double> P1 = P0.clone();
    balance::mla_projector_update(P1, r, 0.1);
    Tensor<double> want(W.shape());
    want.vec() = balance::mla_project(ga[0], P0).vec() + balance::mla_project(gg[0], P1).vec();
    CHECK(test::max_abs_diff(W.grad(), want) < 1e-12);
    Tensor<double> wb(c.shape());
    wb.vec() = ga[1].vec() + gg[1].vec();  // the bias is not projected
    CHECK(test::max_abs_diff(c.grad(), wb) < 1e-12);
    CHECK(test::max_abs_diff(ea[0].grad(), ga[2]) < 1e-12);  // encoder a: only CE(f_a)
    CHECK(test::max_abs_diff(eg[0].grad(), gg[3]) < 1e-12);  // encoder g: only CE(f_g)
    CHECK_FALSE(m.fusion.fc_out->weight.grad().defined());  // the model's fusion layer is unused
    if (s == 0) CHECK(P0.mat(D, D).isIdentity(0.0));  // the first step projects with P = I
  }
  // ‖P‖_F = 1 after every update.
  CHECK(meth.projector().mat(D, D).norm() == doctest::Approx(1.0).epsilon(1e-12));
  // evaluate(): out = gated fusion of the head's unimodal logits.
  nn::Context ectx{false, nullptr, 1.0};
  auto f = meth.evaluate(m, b.x1, b.x2, ectx);
  const auto [wa, wg] = balance::mla_entropy_gates(f.out_a.value(), f.out_g.value());
  CHECK(test::max_abs_diff(f.out.value(), balance::mla_fuse(f.out_a.value(), f.out_g.value(), wa, wg)) == 0.0);
  NoGradGuard ng;
  auto ref = linear(f.h_a, meth.head().weight, meth.head().bias).value();
  CHECK(test::max_abs_diff(f.out_a.value(), ref) == 0.0);
}

TEST_CASE("mla: a short training run learns, and a checkpoint round trip continues identically") {
  const auto d = test::small_sensor_data();
  train::TrainConfig t;
  t.method = "mla";
  // Six epochs, not five: the projected head gradient G·P is small (P is Frobenius-normalised, so
  // its eigenvalues are about 1/√D), and the shared head starts learning an epoch later than joint
  // training's (train CE 2.52 → 2.09 after 5 epochs, → 1.70 after 6).
  t.epochs = 6;
  t.batch = 16;
  t.lr = 0.01;
  t.probe_epochs = 1;
  train::Trainer<float> tr(t, d);
  const auto path = (fs::temp_directory_path() / "erlmr_test_mla.npz").string();
  for (int e = 0; e < t.epochs; ++e) {
    tr.train_epoch();
    if (e == 4) tr.save_checkpoint(path);
  }
  const auto& h = tr.history();
  MESSAGE("mla: CE " << h.front().loss_ce << " -> " << h.back().loss_ce << ", uni " << h.front().loss_uni << " -> "
                     << h.back().loss_uni << ", test acc " << h.back().test.acc << " (a " << h.back().test.acc_a << ", g "
                     << h.back().test.acc_g << "), gate_a " << h.back().signals[0].second << ", proj_norm "
                     << h.back().signals[1].second);
  CHECK(h.back().loss_ce < 0.8 * h.front().loss_ce);
  CHECK(h.back().test.acc > 2.0 / 12);
  REQUIRE(h.back().signals.size() == 2);
  CHECK(h.back().signals[0].first == "mla_gate_a");
  CHECK(h.back().signals[1].first == "mla_proj_norm");

  train::Trainer<float> resumed(t, d);
  resumed.load_checkpoint(path);
  CHECK(resumed.epoch() == 5);
  resumed.train_epoch();
  CHECK(test::history_csv(tr) == test::history_csv(resumed));
  auto& m0 = dynamic_cast<balance::Mla<float>&>(tr.method());
  auto& m1 = dynamic_cast<balance::Mla<float>&>(resumed.method());
  CHECK(test::bitwise_equal(m0.projector(), m1.projector()));
  CHECK(test::bitwise_equal(m0.head().weight.value(), m1.head().weight.value()));
  CHECK(test::bitwise_equal(m0.head().bias.value(), m1.head().bias.value()));
  fs::remove(path);
}
