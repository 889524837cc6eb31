// Shared set-up for the per-method tests: the small synthetic set every method's training
// run uses, a short-run configuration, and the history as text for resume comparisons.
#pragma once
#include <erlmr/data/synthetic.hpp>
#include <erlmr/train/trainer.hpp>
#include <string>

namespace erlmr::test {

// 720 training / 240 test windows of length 24: every method learns in a few epochs.
inline data::Dataset<float> small_sensor_data() {
  data::SyntheticConfig c;
  c.train = 720;
  c.test = 240;
  c.window = 24;
  return data::synthetic_sensor<float>(c);
}

inline train::TrainConfig short_run(const std::string& method, int epochs = 5) {
  train::TrainConfig t;
  t.method = method;
  t.epochs = epochs;
  t.batch = 16;
  t.lr = 0.01;
  t.probe_epochs = 1;
  return t;
}

inline std::string history_csv(const train::Trainer<float>& t) {
  std::string s;
  for (const auto& h : t.history()) s += h.csv_line() + "\n";
  return s;
}

}  // namespace erlmr::test
