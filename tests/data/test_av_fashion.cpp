// Tests for tools/av_fashion.hpp (`erlmr data build av-fashion`): small builds into temporary
// directories from the installed Fashion-MNIST and libespeak-ng. Shapes, dtypes, labels, ranges,
// the speech being where the span says, byte-identical rebuilds (in one process, which is what
// espeak-ng's carried-over state would break), prefix stability, caching, errors.
#include <doctest/doctest.h>

#include "data/data_test_util.hpp"

#include "av_fashion.hpp"

#include <erlmr/data/idx.hpp>
#include <erlmr/data/npy.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

using erlmr::test::TempDir;

namespace fs = std::filesystem;
using namespace erlmr;
using erlmr::tools::AvFashionOptions;
using erlmr::tools::build_av_fashion;

const std::string kSource = "/usr/share/datasets/fashion-mnist";

/// True when Fashion-MNIST is installed; otherwise reports (not silently) why the test is skipped.
bool have_source() {
  for (const char* f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                        "t10k-labels-idx1-ubyte.gz"})
    if (!fs::is_regular_file(fs::path(kSource) / f)) {
      MESSAGE("SKIPPED: " << (fs::path(kSource) / f).string()
                          << " is missing (install the Debian package dataset-fashion-mnist, e.g. with tools/setup.sh)");
      return false;
    }
  return true;
}

AvFashionOptions small(const std::string& out) {
  AvFashionOptions o;
  o.out = out;
  o.train = 30;
  o.test = 20;
  return o;
}

/// One small build shared by the test cases (building takes about a second).
struct Shared {
  TempDir tmp{"avf"};
  std::string dir;
  std::string log;
  Shared() {
    dir = tmp.file("a");
    std::ostringstream l;
    build_av_fashion(small(dir), l);
    log = l.str();
  }
};
Shared& shared() {
  static Shared s;
  return s;
}

data::NpyArray npy(const std::string& dir, const std::string& name) { return data::read_npy(dir + "/" + name + ".npy"); }

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::vector<std::int64_t> fashion_labels(const std::string& file, std::int64_t n) {
  const auto a = data::read_idx(kSource + "/" + file).as<std::int64_t>();
  return {a.begin(), a.begin() + n};
}

std::vector<float> fashion_images(const std::string& file, std::int64_t n) {
  const auto a = data::read_idx(kSource + "/" + file).as<float>();
  std::vector<float> r(a.begin(), a.begin() + n * 784);
  for (float& v : r) v = static_cast<float>(v / 255.0);
  return r;
}

/// Power per frame (summed over mel bands) of sample i of a (N, 1, 64, T) log-mel array.
std::vector<double> frame_power(const std::vector<float>& x2, std::int64_t i, int frames) {
  std::vector<double> p(static_cast<std::size_t>(frames), 0.0);
  for (int m = 0; m < 64; ++m)
    for (int t = 0; t < frames; ++t) p[t] += std::exp(double(x2[static_cast<std::size_t>((i * 64 + m) * frames + t)]));
  return p;
}

}  // namespace

TEST_CASE("av-fashion: layout, shapes, dtypes, labels, ranges") {
  if (!have_source()) return;
  const std::string& dir = shared().dir;
  CHECK(shared().log.find("wrote 30 train + 20 test") != std::string::npos);

  for (const auto& sn : std::map<std::string, std::int64_t>{{"train", 30}, {"test", 20}}) {
    const std::string& split = sn.first;  // INFO's lambda cannot name a binding before clang 16
    const std::int64_t n = sn.second;
    INFO(split);
    const auto x1 = npy(dir, "x1_" + split), x2 = npy(dir, "x2_" + split), y = npy(dir, "y_" + split);
    const auto snr = npy(dir, "snr_db_" + split), sig = npy(dir, "image_sigma_" + split);
    const auto voice = npy(dir, "voice_" + split), span = npy(dir, "speech_span_" + split);
    CHECK(x1.dtype == data::DType::f4);
    CHECK(x1.shape == std::vector<std::int64_t>{n, 1, 28, 28});
    CHECK(x2.dtype == data::DType::f4);
    CHECK(x2.shape == std::vector<std::int64_t>{n, 1, 64, 101});
    CHECK(y.dtype == data::DType::i8);
    CHECK(y.shape == std::vector<std::int64_t>{n});
    CHECK(snr.dtype == data::DType::f4);
    CHECK(sig.dtype == data::DType::f4);
    CHECK(voice.dtype == data::DType::i8);
    CHECK(span.shape == std::vector<std::int64_t>{n, 2});

    // Labels are Fashion-MNIST's, in order.
    const std::string pre = split == "train" ? "train" : "t10k";
    CHECK(y.as<std::int64_t>() == fashion_labels(pre + "-labels-idx1-ubyte.gz", n));

    // Images: in [0, 1], and as far from the clean image as their σ says.
    const auto px = x1.as<float>();
    const auto clean = fashion_images(pre + "-images-idx3-ubyte.gz", n);
    const auto s = sig.as<float>();
    for (std::int64_t i = 0; i < n; ++i) {
      CHECK(s[i] >= 0.0f);
      CHECK(s[i] <= 1.0f);
      double mad = 0;
      for (int k = 0; k < 784; ++k) {
        const float v = px[static_cast<std::size_t>(i * 784 + k)];
        REQUIRE(v >= 0.0f);
        REQUIRE(v <= 1.0f);
        mad += std::abs(v - clean[static_cast<std::size_t>(i * 784 + k)]);
      }
      mad /= 784;
      CHECK(mad <= 0.9 * s[i] + 1e-6);  // E|σ·N(0,1)| = 0.8σ, clipping only shrinks it
      CHECK(mad >= 0.25 * s[i] - 1e-6);
    }

    // SNRs in range and spread; spectrograms finite and not constant; spans inside the clip.
    const auto snrs = snr.as<float>();
    for (float v : snrs) {
      CHECK(v >= -15.0f);
      CHECK(v <= 15.0f);
    }
    CHECK(*std::max_element(snrs.begin(), snrs.end()) - *std::min_element(snrs.begin(), snrs.end()) > 10.0f);
    const auto spec = x2.as<float>();
    for (std::int64_t i = 0; i < n; ++i) {
      double sum = 0, sq = 0;
      for (int k = 0; k < 64 * 101; ++k) {
        const double v = spec[static_cast<std::size_t>(i * 64 * 101 + k)];
        REQUIRE(std::isfinite(v));
        sum += v, sq += v * v;
      }
      const double mean = sum / (64 * 101);
      CHECK(std::sqrt(sq / (64 * 101) - mean * mean) > 0.1);
    }
    const auto sp = span.as<std::int64_t>();
    const auto vo = voice.as<std::int64_t>();
    for (std::int64_t i = 0; i < n; ++i) {
      CHECK(sp[2 * i] >= 0);
      CHECK(sp[2 * i] < sp[2 * i + 1]);
      CHECK(sp[2 * i + 1] <= 16000);
      CHECK(sp[2 * i + 1] - sp[2 * i] > 1600);  // words are longer than 0.1 s
      CHECK(vo[i] >= 0);
      CHECK(vo[i] < 64);
    }
  }

  CHECK(slurp(dir + "/modalities.txt") == "image\naudio\n");
  CHECK(slurp(dir + "/classes.txt") ==
        "t-shirt\ntrouser\npullover\ndress\ncoat\nsandal\nshirt\nsneaker\nbag\nankle boot\n");
  const auto m = nlohmann::json::parse(slurp(dir + "/manifest.json"));
  CHECK(m.at("options") == tools::avf::options_json(small(dir)));
  CHECK(m.at("counts").at("train") == 30);
  CHECK(m.at("voices").size() == 64);
  CHECK(m.at("mel").at("frames") == 101);
  CHECK(m.at("mel").at("n_mels") == 64);
}

TEST_CASE("av-fashion: the voice bank is 64 distinct configurations in the documented ranges") {
  const auto v = tools::avf::voices();
  REQUIRE(v.size() == 64);
  std::set<std::string> names;
  std::set<int> rates, pitches;
  for (const auto& x : v) {
    names.insert(x.name + "/" + std::to_string(x.rate) + "/" + std::to_string(x.pitch));
    CHECK(x.rate >= 110);
    CHECK(x.rate <= 260);
    CHECK(x.pitch >= 20);
    CHECK(x.pitch <= 80);
    CHECK(x.range >= 30);
    CHECK(x.range <= 80);
    rates.insert(x.rate);
    pitches.insert(x.pitch);
  }
  CHECK(names.size() == 64);
  CHECK(rates.size() >= 8);
  CHECK(pitches.size() >= 8);
}

TEST_CASE("av-fashion: clean speech sits in its span; images without noise are exact") {
  if (!have_source()) return;
  TempDir tmp("avf");
  AvFashionOptions o = small(tmp.file("clean"));
  o.train = 20;
  o.test = 5;
  o.snr_min_db = o.snr_max_db = 60;
  o.image_noise_max = 0;
  std::ostringstream log;
  build_av_fashion(o, log);
  const auto x1 = npy(o.out, "x1_train").as<float>();
  CHECK(x1 == fashion_images("train-images-idx3-ubyte.gz", 20));
  const auto x2 = npy(o.out, "x2_train").as<float>();
  const auto sp = npy(o.out, "speech_span_train").as<std::int64_t>();
  const auto snr = npy(o.out, "snr_db_train").as<float>();
  for (std::int64_t i = 0; i < 20; ++i) {
    CHECK(snr[i] == 60.0f);
    const auto p = frame_power(x2, i, 101);
    double in = 0, out = 0;
    int n_in = 0, n_out = 0;
    for (int t = 0; t < 101; ++t) {
      const std::int64_t c = t * 160;  // frame t is centred on sample t·hop
      if (c >= sp[2 * i] + 200 && c < sp[2 * i + 1] - 200) in += p[t], ++n_in;
      else if (c < sp[2 * i] - 400 || c >= sp[2 * i + 1] + 400) out += p[t], ++n_out;
    }
    INFO("sample " << i << " span " << sp[2 * i] << ".." << sp[2 * i + 1]);
    REQUIRE(n_in > 5);
    if (n_out > 0) CHECK(in / n_in > 1000.0 * (out / n_out));  // 30 dB: the word is in its span
  }
}

TEST_CASE("av-fashion: deterministic (byte-identical rebuild in the same process) and prefix-stable") {
  if (!have_source()) return;
  TempDir tmp("avf");
  std::ostringstream log;
  build_av_fashion(small(tmp.file("b")), log);
  for (const auto& f : tools::avf::output_files()) {
    INFO(f);
    CHECK(slurp(shared().dir + "/" + f) == slurp(tmp.file("b") + "/" + f));
  }
  // Fewer samples: the same first samples (each sample's draws depend only on seed, split, index).
  AvFashionOptions o = small(tmp.file("c"));
  o.train = 12;
  o.test = 7;
  build_av_fashion(o, log);
  for (const char* name : {"x1", "x2", "snr_db", "image_sigma", "voice", "speech_span"})
    for (const char* split : {"train", "test"}) {
      const auto big = npy(shared().dir, std::string(name) + "_" + split), sm = npy(o.out, std::string(name) + "_" + split);
      INFO(name << "_" << split);
      REQUIRE(sm.data.size() <= big.data.size());
      CHECK(std::equal(sm.data.begin(), sm.data.end(), big.data.begin()));
    }
  // Another seed: other draws.
  AvFashionOptions s = small(tmp.file("d"));
  s.seed = 8;
  build_av_fashion(s, log);
  CHECK(slurp(tmp.file("d") + "/x2_train.npy") != slurp(shared().dir + "/x2_train.npy"));
  CHECK(slurp(tmp.file("d") + "/y_train.npy") == slurp(shared().dir + "/y_train.npy"));
}

TEST_CASE("av-fashion: caching by manifest, rebuild on other options or force") {
  if (!have_source()) return;
  TempDir tmp("avf");
  const AvFashionOptions o = small(tmp.file("cache"));
  std::ostringstream first;
  build_av_fashion(o, first);
  CHECK(first.str().find("cached") == std::string::npos);
  std::map<std::string, fs::file_time_type> mtime;
  for (const auto& f : tools::avf::output_files()) mtime[f] = fs::last_write_time(fs::path(o.out) / f);

  std::ostringstream second;
  build_av_fashion(o, second);
  CHECK(second.str().find("cached") != std::string::npos);
  CHECK(second.str().find("synthesising") == std::string::npos);
  for (const auto& f : tools::avf::output_files()) CHECK(fs::last_write_time(fs::path(o.out) / f) == mtime[f]);

  AvFashionOptions other = o;
  other.snr_max_db = 10;
  std::ostringstream third;
  build_av_fashion(other, third);
  CHECK(third.str().find("rebuilding") != std::string::npos);
  CHECK(third.str().find("options differ") != std::string::npos);
  CHECK(nlohmann::json::parse(slurp(o.out + "/manifest.json")).at("options").at("snr_max_db") == 10.0);
  for (float v : npy(o.out, "snr_db_train").as<float>()) CHECK(v <= 10.0f);

  AvFashionOptions forced = other;
  forced.force = true;
  std::ostringstream fourth;
  build_av_fashion(forced, fourth);
  CHECK(fourth.str().find("cached") == std::string::npos);
  CHECK(fourth.str().find("synthesising") != std::string::npos);

  fs::remove(fs::path(o.out) / "x2_test.npy");  // incomplete: rebuilt
  std::ostringstream fifth;
  build_av_fashion(other, fifth);
  CHECK(fifth.str().find("x2_test.npy is missing") != std::string::npos);
  CHECK(fs::exists(fs::path(o.out) / "x2_test.npy"));
}

TEST_CASE("av-fashion: errors name the file or the option") {
  TempDir tmp("avf");
  std::ostringstream log;
  auto what = [&](const AvFashionOptions& o) -> std::string {
    try {
      build_av_fashion(o, log);
    } catch (const std::exception& e) {
      return e.what();
    }
    return "no exception";
  };
  AvFashionOptions o = small(tmp.file("e"));
  o.source = tmp.file("nowhere");
  CHECK(what(o).find(tmp.file("nowhere") + "/train-images-idx3-ubyte.gz not found") != std::string::npos);
  CHECK_THROWS_AS(build_av_fashion(o, log), std::runtime_error);

  o = small(tmp.file("e"));
  o.train = 0;
  CHECK_THROWS_AS(build_av_fashion(o, log), std::invalid_argument);
  o = small(tmp.file("e"));
  o.snr_min_db = 5;
  o.snr_max_db = -5;
  CHECK(what(o).find("snr_min_db") != std::string::npos);
  o = small(tmp.file("e"));
  o.image_noise_max = -1;
  CHECK(what(o).find("image_noise_max") != std::string::npos);
  o = small("");
  CHECK(what(o).find("out") != std::string::npos);

  if (!have_source()) return;
  o = small(tmp.file("e"));
  o.test = 10001;  // t10k has 10000
  const std::string w = what(o);
  CHECK(w.find("t10k-images-idx3-ubyte.gz holds 10000 images, 10001 requested") != std::string::npos);
  CHECK(!fs::exists(fs::path(o.out) / "manifest.json"));

  // A voice espeak-ng does not have: the error names it.
  bool threw = false;
  try {
    tools::avf::synthesize({tools::AvVoice{"xx-nonexistent+m1", 175, 50, 50}}, {"bag"});
  } catch (const std::runtime_error& e) {
    threw = true;
    CHECK(std::string(e.what()).find("xx-nonexistent+m1") != std::string::npos);
  }
  CHECK(threw);
}

TEST_CASE("av-fashion: pink noise has unit RMS and a falling spectrum") {
  const Generator g(3);
  const auto a = tools::avf::pink_noise(g, 1000, 16000);
  const auto b = tools::avf::pink_noise(g, 1000, 16000);
  CHECK(a == b);
  double ss = 0, dd = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    ss += a[i] * a[i];
    if (i) dd += (a[i] - a[i - 1]) * (a[i] - a[i - 1]);
  }
  CHECK(ss / 16000 == doctest::Approx(1.0).epsilon(1e-9));
  // White noise has E[(x_i - x_{i-1})²] = 2 E[x²]; 1/f noise has much less high-frequency power.
  CHECK(dd / 15999 < 1.0);
}
