// General two-modality datasets (spec §4): the NPY layout with any per-sample shapes,
// the automatic choice of encoders, training every method on an image + vector task,
// and checkpoints that record the architecture.
#include "test_util.hpp"

#include <erlmr/train/trainer.hpp>
#include <filesystem>
#include <fstream>

using namespace erlmr;
namespace fs = std::filesystem;

namespace {
// Modality 1: 1×8×8 "images" whose class sets the mean brightness and the texture
// frequency (both survive global average pooling); modality 2: 6-d vectors with a class
// signal in one coordinate. Both learnable alone.
void write_general(const fs::path& d, const std::string& split, std::int64_t n, std::uint64_t seed) {
  Generator g(seed);
  const auto noise1 = Tensor<float>::randn(Shape{n, 1, 8, 8}, g, 0.5), noise2 = Tensor<float>::randn(Shape{n, 6}, g);
  std::vector<float> x1(static_cast<std::size_t>(n * 64)), x2(static_cast<std::size_t>(n * 6));
  std::vector<std::int64_t> y(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t k = i % 3;
    y[static_cast<std::size_t>(i)] = k;
    for (std::int64_t p = 0; p < 64; ++p) {
      const double tex = (k == 1) ? ((p / 8 + p % 8) % 2 ? 1.0 : -1.0) : 0.0;
      x1[static_cast<std::size_t>(i * 64 + p)] = float(0.8 * double(k) + tex + noise1.data()[i * 64 + p]);
    }
    for (std::int64_t j = 0; j < 6; ++j) x2[static_cast<std::size_t>(i * 6 + j)] = float((j == k ? 1.5 : 0.0) + noise2.data()[i * 6 + j]);
  }
  data::write_npy((d / ("x1_" + split + ".npy")).string(), data::NpyArray::make<float>({n, 1, 8, 8}, x1));
  data::write_npy((d / ("x2_" + split + ".npy")).string(), data::NpyArray::make<float>({n, 6}, x2));
  data::write_npy((d / ("y_" + split + ".npy")).string(), data::NpyArray::make<std::int64_t>({n}, y));
}
fs::path general_dir(const std::string& name, std::int64_t ntrain = 96, std::int64_t ntest = 48) {
  auto d = fs::temp_directory_path() / ("erlmr_general_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  write_general(d, "train", ntrain, 1);
  write_general(d, "test", ntest, 2);
  std::ofstream(d / "modalities.txt") << "image\nvector\n";
  std::ofstream(d / "classes.txt") << "dark\ntextured\nbright\n";
  return d;
}
train::TrainConfig general_cfg(const std::string& method = "erlmr") {
  train::TrainConfig c;
  c.method = method;
  c.width = 8;
  c.batch = 16;
  c.lr = 0.05;
  c.epochs = 4;
  c.probe_epochs = 3;
  return c;
}
}  // namespace

TEST_CASE("general layout: any per-sample shapes, names from modalities.txt and classes.txt") {
  const auto dir = general_dir("layout");
  const auto d = data::load_npy_dir<float>(dir.string());
  CHECK(d.train.x1.shape() == Shape{96, 1, 8, 8});
  CHECK(d.train.x2.shape() == Shape{96, 6});
  CHECK(d.sample_shape(0) == std::vector<std::int64_t>{1, 8, 8});
  CHECK(!d.sensor_layout());
  CHECK(d.window() == 0);
  CHECK(d.modality_a == "image");
  CHECK(d.modality_g == "vector");
  CHECK(d.class_names == std::vector<std::string>{"dark", "textured", "bright"});
  CHECK(d.classes == 3);
  // (N, H, W) reads as one channel.
  data::write_npy((dir / "x2_train.npy").string(), data::NpyArray::make<float>({96, 4, 5}, std::vector<float>(96 * 20, 1.f)));
  data::write_npy((dir / "x2_test.npy").string(), data::NpyArray::make<float>({48, 4, 5}, std::vector<float>(48 * 20, 1.f)));
  CHECK(data::load_npy_dir<float>(dir.string()).train.x2.shape() == Shape{96, 1, 4, 5});
  std::ofstream(dir / "classes.txt") << "one\ntwo\n";
  try {
    data::load_npy_dir<float>(dir.string());
    FAIL("a classes.txt with the wrong count must be refused");
  } catch (const data::DataError& e) {
    CHECK(std::string(e.what()).find("classes.txt: 2 names for 3 classes") != std::string::npos);
  }
  fs::remove_all(dir);
}

TEST_CASE("general model: encoders by rank, Euler block on pooled features, PyTorch-style names") {
  erl::ModelConfig c;
  c.arch = erl::Arch::general;
  c.input_a = {2, 9, 7};
  c.input_g = {5};
  c.width = 12;
  c.classes = 4;
  Generator g(3);
  erl::ErlmrModel<double> m(c, g);
  CHECK(m.enc_a->describe().find("CNN") != std::string::npos);
  CHECK(m.enc_g->describe().find("MLP") != std::string::npos);
  auto st = m.state();
  std::map<std::string, Shape> shapes;
  for (auto& p : st.params) shapes[p.name] = p.var.shape();
  CHECK(shapes.at("encoder.x1.stem.0.weight") == Shape{4, 2, 3, 3});
  CHECK(shapes.at("encoder.x1.layer1.conv1.weight") == Shape{6, 4, 3, 3});
  CHECK(shapes.at("encoder.x1.layer1.downsample.0.weight") == Shape{6, 4, 1, 1});
  CHECK(shapes.at("encoder.x1.layer2.bn2.weight") == Shape{12});
  CHECK(shapes.at("encoder.x2.net.0.weight") == Shape{24, 5});
  CHECK(shapes.at("encoder.x2.net.3.weight") == Shape{12, 24});
  CHECK(shapes.at("mu1") == Shape{1, 12, 1});
  CHECK(shapes.at("im.weight") == Shape{6, 12});  // shared projection d -> d/2
  CHECK(shapes.at("fusion.fc_out.weight") == Shape{4, 24});  // fusion width 2d
  CHECK(m.encoder_prefix(0) == "encoder.x1.");
  Generator xg(4);
  Var<double> x1(Tensor<double>::randn(Shape{5, 2, 9, 7}, xg)), x2(Tensor<double>::randn(Shape{5, 5}, xg));
  nn::Context ctx{true, nullptr, 0.0};
  auto o = m.forward(x1, x2, ctx);
  CHECK(o.out.shape() == Shape{5, 4});
  CHECK(o.theta_a.shape() == Shape{5, 6});
  CHECK(o.h_g.shape() == Shape{5, 12});
  for (std::int64_t i = 0; i < o.theta_a.numel(); ++i) {  // CReLU output: phases in [0, π/2]
    CHECK(o.theta_a.value().data()[i] >= 0);
    CHECK(o.theta_a.value().data()[i] <= std::numbers::pi / 2 + 1e-12);
  }
  // Wrong inputs are refused with the shapes named.
  CHECK_THROWS_AS(m.forward(x2, x1, ctx), ShapeError);
  auto bad = c;
  bad.width = 7;
  CHECK_THROWS_AS(erl::ErlmrModel<double>(bad, g), std::invalid_argument);
  bad = c;
  bad.input_a = {9, 7};
  CHECK_THROWS_AS(erl::ErlmrModel<double>(bad, g), ShapeError);
}

TEST_CASE("general model: finite differences of the ERL-MR objective through CNN and MLP encoders") {
  erl::ModelConfig c;
  c.arch = erl::Arch::general;
  c.input_a = {1, 6, 5};
  c.input_g = {4};
  c.width = 8;
  c.classes = 3;
  Generator g(11);
  erl::ErlmrModel<double> m(c, g);
  Generator xg(12);
  Var<double> x1(Tensor<double>::randn(Shape{6, 1, 6, 5}, xg)), x2(Tensor<double>::randn(Shape{6, 4}, xg));
  const std::vector<std::int64_t> y{0, 1, 2, 1, 0, 2};
  nn::Context ctx{true, nullptr, 0.0};
  auto loss = [&] {
    auto o = m.forward(x1, x2, ctx);
    auto lmmc = add(erl::phase_cosine_loss(o.theta_a, o.theta_g), add(cross_entropy(o.out_a, y), cross_entropy(o.out_g, y)));
    return add(scale(cross_entropy(o.out, y), 0.4), scale(lmmc, 0.6));
  };
  std::map<std::string, Var<double>> P;
  for (auto& p : m.state().params) P[p.name] = p.var;
  GradCheck gc;
  for (const char* n : {"encoder.x1.stem.0.weight", "encoder.x1.layer1.conv2.weight", "encoder.x1.layer2.downsample.1.weight",
                        "encoder.x2.net.0.weight", "encoder.x2.net.4.bias", "mu1", "mu2", "im.weight", "fusion.fc_out.bias"})
    gc.input(P.at(n));
  auto r = gc.run(loss, 1e-6, 1e-5, 1e-8);
  INFO(r.message);
  CHECK(r.ok);
  CHECK(r.checked > 300);
}

TEST_CASE("general data: every method trains an image + vector model; the architecture is checkpointed") {
  const auto dir = general_dir("train", 144, 72);
  const auto d = data::load_npy_dir<float>(dir.string());
  for (const auto& name : balance::method_names()) {
    CAPTURE(name);
    auto c = general_cfg(name);
    train::Trainer<float> t(c, d);
    CHECK(t.model().cfg.arch == erl::Arch::general);
    for (int e = 0; e < c.epochs; ++e) t.train_epoch();
    const auto& h = t.history();
    for (const auto& m : h) CHECK(std::isfinite(m.loss));
    const double acc = name == "unimodal-g" ? h.back().test.acc_g : name == "unimodal-a" ? h.back().test.acc_a : h.back().test.acc;
    CHECK(acc > 0.45);  // chance is 1/3
  }
  // The checkpoint records arch and width; a trainer built from it evaluates identically.
  auto c = general_cfg("erlmr");
  train::Trainer<float> t(c, d);
  t.train_epoch();
  const auto path = (fs::temp_directory_path() / "erlmr_general_ckpt.npz").string();
  t.save_checkpoint(path);
  const auto ck = data::read_npz(path);
  const auto arch = ck.at("trainer/arch").as<std::uint8_t>();
  CHECK(std::string(arch.begin(), arch.end()) == "general");
  CHECK(ck.at("trainer/width").as<std::int64_t>().at(0) == 8);
  train::Trainer<float> t2(c, d);
  t2.load_checkpoint(path);
  CHECK(t2.evaluate(d.test).acc == t.evaluate(d.test).acc);
  // Forcing the sensor model on this data is a clear error.
  auto s = c;
  s.arch = "sensor";
  CHECK_THROWS_WITH_AS(train::Trainer<float>(s, d), doctest::Contains("needs both modalities as (N, 1, 3, T)"), std::invalid_argument);
  fs::remove(path);
  fs::remove_all(dir);
}
