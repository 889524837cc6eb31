// G-Blending: the weight formula on hand-made losses, its fallbacks, a training run on the
// held-out split that learns, and a checkpoint round trip (weights and previous losses).
#include <filesystem>

#include "test_util.hpp"
#include "balance/balance_test_util.hpp"
#include <erlmr/balance/gblending.hpp>
#include <erlmr/data/synthetic.hpp>
#include <erlmr/train/trainer.hpp>

using namespace erlmr;
namespace fs = std::filesystem;

namespace {
void check_uniform(const balance::GbTriple& w) {
  for (double x : w) CHECK(x == doctest::Approx(1.0 / 3));
}
}  // namespace

TEST_CASE("gblending: w_k ∝ |ΔG_k| / ΔO_k² on hand-made losses") {
  // k = a:     V 1.00 → 0.80, T 0.50 → 0.20: ΔG = 0.2,  O 0.5 → 0.6,  ΔO = 0.1  → 0.2/0.01    = 20
  // k = g:     V 1.00 → 1.10, T 0.50 → 0.40: ΔG = −0.1, O 0.5 → 0.7,  ΔO = 0.2  → 0.1/0.04    = 2.5
  // k = fused: V 1.00 → 0.95, T 0.50 → 0.40: ΔG = 0.05, O 0.5 → 0.55, ΔO = 0.05 → 0.05/0.0025 = 20
  // normalised: (20, 2.5, 20)/42.5 = (0.4705882, 0.0588235, 0.4705882)
  const auto w = balance::gblending_weights({1.0, 1.0, 1.0}, {0.8, 1.1, 0.95}, {0.5, 0.5, 0.5}, {0.2, 0.4, 0.4});
  CHECK(w[0] == doctest::Approx(0.47058823529411764).epsilon(1e-9));
  CHECK(w[1] == doctest::Approx(0.058823529411764705).epsilon(1e-9));
  CHECK(w[2] == doctest::Approx(0.47058823529411764).epsilon(1e-9));
}

TEST_CASE("gblending: fallbacks — no generalisation change, non-finite losses; ΔO = 0 is guarded") {
  // ΔG = 0 for every k: all weights zero → uniform.
  check_uniform(balance::gblending_weights({1, 1, 1}, {1, 1, 1}, {0.5, 0.4, 0.3}, {0.2, 0.1, 0.0}));
  // A NaN loss → uniform.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  check_uniform(balance::gblending_weights({1, nan, 1}, {0.9, 0.9, 0.9}, {0.5, 0.5, 0.5}, {0.4, 0.4, 0.4}));
  // ΔO = 0 for a (ΔG = 0.1): the guard 1e-12 gives a finite 1e11, which dominates after normalising;
  // g has ΔG = 0 → 0, fused ΔG = 0.1, ΔO = 0.1 → 10.
  const auto w = balance::gblending_weights({1, 1, 1}, {0.9, 1, 0.9}, {0.5, 0.5, 0.5}, {0.4, 0.5, 0.3});
  CHECK(std::isfinite(w[0]));
  CHECK(w[0] == doctest::Approx(1.0).epsilon(1e-9));
  CHECK(w[1] == 0);
  CHECK(w[2] == doctest::Approx(1e-10).epsilon(1e-6));
}

TEST_CASE("gblending: training on the held-out split learns; weights are uniform until the first re-estimate") {
  const auto d = test::small_sensor_data();
  auto t = test::short_run("gblending");
  train::Trainer<float> tr(t, d);
  CHECK(tr.method().holdout_fraction() == doctest::Approx(0.2));
  for (int e = 0; e < t.epochs; ++e) tr.train_epoch();
  const auto& h = tr.history();
  CHECK(h.back().loss_ce < 0.8 * h.front().loss_ce);
  CHECK(h.back().test.acc > 2.0 / 12);
  const char* names[] = {"gb_w_a", "gb_w_g", "gb_w_fused"};
  for (const auto& e : h) {
    REQUIRE(e.signals.size() == 3);
    double s = 0;
    for (std::size_t k = 0; k < 3; ++k) {
      CHECK(e.signals[k].first == names[k]);
      CHECK(e.signals[k].second >= 0);
      s += e.signals[k].second;
    }
    CHECK(s == doctest::Approx(1.0));
  }
  // Super-epoch 2: epochs 1–2 (indices 0, 1) train with 1/3 each; index 2 uses the first estimate.
  for (int e = 0; e < 2; ++e)
    for (std::size_t k = 0; k < 3; ++k) CHECK(h[static_cast<std::size_t>(e)].signals[k].second == doctest::Approx(1.0 / 3));
  bool moved = false;
  for (std::size_t k = 0; k < 3; ++k) moved = moved || std::abs(h[2].signals[k].second - 1.0 / 3) > 1e-6;
  CHECK(moved);
  for (std::size_t k = 0; k < 3; ++k) CHECK(h[3].signals[k].second == h[2].signals[k].second);  // held until index 4
  auto& gb = dynamic_cast<balance::GBlending<float>&>(tr.method());
  for (std::size_t k = 0; k < 3; ++k) CHECK(std::isfinite(gb.weights()[k]));
}

TEST_CASE("gblending: a resumed run continues bitwise identically (weights and previous losses)") {
  data::SyntheticConfig c;
  c.train = 200;
  c.test = 48;
  c.window = 12;
  const auto d = data::synthetic_sensor<float>(c);
  train::TrainConfig t;
  t.method = "gblending";
  t.epochs = 4;
  t.batch = 16;
  t.lr = 0.01;
  t.probe_epochs = 1;
  const auto p2 = (fs::temp_directory_path() / "erlmr_gblending_resume2.npz").string();
  const auto p3 = (fs::temp_directory_path() / "erlmr_gblending_resume3.npz").string();
  train::Trainer<float> straight(t, d);
  straight.train_epoch();
  straight.train_epoch();
  straight.save_checkpoint(p2);  // before the index-2 estimate: needs the saved previous losses
  straight.train_epoch();
  straight.save_checkpoint(p3);  // after it: needs the saved weights
  straight.train_epoch();
  for (const auto& pa : {std::pair{p2, 2}, std::pair{p3, 3}}) {
    const auto& path = pa.first;
    const int at = pa.second;  // CAPTURE's lambda cannot name a binding before clang 16
    CAPTURE(at);
    train::Trainer<float> resumed(t, d);
    resumed.load_checkpoint(path);
    CHECK(resumed.epoch() == at);
    while (resumed.epoch() < 4) resumed.train_epoch();
    CHECK(test::history_csv(straight) == test::history_csv(resumed));
    auto& a = dynamic_cast<balance::GBlending<float>&>(straight.method());
    auto& b = dynamic_cast<balance::GBlending<float>&>(resumed.method());
    CHECK(a.weights() == b.weights());
    fs::remove(path);
  }
}
