// tools/cuda_emu/selftest.cu — checks that the emulation itself catches what it claims
// to catch (run by `tools/cuda_emu/run.sh --selftest`). Each "must fail" case runs in a
// forked child and must die with the emulator's diagnostic.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <sys/wait.h>

#include <cfenv>
#include <cmath>
#include <cstdio>
#include <functional>
#include <vector>

static int failures = 0;
static void expect(bool ok, const char* what) {
  std::printf("%-70s %s\n", what, ok ? "ok" : "FAIL");
  if (!ok) ++failures;
}
// Runs f in a child; true if the child died with a non-zero status (the emulator's abort).
static bool dies(const std::function<void()>& f) {
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid == 0) {
    f();
    cudaDeviceSynchronize();
    std::_Exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

__device__ float tree(float v, float* sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int s = 128; s > 0; s >>= 1) {
    if (static_cast<int>(threadIdx.x) < s) sh[threadIdx.x] += sh[threadIdx.x + s];
    __syncthreads();
  }
  return sh[0];
}
__global__ void block_sum(const float* x, float* out) {
  __shared__ float sh[256];
  const float r = tree(x[blockIdx.x * 256 + threadIdx.x], sh);
  if (threadIdx.x == 0) out[blockIdx.x] = r;
}
__global__ void write_at(float* p, long i) {
  if (threadIdx.x == 0 && blockIdx.x == 0) p[i] = 1;
}
// 2-D block: each thread writes its transposed element through shared memory, twice
// (two barrier rounds), so a wrong threadIdx after a switch or a missed barrier shows.
__global__ void transpose2(const float* in, float* out) {
  __shared__ float t[8][16];
  const unsigned x = threadIdx.x, y = threadIdx.y;  // blockDim (16, 8)
  t[y][x] = in[y * 16 + x];
  __syncthreads();
  const unsigned i = y * 16 + x, r = i % 8, c = i / 8;  // out is 16 x 8
  const float v = t[r][c];
  __syncthreads();
  t[y][x] = 0;
  __syncthreads();
  out[c * 8 + r] = v + t[r][c];
}
__global__ void oob_in_fiber(float* p, long i) {
  __syncthreads();
  if (threadIdx.x == 5) p[i] = 1;
}
__device__ int deep(int n) {
  volatile char buf[256];
  buf[0] = static_cast<char>(n);
  return n == 0 ? buf[0] : deep(n - 1) + buf[0];
}
__global__ void stack_overflow(int* out) {
  __syncthreads();
  out[threadIdx.x] = deep(100000);
}
__global__ void change_rounding(float* p) {
  __syncthreads();
  if (threadIdx.x == 3) std::fesetround(FE_UPWARD);
}
__global__ void divergent(float* p) {
  if (threadIdx.x < 10) return;
  __syncthreads();
  p[threadIdx.x] = 1;
}

int main() {
  // barrier-correct block reduction, 3 blocks
  {
    std::vector<float> h(3 * 256);
    for (int i = 0; i < 3 * 256; ++i) h[i] = float(i % 7);
    float *x, *o;
    cudaMalloc((void**)&x, h.size() * 4);
    cudaMalloc((void**)&o, 3 * 4);
    cudaMemcpy(x, h.data(), h.size() * 4, cudaMemcpyHostToDevice);
    block_sum<<<3, 256>>>(x, o);
    float r[3];
    cudaMemcpy(r, o, 12, cudaMemcpyDeviceToHost);
    bool ok = true;
    for (int b = 0; b < 3; ++b) {
      float want = 0;
      for (int t = 0; t < 256; ++t) want += h[b * 256 + t];
      ok = ok && r[b] == want;
    }
    expect(ok, "shared-memory tree reduction with __syncthreads (fibers)");
  }
  {
    std::vector<float> h(128), r(128);
    for (int i = 0; i < 128; ++i) h[i] = float(i);
    float *in, *out;
    cudaMalloc((void**)&in, 128 * 4);
    cudaMalloc((void**)&out, 128 * 4);
    cudaMemcpy(in, h.data(), 128 * 4, cudaMemcpyHostToDevice);
    transpose2<<<1, dim3(16, 8)>>>(in, out);
    cudaMemcpy(r.data(), out, 128 * 4, cudaMemcpyDeviceToHost);
    bool ok = true;
    for (int a = 0; a < 8; ++a)  // in is 8 x 16 (row a, column b), out its transpose
      for (int b = 0; b < 16; ++b) ok = ok && r[b * 8 + a] == h[a * 16 + b];
    expect(ok, "2-D block shared-memory transpose with three __syncthreads");
  }
  // uninitialised device memory reads as NaN
  {
    float* p;
    cudaMalloc((void**)&p, 64);
    float h = 0;
    cudaMemcpy(&h, p, 4, cudaMemcpyDeviceToHost);
    expect(std::isnan(h), "fresh cudaMalloc memory is garbage (NaN)");
  }
  // asynchrony: an async D2H copy is not done before synchronisation
  {
    float* p;
    cudaMalloc((void**)&p, 4);
    const float one = 1;
    cudaMemcpy(p, &one, 4, cudaMemcpyHostToDevice);
    float h = 0;
    cudaMemcpyAsync(&h, p, 4, cudaMemcpyDeviceToHost, nullptr);
    const bool stale = h == 0;
    cudaDeviceSynchronize();
    expect(stale && h == 1, "cudaMemcpyAsync runs at synchronisation, not at the call");
  }
  // launch configuration errors
  {
    float* p;
    cudaMalloc((void**)&p, 4);
    cudaGetLastError();
    write_at<<<1, 2048>>>(p, 0);
    expect(cudaGetLastError() == cudaErrorInvalidConfiguration, "2048 threads per block: invalid configuration");
    expect(cudaGetLastError() == cudaSuccess, "launch error is cleared by cudaGetLastError");
  }
  // cuBLAS: argument checks and a product
  {
    cublasHandle_t h;
    cublasCreate(&h);
    double *a, *b, *c;
    cudaMalloc((void**)&a, 6 * 8);
    cudaMalloc((void**)&b, 6 * 8);
    cudaMalloc((void**)&c, 4 * 8);
    const double ha[6] = {1, 2, 3, 4, 5, 6}, hb[6] = {1, 0, 2, 1, 0, 1}, one = 1, zero = 0;
    cudaMemcpy(a, ha, 48, cudaMemcpyHostToDevice);
    cudaMemcpy(b, hb, 48, cudaMemcpyHostToDevice);
    // C (2x2) = A (2x3, ld 2) * B (3x2, ld 3), C uninitialised (NaN) and beta = 0
    expect(cublasDgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, a, 2, b, 3, &zero, c, 2) == CUBLAS_STATUS_SUCCESS,
           "Dgemm NN accepted");
    double hc[4];
    cudaMemcpy(hc, c, 32, cudaMemcpyDeviceToHost);
    // col-major A = [1 3 5; 2 4 6], B = [1 1; 0 0; 2 1]
    expect(hc[0] == 11 && hc[1] == 14 && hc[2] == 6 && hc[3] == 8, "Dgemm NN result (beta = 0 ignores NaN in C)");
    expect(cublasDgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, a, 1, b, 3, &zero, c, 2) ==
               CUBLAS_STATUS_INVALID_VALUE,
           "Dgemm lda < m rejected");
    expect(cublasDgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 2, 1, &one, a, 1, b, 1, &zero, c, 0) ==
               CUBLAS_STATUS_INVALID_VALUE,
           "Dgemm ldc = 0 rejected even for m = 1");
    // A (2x1) and B (1x3, ld 1) fit their allocations; C (2x3, ld 2) needs 6 doubles of c's 4.
    expect(dies([&] { cublasDgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 3, 1, &one, a, 2, b, 1, &zero, c, 2); }),
           "Dgemm whose C runs past its allocation is caught");
  }
  expect(dies([] {
           float* p;
           cudaMalloc((void**)&p, 16);
           std::printf("%f\n", p[0]);
         }),
         "host code dereferencing device memory is caught");
  expect(dies([] {
           float* p;
           cudaMalloc((void**)&p, 256);
           write_at<<<1, 32>>>(p, 64);
         }),
         "kernel writing past the end of an allocation is caught");
  expect(dies([] {
           float* p;
           cudaMalloc((void**)&p, 256);
           oob_in_fiber<<<2, 32>>>(p, 64);
         }),
         "out-of-bounds write in a barrier kernel (fibers) is caught");
  expect(dies([] {
           int* p;
           cudaMalloc((void**)&p, 256);
           stack_overflow<<<1, 4>>>(p);
         }),
         "fiber stack overflow is caught (guard page)");
#if defined(EMU_FIBER_ASM)
  expect(dies([] {
           float* p;
           cudaMalloc((void**)&p, 256);
           change_rounding<<<1, 8>>>(p);
         }),
         "kernel changing the FP control state (not kept per fiber) is caught");
#endif
  expect(dies([] {
           static float host[4];
           write_at<<<1, 32>>>(host, 0);
         }),
         "kernel given a host pointer is caught");
  expect(dies([] {
           float* p;
           cudaMalloc((void**)&p, 1024);
           divergent<<<1, 64>>>(p);
         }),
         "__syncthreads reached by only some threads is caught");
  std::printf("selftest: %d failure(s)\n", failures);
  return failures != 0;
}
