// AGM (erlmr/balance/agm.hpp): Shapley logits, scores, ratios, coefficients, the step, training
// and the checkpoint round trip of the running ratios.
#include "test_util.hpp"
#include "balance/balance_test_util.hpp"

#include <erlmr/balance/agm.hpp>
#include <erlmr/data/synthetic.hpp>
#include <erlmr/train/trainer.hpp>

using namespace erlmr;

namespace {
Tensor<float> mat(std::int64_t r, std::int64_t c, std::vector<float> v) { return Tensor<float>::from_vector(Shape{r, c}, v); }
}  // namespace

TEST_CASE("agm: Shapley logits of an additive model are its two parts") {
  // f(a,g) = A + G + c with A(0) = 0, G(0) = 0 (all values exact in float).
  const auto A = mat(2, 3, {1.5f, -2.f, 0.25f, 3.f, 0.5f, -1.f});
  const auto G = mat(2, 3, {-0.5f, 1.f, 2.f, 0.75f, -3.f, 4.f});
  const auto c = mat(2, 3, {0.125f, 0.125f, -1.f, 2.f, 2.f, 2.f});
  const auto fag = mat(2, 3, {1.125f, -0.875f, 1.25f, 5.75f, -0.5f, 5.f});  // A + G + c
  const auto f0g = mat(2, 3, {-0.375f, 1.125f, 1.f, 2.75f, -1.f, 6.f});     // G + c
  const auto fa0 = mat(2, 3, {1.625f, -1.875f, -0.75f, 5.f, 2.5f, 1.f});    // A + c
  auto phi = balance::agm_shapley(fag, f0g, fa0, c);
  CHECK(test::bitwise_equal(phi.a, A));
  CHECK(test::bitwise_equal(phi.g, G));
  // With an interaction term I added to f(a,g) only, each modality gets half of it:
  // φ_a = A + I/2, φ_g = G + I/2. Row 0: I = (2, −4, 1).
  const auto fag_i = mat(1, 3, {3.125f, -4.875f, 2.25f});
  phi = balance::agm_shapley(fag_i, mat(1, 3, {-0.375f, 1.125f, 1.f}), mat(1, 3, {1.625f, -1.875f, -0.75f}), mat(1, 3, {0.125f, 0.125f, -1.f}));
  CHECK(test::bitwise_equal(phi.a, mat(1, 3, {2.5f, -4.f, 0.75f})));
  CHECK(test::bitwise_equal(phi.g, mat(1, 3, {0.5f, -1.f, 2.5f})));
}

TEST_CASE("agm: scores, ratios and clipped coefficients by hand") {
  // Rows [0,0,0] (y = 0) and [2,0,0] (y = 1): −log softmax = log 3 and log(e² + 2).
  CHECK(balance::agm_score(mat(2, 3, {0, 0, 0, 2, 0, 0}), {0, 1}) == doctest::Approx(1.6690785274449973).epsilon(1e-6));
  // s_a = 1, s_g = 2: mean 1.5, r_a = e, r_g = 1/e.
  auto [r_a, r_g] = balance::agm_ratios(1.0, 2.0);
  CHECK(r_a == doctest::Approx(2.718281828459045).epsilon(1e-14));
  CHECK(r_g == doctest::Approx(0.36787944117144233).epsilon(1e-14));
  // r̄ = 2, r = e, α = 0.1: k = exp(0.1(2 − e)).
  CHECK(balance::agm_coefficient(2.0, 2.718281828459045, 0.1) == doctest::Approx(0.9306907907174724).epsilon(1e-14));
  CHECK(balance::agm_coefficient(1.5, 1.5, 0.1) == 1.0);
  // Exponent 0.1·(100 − 0) = 10 is clipped to 7, −10 to −7; 6.5 is not clipped.
  CHECK(balance::agm_coefficient(100.0, 0.0, 0.1) == doctest::Approx(1096.6331584284585).epsilon(1e-14));
  CHECK(balance::agm_coefficient(0.0, 100.0, 0.1) == doctest::Approx(0.0009118819655545162).epsilon(1e-14));
  CHECK(balance::agm_coefficient(65.0, 0.0, 0.1) == doctest::Approx(std::exp(6.5)).epsilon(1e-14));
}

namespace {
train::Batch<float> batch_of(const data::Dataset<float>& d, std::int64_t first, std::int64_t B) {
  const std::int64_t per = d.train.x1.numel() / d.train.x1.shape()[0];
  Tensor<float> x1(Shape{B, 1, 3, d.window()}), x2(Shape{B, 1, 3, d.window()});
  std::copy_n(d.train.x1.data() + first * per, B * per, x1.data());
  std::copy_n(d.train.x2.data() + first * per, B * per, x2.data());
  return {Var<float>(x1), Var<float>(x2), std::vector<std::int64_t>(d.train.y.begin() + first, d.train.y.begin() + first + B)};
}
}  // namespace

TEST_CASE("agm: the step scales each encoder's joint gradient by k_u and leaves BN statistics alone") {
  data::SyntheticConfig sc;
  sc.train = 48;
  sc.test = 12;
  sc.window = 24;
  const auto d = data::synthetic_sensor<float>(sc);
  erl::ModelConfig mc;
  mc.window = 24;
  mc.classes = 12;
  Generator g1(9), g2(9);
  erl::ErlmrModel<float> ma(mc, g1), mj(mc, g2);
  balance::MethodOptions o;
  balance::Agm<float> agm(o, ma, 12);
  balance::PlainMethod<float> joint(balance::PlainMethod<float>::Kind::joint);
  auto pa = ma.parameters(), pj = mj.parameters();
  auto names = ma.state();
  nn::Context ctx{true, nullptr, 0.0};
  std::vector<double> r_seen;
  for (std::int64_t s = 0; s < 3; ++s) {
    CAPTURE(s);
    const auto b = batch_of(d, 16 * s, 16);
    optim::zero_grad(pa);
    optim::zero_grad(pj);
    const auto st = agm.step(ma, b, ctx, 0);
    joint.step(mj, b, ctx, 0);
    REQUIRE(st.signals.size() == 4);
    CHECK(st.signals[0].first == "agm_k_a");
    CHECK(st.signals[1].first == "agm_k_g");
    CHECK(st.signals[2].first == "agm_s_a");
    CHECK(st.signals[3].first == "agm_s_g");
    const double k_a = st.signals[0].second, k_g = st.signals[1].second, s_a = st.signals[2].second, s_g = st.signals[3].second;
    // Running average of r_a = exp(s_g − s_a) (two modalities): initialised, then β = 0.9.
    const double r_a = std::exp(s_g - s_a);
    if (s == 0) {
      CHECK(k_a == 1.0);
      CHECK(k_g == 1.0);
      CHECK(agm.running_ratios()[0] == doctest::Approx(r_a).epsilon(1e-12));
    }
    r_seen.push_back(r_a);
    // Every encoder tensor (biases, BN and μ included) is k_u × the joint gradient; the rest equal.
    auto st_a = ma.state(), st_j = mj.state();
    for (std::size_t i = 0; i < pa.size(); ++i) {
      const auto& nm = names.params[i].name;
      CAPTURE(nm);
      const bool enc_a = nm.rfind("encoder.acc_cnn_layers.", 0) == 0 || nm == "mu1";
      const bool enc_g = nm.rfind("encoder.gyr_cnn_layers.", 0) == 0 || nm == "mu2";
      if (!enc_a && !enc_g) {
        CHECK(test::bitwise_equal(pa[i].grad(), pj[i].grad()));
        continue;
      }
      const double k = enc_a ? k_a : k_g;
      double err = 0, ref = 0;
      for (std::int64_t e = 0; e < pa[i].numel(); ++e) {
        err = std::max(err, std::abs(double(pa[i].grad().data()[e]) - k * double(pj[i].grad().data()[e])));
        ref = std::max(ref, std::abs(double(pj[i].grad().data()[e])));
      }
      CHECK(err <= 1e-6 * ref);
    }
    // The zero-input passes ran in evaluation mode: BN buffers and counters as joint's.
    for (std::size_t i = 0; i < st_a.buffers.size(); ++i) CHECK(test::bitwise_equal(st_a.buffers[i].tensor, st_j.buffers[i].tensor));
    for (std::size_t i = 0; i < st_a.counters.size(); ++i) CHECK(test::bitwise_equal(st_a.counters[i].tensor, st_j.counters[i].tensor));
  }
  // r̄_a after three steps: r1, then 0.9 r1 + 0.1 r2, then 0.9(…) + 0.1 r3.
  const double expect = 0.9 * (0.9 * r_seen[0] + 0.1 * r_seen[1]) + 0.1 * r_seen[2];
  CHECK(agm.running_ratios()[0] == doctest::Approx(expect).epsilon(1e-9));
  CHECK(agm.initialised());
}

TEST_CASE("agm: a short training run learns; a checkpoint round trip continues identically") {
  const auto d = test::small_sensor_data();
  auto t = test::short_run("agm");
  const auto path = (std::filesystem::temp_directory_path() / "erlmr_agm_resume.npz").string();
  train::Trainer<float> tr(t, d);
  CHECK(tr.method().name() == "agm");
  for (int e = 0; e < 4; ++e) tr.train_epoch();
  tr.save_checkpoint(path);
  tr.train_epoch();
  const auto& h = tr.history();
  MESSAGE("agm: train CE " << h.front().loss_ce << " -> " << h.back().loss_ce << ", test acc " << h.back().test.acc
                           << ", k_a " << h.back().signals[0].second << ", k_g " << h.back().signals[1].second << ", s_a "
                           << h.back().signals[2].second << ", s_g " << h.back().signals[3].second);
  CHECK(h.back().loss_ce < 0.8 * h.front().loss_ce);
  CHECK(h.back().test.acc > 2.0 / 12);
  REQUIRE(h.back().signals.size() == 4);
  CHECK(h.back().csv_header().find("agm_k_a,agm_k_g,agm_s_a,agm_s_g") != std::string::npos);

  // The checkpoint holds r̄; a new trainer restores it and trains the fifth epoch identically.
  auto ck = data::read_npz(path);
  REQUIRE(ck.count("trainer/method/agm_r_bar"));
  CHECK(ck.at("trainer/method/agm_r_bar").as<double>().at(0) == 1.0);
  train::Trainer<float> resumed(t, d);
  resumed.load_checkpoint(path);
  auto& m = dynamic_cast<balance::Agm<float>&>(resumed.method());
  CHECK(m.initialised());
  CHECK(m.running_ratios()[0] == ck.at("trainer/method/agm_r_bar").as<double>().at(1));
  CHECK(m.running_ratios()[1] == ck.at("trainer/method/agm_r_bar").as<double>().at(2));
  resumed.train_epoch();
  CHECK(resumed.history().back().csv_line() == h.back().csv_line());
  std::filesystem::remove(path);
}
