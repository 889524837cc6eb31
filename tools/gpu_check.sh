#!/usr/bin/env bash
# The GPU check of the CUDA backend, as one script for a machine with an NVIDIA GPU (the
# session's device tool; prepare with tools/gpu_deps.sh here and carry .devdeps):
#   1. configure and build the CUDA variant (sm_90 + PTX) with the carried dependencies,
#   2. run the GPU tests (CPU-vs-GPU ops, the PyTorch fixtures on the GPU, a short training run,
#      the trainer with every rebalancing method against the CPU),
#   3. time the ERL-MR step on the GPU (fused/faithful, batch 16 and 64; inference),
#   4. time the same steps in PyTorch on the same GPU (bench/pytorch/bench_step.py --device cuda).
# Everything is also written to ${OUT:-gpu-results}/.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-results}
mkdir -p "$out"
exec > >(tee "$out/gpu_check.log") 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
deps=$(pwd)/.devdeps
opts=(-DCMAKE_BUILD_TYPE=Release -DERLMR_CUDA=ON -DERLMR_SIMD=OFF -DERLMR_BUILD_EXAMPLES=OFF -DERLMR_BUILD_TOOLS=OFF
      -DERLMR_BUILD_BENCH=OFF -DCMAKE_CUDA_COMPILER="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")
if [ -d "$deps" ]; then
  opts+=(-DEigen3_DIR="$deps/share/eigen3/cmake" -Ddoctest_DIR="$deps/lib/cmake/doctest"
         -DZLIB_INCLUDE_DIR="$deps/include" -DZLIB_LIBRARY="$deps/lib/libz.a" -DCMAKE_CXX_FLAGS="-isystem $deps/include")
fi
t0=$(date +%s)
cmake -S . -B build-gpu "${opts[@]}" > "$out/configure.log" 2>&1 || { cat "$out/configure.log"; exit 1; }
cmake --build build-gpu -j "$(nproc)" --target test_cuda || exit 1
# The step timer lives in bench/ (built without Google Benchmark here).
c++ -std=c++20 -O3 -DNDEBUG -Iinclude -Ibench -isystem "$deps/include" -isystem "$deps/include/eigen3" -I/usr/local/cuda/include \
  bench/cuda_step_bench.cpp -o build-gpu/cuda_step_bench build-gpu/liberlmr_cuda.a \
  -L/usr/local/cuda/lib64 -lcublas -lcudart -lpthread "$deps/lib/libz.a" || exit 1
echo "build: $(( $(date +%s) - t0 )) s"
./build-gpu/tests/test_cuda; echo "test_cuda exit: $?"
./build-gpu/cuda_step_bench fused-b16 fused-b64 faithful-b16 faithful-b64 infer-b1 infer-b64 | tee "$out/erlmr_gpu.jsonl"
for c in fused-b16 fused-b64 faithful-b16 faithful-b64 infer-b1 infer-b64; do
  python3 bench/pytorch/bench_step.py --config "$c" --device cuda --seconds 3 --threads 16
done | tee "$out/pytorch_gpu.jsonl"
