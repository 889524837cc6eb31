// OGM-GE (erlmr/balance/ogm_ge.hpp): coefficients, the noise, the modulation window, training.
#include "test_util.hpp"
#include "balance/balance_test_util.hpp"

#include <erlmr/balance/ogm_ge.hpp>
#include <erlmr/data/synthetic.hpp>
#include <erlmr/train/trainer.hpp>

using namespace erlmr;

TEST_CASE("ogm-ge: coefficients by hand and the dominant modality") {
  // s_a = 6, s_g = 2, α = 0.1: ρ_a = 3 > 1, so a is dominant, k_a = 1 − tanh(0.3), k_g = 1.
  auto c = balance::ogm_coefficients(6, 2, 0.1);
  CHECK(c.rho_a == doctest::Approx(3.0).epsilon(1e-15));
  CHECK(c.k_a == doctest::Approx(0.7086873875484091).epsilon(1e-14));
  CHECK(c.k_g == 1.0);
  // Reversed: g dominant (ρ_g = 3).
  c = balance::ogm_coefficients(2, 6, 0.1);
  CHECK(c.rho_a == doctest::Approx(1.0 / 3).epsilon(1e-15));
  CHECK(c.k_a == 1.0);
  CHECK(c.k_g == doctest::Approx(0.7086873875484091).epsilon(1e-14));
  // s_a = 1, s_g = 4, α = 0.8: ρ_g = 4, k_g = 1 − tanh(3.2).
  c = balance::ogm_coefficients(1, 4, 0.8);
  CHECK(c.k_a == 1.0);
  CHECK(c.k_g == doctest::Approx(0.0033176021603488204).epsilon(1e-12));
  // ρ = 1: neither is modulated.
  c = balance::ogm_coefficients(5, 5, 0.1);
  CHECK(c.k_a == 1.0);
  CHECK(c.k_g == 1.0);
}

TEST_CASE("ogm-ge: the noise has std(G) and is zero for a constant gradient") {
  const std::int64_t n = 200000;
  Generator src(5);
  const auto G = Tensor<float>::randn(Shape{n}, src, 0.03f);
  const Tensor<float> G0 = G.clone();
  const double sdG = balance::tensor_std(G0);
  CHECK(sdG == doctest::Approx(0.03).epsilon(0.02));
  Generator gen(11);
  balance::ogm_modulate(G, 0.5, gen);
  CHECK(gen.offset() == std::uint64_t(n));  // one counter per entry
  double m = 0, v = 0;
  for (std::int64_t i = 0; i < n; ++i) m += double(G.data()[i]) - 0.5 * double(G0.data()[i]);
  m /= double(n);
  for (std::int64_t i = 0; i < n; ++i) {
    const double d = double(G.data()[i]) - 0.5 * double(G0.data()[i]) - m;
    v += d * d;
  }
  const double sd_noise = std::sqrt(v / double(n - 1));
  CHECK(std::abs(m) < 5 * sdG / std::sqrt(double(n)));
  CHECK(sd_noise == doctest::Approx(sdG).epsilon(0.01));
  // The noise is independent of G: correlation near 0.
  double cov = 0;
  for (std::int64_t i = 0; i < n; ++i) cov += (double(G.data()[i]) - 0.5 * double(G0.data()[i]) - m) * double(G0.data()[i]);
  CHECK(std::abs(cov / double(n) / (sdG * sd_noise)) < 0.02);

  // Constant gradient: std = 0, so G becomes exactly k·G.
  auto C = Tensor<float>::full(Shape{64, 3}, 0.25f);
  Generator g2(3);
  balance::ogm_modulate(C, 0.7, g2);
  for (std::int64_t i = 0; i < C.numel(); ++i) CHECK(C.data()[i] == float(0.7 * 0.25));
  CHECK(balance::tensor_std(Tensor<float>::full(Shape{1}, 2.f)) == 0.0);
}

namespace {
struct Pair {
  std::unique_ptr<erl::ErlmrModel<float>> ogm, joint;
};
Pair twin_models() {
  erl::ModelConfig mc;
  mc.window = 24;
  mc.classes = 12;
  Generator g1(9), g2(9);
  return {std::make_unique<erl::ErlmrModel<float>>(mc, g1), std::make_unique<erl::ErlmrModel<float>>(mc, g2)};
}
train::Batch<float> batch_of(const data::Dataset<float>& d, std::int64_t B) {
  const std::int64_t per = d.train.x1.numel() / d.train.x1.shape()[0];
  Tensor<float> x1(Shape{B, 1, 3, d.window()}), x2(Shape{B, 1, 3, d.window()});
  std::copy_n(d.train.x1.data(), B * per, x1.data());
  std::copy_n(d.train.x2.data(), B * per, x2.data());
  return {Var<float>(x1), Var<float>(x2), std::vector<std::int64_t>(d.train.y.begin(), d.train.y.begin() + B)};
}
}  // namespace

TEST_CASE("ogm-ge: joint gradient outside [start, end]; inside, only the encoder weights change") {
  data::SyntheticConfig sc;
  sc.train = 32;
  sc.test = 12;
  sc.window = 24;
  const auto d = data::synthetic_sensor<float>(sc);
  const auto b = batch_of(d, 16);
  auto models = twin_models();
  balance::MethodOptions o;
  o.ogm_start = 1;
  o.ogm_end = 1;
  balance::OgmGe<float> ogm(o, *models.ogm, 12);
  balance::PlainMethod<float> joint(balance::PlainMethod<float>::Kind::joint);
  auto params_o = models.ogm->parameters(), params_j = models.joint->parameters();
  auto names = models.ogm->state();
  nn::Context ctx{true, nullptr, 0.0};  // no dropout: both models see the same function

  for (int epoch : {0, 2, 1}) {
    CAPTURE(epoch);
    optim::zero_grad(params_o);
    optim::zero_grad(params_j);
    const auto st = ogm.step(*models.ogm, b, ctx, epoch);
    joint.step(*models.joint, b, ctx, epoch);
    REQUIRE(st.signals.size() == 3);
    CHECK(st.signals[0].first == "ogm_k_a");
    CHECK(st.signals[1].first == "ogm_k_g");
    CHECK(st.signals[2].first == "ogm_rho");
    const double k_a = st.signals[0].second, k_g = st.signals[1].second, rho = st.signals[2].second;
    if (epoch != 1) {  // modulation off: exactly the joint gradient, no noise drawn
      CHECK(k_a == 1.0);
      CHECK(k_g == 1.0);
      CHECK(ogm.noise_generator().offset() == 0);
      for (std::size_t i = 0; i < params_o.size(); ++i) CHECK(test::bitwise_equal(params_o[i].grad(), params_j[i].grad()));
      continue;
    }
    // Inside the window: the dominant modality (ρ decides) has k < 1, the other k = 1.
    CHECK((rho > 1 ? k_a : k_g) < 1.0);
    CHECK((rho > 1 ? k_g : k_a) == 1.0);
    std::int64_t modulated = 0;
    for (std::size_t i = 0; i < params_o.size(); ++i) {
      const auto& nm = names.params[i].name;
      CAPTURE(nm);
      const bool enc_a = nm.rfind("encoder.acc_cnn_layers.", 0) == 0 || nm == "mu1";
      const bool enc_g = nm.rfind("encoder.gyr_cnn_layers.", 0) == 0 || nm == "mu2";
      const bool weight = params_o[i].shape().rank() >= 2;
      if (!(enc_a || enc_g) || !weight) {  // biases, BN, im.*, fusion.*: untouched
        CHECK(test::bitwise_equal(params_o[i].grad(), params_j[i].grad()));
        continue;
      }
      ++modulated;
      CHECK_FALSE(test::bitwise_equal(params_o[i].grad(), params_j[i].grad()));
      // The 64×64×2×2 kernel is large enough to check G_ogm − k·G ~ N(0, std(G)²).
      if (params_o[i].numel() >= 16384) {
        const double k = enc_a ? k_a : k_g;
        const auto& Go = params_o[i].grad();
        const auto& Gj = params_j[i].grad();
        Tensor<double> r(Go.shape());
        for (std::int64_t e = 0; e < Go.numel(); ++e) r.data()[e] = double(Go.data()[e]) - k * double(Gj.data()[e]);
        CHECK(balance::tensor_std(r) == doctest::Approx(balance::tensor_std(Gj)).epsilon(0.05));
      }
    }
    CHECK(modulated == 10);  // 4 conv kernels + μ per modality
    std::uint64_t drawn = 0;
    for (auto u : {train::Modality::a, train::Modality::g})
      for (auto& p : train::encoder_parameters(*models.ogm, u))
        if (p.shape().rank() >= 2) drawn += static_cast<std::uint64_t>(p.numel());
    CHECK(ogm.noise_generator().offset() == drawn);
  }
}

TEST_CASE("ogm-ge: a short training run learns, and is reproducible") {
  const auto d = test::small_sensor_data();
  auto t = test::short_run("ogm-ge");
  train::Trainer<float> tr(t, d);
  CHECK(tr.method().name() == "ogm-ge");
  for (int e = 0; e < 5; ++e) tr.train_epoch();
  const auto& h = tr.history();
  MESSAGE("ogm-ge: train CE " << h.front().loss_ce << " -> " << h.back().loss_ce << ", test acc " << h.back().test.acc
                              << ", k_a " << h.back().signals[0].second << ", k_g " << h.back().signals[1].second
                              << ", rho " << h.back().signals[2].second);
  CHECK(h.back().loss_ce < 0.8 * h.front().loss_ce);
  CHECK(h.back().test.acc > 2.0 / 12);
  REQUIRE(h.back().signals.size() == 3);
  CHECK(h.back().csv_header().find("ogm_k_a,ogm_k_g,ogm_rho") != std::string::npos);

  // Resume from a checkpoint (the noise Generator's offset included) continues bitwise.
  const auto path = (std::filesystem::temp_directory_path() / "erlmr_ogm_ge_resume.npz").string();
  train::TrainConfig t2 = t;
  t2.epochs = 2;
  train::Trainer<float> a(t2, d);
  a.train_epoch();
  a.save_checkpoint(path);
  train::Trainer<float> b(t2, d);
  b.load_checkpoint(path);
  a.train_epoch();
  b.train_epoch();
  CHECK(a.history().back().csv_line() == b.history().back().csv_line());
  std::filesystem::remove(path);
}
