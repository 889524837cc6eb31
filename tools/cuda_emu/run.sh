#!/usr/bin/env bash
# tools/cuda_emu/run.sh — builds the whole CUDA test program (tests/cuda/test_cuda_main.cpp,
# test_cuda_ops.cpp, test_cuda_model.cpp, test_cuda_kernels.cpp, test_cuda_train.cpp) against a CPU emulation of the CUDA runtime and
# cuBLAS (tools/cuda_emu/shim), with every src/cuda/*.cu rewritten into host C++ by
# rewrite.py, and runs it. Arguments are passed to the doctest program, e.g.
#   tools/cuda_emu/run.sh -tc='*optimisers*'        (one test case)
#   tools/cuda_emu/run.sh -s                        (report successful checks too)
#   tools/cuda_emu/run.sh --selftest                (check the emulator itself)
# Environment:
#   EMU_BUILD=dir   build directory (default /tmp/cuda_emu_build); objects are reused
#   EMU_OPT=-O1     optimisation of the kernel and test objects (default -O2)
#   EMU_G=-g        debug information (default -g1: line tables only, faster to build)
#   EMU_SYNC=1      run every device operation at once instead of at synchronisation
#   EMU_ORDER=reverse  run blocks and threads in reverse order (exposes order dependence)
#   EMU_NOCACHE=1   build (in $EMU_BUILD-nocache) with DeviceBlockCache caching disabled, so
#                   every allocation is fresh garbage and freed memory is unmapped
#   EMU_STATS=1     print per-kernel launch counts at exit
#   EMU_NO_RUN=1    build only
# Needs g++ (C++20), Eigen (/usr/include/eigen3), doctest, zlib, python3, make.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${EMU_BUILD:-/tmp/cuda_emu_build}
opt=${EMU_OPT:--O2}
override=""
if [ -n "${EMU_NOCACHE:-}" ]; then
  # A copy of runtime.hpp with the DeviceBlockCache's cache limit set to 0: every freed
  # block goes back to cudaFree (unmapped) and every allocation is fresh (0xFF garbage),
  # so reads of stale/uninitialised memory and use after free cannot hide behind reuse.
  build="$build-nocache"
  mkdir -p "$build/override/erlmr/cuda"
  sed 's/kMaxCachedBytes = std::size_t(4) << 30;/kMaxCachedBytes = 0;  \/\/ CUDA-EMU: EMU_NOCACHE/' \
    "$root/include/erlmr/cuda/runtime.hpp" > "$build/override/erlmr/cuda/runtime.hpp.new"
  grep -q "EMU_NOCACHE" "$build/override/erlmr/cuda/runtime.hpp.new" || { echo "EMU_NOCACHE: pattern not found" >&2; exit 1; }
  cmp -s "$build/override/erlmr/cuda/runtime.hpp.new" "$build/override/erlmr/cuda/runtime.hpp" ||
    mv "$build/override/erlmr/cuda/runtime.hpp.new" "$build/override/erlmr/cuda/runtime.hpp"
  override="-I$build/override"
fi
mkdir -p "$build/gen" "$build/obj"
common="${EMU_G:--g1} $opt -Wall -Wextra -Wno-unused-parameter -Wno-maybe-uninitialized -I$here/shim $override -I$root/include"
kern_flags="-std=c++17 $common -D__CUDACC__ -Wno-unknown-pragmas -I$build/gen"

# --selftest: check that the emulator catches what it claims to (tools/cuda_emu/selftest.cu)
if [ "${1:-}" = "--selftest" ]; then
  python3 "$here/rewrite.py" "$here/selftest.cu" "$build/selftest.cpp"
  g++ $kern_flags -rdynamic "$build/selftest.cpp" -o "$build/selftest" -lpthread
  exec "$build/selftest"
fi

# 1. rewrite the kernel sources (only files whose rewrite changed are touched)
for f in "$root"/src/cuda/*.cu "$root"/src/cuda/*.cuh; do
  b=$(basename "$f")
  case "$b" in *.cu) out="$build/gen/${b%.cu}.cpp" ;; *) out="$build/gen/$b" ;; esac
  python3 "$here/rewrite.py" "$f" "$out"
done
# drop rewrites of kernel files that no longer exist
for g in "$build"/gen/*.cpp; do
  [ -e "$root/src/cuda/$(basename "${g%.cpp}").cu" ] || rm -f "$g" "$build/obj/$(basename "${g%.cpp}").o"
done

# 2. a Makefile with header dependencies (-MMD), so reruns rebuild only what changed
test_flags="-std=c++20 $common -I/usr/include/eigen3 -I$root/tests -DERLMR_HAS_CUDA=1 -DERLMR_FIXTURE_DIR=\"$root/../shared/fixtures\""
{
  echo "all: $build/test_cuda_emu"
  objs=""
  for g in "$build"/gen/*.cpp; do
    o="$build/obj/k_$(basename "${g%.cpp}").o"
    objs="$objs $o"
    printf '%s: %s\n\tg++ %s -MMD -MP -c %s -o %s\n' "$o" "$g" "$kern_flags" "$g" "$o"
  done
  for t in test_cuda_main test_cuda_ops test_cuda_model test_cuda_kernels test_cuda_train; do
    o="$build/obj/t_$t.o"
    objs="$objs $o"
    printf '%s: %s\n\tg++ %s -MMD -MP -c %s -o %s\n' "$o" "$root/tests/cuda/$t.cpp" "${test_flags//\"/\\\"}" \
      "$root/tests/cuda/$t.cpp" "$o"
  done
  printf '%s: %s\n\tg++ -rdynamic -o %s %s -lz -lpthread\n' "$build/test_cuda_emu" "$objs" "$build/test_cuda_emu" "$objs"
  echo "-include $build/obj/*.d"
} > "$build/Makefile"

target="$build/test_cuda_emu"
make -s -f "$build/Makefile" -j"$(nproc)" "$target"
[ -n "${EMU_NO_RUN:-}" ] && exit 0

# 3. run (from the repository root, like ctest would run it from the build tree)
cd "$root"
exec "$target" "$@"
