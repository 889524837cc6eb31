// MMPareto: the per-encoder gradient combination on hand-computed cases, a training run
// that learns, and a checkpoint round trip (the extra unimodal heads are method state).
#include <filesystem>

#include "test_util.hpp"
#include "balance/balance_test_util.hpp"
#include <erlmr/balance/mmpareto.hpp>
#include <erlmr/data/synthetic.hpp>
#include <erlmr/train/trainer.hpp>

using namespace erlmr;
namespace fs = std::filesystem;

namespace {
train::Grads<double> grads(std::initializer_list<std::vector<double>> ts) {
  train::Grads<double> g;
  for (const auto& v : ts) g.push_back(Tensor<double>::from_vector(Shape{static_cast<std::int64_t>(v.size())}, v));
  return g;
}
void check_tensor(const Tensor<double>& t, std::initializer_list<double> want) {
  REQUIRE(t.numel() == static_cast<std::int64_t>(want.size()));
  std::int64_t i = 0;
  for (double w : want) CHECK(t.data()[i++] == doctest::Approx(w).epsilon(1e-9));
}
}  // namespace

TEST_CASE("mmpareto: agreeing gradients take (1/2, 1/2); the sum's own norm is kept, times the boost") {
  // g_mm = (1, 0), g_u = (1, 1): cos = 1/√2 > 0 → (½, ½); g = 2(½g_mm + ½g_u) = (2, 1) = the plain
  // sum, so no rescaling; × 1.5 → (3, 1.5).
  const auto r = balance::mmpareto_combine(grads({{1, 0}}), grads({{1, 1}}), 1.5);
  CHECK(r.cos == doctest::Approx(0.7071067811865476));
  CHECK(r.w_mm == 0.5);
  CHECK(r.w_u == 0.5);
  REQUIRE(r.grad.size() == 1);
  check_tensor(r.grad[0], {3.0, 1.5});
}

TEST_CASE("mmpareto: conflicting gradients take the min-norm weights and are scaled up to the sum's norm") {
  // g_mm = (1, 0), g_u = (−1, 1): cos = −1/√2; v11 = 1, v12 = −1, v22 = 2 → γ = 3/5 = 0.6.
  // g = 2(0.6·(1,0) + 0.4·(−1,1)) = (0.4, 0.8), ‖g‖ = √0.8 < ‖g_mm + g_u‖ = ‖(0, 1)‖ = 1
  // → g/√0.8 = (0.4472136, 0.8944272), × 1.5 → (0.6708204, 1.3416408).
  const auto r = balance::mmpareto_combine(grads({{1, 0}}), grads({{-1, 1}}), 1.5);
  CHECK(r.cos == doctest::Approx(-0.7071067811865476));
  CHECK(r.w_mm == doctest::Approx(0.6));
  CHECK(r.w_u == doctest::Approx(0.4));
  check_tensor(r.grad[0], {0.6708203932499369, 1.3416407864998738});
}

TEST_CASE("mmpareto: the rescaling is per tensor — one tensor scaled up, one not") {
  // Two tensors: g_mm = {(1, 0), (2)}, g_u = {(−1, 1), (−1)}.
  // v11 = 5, v12 = −3, v22 = 3 → cos < 0, γ = (3 + 3)/(5 + 3 + 6) = 3/7.
  // tensor 1: g = 2(3/7·(1,0) + 4/7·(−1,1)) = (−2/7, 8/7), ‖g‖ = √68/7 ≈ 1.178 ≥ ‖(0,1)‖ = 1
  //           → not scaled, × 1.5 → (−3/7, 12/7) = (−0.4285714, 1.7142857)
  // tensor 2: g = 2(3/7·2 − 4/7·1) = 4/7 < ‖2 − 1‖ = 1 → scaled to 1, × 1.5 → 1.5
  const auto r = balance::mmpareto_combine(grads({{1, 0}, {2}}), grads({{-1, 1}, {-1}}), 1.5);
  CHECK(r.w_mm == doctest::Approx(0.42857142857142855));
  REQUIRE(r.grad.size() == 2);
  check_tensor(r.grad[0], {-0.42857142857142855, 1.7142857142857142});
  check_tensor(r.grad[1], {1.5});
  // Boost 1: the same without the factor.
  const auto r1 = balance::mmpareto_combine(grads({{1, 0}, {2}}), grads({{-1, 1}, {-1}}), 1.0);
  check_tensor(r1.grad[0], {-0.2857142857142857, 1.1428571428571428});
  check_tensor(r1.grad[1], {1.0});
}

TEST_CASE("mmpareto: a zero unimodal gradient leaves boost × g_mm") {
  // cos = 0 (not > 0) → min-norm: v12 = 0 ≥ v22 = 0 → γ = 0.001; g = 0.002·g_mm, scaled up to
  // ‖g_mm‖ → g_mm, × 1.5 → (1.5, −3).
  const auto r = balance::mmpareto_combine(grads({{1, -2}}), grads({{0, 0}}), 1.5);
  CHECK(r.cos == 0);
  CHECK(r.w_mm == doctest::Approx(0.001));
  check_tensor(r.grad[0], {1.5, -3.0});
}

TEST_CASE("mmpareto: step wiring — encoders get the combined gradient, im.* and the heads the plain sum") {
  erl::ModelConfig mc;
  mc.window = 8;
  mc.classes = 4;
  Generator g(3);
  erl::ErlmrModel<double> m(mc, g);
  balance::MethodOptions o;
  balance::MMPareto<double> mp(o, m, mc.classes);
  const auto x1 = test::rnd<double>(Shape{6, 1, 3, 8}, 11, false), x2 = test::rnd<double>(Shape{6, 1, 3, 8}, 12, false);
  const std::vector<std::int64_t> y{0, 1, 2, 3, 1, 2};
  Generator dg(5);
  nn::Context ctx{true, &dg, 0.0};  // no dropout: the reference forward below sees the same graph
  const auto st = mp.step(m, {x1, x2, y}, ctx, 0);
  REQUIRE(st.signals.size() == 4);
  // Reference: the same losses rebuilt by hand.
  auto f = m.forward(x1, x2, ctx);
  const auto h = mp.extra_parameters();
  auto l_mm = cross_entropy(f.out, y);
  auto l_a = cross_entropy(linear(f.h_a, h[0], h[1]), y), l_g = cross_entropy(linear(f.h_g, h[2], h[3]), y);
  auto total = add(add(l_mm, l_a), l_g);
  CHECK(st.loss == doctest::Approx(double(total.item())));
  CHECK(st.loss_ce == doctest::Approx(double(l_mm.item())));
  // Plain sum on im.*, the fusion layer and the extra heads.
  REQUIRE(m.im.weight.grad().defined());
  std::vector<Var<double>> plain{m.im.weight, m.im.bias};
  for (auto& p : train::head_parameters(m)) plain.push_back(p);
  for (auto& p : h) plain.push_back(p);
  const auto want = train::grads_of(total, plain, true);
  for (std::size_t i = 0; i < plain.size(); ++i) CHECK(test::max_abs_diff(plain[i].grad(), want[i]) < 1e-12);
  // Encoders: the combined gradient of (g_mm, g_u).
  for (auto [u, lu, k] : {std::tuple{train::Modality::a, l_a, 0}, std::tuple{train::Modality::g, l_g, 1}}) {
    const auto enc = train::encoder_parameters(m, u);
    const auto c = balance::mmpareto_combine(train::grads_of(l_mm, enc, true), train::grads_of(lu, enc, true), 1.5);
    CHECK(st.signals[static_cast<std::size_t>(k)].second == doctest::Approx(c.cos));
    CHECK(st.signals[static_cast<std::size_t>(k) + 2].second == doctest::Approx(c.w_mm));
    for (std::size_t i = 0; i < enc.size(); ++i) CHECK(test::max_abs_diff(enc[i].grad(), c.grad[i]) < 1e-12);
  }
}

TEST_CASE("mmpareto: training learns, with its signals, through the extra heads") {
  const auto d = test::small_sensor_data();
  auto t = test::short_run("mmpareto");
  train::Trainer<float> tr(t, d);
  CHECK(tr.method().name() == "mmpareto");
  CHECK(tr.method().extra_parameters().size() == 4);
  for (int e = 0; e < t.epochs; ++e) tr.train_epoch();
  const auto& h = tr.history();
  CHECK(h.back().loss_ce < 0.8 * h.front().loss_ce);
  CHECK(h.back().loss < 0.8 * h.front().loss);
  CHECK(h.back().test.acc > 2.0 / 12);
  REQUIRE(h.back().signals.size() == 4);
  const char* names[] = {"mmp_cos_a", "mmp_cos_g", "mmp_w_a", "mmp_w_g"};
  for (std::size_t k = 0; k < 4; ++k) {
    CHECK(h.back().signals[k].first == names[k]);
    CHECK(std::isfinite(h.back().signals[k].second));
  }
  for (std::size_t k = 2; k < 4; ++k) {  // α1 ∈ [0.001, 0.999]
    CHECK(h.back().signals[k].second >= 0.001 - 1e-12);
    CHECK(h.back().signals[k].second <= 0.999 + 1e-12);
  }
}

TEST_CASE("mmpareto: a resumed run continues bitwise identically (extra heads in the checkpoint)") {
  data::SyntheticConfig c;
  c.train = 160;
  c.test = 48;
  c.window = 12;
  const auto d = data::synthetic_sensor<float>(c);
  train::TrainConfig t;
  t.method = "mmpareto";
  t.epochs = 2;
  t.batch = 16;
  t.lr = 0.01;
  t.probe_epochs = 1;
  const auto path = (fs::temp_directory_path() / "erlmr_mmpareto_resume.npz").string();
  train::Trainer<float> straight(t, d);
  straight.train_epoch();
  straight.save_checkpoint(path);
  straight.train_epoch();
  train::Trainer<float> resumed(t, d);
  // A fresh trainer's heads equal the saved ones only by seeding; move them first so that the
  // load is what makes them equal.
  for (auto& p : resumed.method().extra_parameters()) p.value().vec() += 1.0f;
  resumed.load_checkpoint(path);
  CHECK(resumed.epoch() == 1);
  resumed.train_epoch();
  CHECK(test::history_csv(straight) == test::history_csv(resumed));
  auto a = straight.method().extra_parameters(), b = resumed.method().extra_parameters();
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(test::bitwise_equal(a[i].value(), b[i].value()));
  auto sa = straight.model().state(), sb = resumed.model().state();
  for (std::size_t i = 0; i < sa.params.size(); ++i) CHECK(test::bitwise_equal(sa.params[i].var.value(), sb.params[i].var.value()));
  fs::remove(path);
}
