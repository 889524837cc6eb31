#!/usr/bin/env bash
# The README's two commands:
#   bash tools/run.sh demo   install what is missing, build, train ERL-MR and joint training on
#                            the built-in synthetic sensor data and print a comparison table
#   bash tools/run.sh test   install what is missing, build, run the whole test suite, check
#                            the benchmarks' syntax with clang, build and run the CUDA variant
#                            (nvcc, emulation), then the sanitizer (ASan + UBSan) build of the
#                            suite by clang and a short fuzzing run
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-demo}
jobs=$(nproc)
bash tools/setup.sh

build() {  # build DIR [cmake options...]
  local dir=$1; shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" > "$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; exit 1; }
  cmake --build "$dir" -j "$jobs"
}

case "$what" in
  demo)
    build build -DERLMR_BUILD_TESTS=OFF -DERLMR_BUILD_BENCH=OFF
    ./build/examples/complex_regression | tail -n 3
    ./build/tools/erlmr train --data synthetic --method erlmr,joint --epochs "${DEMO_EPOCHS:-12}" --lr 0.01 \
      --out runs/demo --no-progress
    ;;
  test)
    build build -DERLMR_BUILD_BENCH=OFF
    (cd build && ctest --output-on-failure -j "$jobs")
    # What the builds here do not compile with clang: the benchmarks (built by no CI step) and
    # the CUDA test program and step timer (built by g++ against the emulator's headers below,
    # and by nvcc's host compiler on a GPU machine). clang's syntax check of each, on the
    # emulator's headers for the CUDA files (a minute or two on 2 cores).
    clang_check=(clang++ -std=c++20 -fsyntax-only -march=native -Wall -Wextra -Wno-unused-parameter
                 -DERLMR_USE_XSIMD=1 -Iinclude -isystem /usr/include/eigen3)
    printf '%s\n' bench/bench_ops.cpp bench/bench_step.cpp bench/erlmr_step_bench.cpp \
      | xargs -P "$jobs" -I{} "${clang_check[@]}" {}
    "${clang_check[@]}" -DERLMR_OP_PROFILE bench/op_profile.cpp
    printf '%s\n' tests/cuda/*.cpp bench/cuda_step_bench.cpp | xargs -P "$jobs" -I{} "${clang_check[@]}" -Itools/cuda_emu/shim -Itests \
      -DERLMR_HAS_CUDA=1 "-DERLMR_FIXTURE_DIR=\"$(pwd)/../shared/fixtures\"" {}
    echo "clang syntax check of bench/ and tests/cuda/: passed"
    # The CUDA variant, whenever nvcc is present: kernels (sm_90 + PTX), the CUDA test program,
    # and its run (which reports "skipped", with the reason, on a machine without a GPU). Host
    # code is compiled at -O1 (-O0 would fail: GCC's AVX-512 blend intrinsics used by xsimd are
    # macros there): here the build checks that everything compiles and links against the real
    # CUDA headers and libraries, and the same tests run on the emulator below (a GPU machine
    # builds Release: tools/gpu_check.sh). ptxas still optimises the device code.
    nvcc=$(command -v nvcc || true)
    [ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
    if [ -n "$nvcc" ]; then
      cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-O1 -DCMAKE_CUDA_FLAGS_DEBUG=-O1 \
        -DERLMR_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" \
        -DERLMR_BUILD_BENCH=OFF -DERLMR_BUILD_EXAMPLES=OFF -DERLMR_BUILD_TOOLS=OFF > build-cuda.configure.log 2>&1 \
        || { cat build-cuda.configure.log; exit 1; }
      cmake --build build-cuda -j "$jobs" --target erlmr_cuda test_cuda
      (cd build-cuda && ctest --output-on-failure -R '^test_cuda$')
    else
      echo "nvcc not found: the CUDA variant is not built (docs/cuda.md)"
    fi
    # The same CUDA test program on a CPU emulation of the CUDA runtime and cuBLAS
    # (tools/cuda_emu): runs every kernel and the device ops and autograd on any machine.
    # The emulator's self-test first: it must catch the faults it claims to catch.
    EMU_BUILD="$(pwd)/build-cuda-emu" bash tools/cuda_emu/run.sh --selftest > build-cuda-emu.selftest.log 2>&1 \
      || { cat build-cuda-emu.selftest.log; exit 1; }
    tail -n 1 build-cuda-emu.selftest.log
    EMU_OPT=-O1 EMU_BUILD="$(pwd)/build-cuda-emu" bash tools/cuda_emu/run.sh
    # Sanitizers: the same suite built with -O1 -fsanitize=address,undefined (line tables only:
    # full debug info doubles the build time on 2 cores; reports still name file and line),
    # by clang: so the headers, the tests and the command line are also compiled, and the suite
    # run, by the second compiler (Debian 12's clang 14), and it builds in two thirds of GCC's
    # time (measured: 387 s against 571 s on 2 cores). Its own folder name: CMake answers a
    # compiler change in an existing build folder by dropping every other cached option
    # (ERLMR_SANITIZE among them), which would quietly turn the next run into a plain build.
    build build-asan-clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" \
      -DERLMR_SANITIZE=ON -DERLMR_BUILD_BENCH=OFF -DERLMR_BUILD_EXAMPLES=OFF
    (cd build-asan-clang && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      ctest --output-on-failure -j "$jobs")
    FUZZ_SECONDS=${FUZZ_SECONDS:-20} bash tools/fuzz.sh
    ;;
  *)
    echo "usage: bash tools/run.sh demo|test" >&2; exit 2 ;;
esac
