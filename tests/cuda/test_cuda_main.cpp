// Entry point of the CUDA test executables: without a usable CUDA device the tests
// cannot run, so the program says why and exits with 77, which CTest reports as
// "skipped" (SKIP_RETURN_CODE) — never as passed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <string>

#include "erlmr/cuda/runtime.hpp"

int main(int argc, char** argv) {
  std::string why;
  if (!erlmr::cuda::available(&why)) {
    std::printf("SKIPPED: no usable CUDA device (%s); the CPU-vs-GPU tests did not run\n", why.c_str());
    return 77;
  }
  int dev = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&dev) == cudaSuccess && cudaGetDeviceProperties(&prop, dev) == cudaSuccess)
    std::printf("CUDA device %d: %s (sm_%d%d, %.1f GiB)\n", dev, prop.name, prop.major, prop.minor,
                double(prop.totalGlobalMem) / (1 << 30));
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
