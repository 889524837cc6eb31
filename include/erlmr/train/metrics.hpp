// erlmr/train/metrics.hpp — accuracy, macro-F1, confidence ratio.
#pragma once
#include <cstdint>
#include <vector>

#include "erlmr/core/tensor.hpp"

namespace erlmr::train {

template <RealScalar R> std::vector<std::int64_t> argmax_rows(const Tensor<R>& logits) {
  const std::int64_t B = logits.shape()[0], K = logits.shape()[1];
  std::vector<std::int64_t> out(static_cast<std::size_t>(B));
  for (std::int64_t b = 0; b < B; ++b) {
    std::int64_t best = 0;
    for (std::int64_t k = 1; k < K; ++k)
      if (logits.data()[b * K + k] > logits.data()[b * K + best]) best = k;
    out[static_cast<std::size_t>(b)] = best;
  }
  return out;
}

inline double accuracy(const std::vector<std::int64_t>& pred, const std::vector<std::int64_t>& y) {
  if (y.empty()) return 0;
  std::int64_t ok = 0;
  for (std::size_t i = 0; i < y.size(); ++i) ok += pred[i] == y[i];
  return double(ok) / double(y.size());
}

// Macro-averaged F1 over the K classes (a class absent from both y and pred scores 0
// and still counts, as sklearn's f1_score(average="macro", zero_division=0) over labels 0..K−1).
inline double macro_f1(const std::vector<std::int64_t>& pred, const std::vector<std::int64_t>& y, std::int64_t K) {
  std::vector<double> tp(static_cast<std::size_t>(K)), fp(tp), fn(tp);
  for (std::size_t i = 0; i < y.size(); ++i) {
    if (pred[i] == y[i]) tp[static_cast<std::size_t>(y[i])] += 1;
    else {
      fp[static_cast<std::size_t>(pred[i])] += 1;
      fn[static_cast<std::size_t>(y[i])] += 1;
    }
  }
  double s = 0;
  for (std::size_t k = 0; k < tp.size(); ++k) {
    const double d = 2 * tp[k] + fp[k] + fn[k];
    s += d > 0 ? 2 * tp[k] / d : 0;
  }
  return s / double(K);
}

// Σ_b softmax(logits)[b, y_b]: the summed confidence in the true class (for ρ of spec §5).
template <RealScalar R> double true_class_confidence(const Tensor<R>& logits, const std::vector<std::int64_t>& y) {
  const std::int64_t B = logits.shape()[0], K = logits.shape()[1];
  double s = 0;
  for (std::int64_t b = 0; b < B; ++b) {
    const R* row = logits.data() + b * K;
    R mx = row[0];
    for (std::int64_t k = 1; k < K; ++k) mx = std::max(mx, row[k]);
    double z = 0;
    for (std::int64_t k = 0; k < K; ++k) z += std::exp(double(row[k] - mx));
    s += std::exp(double(row[y[static_cast<std::size_t>(b)]] - mx)) / z;
  }
  return s;
}

}  // namespace erlmr::train
