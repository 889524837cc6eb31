// erlmr/data/audio.hpp — audio front end: log-mel spectrograms from waveforms (docs/audio.md).
//
// MelConfig parameters (the defaults are common speech settings: 16 kHz audio, 25 ms windows
// every 10 ms, a 512-point FFT, 64 mel bands over the full band 0 .. 8 kHz):
//   sample_rate  samples per second of the input waveform (Hz), > 0.
//   win_length   analysis window length in samples (400 = 25 ms at 16 kHz), 1 .. n_fft.
//   hop_length   samples between the starts of consecutive frames (160 = 10 ms), > 0.
//   n_fft        FFT size; each windowed frame is zero-padded to n_fft (the window of
//                win_length sits centred inside it, as torch.stft does); n_fft/2+1 bins.
//   n_mels       number of triangular mel filters (rows of the log-mel output), > 0.
//   f_min,f_max  frequency range (Hz) covered by the filterbank, 0 <= f_min < f_max <= sample_rate/2.
//   log_floor    power values below it are clamped to it before the natural log, > 0.
//   center       true: reflect-pad the waveform by n_fft/2 on both sides so frame t is centred
//                on sample t·hop_length (torch.stft(center=True, pad_mode='reflect'),
//                librosa's default); false: frames start at sample t·hop_length, no padding.
//
// Conventions (matched by tests/data/audio_reference/make_reference.py, numpy only):
//   * periodic Hann window w[n] = 0.5 − 0.5·cos(2πn/N), n = 0..N−1 (torch.hann_window,
//     scipy.signal.get_window('hann') i.e. sym=False);
//   * window of win_length zero-padded to n_fft with (n_fft − win_length)/2 zeros on the left;
//   * frames = 1 + (L_padded − n_fft)/hop_length (integer division), L_padded = L + 2·(n_fft/2)
//     with center, L without; reflect padding excludes the edge sample (numpy 'reflect');
//   * power spectrum |FFT(frame)|², unscaled forward FFT, bins 0 .. n_fft/2;
//   * HTK mel scale m(f) = 2595·log10(1 + f/700); n_mels+2 points equally spaced in mel between
//     m(f_min) and m(f_max), converted back to Hz; filter i is the triangle rising from point i
//     to 1 at point i+1 and falling to 0 at point i+2, evaluated at bin frequencies
//     k·sample_rate/n_fft: w = max(0, min((f − f_i)/(f_{i+1} − f_i), (f_{i+2} − f)/(f_{i+2} − f_{i+1}))).
//     No area (Slaney) normalisation: peaks are 1 and adjacent triangles sum to 1 between
//     their centres (torchaudio melscale_fbanks(norm=None, mel_scale='htk')). A filter narrower
//     than the bin spacing may contain no bin and be all zero; that is not an error.
//   * log_mel = ln(max(mel_power, log_floor)), shape n_mels × frames.
// Invalid arguments throw std::invalid_argument naming the parameter.
#pragma once

#include <Eigen/Dense>
#include <unsupported/Eigen/FFT>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstddef>
#include <numbers>
#include <stdexcept>
#include <string>
#include <vector>

namespace erlmr::data {

struct MelConfig {
  int sample_rate = 16000;  // Hz
  int win_length = 400;     // 25 ms at 16 kHz
  int hop_length = 160;     // 10 ms at 16 kHz
  int n_fft = 512;          // FFT size, >= win_length
  int n_mels = 64;          // mel bands
  double f_min = 0;         // Hz
  double f_max = 8000;      // Hz, <= sample_rate/2
  double log_floor = 1e-10; // clamp before the natural log
  bool center = true;       // reflect-pad by n_fft/2 like librosa/torchaudio
};

namespace detail {

inline void audio_check(bool ok, const std::string& param, const std::string& what) {
  if (!ok) throw std::invalid_argument("erlmr::data::audio: " + param + " " + what);
}

inline void validate(const MelConfig& c) {
  audio_check(c.sample_rate > 0, "sample_rate", "must be > 0, got " + std::to_string(c.sample_rate));
  audio_check(c.win_length > 0, "win_length", "must be > 0, got " + std::to_string(c.win_length));
  audio_check(c.hop_length > 0, "hop_length", "must be > 0, got " + std::to_string(c.hop_length));
  audio_check(c.n_fft >= c.win_length, "n_fft",
              "must be >= win_length (" + std::to_string(c.win_length) + "), got " + std::to_string(c.n_fft));
  audio_check(c.n_mels > 0, "n_mels", "must be > 0, got " + std::to_string(c.n_mels));
  audio_check(std::isfinite(c.f_min) && c.f_min >= 0, "f_min", "must be finite and >= 0, got " + std::to_string(c.f_min));
  audio_check(std::isfinite(c.f_max) && c.f_max <= c.sample_rate / 2.0, "f_max",
              "must be <= sample_rate/2 (" + std::to_string(c.sample_rate / 2.0) + "), got " + std::to_string(c.f_max));
  audio_check(c.f_max > c.f_min, "f_max", "must be > f_min (" + std::to_string(c.f_min) + "), got " + std::to_string(c.f_max));
  audio_check(std::isfinite(c.log_floor) && c.log_floor > 0, "log_floor",
              "must be finite and > 0, got " + std::to_string(c.log_floor));
}

inline double hz_to_mel(double f) { return 2595.0 * std::log10(1.0 + f / 700.0); }
inline double mel_to_hz(double m) { return 700.0 * (std::pow(10.0, m / 2595.0) - 1.0); }

}  // namespace detail

/// Periodic Hann window of n points: w[i] = 0.5 − 0.5·cos(2πi/n) (torch.hann_window,
/// scipy 'hann' with sym=False). n = 1 gives {1}, as torch and scipy do.
/// Throws std::invalid_argument for n <= 0.
inline std::vector<double> hann_window(int n) {
  detail::audio_check(n > 0, "n", "(window length) must be > 0, got " + std::to_string(n));
  std::vector<double> w(static_cast<std::size_t>(n), 1.0);
  if (n == 1) return w;
  for (int i = 0; i < n; ++i) w[i] = 0.5 - 0.5 * std::cos(2.0 * std::numbers::pi * i / n);
  return w;
}

/// Mel filterbank, n_mels × (n_fft/2+1): HTK mel scale, triangles with peak 1, no area
/// normalisation (see the header comment).
inline Eigen::MatrixXd mel_filterbank(const MelConfig& c) {
  detail::validate(c);
  const int bins = c.n_fft / 2 + 1;
  const double m_lo = detail::hz_to_mel(c.f_min), m_hi = detail::hz_to_mel(c.f_max);
  std::vector<double> pts(static_cast<std::size_t>(c.n_mels) + 2);
  for (int i = 0; i < c.n_mels + 2; ++i)
    pts[i] = detail::mel_to_hz(m_lo + (m_hi - m_lo) * i / (c.n_mels + 1));
  Eigen::MatrixXd fb = Eigen::MatrixXd::Zero(c.n_mels, bins);
  for (int m = 0; m < c.n_mels; ++m) {
    const double lo = pts[m], ce = pts[m + 1], hi = pts[m + 2];
    for (int k = 0; k < bins; ++k) {
      const double f = static_cast<double>(k) * c.sample_rate / c.n_fft;
      const double up = (f - lo) / (ce - lo), down = (hi - f) / (hi - ce);
      fb(m, k) = std::max(0.0, std::min(up, down));
    }
  }
  return fb;
}

/// Number of frames power_spectrogram produces for a waveform of n samples (no validation
/// beyond n and the config; n must satisfy the length requirement of power_spectrogram).
inline long long num_frames(std::size_t n, const MelConfig& c) {
  const long long padded = static_cast<long long>(n) + (c.center ? 2LL * (c.n_fft / 2) : 0LL);
  return 1 + (padded - c.n_fft) / c.hop_length;
}

/// Power spectrogram, frames × (n_fft/2+1): |FFT(window · frame)|², window of win_length centred
/// in n_fft, frames as torch.stft(center, pad_mode='reflect'). Requires a non-empty finite wave
/// longer than n_fft/2 samples with center (reflect padding), at least n_fft samples without.
inline Eigen::MatrixXd power_spectrogram(const std::vector<float>& wave, const MelConfig& c) {
  detail::validate(c);
  detail::audio_check(!wave.empty(), "wave", "must not be empty");
  for (std::size_t i = 0; i < wave.size(); ++i)
    detail::audio_check(std::isfinite(wave[i]), "wave", "has a non-finite sample at index " + std::to_string(i));
  const long long n = static_cast<long long>(wave.size());
  const int pad = c.center ? c.n_fft / 2 : 0;
  if (c.center)
    detail::audio_check(n > pad, "wave",
                        "must be longer than n_fft/2 (" + std::to_string(pad) + ") samples for reflect padding, got " +
                            std::to_string(n));
  else
    detail::audio_check(n >= c.n_fft, "wave",
                        "must have at least n_fft (" + std::to_string(c.n_fft) + ") samples when center is false, got " +
                            std::to_string(n));

  // Padded signal: reflect (edge sample not repeated), as numpy/torch 'reflect'.
  std::vector<double> x(static_cast<std::size_t>(n + 2LL * pad));
  for (long long i = 0; i < static_cast<long long>(x.size()); ++i) {
    long long j = i - pad;
    if (j < 0) j = -j;
    if (j >= n) j = 2 * (n - 1) - j;
    x[i] = static_cast<double>(wave[j]);
  }

  // Window of win_length centred in n_fft.
  const std::vector<double> hw = hann_window(c.win_length);
  std::vector<double> win(static_cast<std::size_t>(c.n_fft), 0.0);
  const int left = (c.n_fft - c.win_length) / 2;
  for (int i = 0; i < c.win_length; ++i) win[left + i] = hw[i];

  const long long frames = num_frames(wave.size(), c);
  const int bins = c.n_fft / 2 + 1;
  Eigen::MatrixXd P(frames, bins);
  Eigen::FFT<double> fft;
  std::vector<double> frame(static_cast<std::size_t>(c.n_fft));
  std::vector<std::complex<double>> spec;
  for (long long t = 0; t < frames; ++t) {
    const std::size_t s = static_cast<std::size_t>(t * c.hop_length);
    for (int i = 0; i < c.n_fft; ++i) frame[i] = win[i] * x[s + i];
    fft.fwd(spec, frame);
    for (int k = 0; k < bins; ++k) P(t, k) = std::norm(spec[k]);
  }
  return P;
}

/// Log-mel spectrogram, n_mels × frames: ln(max(mel_filterbank · powerᵀ, log_floor)).
inline Eigen::MatrixXd log_mel(const std::vector<float>& wave, const MelConfig& c) {
  const Eigen::MatrixXd P = power_spectrogram(wave, c);
  Eigen::MatrixXd M = mel_filterbank(c) * P.transpose();
  return M.unaryExpr([&](double v) { return std::log(std::max(v, c.log_floor)); });
}

}  // namespace erlmr::data
