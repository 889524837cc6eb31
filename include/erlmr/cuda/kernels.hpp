// erlmr/cuda/kernels.hpp — the host-callable entry points of the CUDA kernels.
//
// Every function here is defined in src/cuda/*.cu (compiled by nvcc into the
// `erlmr_cuda` library when ERLMR_CUDA=ON) and explicitly instantiated for the
// element types named next to it:
//   T: float, double, std::complex<float>, std::complex<double>
//   R: float, double
// Pointers are device pointers. Every call only *queues* work on cuda::stream()
// (runtime.hpp) and returns; results are read back by a device-to-host copy,
// which synchronises. Launch errors are thrown as cuda::CudaError.
//
// Determinism: no kernel uses atomics for floating-point sums. Each output of a
// reduction is summed by one thread, or by a fixed tree whose shape depends only
// on the problem size, so results are bitwise reproducible run to run.
//
// This header includes no CUDA header: host code declaring these calls needs
// neither nvcc nor the CUDA include directory.
#pragma once
#include <complex>
#include <cstdint>

namespace erlmr::cuda {

// A row-major shape as the kernels see it (rank ≤ 8).
struct Dims {
  int rank = 0;
  std::int64_t d[8] = {};
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= d[i];
    return n;
  }
};

// ---- elementwise.cu ---------------------------------------------------------------
template <class T> void fill(T* p, std::int64_t n, T v);
template <class T> void add_inplace(T* dst, const T* src, std::int64_t n);       // dst += src
template <class T> void scale(const T* x, T k, T* out, std::int64_t n);          // out = k·x
template <class T> void add_scalar(const T* x, T k, T* out, std::int64_t n);     // out = x + k
template <class T> void axpy(T* y, T a, const T* x, std::int64_t n);            // y += a·x
// NumPy broadcast copy of x (shape xs) to shape os (xs broadcasts to os; same rank
// not required: trailing axes align).
template <class T> void expand(const T* x, const Dims& xs, T* out, const Dims& os);
// The adjoint of expand: out (shape os, which broadcasts to gs) gets, for each of its
// elements, the sum of the elements of g that broadcast from it, summed by one thread
// in increasing row-major index order.
template <class T> void sum_to(const T* g, const Dims& gs, T* out, const Dims& os);

enum class Binary { add, sub, mul, div, mul_conj, div_conj };  // mul_conj: a·conj(b); div_conj: a/conj(b)
// out = a op b, a (shape as) and b (shape bs) broadcast to os.
template <class T> void binary(Binary op, const T* a, const Dims& as, const T* b, const Dims& bs, T* out, const Dims& os);

// relu and abs are for real T only (abs of a complex tensor is abs_complex below).
enum class Unary { neg, exp, log, sqrt, sin, cos, tanh, sigmoid, relu, abs, conj };
template <class T> void unary(Unary op, const T* x, T* out, std::int64_t n);
// out = G·conj(f'(x)) (real: G·f'(x)) given x, y = f(x) and G; relu: G·1[x > 0];
// abs (real): G·sign(x) with sign(0) = 0; conj: conj(G).
template <class T> void unary_backward(Unary op, const T* x, const T* y, const T* g, T* out, std::int64_t n);

// ---- complex.cu (R) ----------------------------------------------------------------
// z = re + i·im; either pointer may be null (that part is 0).
template <class R> void make_complex(const R* re, const R* im, std::complex<R>* z, std::int64_t n);
template <class R> void real_part(const std::complex<R>* z, R* out, std::int64_t n);
template <class R> void imag_part(const std::complex<R>* z, R* out, std::int64_t n);
// z = μ·exp(iθ), μ (ms) and θ (ts) broadcast to zs.
template <class R>
void euler(const R* mu, const Dims& ms, const R* th, const Dims& ts, std::complex<R>* z, const Dims& zs);
// Full-shape (zs) adjoints of euler: g_mu = Re(conj(G)·exp(iθ)), g_th = Im(G)·Re(z) − Re(G)·Im(z),
// with θ read through its broadcast (ts → zs). Either output may be null.
template <class R>
void euler_backward(const std::complex<R>* g, const std::complex<R>* z, const R* th, const Dims& ts, R* g_mu, R* g_th,
                    const Dims& zs);
template <class R> void abs_complex(const std::complex<R>* z, R* out, std::int64_t n);  // |z|
// G_z = G·z/|z| (0 where z = 0).
template <class R> void abs_complex_backward(const std::complex<R>* z, const R* g, std::complex<R>* out, std::int64_t n);
template <class R> void arg(const std::complex<R>* z, R* out, std::int64_t n);  // atan2(Im z, Re z); arg 0 = 0
// G_z = i·G·z/|z|² (0 where z = 0).
template <class R> void arg_backward(const std::complex<R>* z, const R* g, std::complex<R>* out, std::int64_t n);
// CReLU(z) = relu(Re z) + i·relu(Im z); backward: Re(G)·1[Re z > 0] + i·Im(G)·1[Im z > 0].
template <class R> void crelu(const std::complex<R>* z, std::complex<R>* out, std::int64_t n);
template <class R>
void crelu_backward(const std::complex<R>* z, const std::complex<R>* g, std::complex<R>* out, std::int64_t n);
// out = z·r, complex z (zs) times real r (rs), broadcast to os.
template <class R>
void mul_complex_real(const std::complex<R>* z, const Dims& zs, const R* r, const Dims& rs, std::complex<R>* out,
                      const Dims& os);
// out = Re(conj(g)·z), g and z both of shape os (z read through its broadcast zs → os).
template <class R>
void re_conj_mul(const std::complex<R>* g, const std::complex<R>* z, const Dims& zs, R* out, const Dims& os);
// (rows, cols) complex -> (2·rows, cols) real: the Re rows, then the Im rows; and back.
template <class R> void deinterleave(const std::complex<R>* z, std::int64_t rows, std::int64_t cols, R* out);
template <class R> void interleave(const R* stacked, std::int64_t rows, std::int64_t cols, std::complex<R>* z);

// ---- reduce.cu -----------------------------------------------------------------------
// x viewed as (outer, n, inner): out[o, i] = Σ_k x[o, k, i], k increasing, one thread per output.
template <class T> void sum_axis(const T* x, std::int64_t outer, std::int64_t n, std::int64_t inner, T* out);
// Sum of all n elements into out[0]: a fixed two-level tree (per-block partial sums over
// fixed contiguous ranges, then one block sums the partials in order).
template <class T> void sum_all(const T* x, std::int64_t n, T* out);
// out[o, i] = max_k x[o, k, i]; idx[o, i] = the first maximising k (like torch.max(dim)).
template <class R>
void max_axis(const R* x, std::int64_t outer, std::int64_t n, std::int64_t inner, R* out, std::int64_t* idx);
// out (outer, n, inner) = 0 except out[o, idx[o, i], i] = g[o, i].
template <class R>
void max_axis_backward(const R* g, const std::int64_t* idx, std::int64_t outer, std::int64_t n, std::int64_t inner,
                       R* out);

// ---- shape.cu ------------------------------------------------------------------------
// For o < outer: dst[o, dst_start + k, :] = src[o, src_start + k, :] for k < len, rows of
// `inner` elements; src has src_mid and dst has dst_mid rows per outer index (concat,
// split, slice and their adjoints). Other elements of dst are untouched.
template <class T>
void copy_slab(const T* src, std::int64_t src_mid, std::int64_t src_start, T* dst, std::int64_t dst_mid,
               std::int64_t dst_start, std::int64_t outer, std::int64_t len, std::int64_t inner);
// out = x with axes a and b swapped (xs is x's shape).
template <class T> void swap_axes(const T* x, const Dims& xs, int a, int b, T* out);

// ---- random.cu -----------------------------------------------------------------------
// mask[i] = keep_scale if (philox_bits(seed, first + i) >> 8) >= threshold else 0, for i < total,
// with philox_bits exactly Generator::bits of core/rng.hpp (Philox4x32-10, word (c & 3) of block
// c >> 2, key = seed), so the mask equals the CPU's for the same (seed, first).
template <class R>
void dropout_mask(std::uint64_t seed, std::uint64_t first, std::int64_t total, std::uint32_t threshold, R keep_scale,
                  R* mask);
// out = x·mask per real part (complex x uses mask[2i] for Re and mask[2i+1] for Im).
template <class T> void apply_mask(const T* x, const void* mask, T* out, std::int64_t n);
// OGM-GE's gradient noise, in place: g[i] = R(k·double(g[i]) + sd·philox_normal(seed, first + i))
// for i < n, with philox_normal exactly Generator::normal of core/rng.hpp (up to the device
// libm's rounding), so g gets the CPU's noise for the same (seed, first) (balance/ogm_ge.hpp).
template <class R>
void add_normal_noise(R* g, std::int64_t n, double k, double sd, std::uint64_t seed, std::uint64_t first);

// ---- blas.cu (cuBLAS) ------------------------------------------------------------------
enum class Op { N, T, C };  // none, transpose, conjugate transpose (C = T for real types)
// Row-major C (m×n) = alpha·op(A)·op(B) + beta·C, where op(A) is m×k and op(B) is k×n and
// lda/ldb/ldc are the row strides of the stored A, B, C. Uses the S/D/C/Z GEMMs of cuBLAS
// on the library's handle (bound to cuda::stream()).
template <class T>
void gemm(Op ta, Op tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* A, std::int64_t lda,
          const T* B, std::int64_t ldb, T beta, T* C, std::int64_t ldc);

// ---- loss.cu (R) -----------------------------------------------------------------------
// Softmax (or log-softmax) over the middle axis of x viewed as (outer, n, inner), max-shifted.
template <class R>
void softmax_axis(const R* x, R* y, std::int64_t outer, std::int64_t n, std::int64_t inner, bool log);
// softmax: G_x = y·(G − Σ_k G·y); log-softmax: G_x = G − exp(y)·Σ_k G.
template <class R>
void softmax_axis_backward(const R* y, const R* g, R* out, std::int64_t outer, std::int64_t n, std::int64_t inner,
                           bool log);
// Mean cross-entropy of logits (B, K) against labels in [0, K): loss[0] = mean_b −log_softmax(x)[b, y_b];
// prob (B, K) receives softmax(x) for the backward pass. Labels are checked on the host.
template <class R> void cross_entropy(const R* logits, const std::int64_t* labels, std::int64_t B, std::int64_t K, R* loss, R* prob);
// out = g[0]·(prob − onehot(y))/B, g a device scalar.
template <class R>
void cross_entropy_backward(const R* prob, const std::int64_t* labels, std::int64_t B, std::int64_t K, const R* g, R* out);
// Cosine similarity along the middle axis of (outer, n, inner) (PyTorch's per-norm clamp):
// c[o, i] = Σ a·b / (max(‖a‖, eps)·max(‖b‖, eps)); na, nb receive the clamped norms.
template <class R>
void cosine_similarity(const R* a, const R* b, std::int64_t outer, std::int64_t n, std::int64_t inner, R eps, R* c,
                       R* na, R* nb);
// G_a = G·(b/(na nb) − c·a/na²) where ‖a‖ > eps, else G·b/(na nb); likewise G_b. Either output may be null.
template <class R>
void cosine_similarity_backward(const R* a, const R* b, const R* c, const R* na, const R* nb, const R* g,
                                std::int64_t outer, std::int64_t n, std::int64_t inner, R eps, R* ga, R* gb);

// ---- norm.cu (R) -----------------------------------------------------------------------
// Batch norm over axis 1 of x (N, C, inner), as ops/norm.hpp: training uses the batch
// statistics (biased variance) and updates running_mean/var (unbiased variance, momentum);
// evaluation uses the running statistics. Writes y, xhat and inv = 1/√(σ² + eps) per channel.
// One block per channel; the sums run in a fixed order.
template <class R>
void batch_norm(const R* x, const R* gamma, const R* beta, R* running_mean, R* running_var, std::int64_t N,
                std::int64_t C, std::int64_t inner, bool training, double momentum, double eps, R* y, R* xhat, R* inv);
// Training: G_x = γ·s·(G − mean(G) − x̂·mean(G·x̂)); evaluation: G_x = G·γ·s. G_γ = Σ G·x̂, G_β = Σ G.
// Any output may be null.
template <class R>
void batch_norm_backward(const R* g, const R* xhat, const R* gamma, const R* inv, std::int64_t N, std::int64_t C,
                         std::int64_t inner, bool training, R* gx, R* ggamma, R* gbeta);

// ---- conv.cu ---------------------------------------------------------------------------
struct ConvGeom {
  std::int64_t N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo;
};
// cols[(c·kh + i)·kw + j, (n·Ho + y)·Wo + x] = x[n, c, y·sh − ph + i, x·sw − pw + j] (0 outside).
template <class T> void im2col(const T* x, const ConvGeom& g, T* cols);
// The adjoint: x[n, c, h, w] = Σ of the cols entries that read it, gathered by one thread per
// input element in a fixed (i, j) order (no atomics).
template <class T> void col2im(const T* cols, const ConvGeom& g, T* x);
// (O, N·HW) -> (N, O, HW) when to_nohw, else the reverse.
template <class T> void permute_onhw(const T* src, T* dst, std::int64_t n, std::int64_t o, std::int64_t hw, bool to_nohw);

// ---- gram.cu (R) ----------------------------------------------------------------------
// out[0] = Σ a², out[1] = Σ a·b, out[2] = Σ b², accumulated in double (as erl/mmc.hpp's
// host Gram), by a fixed two-level tree (fixed chunks, then one block in order). out is a
// device pointer to 3 doubles.
template <class R> void gram3(const R* a, const R* b, std::int64_t n, double* out);

// ---- optim.cu (R) ----------------------------------------------------------------------
// One SGD step, as optim/optimizer.hpp (weight decay, momentum with dampening, Nesterov);
// buf is the momentum buffer (ignored when momentum = 0), first marks its first use.
template <class R>
void sgd_step(R* p, const R* g, R* buf, std::int64_t n, double lr, double momentum, double dampening,
              double weight_decay, bool nesterov, bool first);
// One Adam (decoupled = false: g ← g + wd·p) or AdamW (decoupled: p ← p·(1 − lr·wd)) step, as
// optim/optimizer.hpp; bc1 = 1 − β1ᵗ and bc2 = 1 − β2ᵗ are computed by the caller in double.
template <class R>
void adam_step(R* p, const R* g, R* m, R* v, std::int64_t n, double lr, double beta1, double beta2, double eps,
               double weight_decay, bool decoupled, double bc1, double bc2);

}  // namespace erlmr::cuda
