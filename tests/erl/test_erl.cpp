// The ERL-MR layer: min-norm weight, Euler block = real-pair form, fusions,
// whole-model finite differences, fused vs faithful, and the `erlmr step` command.
#include "test_util.hpp"

#include <erlmr/erl/step.hpp>
#include <erlmr/train/checkpoint.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace erlmr;
using namespace erlmr::erl;

namespace {
ModelConfig tiny(FusionKind f = FusionKind::concat, std::int64_t T = 5, std::int64_t K = 3) {
  ModelConfig c;
  c.window = T;
  c.classes = K;
  c.fusion = f;
  return c;
}
Var<double> window_batch(std::int64_t B, std::int64_t T, std::uint64_t seed) {
  Generator g(seed);
  return Var<double>(Tensor<double>::randn(Shape{B, 1, 3, T}, g));
}
}  // namespace

TEST_CASE("min-norm weight: interior solution and both clipped branches") {
  CHECK(min_norm_weight(1.0, 2.0, 5.0) == 0.999);  // v12 >= v11
  CHECK(min_norm_weight(4.0, 2.0, 1.0) == 0.001);  // v12 >= v22 (and < v11)
  CHECK(min_norm_weight(2.0, 0.5, 1.0) == doctest::Approx(0.25));  // (1 − 0.5)/(2 + 1 − 1)
  // From raw gradients: g1 = (3, 0) with L1 = 3 and g2 = (0, 2) with L2 = 0.5 normalise to
  // (1/3, 0) and (0, 2): v11 = 1/9, v22 = 4, v12 = 0 ⇒ γ = 4/(4 + 1/9) = 36/37.
  std::vector<Tensor<double>> g1{Tensor<double>::from_vector(Shape{2}, {3, 0})};
  std::vector<Tensor<double>> g2{Tensor<double>::from_vector(Shape{2}, {0, 2})};
  CHECK(min_norm_weight(g1, 3.0, g2, 0.5) == doctest::Approx(36.0 / 37.0));
  // The clipped branch from gradients: parallel gradients ⇒ v12 >= min(v11, v22).
  std::vector<Tensor<double>> g3{Tensor<double>::from_vector(Shape{2}, {1, 1})};
  std::vector<Tensor<double>> g4{Tensor<double>::from_vector(Shape{2}, {2, 2})};
  const double gam = min_norm_weight(g3, 1.0, g4, 4.0);  // ĝ2 = ĝ1/... both same direction
  CHECK((gam == 0.999 || gam == 0.001));
}

TEST_CASE("min-norm weight: W's factored gradients give the dense gradients' Gram entries and gamma") {
  // The step takes g1, g2 from grad_factored: the shared projection's gradient stays as
  // (adjoint, input) factors. Its Gram entries must be those of the formed gradients.
  for (auto f : {FusionKind::concat, FusionKind::film}) {
    Generator g(3);
    auto cfg = tiny(f);
    ErlmrModel<double> m(cfg, g);
    auto x1 = window_batch(4, cfg.window, 4), x2 = window_batch(4, cfg.window, 5);
    std::vector<std::int64_t> y{0, 1, 2, 1};
    nn::Context ctx{true, nullptr, 0.0};
    auto fw = m.forward(x1, x2, ctx);
    auto l1 = cross_entropy(fw.out, y);
    auto l2 = scale(phase_cosine_loss(fw.theta_a, fw.theta_g), 2.0);
    const auto theta = m.shared_parameters();
    auto d1 = grad(l1, theta, true), d2 = grad(l2, theta, true);
    auto f1 = grad_factored(l1, theta, true), f2 = grad_factored(l2, theta, true);
    std::size_t factored = 0;
    for (std::size_t i = 0; i < theta.size(); ++i) {
      factored += f1[i].factored() ? 1 : 0;
      CHECK(test::max_abs_diff(to_dense(f1[i]), d1[i]) < 1e-12);
      CHECK(test::max_abs_diff(to_dense(f2[i]), d2[i]) < 1e-12);
    }
    CHECK(factored == 1);  // W
    const GradGram gd = gram(d1, d2), gf = gram(f1, f2);
    CHECK(gf.v11 == doctest::Approx(gd.v11).epsilon(1e-12));
    CHECK(gf.v12 == doctest::Approx(gd.v12).epsilon(1e-12));
    CHECK(gf.v22 == doctest::Approx(gd.v22).epsilon(1e-12));
    CHECK(min_norm_weight(f1, l1.item(), f2, l2.item()) == doctest::Approx(min_norm_weight(d1, l1.item(), d2, l2.item())).epsilon(1e-12));
  }
}

TEST_CASE("Euler block: the complex formulation equals the released real-pair form") {
  Generator g(1);
  auto cfg = tiny();
  ErlmrModel<double> m(cfg, g);
  m.mu1.value().copy_(Tensor<double>::uniform(Shape{1, 16, 1}, g, 0.5, 1.5));
  auto A = Var<double>(Tensor<double>::randn(Shape{4, 16, cfg.positions()}, g));
  nn::Context ctx{true, nullptr, 0.0};
  auto e = m.euler_block(A, m.mu1, ctx);
  // Real pair: r = μ cos A, p = μ sin A, r' = ReLU(W r + b), p' = ReLU(W p + b).
  auto r = reshape(mul(m.mu1, cos(A)), {4, cfg.feature_dim()});
  auto p = reshape(mul(m.mu1, sin(A)), {4, cfg.feature_dim()});
  auto r2 = relu(linear(r, m.im.weight, m.im.bias)), p2 = relu(linear(p, m.im.weight, m.im.bias));
  auto th = atan2(p2, r2);
  auto h = concat(std::vector<Var<double>>{r2, p2}, 1);
  CHECK(test::max_abs_diff(e.theta.value(), th.value()) < 1e-12);
  CHECK(test::max_abs_diff(e.h.value(), h.value()) < 1e-12);
  // And the gradients agree.
  auto ga = grad(sum(mul(e.theta, e.theta)), std::vector<Var<double>>{m.im.weight, m.mu1});
  auto gb = grad(sum(mul(th, th)), std::vector<Var<double>>{m.im.weight, m.mu1});
  CHECK(test::max_abs_diff(ga[0], gb[0]) < 1e-10);
  CHECK(test::max_abs_diff(ga[1], gb[1]) < 1e-10);
}

TEST_CASE("fusions: shapes, the unimodal logits, and parameter names") {
  for (auto f : {FusionKind::concat, FusionKind::sum, FusionKind::film, FusionKind::gated}) {
    CAPTURE(std::string(fusion_name(f)));
    Generator g(2);
    auto cfg = tiny(f);
    ErlmrModel<double> m(cfg, g);
    nn::Context ctx{true, nullptr, 0.0};
    auto out = m.forward(window_batch(4, cfg.window, 3), window_batch(4, cfg.window, 4), ctx);
    CHECK(out.out.shape() == Shape{4, 3});
    CHECK(out.out_a.shape() == Shape{4, 3});
    CHECK(out.theta_a.shape() == Shape{4, cfg.projection_dim()});
    CHECK(out.h_a.shape() == Shape{4, cfg.fused_dim()});
    if (f == FusionKind::concat) {  // U[h_a; h_g] + c = (U_a h_a + c/2) + (U_g h_g + c/2)
      Tensor<double> s(out.out.shape());
      s.vec() = out.out_a.value().vec() + out.out_g.value().vec();
      CHECK(test::max_abs_diff(s, out.out.value()) < 1e-12);
    }
    std::set<std::string> names;
    for (auto& p : m.state().params) names.insert(p.name);
    CHECK(names.count("encoder.acc_cnn_layers.features.12.weight"));
    CHECK(names.count("encoder.gyr_cnn_layers.features.13.bias"));
    CHECK(names.count("im.weight"));
    CHECK(names.count(f == FusionKind::sum ? "fusion.fc_y.weight" : "fusion.fc_out.weight"));
    if (f == FusionKind::film) CHECK(names.count("fusion.fc_x.weight"));
  }
}

TEST_CASE("whole model: finite-difference check of the ERL-MR objective (small T, every fusion)") {
  for (auto f : {FusionKind::concat, FusionKind::sum, FusionKind::film, FusionKind::gated}) {
    CAPTURE(std::string(fusion_name(f)));
    Generator g(5);
    auto cfg = tiny(f, 4, 3);
    ErlmrModel<double> m(cfg, g);
    auto x1 = window_batch(4, cfg.window, 6), x2 = window_batch(4, cfg.window, 7);
    std::vector<std::int64_t> y{0, 2, 1, 2};
    nn::Context ctx{true, nullptr, 0.0};
    auto r = erlmr_step(m, x1, x2, y, ctx);  // γ of this point
    const double gam = r.gamma;
    auto loss = [&] {
      auto o = m.forward(x1, x2, ctx);
      auto lce = cross_entropy(o.out, y);
      auto lmmc = add(phase_cosine_loss(o.theta_a, o.theta_g), add(cross_entropy(o.out_a, y), cross_entropy(o.out_g, y)));
      return add(scale(lce, gam), scale(lmmc, 1 - gam));
    };
    // A representative subset of parameters from every part of the model.
    auto st = m.state();
    std::map<std::string, Var<double>> P;
    for (auto& p : st.params) P[p.name] = p.var;
    GradCheck gc;
    for (const char* n : {"mu1", "mu2", "im.bias", "encoder.acc_cnn_layers.features.0.weight", "encoder.gyr_cnn_layers.features.13.weight",
                          "encoder.acc_cnn_layers.features.12.bias", "encoder.gyr_cnn_layers.features.9.bias"})
      gc.input(P.at(n));
    gc.input(P.count("fusion.fc_out.bias") ? P.at("fusion.fc_out.bias") : P.at("fusion.fc_y.bias"));
    if (f == FusionKind::film) gc.input(P.at("fusion.fc_x.bias"));
    auto res = gc.run([&] { return loss(); }, 1e-6, 1e-5, 1e-8);
    INFO(res.message);
    CHECK(res.ok);
    // The step's accumulated gradient equals the gradient of this objective.
    for (auto& p : st.params) p.var.zero_grad();
    erlmr_step(m, x1, x2, y, ctx);
    auto want = grad(loss(), std::vector<Var<double>>{P.at("im.weight"), P.at("mu2")});
    CHECK(test::max_abs_diff(P.at("im.weight").grad(), want[0]) < 1e-12);
    CHECK(test::max_abs_diff(P.at("mu2").grad(), want[1]) < 1e-12);
  }
}

TEST_CASE("faithful mode with dropout off gives the fused gradients; batch-norm sees three passes") {
  Generator g1(8), g2(8);
  auto cfg = tiny();
  ErlmrModel<double> a(cfg, g1), b(cfg, g2);
  auto x1 = window_batch(6, cfg.window, 9), x2 = window_batch(6, cfg.window, 10);
  std::vector<std::int64_t> y{0, 1, 2, 0, 1, 2};
  nn::Context ctx{true, nullptr, 0.0};
  auto ra = erlmr_step(a, x1, x2, y, ctx, StepMode::fused);
  auto rb = erlmr_step(b, x1, x2, y, ctx, StepMode::faithful);
  CHECK(ra.loss == doctest::Approx(rb.loss).epsilon(1e-13));
  CHECK(ra.gamma == doctest::Approx(rb.gamma).epsilon(1e-12));
  auto sa = a.state(), sb = b.state();
  for (std::size_t i = 0; i < sa.params.size(); ++i) {
    CAPTURE(sa.params[i].name);
    CHECK(test::max_abs_diff(sa.params[i].var.grad(), sb.params[i].var.grad()) < 1e-12);
  }
  CHECK(sa.counters[0].tensor[0] == 1);
  CHECK(sb.counters[0].tensor[0] == 3);
}

TEST_CASE("fused step: the one-pass gradients equal the three-pass formula's (g1, g2, then backward of L)") {
  // erlmr_step's fused mode walks the tape once for L_CE, 2·L_ph and L_uni and combines them
  // with γ; here the same step as three passes on an identical model, with dropout on (the
  // same masks: same Generator seed) and batch-norm statistics updated once in each.
  Generator g1(8), g2(8);
  auto cfg = tiny(FusionKind::film);
  cfg.dropout = 0.3;
  ErlmrModel<double> a(cfg, g1), b(cfg, g2);
  auto x1 = window_batch(6, cfg.window, 9), x2 = window_batch(6, cfg.window, 10);
  std::vector<std::int64_t> y{0, 1, 2, 0, 1, 2};
  Generator da(5), db(5);
  nn::Context ca{true, &da, 1.0}, cb{true, &db, 1.0};
  auto ra = erlmr_step(a, x1, x2, y, ca, StepMode::fused);
  auto f = b.forward(x1, x2, cb);
  auto l_ce = cross_entropy(f.out, y);
  auto l_ph = phase_cosine_loss(f.theta_a, f.theta_g);
  auto l_uni = add(cross_entropy(f.out_a, y), cross_entropy(f.out_g, y));
  auto l_ph2 = scale(l_ph, 2.0);
  auto q1 = grad_factored(l_ce, b.shared_parameters(), true);
  auto q2 = grad_factored(l_ph2, b.shared_parameters(), true);
  const double gamma = min_norm_weight(q1, l_ce.item(), q2, l_ph2.item());
  backward(add(scale(l_ce, gamma), scale(add(l_ph, l_uni), 1 - gamma)));
  CHECK(ra.gamma == doctest::Approx(gamma).epsilon(1e-13));
  CHECK(da.offset() == db.offset());
  auto sa = a.state(), sb = b.state();
  for (std::size_t i = 0; i < sa.params.size(); ++i) {
    CAPTURE(sa.params[i].name);
    REQUIRE(sa.params[i].var.grad().defined());
    CHECK(test::max_abs_diff(sa.params[i].var.grad(), sb.params[i].var.grad()) < 1e-12);
  }
  for (std::size_t i = 0; i < sa.buffers.size(); ++i) CHECK(test::bitwise_equal(sa.buffers[i].tensor, sb.buffers[i].tensor));
}

TEST_CASE("faithful mode with dropout draws fresh masks per pass") {
  Generator g(8);
  auto cfg = tiny();
  ErlmrModel<double> m(cfg, g);
  Generator drop(3);
  nn::Context ctx{true, &drop, 1.0};
  std::vector<std::int64_t> y{0, 1, 2, 0};
  erlmr_step(m, window_batch(4, cfg.window, 1), window_batch(4, cfg.window, 2), y, ctx, StepMode::faithful);
  const auto after_faithful = drop.offset();
  Generator drop2(3);
  nn::Context ctx2{true, &drop2, 1.0};
  erlmr_step(m, window_batch(4, cfg.window, 1), window_batch(4, cfg.window, 2), y, ctx2, StepMode::fused);
  CHECK(after_faithful == 3 * drop2.offset());
}

// The order of a call's arguments is unspecified (GCC evaluates right to left, clang left to
// right): the encoders, which draw dropout masks, must run in sequence, or the masks depend on the
// compiler. The order is pinned to the gyroscope encoder first (what every GCC build has used).
TEST_CASE("forward draws its dropout masks in a fixed order: gyroscope encoder, accelerometer encoder, Euler block") {
  Generator g(8);
  auto cfg = tiny();
  ErlmrModel<double> m(cfg, g);
  const auto x1 = window_batch(4, cfg.window, 1), x2 = window_batch(4, cfg.window, 2);
  Generator d(3);
  nn::Context ctx{true, &d, 1.0};
  const auto f = m.forward(x1, x2, ctx);
  auto by_hand = [&](bool gyro_first) {
    Generator dh(3);
    nn::Context c{true, &dh, 1.0};
    Var<double> ha, hg;
    if (gyro_first) {
      hg = m.enc_g->forward(x2, c);
      ha = m.enc_a->forward(x1, c);
    } else {
      ha = m.enc_a->forward(x1, c);
      hg = m.enc_g->forward(x2, c);
    }
    auto e = m.euler_pair(ha, hg, c);
    CHECK(dh.offset() == d.offset());
    return e;
  };
  const auto e = by_hand(true);
  CHECK(test::bitwise_equal(f.theta_a.value(), e.first.theta.value()));
  CHECK(test::bitwise_equal(f.theta_g.value(), e.second.theta.value()));
  CHECK(test::bitwise_equal(f.h_a.value(), e.first.h.value()));
  CHECK(test::bitwise_equal(f.h_g.value(), e.second.h.value()));
  // The order matters (the test would notice a swap): the other order gives other masks.
  const auto swapped = by_hand(false);
  CHECK_FALSE(test::bitwise_equal(f.h_a.value(), swapped.first.h.value()));
}

TEST_CASE("checkpoint: state round trip through .npz, strict loading errors name the key") {
  Generator g(1), h(2);
  auto cfg = tiny();
  ErlmrModel<double> a(cfg, g), b(cfg, h);
  auto sa = a.state();
  data::NpzMap m;
  train::add_state(m, sa);
  const std::string path = (std::filesystem::temp_directory_path() / "erlmr_test_ckpt.npz").string();
  data::write_npz(path, m);
  auto sb = b.state();
  train::load_state(sb, data::read_npz(path), path);
  for (std::size_t i = 0; i < sa.params.size(); ++i) CHECK(test::bitwise_equal(sa.params[i].var.value(), sb.params[i].var.value()));
  auto bad = m;
  bad.erase("im.bias");
  CHECK_THROWS_WITH_AS(train::load_state(sb, bad, "x.npz"), "x.npz: missing key 'im.bias'", std::runtime_error);
  bad = m;
  bad["im.bias"] = data::NpyArray::make<double>({3}, {1, 2, 3});
  CHECK_THROWS_WITH_AS(train::load_state(sb, bad, "x.npz"), "x.npz: key 'im.bias': shape (3,) does not match the model's (24,)",
                       std::runtime_error);
  bad = m;
  bad["fusion.fc_x.weight"] = m.at("im.bias");
  CHECK_THROWS_AS(train::load_state(sb, bad, "x.npz"), std::runtime_error);
  std::filesystem::remove(path);
}

TEST_CASE("model.to<D>() copies every parameter, buffer and counter; copy_state checks names and shapes") {
  Generator g(3);
  auto cfg = tiny();
  ErlmrModel<double> a(cfg, g);
  a.im.bias.mutable_grad();  // untouched by the move
  {
    nn::Context ctx{true, nullptr, 0.0};  // one training pass moves the batch-norm statistics and counters
    Var<double> x1(Tensor<double>::randn(Shape{4, 1, 3, cfg.window}, g)), x2(Tensor<double>::randn(Shape{4, 1, 3, cfg.window}, g));
    a.forward(x1, x2, ctx);
  }
  auto b = a.to<CpuDevice>();
  auto sa = a.state(), sb = b->state();
  REQUIRE(sa.params.size() == sb.params.size());
  for (std::size_t i = 0; i < sa.params.size(); ++i) {
    CHECK(sa.params[i].name == sb.params[i].name);
    CHECK(test::bitwise_equal(sa.params[i].var.value(), sb.params[i].var.value()));
    CHECK_FALSE(sa.params[i].var.value().shares_storage(sb.params[i].var.value()));
    CHECK(sb.params[i].var.requires_grad());
  }
  for (std::size_t i = 0; i < sa.buffers.size(); ++i) CHECK(test::bitwise_equal(sa.buffers[i].tensor, sb.buffers[i].tensor));
  for (std::size_t i = 0; i < sa.counters.size(); ++i) CHECK(sa.counters[i].tensor.item() == sb.counters[i].tensor.item());
  // Same outputs in evaluation mode.
  nn::Context ev{false, nullptr, 1.0};
  Var<double> x1(Tensor<double>::randn(Shape{2, 1, 3, cfg.window}, g)), x2(Tensor<double>::randn(Shape{2, 1, 3, cfg.window}, g));
  CHECK(test::bitwise_equal(a.forward(x1, x2, ev).out.value(), b->forward(x1, x2, ev).out.value()));
  // A model of another configuration is refused, naming what differs.
  auto other_cfg = cfg;
  other_cfg.fusion = FusionKind::sum;
  ErlmrModel<double> c(other_cfg, g);
  auto sc = c.state();
  CHECK_THROWS_WITH_AS(nn::copy_state(sa, sc), doctest::Contains("copy_state"), std::invalid_argument);
}

#ifdef ERLMR_CLI_PATH
namespace {
// The command line's path, which must exist: the build builds it with the tests, but does not
// make this program wait for it (tests/CMakeLists.txt), so a build of this program alone
// fails here, by name.
std::string cli_path() {
  INFO("the erlmr command line (" ERLMR_CLI_PATH ") is missing: build the erlmr_cli target");
  REQUIRE(std::filesystem::exists(ERLMR_CLI_PATH));
  return ERLMR_CLI_PATH;
}
std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
int run_cli(const std::string& args) { return std::system((cli_path() + " " + args + " > /dev/null 2>&1").c_str()); }
const char* kTiny = " --data synthetic --window 12 --train-size 64 --test-size 32 --epochs 2 --probe-epochs 1 --lr 0.01";
}  // namespace

TEST_CASE("erlmr step reproduces both fixtures to 1e-8 through the command line") {
  for (std::string fusion : {"concat", "sum"}) {
    const std::string fx = std::string(ERLMR_FIXTURE_DIR) + "/erlmr-step-" + fusion + "-t20-b8.npz";
    REQUIRE(std::filesystem::exists(fx));
    const std::string out = (std::filesystem::temp_directory_path() / ("erlmr_step_" + fusion + ".npz")).string();
    const std::string cmd = cli_path() + " step --fixture " + fx + " --fusion " + fusion + " --dtype f64 --out " + out + " > /dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
    auto got = data::read_npz(out), want = data::read_npz(fx);
    int compared = 0;
    for (const auto& kv : got) {
      const std::string& k = kv.first;  // CAPTURE's lambda cannot name a binding before clang 16
      const auto& v = kv.second;
      std::string wk = k.rfind("value/", 0) == 0 ? "expect/" + k.substr(6) : k;
      REQUIRE(want.count(wk));
      auto a = v.as<double>(), b = want.at(wk).as<double>();
      REQUIRE(a.size() == b.size());
      double num = 0, den = 0;
      for (std::size_t i = 0; i < a.size(); ++i) {
        num = std::max(num, std::abs(a[i] - b[i]));
        den = std::max(den, std::abs(b[i]));
      }
      CAPTURE(k);
      CHECK(num / std::max(den, 1e-6) < 1e-8);
      ++compared;
    }
    CHECK(compared == static_cast<int>(got.size()));
    CHECK(got.size() > 60);
    std::filesystem::remove(out);
  }
}

TEST_CASE("erlmr train: same seed gives byte-identical metrics.csv, with 1 and 2 threads; resume too") {
  namespace fs = std::filesystem;
  const auto dir = fs::temp_directory_path() / "erlmr_cli_det";
  fs::remove_all(dir);
  REQUIRE(run_cli("train --method erlmr --threads 1 --out " + (dir / "t1").string() + kTiny) == 0);
  REQUIRE(run_cli("train --method erlmr --threads 2 --out " + (dir / "t2").string() + kTiny) == 0);
  REQUIRE(run_cli("train --method erlmr --threads 2 --out " + (dir / "t3").string() + kTiny) == 0);
  const auto a = slurp(dir / "t1" / "metrics.csv");
  CHECK(a.size() > 100);
  CHECK(a == slurp(dir / "t2" / "metrics.csv"));
  CHECK(a == slurp(dir / "t3" / "metrics.csv"));
  // One epoch, then resume to two: the same file.
  std::string one = std::string(kTiny);
  one.replace(one.find("--epochs 2"), 10, "--epochs 1");
  REQUIRE(run_cli("train --method erlmr --out " + (dir / "r").string() + one) == 0);
  REQUIRE(run_cli("train --method erlmr --resume auto --out " + (dir / "r").string() + kTiny) == 0);
  CHECK(a == slurp(dir / "r" / "metrics.csv"));
  // eval on the checkpoint runs and reports; the checkpoint records method and fusion
  CHECK(run_cli("eval --data synthetic --window 12 --train-size 64 --test-size 32 --checkpoint " + (dir / "t1" / "checkpoint.npz").string()) == 0);
  REQUIRE(run_cli("train --method pmr --fusion sum --out " + (dir / "s").string() + one) == 0);
  CHECK(run_cli("eval --data synthetic --window 12 --train-size 64 --test-size 32 --checkpoint " + (dir / "s" / "checkpoint.npz").string()) == 0);
  // A model-only file of another fusion is refused with a message (strict loading), not a crash.
  CHECK(run_cli("eval --data synthetic --window 12 --train-size 64 --test-size 32 --checkpoint " + (dir / "s" / "model.npz").string()) == 256);
  // Bad input is an error with a message, not a crash.
  CHECK(run_cli("train --data " + (dir / "missing").string() + " --epochs 1 --out " + (dir / "x").string()) == 256);
  // An unknown device, or --device cuda where there is no CUDA backend or GPU, is an error too.
  CHECK(run_cli("train --device tpu --out " + (dir / "x").string() + one) == 256);
#if !defined(ERLMR_HAS_CUDA)
  CHECK(run_cli("train --device cuda --out " + (dir / "x").string() + one) == 256);
#endif
  fs::remove_all(dir);
}

TEST_CASE("erlmr train/eval on a general NPY directory: image + vector modalities, architecture recorded") {
  namespace fs = std::filesystem;
  const auto dir = fs::temp_directory_path() / "erlmr_cli_general";
  fs::remove_all(dir);
  fs::create_directories(dir / "d");
  for (auto [split, n] : {std::pair<std::string, std::int64_t>{"train", 48}, {"test", 24}}) {
    Generator g(static_cast<std::uint64_t>(n));
    data::write_npy((dir / "d" / ("x1_" + split + ".npy")).string(),
                    data::NpyArray::make<float>({n, 2, 6, 5}, Tensor<float>::randn(Shape{n, 2, 6, 5}, g).to_vector()));
    data::write_npy((dir / "d" / ("x2_" + split + ".npy")).string(),
                    data::NpyArray::make<double>({n, 7}, Tensor<double>::randn(Shape{n, 7}, g).to_vector()));
    std::vector<std::int64_t> y(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) y[static_cast<std::size_t>(i)] = i % 3;
    data::write_npy((dir / "d" / ("y_" + split + ".npy")).string(), data::NpyArray::make<std::int64_t>({n}, y));
  }
  std::ofstream(dir / "d" / "modalities.txt") << "image\nvector\n";
  const std::string common = " --data " + (dir / "d").string() + " --width 8 --epochs 1 --probe-epochs 1 --lr 0.01";
  REQUIRE(run_cli("train --method erlmr,ogm-ge --out " + (dir / "r").string() + common) == 0);
  const auto summary = slurp(dir / "r" / "erlmr" / "summary.json");
  CHECK(summary.find("\"arch\": \"general\"") != std::string::npos);
  CHECK(summary.find("\"image\": \"ResNet CNN (2, 6, 5) -> 8\"") != std::string::npos);
  CHECK(summary.find("\"vector\": \"MLP (7,) -> 8\"") != std::string::npos);
  // eval rebuilds the general model from what the checkpoint records.
  CHECK(run_cli("eval --data " + (dir / "d").string() + " --checkpoint " + (dir / "r" / "erlmr" / "checkpoint.npz").string() +
                " --predictions " + (dir / "pred.csv").string()) == 0);
  {  // one row per test sample: index, label, fused, head a, head g
    std::ifstream f(dir / "pred.csv");
    std::string line;
    std::getline(f, line);
    CHECK(line == "index,label,fused,head_a,head_g");
    int rows = 0;
    while (std::getline(f, line)) {
      CHECK(line.rfind(std::to_string(rows) + "," + std::to_string(rows % 3) + ",", 0) == 0);
      ++rows;
    }
    CHECK(rows == 24);
  }
  // The sensor model on this data is refused with a message.
  CHECK(run_cli("train --arch sensor --out " + (dir / "s").string() + common) == 256);
  fs::remove_all(dir);
}

TEST_CASE("erlmr compare: results do not depend on --jobs; failed runs are reported") {
  namespace fs = std::filesystem;
  const auto dir = fs::temp_directory_path() / "erlmr_cli_cmp";
  fs::remove_all(dir);
  REQUIRE(run_cli("compare --methods joint,ogm-ge,nosuch --seeds 2 --jobs 1 --out " + (dir / "j1").string() + kTiny) == 0);
  REQUIRE(run_cli("compare --methods joint,ogm-ge,nosuch --seeds 2 --jobs 3 --out " + (dir / "j3").string() + kTiny) == 0);
  auto strip_time = [](std::string csv) {  // drop the wall-time column
    std::string out, line;
    std::istringstream is(csv);
    while (std::getline(is, line)) {
      std::vector<std::string> f;
      std::string cell;
      std::istringstream ls(line);
      while (std::getline(ls, cell, ',')) f.push_back(cell);
      if (f.size() > 9) f[9] = "";
      for (auto& c : f) out += c + ",";
      out += "\n";
    }
    return out;
  };
  const auto a = slurp(dir / "j1" / "compare.csv"), b = slurp(dir / "j3" / "compare.csv");
  CHECK(strip_time(a) == strip_time(b));
  CHECK(a.find("nosuch,42,failed") != std::string::npos);
  CHECK(a.find("joint,43,ok") != std::string::npos);
  CHECK(a.find("unimodal-g,42,ok") != std::string::npos);
  CHECK(slurp(dir / "j1" / "compare.md").find("unknown method 'nosuch'") != std::string::npos);
  fs::remove_all(dir);
}
#endif
