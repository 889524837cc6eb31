// Tests for erlmr/data/audio.hpp: by-hand checks on a pure tone and the filterbank, and an exact
// comparison with the independent numpy reference tests/data/audio_reference/make_reference.py.
#include <doctest/doctest.h>

#include "data/data_test_util.hpp"

#include <erlmr/data/audio.hpp>
#include <erlmr/data/npy.hpp>

#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <vector>

namespace {

using erlmr::test::sine_tone;

using erlmr::data::MelConfig;

// Same signal as reference_signal() in make_reference.py (see the derivation there).
std::vector<float> reference_signal() {
  constexpr std::int64_t sr = 16000, n_samples = 8000, d_c = sr * sr;
  constexpr std::int64_t f0 = 200, k_half = 3800;
  const std::int64_t tones[2] = {440, 2500};
  const double amps[2] = {0.125, 0.0625};
  std::uint32_t s = 12345;
  std::vector<float> out(static_cast<std::size_t>(n_samples));
  for (std::int64_t n = 0; n < n_samples; ++n) {
    const std::int64_t r_c = (f0 * sr * n + k_half * n * n) % d_c;
    double v = 0.25 * std::sin(2.0 * std::numbers::pi * static_cast<double>(r_c) / static_cast<double>(d_c));
    for (int j = 0; j < 2; ++j)
      v = v + amps[j] * std::sin(2.0 * std::numbers::pi * static_cast<double>((tones[j] * n) % sr) / static_cast<double>(sr));
    s = 1664525u * s + 1013904223u;  // mod 2^32
    const double u = static_cast<double>(s >> 8) / static_cast<double>(1u << 24);
    v = v + (2.0 * u - 1.0) * (1.0 / 32.0);
    out[static_cast<std::size_t>(n)] = static_cast<float>(v);
  }
  return out;
}

}  // namespace

TEST_CASE("audio: periodic Hann window") {
  const auto w = erlmr::data::hann_window(4);
  REQUIRE(w.size() == 4);
  CHECK(w[0] == doctest::Approx(0.0));
  CHECK(w[1] == doctest::Approx(0.5));
  CHECK(w[2] == doctest::Approx(1.0));
  CHECK(w[3] == doctest::Approx(0.5));
  CHECK(erlmr::data::hann_window(1) == std::vector<double>{1.0});
  const auto w400 = erlmr::data::hann_window(400);
  CHECK(w400[200] == doctest::Approx(1.0));
  for (int i = 1; i < 200; ++i) CHECK(std::abs(w400[i] - w400[400 - i]) < 1e-15);  // periodic symmetry
  CHECK_THROWS_AS(erlmr::data::hann_window(0), std::invalid_argument);
}

TEST_CASE("audio: frame count") {
  MelConfig c;
  for (int n : {257, 400, 512, 1000, 8000, 16000, 16001}) {
    const auto P = erlmr::data::power_spectrogram(std::vector<float>(static_cast<std::size_t>(n), 0.1f), c);
    CHECK(P.rows() == 1 + (n + 2 * (c.n_fft / 2) - c.n_fft) / c.hop_length);
    CHECK(P.rows() == 1 + n / 160);
    CHECK(P.cols() == c.n_fft / 2 + 1);
  }
  c.center = false;
  for (int n : {512, 671, 672, 1000, 16000}) {
    const auto P = erlmr::data::power_spectrogram(std::vector<float>(static_cast<std::size_t>(n), 0.1f), c);
    CHECK(P.rows() == 1 + (n - c.n_fft) / c.hop_length);
  }
  CHECK(erlmr::data::num_frames(16000, MelConfig{}) == 101);
  const auto L = erlmr::data::log_mel(std::vector<float>(16000, 0.1f), MelConfig{});
  CHECK(L.rows() == 64);
  CHECK(L.cols() == 101);
}

TEST_CASE("audio: 1 kHz tone — peak bin and Parseval") {
  const MelConfig c;
  const auto x = sine_tone(1000.0, 16000, 16000);
  const auto P = erlmr::data::power_spectrogram(x, c);
  const int bins = c.n_fft / 2 + 1;
  const int peak_bin = static_cast<int>(std::lround(1000.0 * c.n_fft / 16000.0));
  REQUIRE(peak_bin == 32);
  const auto hw = erlmr::data::hann_window(c.win_length);
  const int left = (c.n_fft - c.win_length) / 2;
  for (int t = 10; t < P.rows() - 10; t += 7) {
    Eigen::Index arg = 0;
    P.row(t).maxCoeff(&arg);
    CHECK(arg == peak_bin);
    // Parseval: sum over all n_fft bins of |X_k|^2 = n_fft * sum (w x)^2. Frame t covers
    // original samples t*hop - n_fft/2 + i (no reflection in the middle frames).
    double energy = 0;
    for (int i = 0; i < c.win_length; ++i) {
      const double v = hw[i] * static_cast<double>(x[t * c.hop_length - c.n_fft / 2 + left + i]);
      energy += v * v;
    }
    double spec = P(t, 0) + P(t, bins - 1);
    for (int k = 1; k < bins - 1; ++k) spec += 2 * P(t, k);
    CHECK(std::abs(spec - energy * c.n_fft) <= 1e-9 * energy * c.n_fft);
  }
  // Without centring the peak is the same.
  MelConfig nc = c;
  nc.center = false;
  const auto Q = erlmr::data::power_spectrogram(x, nc);
  Eigen::Index arg = 0;
  Q.row(Q.rows() / 2).maxCoeff(&arg);
  CHECK(arg == peak_bin);
}

TEST_CASE("audio: 1 kHz tone — the mel band centred nearest 1 kHz is loudest") {
  const MelConfig c;
  const auto L = erlmr::data::log_mel(sine_tone(1000.0, 16000, 16000), c);
  // Filter m has its centre at mel point m+1.
  const double m_lo = 0, m_hi = 2595.0 * std::log10(1.0 + c.f_max / 700.0);
  int best = -1;
  double best_d = 1e300;
  for (int m = 0; m < c.n_mels; ++m) {
    const double mel = m_lo + (m_hi - m_lo) * (m + 1) / (c.n_mels + 1);
    const double hz = 700.0 * (std::pow(10.0, mel / 2595.0) - 1.0);
    if (std::abs(hz - 1000.0) < best_d) best_d = std::abs(hz - 1000.0), best = m;
  }
  REQUIRE(best >= 0);
  for (Eigen::Index t = 5; t < L.cols() - 5; ++t) {
    Eigen::Index arg = 0;
    L.col(t).maxCoeff(&arg);
    CHECK(arg == best);
  }
}

TEST_CASE("audio: mel filterbank shape") {
  const MelConfig c;
  const Eigen::MatrixXd fb = erlmr::data::mel_filterbank(c);
  REQUIRE(fb.rows() == c.n_mels);
  REQUIRE(fb.cols() == c.n_fft / 2 + 1);
  CHECK(fb.minCoeff() >= 0.0);
  CHECK(fb.maxCoeff() <= 1.0);
  // Columns sum to <= 1 (adjacent triangles overlap to exactly 1 between their centres).
  for (Eigen::Index k = 0; k < fb.cols(); ++k) CHECK(fb.col(k).sum() <= 1.0 + 1e-12);
  // Each row is a triangle: nonzero on one contiguous run, rising then falling; centres
  // (argmax) strictly increasing.
  Eigen::Index prev_peak = -1;
  for (Eigen::Index m = 0; m < fb.rows(); ++m) {
    Eigen::Index peak = 0;
    const double top = fb.row(m).maxCoeff(&peak);
    CHECK(top > 0.5);  // the bins are dense enough here for every filter to reach above 0.5
    CHECK(peak > prev_peak);
    prev_peak = peak;
    for (Eigen::Index k = 1; k <= peak; ++k) CHECK(fb(m, k) >= fb(m, k - 1));
    for (Eigen::Index k = peak + 1; k < fb.cols(); ++k) CHECK(fb(m, k) <= fb(m, k - 1));
  }
  // The whole band is covered between the first and the last centre: sums are 1 there.
  Eigen::Index first = 0, last = 0;
  fb.row(0).maxCoeff(&first);
  fb.row(fb.rows() - 1).maxCoeff(&last);
  for (Eigen::Index k = first + 1; k < last; ++k) CHECK(fb.col(k).sum() == doctest::Approx(1.0).epsilon(1e-12));
}

TEST_CASE("audio: matches the numpy reference") {
  const auto ref = erlmr::data::read_npy(std::string(ERLMR_SOURCE_DIR) + "/tests/data/audio_reference/logmel_ref.npy");
  const MelConfig c;
  const Eigen::MatrixXd L = erlmr::data::log_mel(reference_signal(), c);
  REQUIRE(ref.shape.size() == 2);
  REQUIRE(ref.shape[0] == L.rows());
  REQUIRE(ref.shape[1] == L.cols());
  REQUIRE(L.cols() == 51);
  const auto v = ref.as<double>();
  double max_err = 0;
  for (Eigen::Index i = 0; i < L.rows(); ++i)
    for (Eigen::Index j = 0; j < L.cols(); ++j)
      max_err = std::max(max_err, std::abs(L(i, j) - v[static_cast<std::size_t>(i * L.cols() + j)]));
  MESSAGE("max |C++ - numpy| (log domain) = " << max_err);
  CHECK(max_err <= 1e-9);
}

TEST_CASE("audio: invalid arguments") {
  const std::vector<float> x(1000, 0.f);
  const auto throws_naming = [&](MelConfig c, const std::string& param, const std::vector<float>& w) {
    try {
      (void)erlmr::data::log_mel(w, c);
      FAIL("no exception for " << param);
    } catch (const std::invalid_argument& e) {
      CHECK_MESSAGE(std::string(e.what()).find(param) != std::string::npos, e.what());
    }
  };
  MelConfig c;
  throws_naming(c, "wave", {});
  throws_naming(c, "wave", std::vector<float>(256, 0.f));  // not longer than n_fft/2
  CHECK_NOTHROW((void)erlmr::data::log_mel(std::vector<float>(257, 0.f), c));
  {
    auto w = x;
    w[3] = std::nanf("");
    throws_naming(c, "wave", w);
  }
  { MelConfig d = c; d.center = false; throws_naming(d, "wave", std::vector<float>(511, 0.f)); }
  { MelConfig d = c; d.n_fft = 256; throws_naming(d, "n_fft", x); }
  { MelConfig d = c; d.hop_length = 0; throws_naming(d, "hop_length", x); }
  { MelConfig d = c; d.hop_length = -3; throws_naming(d, "hop_length", x); }
  { MelConfig d = c; d.win_length = 0; throws_naming(d, "win_length", x); }
  { MelConfig d = c; d.sample_rate = 0; throws_naming(d, "sample_rate", x); }
  { MelConfig d = c; d.n_mels = 0; throws_naming(d, "n_mels", x); }
  { MelConfig d = c; d.f_max = 8000.5; throws_naming(d, "f_max", x); }
  { MelConfig d = c; d.f_min = -1; throws_naming(d, "f_min", x); }
  { MelConfig d = c; d.f_min = 8000; throws_naming(d, "f_max", x); }
  { MelConfig d = c; d.log_floor = 0; throws_naming(d, "log_floor", x); }
  CHECK_THROWS_AS((void)erlmr::data::mel_filterbank(MelConfig{.n_mels = -1}), std::invalid_argument);
}
