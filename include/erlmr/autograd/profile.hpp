// erlmr/autograd/profile.hpp — optional per-op timing of the graph (compile with
// -DERLMR_OP_PROFILE; without it every hook below is empty and costs nothing).
//
// Backward: the wall time of each rule, summed per op name (run_tape times every rule it runs).
// Forward: the wall time since the previous recorded op (or the last profile::mark()), summed
// under the name of the op being recorded — so an op's forward figure includes any untaped
// work (copies, index arithmetic) done just before it. Call mark() before a forward pass.
// The table lives in one process-wide map and is not thread-safe: ops are recorded and rules
// run on the calling thread (the pool's workers only run chunks inside them).
// bench/op_profile.cpp prints it for ERL-MR's step.
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <string>

namespace erlmr::profile {

struct OpTimes {
  double forward_ms = 0, backward_ms = 0;
  std::int64_t forward_calls = 0, backward_calls = 0;
};

#ifdef ERLMR_OP_PROFILE
inline constexpr bool kEnabled = true;
using Clock = std::chrono::steady_clock;
inline std::map<std::string, OpTimes>& table() {
  static std::map<std::string, OpTimes> t;
  return t;
}
inline Clock::time_point& last_mark() {
  static Clock::time_point t = Clock::now();
  return t;
}
inline double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }
inline void mark() { last_mark() = Clock::now(); }
inline void reset() {
  table().clear();
  mark();
}
inline void on_record(const char* op) {
  auto& e = table()[op];
  e.forward_ms += ms_since(last_mark());
  e.forward_calls += 1;
  mark();
}
// Times one rule: construct before it runs, finish(op) after.
struct RuleTimer {
  Clock::time_point t0 = Clock::now();
  void finish(const char* op) const {
    auto& e = table()[op];
    e.backward_ms += ms_since(t0);
    e.backward_calls += 1;
  }
};
#else
inline constexpr bool kEnabled = false;
inline std::map<std::string, OpTimes>& table() {
  static std::map<std::string, OpTimes> t;
  return t;
}
inline void mark() {}
inline void reset() {}
inline void on_record(const char*) {}
struct RuleTimer {
  void finish(const char*) const {}
};
#endif

}  // namespace erlmr::profile
