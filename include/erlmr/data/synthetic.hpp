// erlmr/data/synthetic.hpp — built-in synthetic inertial-sensor windows (docs/synthetic.md).
//
// 12 activities = 6 postures × 2 movement styles; class c has posture p = c/2 and style s = c%2.
// Each sample is an accelerometer window a (3 × T) and a gyroscope window w (3 × T):
//   a_k(t) = 1.5·G[p]_k + 0.4·sin(2π f_p t/T + φ) + σ_a·ε              (gravity: posture)
//   w_k(t) = β·(2s − 1)·S_k + κ·Q[p]_k + A·sin(2π f_s t/T + φ') + σ_g·ε  (rotation: style, weak posture)
// G[p] are the six axis directions ±x, ±y, ±z; Q[p] six other unit directions; S = (1, −1, 1)/√3;
// f_p = 1 + p/2 and f_s = 2 + 2s cycles per window; ε standard normal; φ, φ', A random per sample.
// Defaults σ_a = 0.8, σ_g = 1.6, β = 0.45, κ = 0.35. So the accelerometer is easy (posture at a
// glance) but blind to the style (alone it caps near 50 %); the gyroscope is the only modality that
// sees the style and also carries the posture, weakly and under heavy noise. Joint training fits
// the accelerometer first, after which the gyroscope encoder needs only the style and stays
// under-trained on the rest — the imbalance ERL-MR addresses (measured in docs/synthetic.md).
// Everything is drawn from a counter-based Generator: the same seed gives the same data.
#pragma once
#include <cmath>

#include "erlmr/data/dataset.hpp"

namespace erlmr::data {

struct SyntheticConfig {
  std::int64_t train = 2400, test = 1200, window = 64;
  std::uint64_t seed = 7;
  double acc_noise = 0.8, gyr_noise = 1.6, style_offset = 0.45, gyr_posture = 0.35;
};

template <RealScalar R> Split<R> synthetic_split(const SyntheticConfig& c, std::int64_t n, std::uint64_t stream) {
  constexpr int kClasses = 12;
  const std::int64_t T = c.window;
  Split<R> s;
  s.x1 = Tensor<R>(Shape{n, 1, 3, T});
  s.x2 = Tensor<R>(Shape{n, 1, 3, T});
  s.y.resize(static_cast<std::size_t>(n));
  static const double G[6][3] = {{1, 0, 0}, {-1, 0, 0}, {0, 1, 0}, {0, -1, 0}, {0, 0, 1}, {0, 0, -1}};
  const double r2 = 0.7071067811865476, r3 = 0.5773502691896258;
  const double Q[6][3] = {{r2, r2, 0}, {-r2, 0, r2}, {0, -r2, -r2}, {r2, 0, -r2}, {-r2, r2, 0}, {0, r2, -r2}};
  const double S[3] = {r3, -r3, r3};
  Generator g(c.seed * 1000003ULL + stream);
  const double two_pi = 6.283185307179586;
  for (std::int64_t i = 0; i < n; ++i) {
    // Per-sample counters: 8 uniforms, then 6T normals (3T per modality).
    const std::uint64_t o = g.reserve(static_cast<std::uint64_t>(8 + 6 * T));
    const int cls = static_cast<int>(g.uniform(o) * kClasses) % kClasses;
    const int p = cls / 2, st = cls % 2;
    const double phi = two_pi * g.uniform(o + 1), phi2 = two_pi * g.uniform(o + 2);
    const double amp = 0.3 + 0.4 * g.uniform(o + 3);
    const double fp = 1 + 0.5 * p, fs = 2.0 + 2.0 * st;
    s.y[static_cast<std::size_t>(i)] = cls;
    R* a = s.x1.data() + i * 3 * T;
    R* w = s.x2.data() + i * 3 * T;
    for (int k = 0; k < 3; ++k)
      for (std::int64_t t = 0; t < T; ++t) {
        const double u = double(t) / double(T);
        const std::uint64_t e = o + 8 + static_cast<std::uint64_t>(k * T + t);
        a[k * T + t] = R(1.5 * G[p][k] + 0.4 * std::sin(two_pi * fp * u + phi) + c.acc_noise * g.normal(2 * e));
        w[k * T + t] = R(c.style_offset * (2 * st - 1) * S[k] + c.gyr_posture * Q[p][k] + amp * std::sin(two_pi * fs * u + phi2) +
                         c.gyr_noise * g.normal(2 * e + 1));
      }
  }
  return s;
}

template <RealScalar R> Dataset<R> synthetic_sensor(const SyntheticConfig& c = {}) {
  Dataset<R> d;
  d.name = "synthetic-sensor";
  d.classes = 12;
  d.train = synthetic_split<R>(c, c.train, 1);
  d.test = synthetic_split<R>(c, c.test, 2);
  standardise(d.train.x1, d.test.x1);
  standardise(d.train.x2, d.test.x2);
  return d;
}

}  // namespace erlmr::data
