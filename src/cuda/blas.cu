// src/cuda/blas.cu — gemm over cuBLAS (S/D/C/Z GEMM) for the row-major API of kernels.hpp.
//
// Row-major to column-major: a row-major matrix X with row stride ld is, read as
// column-major with leading dimension ld, the matrix Xᵀ. So the row-major product
// C = op(A)·op(B) is computed as the column-major product Cᵀ = op(B)ᵀ·op(A)ᵀ: the
// operands are swapped, m and n are swapped, and each operation flag passes through
// unchanged (stored B read column-major is Bᵀ; op_B = N gives (Bᵀ)=op(B)ᵀ, op_B = T
// gives (Bᵀ)ᵀ = B = op(B)ᵀ, op_B = C gives (Bᵀ)ᴴ = conj(B) = op(B)ᵀ; likewise for A).
//
// Determinism: one handle, one stream, atomics not allowed, and a fixed math mode per
// type, so cuBLAS picks the same kernel (and reduction order) for the same problem on
// the same GPU and library version every run.
#include <cublas_v2.h>

#include <climits>
#include <mutex>
#include <string>

#include "common.cuh"

namespace erlmr::cuda {

namespace detail {
namespace {  // internal to this file (no ODR clash with helpers of other kernel files)

inline void check_cublas(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw CudaError(std::string("cuBLAS: ") + what + ": " + cublasGetStatusName(s) + " (" + cublasGetStatusString(s) +
                    ")");
}

// The process's cuBLAS handle, created on first use (thread-safe static initialisation)
// and bound to cuda::stream(). It is never destroyed: device tensors (and the work
// queued for them) may outlive static destructors, as with DeviceBlockCache.
inline cublasHandle_t blas_handle() {
  static cublasHandle_t h = [] {
    cublasHandle_t t = nullptr;
    check_cublas(cublasCreate(&t), "cublasCreate");
    check_cublas(cublasSetStream(t, stream()), "cublasSetStream");
    check_cublas(cublasSetPointerMode(t, CUBLAS_POINTER_MODE_HOST), "cublasSetPointerMode");
    check_cublas(cublasSetAtomicsMode(t, CUBLAS_ATOMICS_NOT_ALLOWED), "cublasSetAtomicsMode");
    return t;
  }();
  return h;
}

// The math mode is a property of the shared handle and differs by type, so setting it
// and issuing the GEMM are done under one lock (calls from several host threads cannot
// interleave a mode change between another thread's set and GEMM).
inline std::mutex& blas_mutex() {
  static std::mutex m;
  return m;
}

inline cublasOperation_t to_cublas(Op op) {
  switch (op) {
    case Op::N: return CUBLAS_OP_N;
    case Op::T: return CUBLAS_OP_T;
    case Op::C: return CUBLAS_OP_C;  // for real types cuBLAS treats C as T
  }
  return CUBLAS_OP_N;
}

inline int to_int(std::int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX)
    throw CudaError(std::string("cuBLAS gemm: ") + what + " = " + std::to_string(v) + " is outside [0, INT_MAX]");
  return static_cast<int>(v);
}

// A leading dimension for a column-major (rows × cols) operand. cuBLAS demands
// ld ≥ max(1, rows) even where the stride is never used (one column, or no rows);
// there any ld the caller passed is equivalent, so it is raised to the minimum. In
// every other case the caller's ld is kept (and cuBLAS rejects an invalid one).
inline std::int64_t fix_ld(std::int64_t ld, std::int64_t rows, std::int64_t cols) {
  const std::int64_t need = rows > 1 ? rows : 1;
  if (ld < need && (cols <= 1 || rows == 0)) return need;
  return ld;
}

// k == 0: C = beta·C on the row-major m×n block with row stride ldc (beta = 0 writes 0,
// as BLAS does, without reading C). Done here rather than relying on cuBLAS's quick-return
// rules for k = 0.
template <class D>
__global__ void scale_matrix_kernel(D* c, std::int64_t m, std::int64_t n, std::int64_t ldc, D beta, bool zero) {
  const std::int64_t total = m * n;
  for (std::int64_t e = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; e < total;
       e += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t r = e / n, col = e % n;
    D& v = c[r * ldc + col];
    v = zero ? D{} : beta * v;
  }
}

inline cublasStatus_t gemm_call(cublasHandle_t h, cublasOperation_t a, cublasOperation_t b, int m, int n, int k,
                                const float* alpha, const float* A, int lda, const float* B, int ldb, const float* beta,
                                float* C, int ldc) {
  return cublasSgemm(h, a, b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
inline cublasStatus_t gemm_call(cublasHandle_t h, cublasOperation_t a, cublasOperation_t b, int m, int n, int k,
                                const double* alpha, const double* A, int lda, const double* B, int ldb,
                                const double* beta, double* C, int ldc) {
  return cublasDgemm(h, a, b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
// std::complex<R> has the layout of cuComplex / cuDoubleComplex (two R, real first).
inline cublasStatus_t gemm_call(cublasHandle_t h, cublasOperation_t a, cublasOperation_t b, int m, int n, int k,
                                const std::complex<float>* alpha, const std::complex<float>* A, int lda,
                                const std::complex<float>* B, int ldb, const std::complex<float>* beta,
                                std::complex<float>* C, int ldc) {
  return cublasCgemm(h, a, b, m, n, k, reinterpret_cast<const cuComplex*>(alpha), reinterpret_cast<const cuComplex*>(A),
                     lda, reinterpret_cast<const cuComplex*>(B), ldb, reinterpret_cast<const cuComplex*>(beta),
                     reinterpret_cast<cuComplex*>(C), ldc);
}
inline cublasStatus_t gemm_call(cublasHandle_t h, cublasOperation_t a, cublasOperation_t b, int m, int n, int k,
                                const std::complex<double>* alpha, const std::complex<double>* A, int lda,
                                const std::complex<double>* B, int ldb, const std::complex<double>* beta,
                                std::complex<double>* C, int ldc) {
  return cublasZgemm(h, a, b, m, n, k, reinterpret_cast<const cuDoubleComplex*>(alpha),
                     reinterpret_cast<const cuDoubleComplex*>(A), lda, reinterpret_cast<const cuDoubleComplex*>(B), ldb,
                     reinterpret_cast<const cuDoubleComplex*>(beta), reinterpret_cast<cuDoubleComplex*>(C), ldc);
}

inline const char* gemm_name(float*) { return "cublasSgemm"; }
inline const char* gemm_name(double*) { return "cublasDgemm"; }
inline const char* gemm_name(std::complex<float>*) { return "cublasCgemm"; }
inline const char* gemm_name(std::complex<double>*) { return "cublasZgemm"; }

}  // namespace
}  // namespace detail

template <class T>
void gemm(Op ta, Op tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* A, std::int64_t lda,
          const T* B, std::int64_t ldb, T beta, T* C, std::int64_t ldc) {
  using namespace detail;
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {  // op(A)·op(B) is the zero matrix: only C = beta·C remains
    if (beta == T(1)) return;
    using D = dev_t<T>;
    const bool zero = beta == T(0);
    scale_matrix_kernel<D><<<blocks_for(m * n), kThreads, 0, stream()>>>(dev(C), m, n, ldc, dev_value(beta), zero);
    check_launch("gemm (k = 0: scale C by beta)");
    return;
  }
  // Column-major view: Cᵀ (n×m, ld ldc) = op(B)ᵀ (n×k) · op(A)ᵀ (k×m).
  // Stored B read column-major: (n×k) when tb = N, else (k×n); stored A: (k×m) when ta = N, else (m×k).
  const std::int64_t b_rows = tb == Op::N ? n : k, b_cols = tb == Op::N ? k : n;
  const std::int64_t a_rows = ta == Op::N ? k : m, a_cols = ta == Op::N ? m : k;
  const int cm = to_int(n, "n"), cn = to_int(m, "m"), ck = to_int(k, "k");  // cuBLAS's m, n, k
  const int ildb = to_int(fix_ld(ldb, b_rows, b_cols), "ldb");
  const int ilda = to_int(fix_ld(lda, a_rows, a_cols), "lda");
  const int ildc = to_int(fix_ld(ldc, n, m), "ldc");

  cublasHandle_t h = blas_handle();
  std::lock_guard<std::mutex> lock(blas_mutex());
  // float uses CUBLAS_PEDANTIC_MATH: true fp32 products and sums, never TF32 tensor-core
  // math (not even when NVIDIA_TF32_OVERRIDE asks for it) — TF32 keeps ~10 mantissa bits,
  // and float32 results must agree with the CPU within ~1e-5. double and complex double
  // have no reduced-precision path, so CUBLAS_DEFAULT_MATH is already exact-type math;
  // complex float is treated like float.
  constexpr bool single = std::is_same_v<T, float> || std::is_same_v<T, std::complex<float>>;
  check_cublas(cublasSetMathMode(h, single ? CUBLAS_PEDANTIC_MATH : CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  check_cublas(gemm_call(h, to_cublas(tb), to_cublas(ta), cm, cn, ck, &alpha, B, ildb, A, ilda, &beta, C, ildc),
               gemm_name(static_cast<T*>(nullptr)));
}

#define ERLMR_INST_GEMM(T)                                                                                      \
  template void gemm<T>(Op, Op, std::int64_t, std::int64_t, std::int64_t, T, const T*, std::int64_t, const T*, \
                        std::int64_t, T, T*, std::int64_t);
ERLMR_CUDA_FOR_T(ERLMR_INST_GEMM)
#undef ERLMR_INST_GEMM

}  // namespace erlmr::cuda
