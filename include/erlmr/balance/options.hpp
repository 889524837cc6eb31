// erlmr/balance/options.hpp — every method's hyper-parameters, with the spec's defaults
// (../shared/spec/baselines.md). The command line exposes each as --<method>-<name>.
#pragma once
#include <string>

#include "erlmr/erl/step.hpp"

namespace erlmr::balance {

struct MethodOptions {
  erl::StepMode erlmr_mode = erl::StepMode::fused;  // erlmr: fused | faithful
  // ogm-ge
  double ogm_alpha = 0.1;
  int ogm_start = 0, ogm_end = 1 << 30;   // epochs (0-based, inclusive) where modulation is on
  // mmcosine
  double mmcosine_scale = 10;
  // pmr
  double pmr_alpha = 1.0;
  double pmr_momentum = 0.0;  // EMA of prototypes across epochs (0: recomputed each epoch)
  // agm
  double agm_alpha = 0.1;
  double agm_average = 0.9;   // running-average factor for r̄_u
  // mmpareto
  double mmpareto_boost = 1.5;
  // mla
  double mla_a0 = 0.1;
  // gblending
  int gb_super_epoch = 2;     // epochs between weight re-estimates
  double gb_holdout = 0.2;    // fraction of the training split held out to measure generalisation
  std::uint64_t seed = 42;
};

}  // namespace erlmr::balance
