// tools/cuda_emu/shim/cublas_v2.h — cuBLAS S/D/C/Z GEMM emulated by a reference
// column-major GEMM, with cuBLAS's argument checks done at the call (as cuBLAS does,
// synchronously) and the product queued on the handle's stream like any device work.
//
//   C (m×n, ld ldc) = alpha·op(A)·op(B) + beta·C, op(A) m×k, op(B) k×n, column-major.
//   Checks: handle created; op ∈ {N, T, C}; m, n, k ≥ 0; lda ≥ max(1, op(A) == A ? m : k),
//   ldb ≥ max(1, op(B) == B ? k : n), ldc ≥ max(1, m) (CUBLAS_STATUS_INVALID_VALUE).
//   Quick return when m = 0 or n = 0, or (alpha = 0 or k = 0) and beta = 1.
//   beta = 0: C is not read (NaN in C does not propagate); alpha = 0: A and B not read.
//   Every element read or written must lie in the operand's device allocation (else a
//   CUDA-EMU error naming the operand), and A, B, C must be device pointers.
//   Pointer mode must be host (alpha/beta read at the call).
#pragma once
#include <complex>
#include <cstdint>
#include <string>
#include <vector>

#include "cuComplex.h"
#include "cuda_runtime_api.h"

typedef enum {
  CUBLAS_STATUS_SUCCESS = 0,
  CUBLAS_STATUS_NOT_INITIALIZED = 1,
  CUBLAS_STATUS_ALLOC_FAILED = 3,
  CUBLAS_STATUS_INVALID_VALUE = 7,
  CUBLAS_STATUS_ARCH_MISMATCH = 8,
  CUBLAS_STATUS_MAPPING_ERROR = 11,
  CUBLAS_STATUS_EXECUTION_FAILED = 13,
  CUBLAS_STATUS_INTERNAL_ERROR = 14,
  CUBLAS_STATUS_NOT_SUPPORTED = 15,
} cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 } cublasOperation_t;
typedef enum { CUBLAS_POINTER_MODE_HOST = 0, CUBLAS_POINTER_MODE_DEVICE = 1 } cublasPointerMode_t;
typedef enum { CUBLAS_ATOMICS_NOT_ALLOWED = 0, CUBLAS_ATOMICS_ALLOWED = 1 } cublasAtomicsMode_t;
typedef enum {
  CUBLAS_DEFAULT_MATH = 0,
  CUBLAS_TENSOR_OP_MATH = 1,
  CUBLAS_PEDANTIC_MATH = 2,
  CUBLAS_TF32_TENSOR_OP_MATH = 3,
} cublasMath_t;

struct cublasContext {
  cudaStream_t stream = nullptr;
  cublasPointerMode_t pointer_mode = CUBLAS_POINTER_MODE_HOST;
  cublasAtomicsMode_t atomics = CUBLAS_ATOMICS_NOT_ALLOWED;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
  bool live = true;
};
typedef cublasContext* cublasHandle_t;

inline cublasStatus_t cublasCreate(cublasHandle_t* h) {
  if (!h) return CUBLAS_STATUS_INVALID_VALUE;
  *h = new cublasContext();
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasDestroy(cublasHandle_t h) {
  if (!h || !h->live) return CUBLAS_STATUS_NOT_INITIALIZED;
  emu::flush();
  h->live = false;
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
  if (!h || !h->live) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!emu::valid_stream(s)) return CUBLAS_STATUS_INVALID_VALUE;
  h->stream = s;
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasSetPointerMode(cublasHandle_t h, cublasPointerMode_t m) {
  if (!h || !h->live) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (m != CUBLAS_POINTER_MODE_HOST && m != CUBLAS_POINTER_MODE_DEVICE) return CUBLAS_STATUS_INVALID_VALUE;
  h->pointer_mode = m;
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasSetAtomicsMode(cublasHandle_t h, cublasAtomicsMode_t m) {
  if (!h || !h->live) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->atomics = m;
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m) {
  if (!h || !h->live) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->math = m;
  return CUBLAS_STATUS_SUCCESS;
}
inline const char* cublasGetStatusName(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_(other)";
  }
}
inline const char* cublasGetStatusString(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    default: return "other error";
  }
}

namespace emu {
template <class T> T blas_conj(T v) { return v; }
template <class R> std::complex<R> blas_conj(std::complex<R> v) { return std::conj(v); }

inline void check_operand(const char* gemm, const char* name, const void* p, std::int64_t rows, std::int64_t cols,
                          std::int64_t ld, std::size_t elt) {
  if (rows == 0 || cols == 0) return;
  if (!p) fatal(std::string(gemm) + ": operand " + name + " is null");
  Alloc* a = find_alloc(p);
  if (!a) fatal(std::string(gemm) + ": operand " + name + " is not a device pointer");
  const std::size_t off = static_cast<const char*>(p) - a->base;
  const std::size_t last = static_cast<std::size_t>((cols - 1) * ld + rows - 1);  // elements
  if (off + (last + 1) * elt > a->size)
    fatal(std::string(gemm) + ": operand " + name + " (" + std::to_string(rows) + "x" + std::to_string(cols) +
          ", ld " + std::to_string(ld) + ") extends past its device allocation (" + std::to_string(a->size) +
          " bytes, operand at byte offset " + std::to_string(off) + ")");
}

template <class T>
cublasStatus_t ref_gemm(const char* name, cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                        int k, const T* alpha, const T* A, int lda, const T* B, int ldb, const T* beta, T* C, int ldc) {
  if (!h || !h->live) return CUBLAS_STATUS_NOT_INITIALIZED;
  auto valid_op = [](cublasOperation_t o) { return o == CUBLAS_OP_N || o == CUBLAS_OP_T || o == CUBLAS_OP_C; };
  auto mx = [](int a) { return a > 1 ? a : 1; };
  if (!valid_op(ta) || !valid_op(tb)) return CUBLAS_STATUS_INVALID_VALUE;
  if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (lda < mx(ta == CUBLAS_OP_N ? m : k) || ldb < mx(tb == CUBLAS_OP_N ? k : n) || ldc < mx(m)) {
    std::fprintf(stderr, "CUDA-EMU: %s invalid leading dimension: m=%d n=%d k=%d lda=%d ldb=%d ldc=%d ta=%d tb=%d\n", name,
                 m, n, k, lda, ldb, ldc, int(ta), int(tb));
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (h->pointer_mode != CUBLAS_POINTER_MODE_HOST) fatal(std::string(name) + ": emulation supports host pointer mode only");
  if (!alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
  if (is_device_ptr(alpha) || is_device_ptr(beta))
    fatal(std::string(name) + ": alpha/beta are device pointers while the pointer mode is host");
  const T al = *alpha, be = *beta;  // host pointer mode: read now
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  if ((al == T(0) || k == 0) && be == T(1)) return CUBLAS_STATUS_SUCCESS;
  const bool read_ab = !(al == T(0) || k == 0);
  if (read_ab) {
    check_operand(name, "A", A, ta == CUBLAS_OP_N ? m : k, ta == CUBLAS_OP_N ? k : m, lda, sizeof(T));
    check_operand(name, "B", B, tb == CUBLAS_OP_N ? k : n, tb == CUBLAS_OP_N ? n : k, ldb, sizeof(T));
  }
  check_operand(name, "C", C, m, n, ldc, sizeof(T));
  ++state().gemms;
  const cudaStream_t s = h->stream;
  (void)s;
  enqueue([=] {
    auto& st = state();
    st.current_op = std::string(name) + " (m=" + std::to_string(m) + " n=" + std::to_string(n) +
                    " k=" + std::to_string(k) + ")";
    {
      OpenSet o;
      if (read_ab) {
        o.add(A);
        o.add(B);
      }
      o.add(C);
      auto a = [&](int i, int l) -> T {
        return ta == CUBLAS_OP_N ? A[i + std::int64_t(l) * lda]
               : ta == CUBLAS_OP_T ? A[l + std::int64_t(i) * lda]
                                   : blas_conj(A[l + std::int64_t(i) * lda]);
      };
      auto b = [&](int l, int j) -> T {
        return tb == CUBLAS_OP_N ? B[l + std::int64_t(j) * ldb]
               : tb == CUBLAS_OP_T ? B[j + std::int64_t(l) * ldb]
                                   : blas_conj(B[j + std::int64_t(l) * ldb]);
      };
      // op(A) and op(B) copied so that each dot product reads two contiguous rows (row i
      // of op(A), column j of op(B)); the sums are the same, term by term and in order.
      std::vector<T> pa, pb;
      if (read_ab) {
        pa.resize(std::size_t(m) * k);
        pb.resize(std::size_t(n) * k);
        for (int l = 0; l < k; ++l)
          for (int i = 0; i < m; ++i) pa[std::size_t(i) * k + l] = a(i, l);
        for (int j = 0; j < n; ++j)
          for (int l = 0; l < k; ++l) pb[std::size_t(j) * k + l] = b(l, j);
      }
      auto store = [&](int i, int j, T acc) {
        T& c = C[i + std::int64_t(j) * ldc];
        c = be == T(0) ? al * acc : al * acc + be * c;
      };
      for (int j = 0; j < n; ++j) {
        const T* rb = read_ab ? pb.data() + std::size_t(j) * k : nullptr;
        int i = 0;
        if (read_ab)  // four rows at a time: four independent sums, each in its own order
          for (; i + 4 <= m; i += 4) {
            const T* r0 = pa.data() + std::size_t(i) * k;
            const T *r1 = r0 + k, *r2 = r1 + k, *r3 = r2 + k;
            T c0 = T(0), c1 = T(0), c2 = T(0), c3 = T(0);
            for (int l = 0; l < k; ++l) {
              const T bl = rb[l];
              c0 += r0[l] * bl;
              c1 += r1[l] * bl;
              c2 += r2[l] * bl;
              c3 += r3[l] * bl;
            }
            store(i, j, c0);
            store(i + 1, j, c1);
            store(i + 2, j, c2);
            store(i + 3, j, c3);
          }
        for (; i < m; ++i) {
          T acc = T(0);
          if (read_ab) {
            const T* ra = pa.data() + std::size_t(i) * k;
            for (int l = 0; l < k; ++l) acc += ra[l] * rb[l];
          }
          store(i, j, acc);
        }
      }
    }
    st.current_op.clear();
  });
  return CUBLAS_STATUS_SUCCESS;
}
}  // namespace emu

#define EMU_CUBLAS_GEMM(NAME, T, CT)                                                                                  \
  inline cublasStatus_t NAME(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,       \
                             const CT* al, const CT* A, int lda, const CT* B, int ldb, const CT* be, CT* C, int ldc) { \
    return emu::ref_gemm<T>(#NAME, h, ta, tb, m, n, k, reinterpret_cast<const T*>(al), reinterpret_cast<const T*>(A), \
                            lda, reinterpret_cast<const T*>(B), ldb, reinterpret_cast<const T*>(be),                  \
                            reinterpret_cast<T*>(C), ldc);                                                            \
  }
EMU_CUBLAS_GEMM(cublasSgemm, float, float)
EMU_CUBLAS_GEMM(cublasDgemm, double, double)
EMU_CUBLAS_GEMM(cublasCgemm, std::complex<float>, cuComplex)
EMU_CUBLAS_GEMM(cublasZgemm, std::complex<double>, cuDoubleComplex)
#undef EMU_CUBLAS_GEMM
