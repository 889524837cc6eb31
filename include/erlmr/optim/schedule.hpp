// erlmr/optim/schedule.hpp — learning-rate schedules, as functions of the epoch.
//
// MultiStep: lr = base·factorᵏ with k the number of milestones ≤ epoch (the
//   released code: ×0.9 after epochs 50, 100, 150; torch's MultiStepLR).
// Cosine: lr = min + (base − min)·(1 + cos(π·epoch/epochs))/2 (CosineAnnealingLR).
#pragma once
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace erlmr::optim {

struct Schedule {
  enum class Kind { constant, multistep, cosine } kind = Kind::multistep;
  double base = 1e-3;
  std::vector<int> milestones{50, 100, 150};
  double factor = 0.9;
  int epochs = 1;       // cosine period
  double min_lr = 0;

  double lr(int epoch) const {  // epoch counts from 0
    switch (kind) {
      case Kind::constant: return base;
      case Kind::multistep: {
        double l = base;
        for (int m : milestones)
          if (epoch >= m) l *= factor;
        return l;
      }
      case Kind::cosine: return min_lr + (base - min_lr) * (1 + std::cos(M_PI * epoch / std::max(1, epochs))) / 2;
    }
    return base;
  }
  static Kind parse(const std::string& s) {
    if (s == "step" || s == "multistep") return Kind::multistep;
    if (s == "cosine") return Kind::cosine;
    if (s == "constant" || s == "none") return Kind::constant;
    throw std::invalid_argument("unknown schedule '" + s + "' (expected step, cosine or constant)");
  }
};

}  // namespace erlmr::optim
