// MMCosine: scaled cosine logits, their gradient, the fusion restriction, and a short training run.
#include "test_util.hpp"
#include "balance/balance_test_util.hpp"

#include <erlmr/balance/mmcosine.hpp>
#include <erlmr/data/synthetic.hpp>
#include <erlmr/train/trainer.hpp>

using namespace erlmr;

TEST_CASE("mmcosine: cosine logits of tiny 2-d vectors, computed by hand") {
  // h rows (3, 4) and (1, 0); U rows (1, 0), (0, 2), (1, 1); s = 10.
  // normalised h: (0.6, 0.8), (1, 0); normalised U: (1, 0), (0, 1), (1, 1)/√2.
  Var<double> h(Tensor<double>::from_vector(Shape{2, 2}, {3, 4, 1, 0}));
  Var<double> U(Tensor<double>::from_vector(Shape{3, 2}, {1, 0, 0, 2, 1, 1}));
  const auto f = balance::cosine_logits(h, U, 10.0).value();
  REQUIRE(f.shape() == Shape{2, 3});
  const double want[6] = {6.0, 8.0, 9.899494936611664, 10.0, 0.0, 7.071067811865475};
  for (int i = 0; i < 6; ++i) CHECK(f.data()[i] == doctest::Approx(want[i]).epsilon(1e-9));
  // A row of zeros gives zero cosines, not NaN.
  Var<double> z(Tensor<double>::zeros(Shape{1, 2}));
  const auto fz = balance::cosine_logits(z, U, 10.0).value();
  for (int k = 0; k < 3; ++k) CHECK(fz.data()[k] == 0.0);
}

TEST_CASE("mmcosine: the cosine-logit gradient passes GradCheck (double)") {
  auto h = test::rnd<double>(Shape{3, 4}, 11);
  auto U = test::rnd<double>(Shape{5, 4}, 12);
  test::check_grad([&] { return balance::cosine_logits(h, U, 10.0); }, h, U);
}

TEST_CASE("mmcosine: uses the modality's slice of fc_out (concat) or fc_x / fc_y (sum); FiLM and gated throw") {
  data::SyntheticConfig c;
  c.train = 16;
  c.test = 16;
  c.window = 24;
  const auto d = data::synthetic_sensor<double>(c);
  train::Batch<double> b{Var<double>(d.train.x1), Var<double>(d.train.x2), d.train.y};
  for (auto fk : {erl::FusionKind::concat, erl::FusionKind::sum}) {
    CAPTURE(erl::fusion_name(fk));
    erl::ModelConfig mc;
    mc.window = 24;
    mc.fusion = fk;
    Generator g(3), dg(4);
    erl::ErlmrModel<double> m(mc, g);
    balance::MMCosine<double> meth(balance::MethodOptions{}, m, 12);
    nn::Context ectx{false, nullptr, 1.0};
    auto f = meth.evaluate(m, b.x1, b.x2, ectx);
    // Sample 0, class 2, modality g, by plain loops over the weight rows.
    const std::int64_t D = mc.fused_dim();
    const Tensor<double> W = fk == erl::FusionKind::concat ? m.fusion.fc_out->weight.value() : m.fusion.fc_y->weight.value();
    const std::int64_t off = fk == erl::FusionKind::concat ? D : 0, ld = W.shape()[1];
    double dot = 0, nh = 0, nw = 0;
    for (std::int64_t j = 0; j < D; ++j) {
      const double hv = f.h_g.value().data()[j], wv = W.data()[2 * ld + off + j];
      dot += hv * wv;
      nh += hv * hv;
      nw += wv * wv;
    }
    CHECK(f.out_g.value().at({0, 2}) == doctest::Approx(10 * dot / std::sqrt(nh * nw)).epsilon(1e-9));
    for (std::int64_t i = 0; i < f.out.numel(); ++i) {
      CHECK(std::abs(f.out_a.value().data()[i]) <= 10 + 1e-9);
      CHECK(f.out.value().data()[i] == doctest::Approx(f.out_a.value().data()[i] + f.out_g.value().data()[i]));
    }
    // A step: the weights of the cosine get a gradient, the fusion biases none.
    nn::Context ctx{true, &dg, 1.0};
    const auto st = meth.step(m, b, ctx, 0);
    REQUIRE(st.signals.size() == 2);
    CHECK(st.signals[0].first == "mmc_cos_a");
    CHECK(st.signals[1].first == "mmc_cos_g");
    CHECK(std::abs(st.signals[0].second) <= 1);
    if (fk == erl::FusionKind::concat) {
      CHECK(m.fusion.fc_out->weight.grad().defined());
      CHECK_FALSE(m.fusion.fc_out->bias.grad().defined());
    } else {
      CHECK(m.fusion.fc_x->weight.grad().defined());
      CHECK(m.fusion.fc_y->weight.grad().defined());
      CHECK_FALSE(m.fusion.fc_x->bias.grad().defined());
    }
    CHECK(train::encoder_parameters(m, train::Modality::g)[0].grad().defined());
  }
  for (auto fk : {erl::FusionKind::film, erl::FusionKind::gated}) {
    erl::ModelConfig mc;
    mc.window = 24;
    mc.fusion = fk;
    Generator g(3);
    erl::ErlmrModel<float> m(mc, g);
    try {
      balance::MMCosine<float> meth(balance::MethodOptions{}, m, 12);
      FAIL("no exception for fusion " << erl::fusion_name(fk));
    } catch (const std::invalid_argument& e) {
      CHECK(std::string(e.what()).find("mmcosine supports concat and sum fusion") != std::string::npos);
      CHECK(std::string(e.what()).find(erl::fusion_name(fk)) != std::string::npos);
    }
  }
}

TEST_CASE("mmcosine: a short training run learns") {
  const auto d = test::small_sensor_data();
  auto t = test::short_run("mmcosine");
  train::Trainer<float> tr(t, d);
  for (int e = 0; e < t.epochs; ++e) tr.train_epoch();
  const auto& h = tr.history();
  CHECK(h.back().loss_ce < 0.8 * h.front().loss_ce);
  CHECK(h.back().test.acc > 2.0 / 12);
  REQUIRE(h.back().signals.size() == 2);
  CHECK(h.back().signals[0].first == "mmc_cos_a");
  MESSAGE("mmcosine: CE " << h.front().loss_ce << " -> " << h.back().loss_ce << ", test acc " << h.back().test.acc
                          << " (a " << h.back().test.acc_a << ", g " << h.back().test.acc_g << "), cos_a "
                          << h.back().signals[0].second << ", cos_g " << h.back().signals[1].second);
}
