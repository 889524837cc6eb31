// Tests for erlmr/data/resample.hpp: tones keep their frequency and amplitude, tones above the
// new Nyquist frequency are removed, DC and lengths, determinism, argument checks.
#include <doctest/doctest.h>

#include "data/data_test_util.hpp"

#include <erlmr/data/resample.hpp>

#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using erlmr::test::sine_tone;

using erlmr::data::resample;

/// Least-squares amplitude and frequency-matched error of y against a tone at f Hz (rate dst),
/// ignoring `edge` samples at each end (zero padding makes the ends differ).
struct Fit {
  double amp = 0, max_err = 0, rms = 0;
};
Fit fit_tone(const std::vector<float>& y, double f, int rate, int edge) {
  double sc = 0, ss = 0, cc = 0, s_y = 0, c_y = 0, yy = 0;
  const int n = static_cast<int>(y.size());
  for (int i = edge; i < n - edge; ++i) {
    const double s = std::sin(2 * std::numbers::pi * f * i / rate), c = std::cos(2 * std::numbers::pi * f * i / rate);
    ss += s * s, cc += c * c, sc += s * c, s_y += s * y[i], c_y += c * y[i], yy += double(y[i]) * y[i];
  }
  // Solve [ss sc; sc cc] [a b]' = [s_y c_y]' for y ≈ a sin + b cos.
  const double det = ss * cc - sc * sc, a = (s_y * cc - c_y * sc) / det, b = (c_y * ss - s_y * sc) / det;
  Fit r;
  r.amp = std::hypot(a, b);
  r.rms = std::sqrt(yy / (n - 2 * edge));
  for (int i = edge; i < n - edge; ++i) {
    const double s = std::sin(2 * std::numbers::pi * f * i / rate), c = std::cos(2 * std::numbers::pi * f * i / rate);
    r.max_err = std::max(r.max_err, std::abs(y[i] - (a * s + b * c)));
  }
  return r;
}

}  // namespace

TEST_CASE("resample: a 1 kHz tone keeps its frequency, amplitude and phase (22050 -> 16000)") {
  const auto x = sine_tone(1000, 22050, 22050, 0.5);
  const auto y = resample(x, 22050, 16000);
  CHECK(y.size() == 16000);
  const Fit f = fit_tone(y, 1000, 16000, 64);
  CHECK(f.amp == doctest::Approx(0.5).epsilon(1e-3));
  CHECK(f.max_err < 1e-3);  // all of it is the 1 kHz tone: frequency unchanged
  // No delay: sample n of the output is the input at time n / 16000 s.
  for (int n : {100, 2000, 9999})
    CHECK(y[static_cast<std::size_t>(n)] ==
          doctest::Approx(0.5 * std::sin(2 * std::numbers::pi * 1000.0 * n / 16000)).epsilon(1e-3).scale(1.0));
}

TEST_CASE("resample: pass band flat to 6 kHz, tones above the new Nyquist frequency removed") {
  for (double f : {100.0, 3000.0, 6000.0}) {
    const Fit r = fit_tone(resample(sine_tone(f, 22050, 22050), 22050, 16000), f, 16000, 64);
    INFO("f = " << f);
    CHECK(r.amp == doctest::Approx(1.0).epsilon(2e-3));
  }
  for (double f : {8500.0, 9000.0, 10000.0, 11000.0}) {
    // A tone between 8 and 11.025 kHz would alias to 16000 - f; the filter must remove it.
    const auto y = resample(sine_tone(f, 22050, 22050), 22050, 16000);
    const Fit r = fit_tone(y, 16000 - f, 16000, 64);
    INFO("f = " << f);
    CHECK(r.rms < 1e-3);  // below -57 dB of the input's 0.707
  }
}

TEST_CASE("resample: upsampling keeps a tone, DC is preserved, lengths round up") {
  const auto y = resample(sine_tone(440, 16000, 8000, 0.25), 16000, 22050);
  CHECK(y.size() == 11025);
  const Fit r = fit_tone(y, 440, 22050, 64);
  CHECK(r.amp == doctest::Approx(0.25).epsilon(1e-3));
  CHECK(r.max_err < 1e-3);

  const std::vector<float> dc(5000, 0.3f);
  const auto z = resample(dc, 48000, 16000);
  CHECK(z.size() == 1667);  // ceil(5000 / 3)
  for (std::size_t i = 40; i + 40 < z.size(); ++i) CHECK(z[i] == doctest::Approx(0.3).epsilon(2e-3));

  CHECK(resample(std::vector<float>(7, 1.0f), 3, 2).size() == 5);  // ceil(7 * 2 / 3)
  CHECK(resample({}, 22050, 16000).empty());
  const auto same = sine_tone(50, 1000, 100);
  CHECK(resample(same, 1000, 1000) == same);
}

TEST_CASE("resample: rates with a large reduced denominator (no tabulation) give the same tone") {
  // 44100 -> 16001: dst / gcd = 16001 phases, computed on the fly.
  const auto y = resample(sine_tone(1000, 44100, 22050), 44100, 16001, 8);
  const Fit r = fit_tone(y, 1000, 16001, 32);
  CHECK(r.amp == doctest::Approx(1.0).epsilon(2e-3));
  CHECK(r.max_err < 5e-3);
}

TEST_CASE("resample: deterministic") {
  const auto x = sine_tone(1234.5, 22050, 3000);
  CHECK(resample(x, 22050, 16000) == resample(x, 22050, 16000));
}

TEST_CASE("resample: invalid arguments name the argument") {
  const std::vector<float> x(100, 0.0f);
  auto msg = [&](auto&& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  CHECK(msg([&] { resample(x, 0, 16000); }).find("src_rate") != std::string::npos);
  CHECK(msg([&] { resample(x, 16000, -1); }).find("dst_rate") != std::string::npos);
  CHECK(msg([&] { resample(x, 22050, 16000, 0); }).find("half_width") != std::string::npos);
  CHECK(msg([&] { resample(x, 22050, 16000, 16, 1.5); }).find("rolloff") != std::string::npos);
  CHECK(msg([&] { resample(x, 22050, 16000, 16, 0.9, -1.0); }).find("kaiser_beta") != std::string::npos);
  auto bad = x;
  bad[42] = std::nanf("");
  CHECK(msg([&] { resample(bad, 22050, 16000); }).find("index 42") != std::string::npos);
}
