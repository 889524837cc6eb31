// PMR: prototypes, prototype logits, ρ and the weak modality, gradient, training run, checkpoint.
#include "test_util.hpp"
#include "balance/balance_test_util.hpp"

#include <erlmr/balance/pmr.hpp>
#include <erlmr/data/synthetic.hpp>
#include <erlmr/train/trainer.hpp>
#include <filesystem>

using namespace erlmr;
namespace fs = std::filesystem;

namespace {
balance::ClassSums empty_sums(std::int64_t K, std::int64_t D) {
  return {std::vector<double>(static_cast<std::size_t>(K * D), 0.0), std::vector<std::int64_t>(static_cast<std::size_t>(K), 0)};
}
}  // namespace

TEST_CASE("pmr: prototypes of a hand-made feature set, EMA, and absent classes") {
  const std::int64_t K = 3, D = 2;
  auto c = Tensor<double>::zeros(Shape{K, D});
  std::vector<std::uint8_t> seen(K, 0);
  // Epoch 1: class 0 has (1, 2), (3, 4) → (2, 3); class 1 has (5, 6); class 2 absent → stays 0.
  auto acc = empty_sums(K, D);
  balance::accumulate_class_sums(acc, Tensor<double>::from_vector(Shape{2, 2}, {1, 2, 3, 4}), {0, 0});
  balance::accumulate_class_sums(acc, Tensor<double>::from_vector(Shape{1, 2}, {5, 6}), {1});
  balance::update_prototypes(c, seen, acc, 0.5);  // first estimates are taken as they are
  const std::vector<double> e1{2, 3, 5, 6, 0, 0};
  CHECK(c.to_vector() == e1);
  CHECK(seen == std::vector<std::uint8_t>{1, 1, 0});
  // Epoch 2 with m = 0.5: class 0 mean (0, 0) → 0.5·(2, 3) = (1, 1.5); class 1 absent keeps (5, 6);
  // class 2 seen for the first time, (4, −2), taken as is.
  acc = empty_sums(K, D);
  balance::accumulate_class_sums(acc, Tensor<double>::from_vector(Shape{2, 2}, {0, 0, 4, -2}), {0, 2});
  balance::update_prototypes(c, seen, acc, 0.5);
  const std::vector<double> e2{1, 1.5, 5, 6, 4, -2};
  CHECK(c.to_vector() == e2);
  // m = 0 recomputes.
  acc = empty_sums(K, D);
  balance::accumulate_class_sums(acc, Tensor<double>::from_vector(Shape{1, 2}, {7, 8}), {0});
  balance::update_prototypes(c, seen, acc, 0.0);
  CHECK(c.at({0, 0}) == 7.0);
  CHECK(c.at({0, 1}) == 8.0);
}

TEST_CASE("pmr: prototype logits, ρ and the weak modality on tiny numbers") {
  // h = (0, 0), (3, 4); prototypes (0, 0), (3, 0): distances [[0, 3], [5, 4]].
  Var<double> h(Tensor<double>::from_vector(Shape{2, 2}, {0, 0, 3, 4}));
  const auto c = Tensor<double>::from_vector(Shape{2, 2}, {0, 0, 3, 0});
  const auto p = balance::prototype_logits(h, c).value();
  CHECK(p.at({0, 0}) == doctest::Approx(0.0).epsilon(2e-6));
  CHECK(p.at({0, 1}) == doctest::Approx(-3.0).epsilon(1e-9));
  CHECK(p.at({1, 0}) == doctest::Approx(-5.0).epsilon(1e-9));
  CHECK(p.at({1, 1}) == doctest::Approx(-4.0).epsilon(1e-9));
  // y = (0, 1): softmax(p_a)_y = 1/(1 + e^−3) = 0.952574, 1/(1 + e^−1) = 0.731059, Σ = 1.683633;
  // p_g all equal: Σ softmax(p_g)_y = 0.5 + 0.5 = 1.  ρ = 1.683633 > 1 → g is weak.
  const std::vector<std::int64_t> y{0, 1};
  const auto pg = Tensor<double>::zeros(Shape{2, 2});
  const double rho = balance::pmr_rho(p, pg, y);
  CHECK(rho == doctest::Approx(1.6836327054524383).epsilon(1e-6));
  CHECK(balance::pmr_weak(rho) == train::Modality::g);
  // Swapped, ρ = 1/1.683633 = 0.593954 < 1 → a is weak; ρ = 1 exactly → a.
  const double rho2 = balance::pmr_rho(pg, p, y);
  CHECK(rho2 == doctest::Approx(0.59395377433659).epsilon(1e-6));
  CHECK(balance::pmr_weak(rho2) == train::Modality::a);
  CHECK(balance::pmr_weak(1.0) == train::Modality::a);
}

TEST_CASE("pmr: the prototype-distance logits pass GradCheck w.r.t. h (away from zero distance)") {
  auto h = test::rnd<double>(Shape{3, 4}, 21);
  const auto c = test::rnd<double>(Shape{5, 4}, 22, false).value();
  test::check_grad([&] { return balance::prototype_logits(h, c); }, h);
}

TEST_CASE("pmr: the step adds α·CE of the weak modality's prototype logits; begin_epoch leaves batch norm alone") {
  data::SyntheticConfig sc;
  sc.train = 48;
  sc.test = 16;
  sc.window = 24;
  const auto d = data::synthetic_sensor<double>(sc);
  erl::ModelConfig mc;
  mc.window = 24;
  Generator g(5);
  erl::ErlmrModel<double> m(mc, g);
  balance::MethodOptions o;
  o.pmr_alpha = 0.7;
  balance::Pmr<double> meth(o, m, 12);
  std::vector<train::Batch<double>> batches;
  for (std::int64_t b0 = 0; b0 < 48; b0 += 16) {
    Shape s = d.train.x1.shape();
    const std::int64_t per = s.numel() / s[0];
    s[0] = 16;
    Tensor<double> x1(s), x2(s);
    std::copy_n(d.train.x1.data() + b0 * per, 16 * per, x1.data());
    std::copy_n(d.train.x2.data() + b0 * per, 16 * per, x2.data());
    batches.push_back({Var<double>(x1), Var<double>(x2), std::vector<std::int64_t>(d.train.y.begin() + b0, d.train.y.begin() + b0 + 16)});
  }
  auto st0 = m.state();
  std::vector<Tensor<double>> bn0;
  for (auto& b : st0.buffers) bn0.push_back(b.tensor.clone());
  const auto nbt0 = st0.counters[0].tensor.item();
  meth.begin_epoch(m, train::EpochView<double>{0, 1, &batches, nullptr});
  auto st1 = m.state();
  for (std::size_t i = 0; i < bn0.size(); ++i) CHECK(test::bitwise_equal(bn0[i], st1.buffers[i].tensor));
  CHECK(st1.counters[0].tensor.item() == nbt0);
  // Prototype of class y[0] of modality a = mean of the eval-mode h_a over its samples.
  {
    NoGradGuard ng;
    nn::Context ectx{false, nullptr, 1.0};
    const std::int64_t D = mc.fused_dim(), k = batches[0].y[0];
    std::vector<double> s(static_cast<std::size_t>(D), 0.0);
    int n = 0;
    for (auto& b : batches) {
      auto f = m.forward(b.x1, b.x2, ectx);
      for (std::size_t i = 0; i < b.y.size(); ++i)
        if (b.y[i] == k) {
          ++n;
          for (std::int64_t j = 0; j < D; ++j) s[static_cast<std::size_t>(j)] += f.h_a.value().data()[std::int64_t(i) * D + j];
        }
    }
    for (std::int64_t j = 0; j < D; j += 37)
      CHECK(meth.prototypes(train::Modality::a).at({k, j}) == doctest::Approx(s[static_cast<std::size_t>(j)] / n).epsilon(1e-12));
  }
  // The step's gradient equals that of CE(f) + α·CE(p_weak) (dropout off so a second pass is identical).
  Generator dg(9);
  nn::Context ctx{true, &dg, 0.0};
  const auto params = m.parameters();
  for (auto& p : params) p.zero_grad();
  const auto st = meth.step(m, batches[0], ctx, 0);
  REQUIRE(st.signals.size() == 2);
  CHECK(st.signals[0].first == "pmr_rho");
  CHECK(st.signals[1].first == "pmr_weak_is_g");
  const bool g_weak = st.signals[1].second == 1.0;
  CHECK(g_weak == (st.signals[0].second > 1));
  auto f = m.forward(batches[0].x1, batches[0].x2, ctx);
  const auto pw = g_weak ? balance::prototype_logits(f.h_g, meth.prototypes(train::Modality::g))
                         : balance::prototype_logits(f.h_a, meth.prototypes(train::Modality::a));
  auto ref = grad(add(cross_entropy(f.out, batches[0].y), scale(cross_entropy(pw, batches[0].y), 0.7)), params);
  double worst = 0;
  for (std::size_t i = 0; i < params.size(); ++i) worst = std::max(worst, test::max_abs_diff(params[i].grad(), ref[i]));
  CHECK(worst < 1e-10);
  CHECK(st.loss > st.loss_ce);
}

TEST_CASE("pmr: a short training run learns, and a checkpoint round trip continues identically") {
  const auto d = test::small_sensor_data();
  auto t = test::short_run("pmr");
  t.options.pmr_momentum = 0.5;  // so the saved prototypes matter for the next epoch
  train::Trainer<float> tr(t, d);
  const auto path = (fs::temp_directory_path() / "erlmr_test_pmr.npz").string();
  for (int e = 0; e < t.epochs; ++e) {
    tr.train_epoch();
    if (e == 3) tr.save_checkpoint(path);
  }
  const auto& h = tr.history();
  CHECK(h.back().loss_ce < 0.8 * h.front().loss_ce);
  CHECK(h.back().test.acc > 2.0 / 12);
  REQUIRE(h.back().signals.size() == 2);
  CHECK(h.back().signals[0].first == "pmr_rho");
  CHECK(h.back().signals[1].first == "pmr_weak_is_g");
  MESSAGE("pmr: CE " << h.front().loss_ce << " -> " << h.back().loss_ce << ", test acc " << h.back().test.acc << " (a "
                     << h.back().test.acc_a << ", g " << h.back().test.acc_g << "), rho " << h.back().signals[0].second
                     << ", g weak " << h.back().signals[1].second);

  train::Trainer<float> resumed(t, d);
  resumed.load_checkpoint(path);
  CHECK(resumed.epoch() == 4);
  auto& pm = dynamic_cast<balance::Pmr<float>&>(resumed.method());
  CHECK(pm.prototypes(train::Modality::a).to_vector() != std::vector<float>(pm.prototypes(train::Modality::a).numel(), 0.0f));
  resumed.train_epoch();
  CHECK(test::history_csv(tr) == test::history_csv(resumed));
  auto& p0 = dynamic_cast<balance::Pmr<float>&>(tr.method());
  CHECK(test::bitwise_equal(p0.prototypes(train::Modality::a), pm.prototypes(train::Modality::a)));
  CHECK(test::bitwise_equal(p0.prototypes(train::Modality::g), pm.prototypes(train::Modality::g)));
  fs::remove(path);
}
