// Optimisers, schedules, data loading, and the training loop's determinism.
#include "test_util.hpp"

#include <erlmr/data/synthetic.hpp>
#include <erlmr/train/trainer.hpp>
#include <filesystem>

using namespace erlmr;
namespace fs = std::filesystem;

TEST_CASE("SGD: momentum, weight decay and Nesterov follow torch.optim.SGD") {
  Var<double> p(Tensor<double>::scalar(1.0), true);
  optim::SGD<double> opt(0.1, 0.9, 0.01, true);
  opt.add_params(std::vector<Var<double>>{p});
  // step 1: g = 2 + 0.01·1 = 2.01, b = 2.01, g' = g + 0.9 b = 3.819, p = 1 − 0.3819
  p.mutable_grad() = Tensor<double>::scalar(2.0);
  opt.step();
  CHECK(p.item() == doctest::Approx(1 - 0.3819));
  // step 2: g = 2 + 0.01·p1, b = 0.9·2.01 + g, g' = g + 0.9 b
  const double p1 = p.item(), g = 2 + 0.01 * p1, b = 0.9 * 2.01 + g;
  opt.step();
  CHECK(p.item() == doctest::Approx(p1 - 0.1 * (g + 0.9 * b)));
}

TEST_CASE("Adam and AdamW follow PyTorch; a complex parameter moves like its real pair") {
  for (bool decoupled : {false, true}) {
    Var<double> x(Tensor<double>::from_vector(Shape{2}, {0.5, -1.0}), true);
    Var<std::complex<double>> z(Tensor<std::complex<double>>::from_vector(Shape{1}, {{0.5, -1.0}}), true);
    optim::Adam<double> ox(0.01, 0.9, 0.999, 1e-8, 0.1, decoupled), oz(0.01, 0.9, 0.999, 1e-8, 0.1, decoupled);
    ox.add_params(std::vector<Var<double>>{x});
    oz.add_params(std::vector<Var<std::complex<double>>>{z});
    for (int s = 0; s < 3; ++s) {
      x.mutable_grad() = Tensor<double>::from_vector(Shape{2}, {0.3 * (s + 1), -0.2});
      z.mutable_grad() = Tensor<std::complex<double>>::from_vector(Shape{1}, {{0.3 * (s + 1), -0.2}});
      ox.step();
      oz.step();
    }
    CHECK(z.value()[0].real() == x.value()[0]);
    CHECK(z.value()[0].imag() == x.value()[1]);
  }
  // First Adam step moves every coordinate by lr (bias correction makes m̂/√v̂ = sign(g)).
  Var<double> w(Tensor<double>::scalar(1.0), true);
  optim::Adam<double> o(0.05);
  o.add_params(std::vector<Var<double>>{w});
  w.mutable_grad() = Tensor<double>::scalar(-3.0);
  o.step();
  CHECK(w.item() == doctest::Approx(1.05).epsilon(1e-7));
}

TEST_CASE("schedules: the released step decay and cosine") {
  optim::Schedule s;
  s.base = 1e-3;
  CHECK(s.lr(0) == 1e-3);
  CHECK(s.lr(50) == doctest::Approx(0.9e-3));
  CHECK(s.lr(149) == doctest::Approx(0.81e-3));
  CHECK(s.lr(150) == doctest::Approx(0.729e-3));
  s.kind = optim::Schedule::Kind::cosine;
  s.epochs = 10;
  CHECK(s.lr(0) == doctest::Approx(1e-3));
  CHECK(s.lr(5) == doctest::Approx(0.5e-3));
  CHECK_THROWS_AS(optim::Schedule::parse("linear"), std::invalid_argument);
}

namespace {
fs::path temp_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("erlmr_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}
void write_split(const fs::path& d, const std::string& split, std::int64_t n, std::int64_t T, bool variant = false) {
  Generator g(n);
  auto x = Tensor<float>::randn(Shape{n, 3, T}, g);
  std::vector<std::int64_t> y(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) y[static_cast<std::size_t>(i)] = i % 4;
  auto arr = data::NpyArray::make<float>({n, 3, T}, x.to_vector());
  data::write_npy((d / (variant ? "x1_" + split + ".npy" : "x_" + split + "_1.npy")).string(), arr);
  data::write_npy((d / (variant ? "x2_" + split + ".npy" : "x_" + split + "_2.npy")).string(), arr);
  data::write_npy((d / ("y_" + split + ".npy")).string(), data::NpyArray::make<std::int64_t>({n}, y));
}
template <class F> void expect_data_error(F&& f, const std::string& must_contain) {
  try {
    f();
    FAIL("no exception; expected one mentioning " << must_contain);
  } catch (const data::DataError& e) {
    INFO(std::string(e.what()));
    CHECK(std::string(e.what()).find(must_contain) != std::string::npos);
  }
}
}  // namespace

TEST_CASE("npy directory loader: both layouts, standardisation, and clear errors") {
  auto d = temp_dir("npydir");
  write_split(d, "train", 20, 10);
  write_split(d, "test", 8, 10);
  auto ds = data::load_npy_dir<float>(d.string());
  CHECK(ds.classes == 4);
  CHECK(ds.train.x1.shape() == Shape{20, 1, 3, 10});
  auto [m, s] = data::moments(ds.train.x1);
  CHECK(std::abs(m) < 1e-5);
  CHECK(s == doctest::Approx(1.0).epsilon(1e-4));
  auto v = temp_dir("npydir_variant");
  write_split(v, "train", 12, 6, true);
  write_split(v, "test", 4, 6, true);
  CHECK(data::load_npy_dir<double>(v.string()).train.size() == 12);

  SUBCASE("label out of range") {
    data::write_npy((d / "y_test.npy").string(), data::NpyArray::make<std::int64_t>({8}, {0, 1, 2, 3, 0, 1, 2, 9}));
    expect_data_error([&] { data::load_npy_dir<float>(d.string()); }, "y_test.npy: label 9 at index 7 is outside [0, 4)");
  }
  SUBCASE("shape mismatch between modalities") {
    data::write_npy((d / "x_train_2.npy").string(), data::NpyArray::make<float>({20, 3, 9}, std::vector<float>(540)));
    expect_data_error([&] { data::load_npy_dir<float>(d.string()); }, "x_train_2.npy: shape (20, 1, 3, 9) does not match");
  }
  SUBCASE("wrong dtype") {
    data::write_npy((d / "x_test_1.npy").string(), data::NpyArray::make<std::complex<float>>({8, 3, 10}, std::vector<std::complex<float>>(240)));
    expect_data_error([&] { data::load_npy_dir<float>(d.string()); }, "x_test_1.npy: dtype complex64");
    data::write_npy((d / "y_train.npy").string(), data::NpyArray::make<float>({20}, std::vector<float>(20)));
    expect_data_error([&] { data::load_npy_dir<float>(d.string()); }, "y_train.npy: labels must be integers");
  }
  SUBCASE("truncated file") {
    const auto f = d / "x_train_1.npy";
    fs::resize_file(f, fs::file_size(f) - 7);
    expect_data_error([&] { data::load_npy_dir<float>(d.string()); }, "x_train_1.npy");
  }
  SUBCASE("missing file, wrong rank, label count") {
    fs::remove(d / "y_train.npy");
    expect_data_error([&] { data::load_npy_dir<float>(d.string()); }, "missing y_train.npy");
    data::write_npy((d / "y_train.npy").string(), data::NpyArray::make<std::int64_t>({19}, std::vector<std::int64_t>(19)));
    expect_data_error([&] { data::load_npy_dir<float>(d.string()); }, "19 labels for 20 samples");
    data::write_npy((d / "y_train.npy").string(), data::NpyArray::make<std::int64_t>({20}, std::vector<std::int64_t>(20)));
    data::write_npy((d / "x_train_1.npy").string(), data::NpyArray::make<float>({20, 2, 3, 4, 5}, std::vector<float>(2400)));
    expect_data_error([&] { data::load_npy_dir<float>(d.string()); }, "x_train_1.npy: shape (20, 2, 3, 4, 5) is not (N, F), (N, H, W) or (N, C, H, W)");
    // A vector modality is valid, but train and test must agree on the per-sample shape.
    data::write_npy((d / "x_train_1.npy").string(), data::NpyArray::make<float>({20, 30}, std::vector<float>(600)));
    expect_data_error([&] { data::load_npy_dir<float>(d.string()); }, "x_test_1.npy: per-sample shape (1, 3, 10) differs from the training split's (30,)");
    data::write_npy((d / "x_test_1.npy").string(), data::NpyArray::make<float>({8, 30}, std::vector<float>(240)));
    data::write_npy((d / "x_test_2.npy").string(), data::NpyArray::make<float>({7, 3, 10}, std::vector<float>(210)));
    expect_data_error([&] { data::load_npy_dir<float>(d.string()); }, "x_test_2.npy: 7 samples, but");
  }
  fs::remove_all(d);
  fs::remove_all(v);
}

TEST_CASE("synthetic data: deterministic from its seed, balanced classes") {
  data::SyntheticConfig c;
  c.train = 240;
  c.test = 60;
  c.window = 16;
  auto a = data::synthetic_sensor<float>(c), b = data::synthetic_sensor<float>(c);
  CHECK(test::bitwise_equal(a.train.x1, b.train.x1));
  CHECK(test::bitwise_equal(a.test.x2, b.test.x2));
  CHECK(a.train.y == b.train.y);
  std::vector<int> counts(12);
  for (auto y : a.train.y) counts[static_cast<std::size_t>(y)]++;
  for (int k : counts) CHECK(k > 5);
  c.seed = 8;
  CHECK_FALSE(test::bitwise_equal(data::synthetic_sensor<float>(c).train.x1, a.train.x1));
}

namespace {
data::Dataset<float> small_data(std::int64_t train = 96, std::int64_t T = 12) {
  data::SyntheticConfig c;
  c.train = train;
  c.test = 48;
  c.window = T;
  return data::synthetic_sensor<float>(c);
}
train::TrainConfig small_cfg(const std::string& m = "erlmr") {
  train::TrainConfig c;
  c.method = m;
  c.epochs = 2;
  c.batch = 16;
  c.lr = 0.01;
  c.probe_epochs = 2;
  return c;
}
std::string history_csv(const train::Trainer<float>& t) {
  std::string s;
  for (const auto& h : t.history()) s += h.csv_line() + "\n";
  return s;
}
}  // namespace

TEST_CASE("training: two runs with the same seed give identical metrics, for 1 and 2 threads, and both step modes") {
  const auto d = small_data();
  for (auto mode : {erl::StepMode::fused, erl::StepMode::faithful}) {
    auto c = small_cfg();
    c.options.erlmr_mode = mode;
    std::vector<std::string> csv;
    std::vector<Tensor<float>> w;
    for (int threads : {1, 2, 2}) {
      set_num_threads(threads);
      train::Trainer<float> t(c, d);
      t.train_epoch();
      t.train_epoch();
      csv.push_back(history_csv(t));
      w.push_back(t.model().im.weight.value().clone());
    }
    CHECK(csv[0] == csv[1]);
    CHECK(csv[1] == csv[2]);
    CHECK(test::bitwise_equal(w[0], w[1]));
  }
  set_num_threads(2);
}

TEST_CASE("training: a resumed run continues bitwise identically") {
  const auto d = small_data();
  auto c = small_cfg();
  train::Trainer<float> straight(c, d);
  straight.train_epoch();
  straight.train_epoch();
  const auto path = (fs::temp_directory_path() / "erlmr_resume.npz").string();
  {
    train::Trainer<float> first(c, d);
    first.train_epoch();
    first.save_checkpoint(path);
  }
  train::Trainer<float> resumed(c, d);
  resumed.load_checkpoint(path);
  CHECK(resumed.epoch() == 1);
  resumed.train_epoch();
  CHECK(history_csv(straight) == history_csv(resumed));
  auto a = straight.model().state(), b = resumed.model().state();
  for (std::size_t i = 0; i < a.params.size(); ++i) CHECK(test::bitwise_equal(a.params[i].var.value(), b.params[i].var.value()));
  for (std::size_t i = 0; i < a.buffers.size(); ++i) CHECK(test::bitwise_equal(a.buffers[i].tensor, b.buffers[i].tensor));
  fs::remove(path);
}

TEST_CASE("training: a checkpoint whose optimiser state has the wrong length is refused, naming the file") {
  const auto d = small_data();
  auto c = small_cfg();
  const auto path = (fs::temp_directory_path() / "erlmr_bad_optim.npz").string();
  train::Trainer<float> t(c, d);
  t.train_epoch();
  auto m = t.checkpoint();
  REQUIRE(m.count("trainer/optim/0"));
  const auto n = m.at("trainer/optim/0").numel();
  REQUIRE(n > 1);
  m["trainer/optim/0"] = data::NpyArray::make<float>({n - 1}, std::vector<float>(static_cast<std::size_t>(n - 1), 0.f));
  data::write_npz(path, m, true);
  train::Trainer<float> r(c, d);
  try {
    r.load_checkpoint(path);
    FAIL("a short optimiser state was accepted");
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find("optimizer state slot 0") != std::string::npos);
  }
  // An empty slot (a state not created yet) is accepted.
  m["trainer/optim/0"] = data::NpyArray::make<float>({0}, std::vector<float>{});
  data::write_npz(path, m, true);
  train::Trainer<float> e(c, d);
  CHECK_NOTHROW(e.load_checkpoint(path));
  fs::remove(path);
}

TEST_CASE("training: every method learns — loss falls and accuracy beats chance clearly") {
  const auto d = small_data(720, 24);
  for (std::string m : {"erlmr", "joint", "uniform", "unimodal-a"}) {
    CAPTURE(m);
    auto c = small_cfg(m);
    c.epochs = 5;
    train::Trainer<float> t(c, d);
    for (int e = 0; e < c.epochs; ++e) t.train_epoch();
    const auto& h = t.history();
    // ERL-MR's total loss moves its weight γ between terms, so compare the fused CE there.
    if (m == "erlmr") CHECK(h.back().loss_ce < 0.8 * h.front().loss_ce);
    else CHECK(h.back().loss < 0.8 * h.front().loss);
    const double acc = m == "unimodal-a" ? h.back().test.acc_a : h.back().test.acc;
    CHECK(acc > 2.0 / 12);  // chance is 1/12
  }
}
