// erlmr_step_bench — one configuration, one JSON line, for bench/compare.sh:
//   erlmr_step_bench --config fused-b16 --threads 2 --seconds 3
// prints {"config": ..., "ms_per_step": ..., "samples_per_s": ..., "peak_rss_mb": ..., "gflops": ...}
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "step_common.hpp"

int main(int argc, char** argv) {
  std::string config = "fused-b16";
  int threads = 0, warmup = 3;
  double seconds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--config") config = v;
    else if (k == "--threads") threads = std::stoi(v);
    else if (k == "--seconds") seconds = std::stod(v);
    else if (k == "--warmup") warmup = std::stoi(v);
    else {
      std::fprintf(stderr, "usage: erlmr_step_bench --config KIND-bN --threads N --seconds S [--warmup W]\n");
      return 2;
    }
  }
  try {
    if (threads > 0) erlmr::set_num_threads(threads);
    const auto c = erlmr::bench::StepConfig::parse(config);
    erlmr::bench::StepRunner r(c);
    for (int i = 0; i < warmup; ++i) r.run();
    int n = 0;
    const auto t0 = std::chrono::steady_clock::now();
    double el = 0;
    while (el < seconds || n < 3) {
      r.run();
      ++n;
      el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    const double ms = 1e3 * el / n;
    std::printf("{\"config\": \"%s\", \"ms_per_step\": %.3f, \"samples_per_s\": %.1f, \"peak_rss_mb\": %.1f, \"gflops\": %.2f, \"threads\": %d}\n",
                config.c_str(), ms, double(c.batch) * 1e3 / ms, double(ru.ru_maxrss) / 1024.0,
                erlmr::bench::step_flops(c) / (ms * 1e6), erlmr::num_threads());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "erlmr_step_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
