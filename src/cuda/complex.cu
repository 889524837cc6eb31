// src/cuda/complex.cu — building, taking apart and rectifying complex tensors (the
// kernels behind ops/complex.hpp), for R = float, double.
//
// Every kernel is a grid-stride loop computing each output element in one thread from
// its own inputs (inputs of a different shape are read through their broadcast with
// broadcast_offset), so there are no sums across threads and the results are bitwise
// reproducible. The per-element math is erlmr/cuda/functors.hpp (shared with the host
// tests).
#include "common.cuh"
#include "erlmr/cuda/functors.hpp"

namespace erlmr::cuda {
namespace {

using detail::BStrides;
using detail::dev;
using detail::kThreads;
template <class R> using Cx = ::cuda::std::complex<R>;

using detail::at;
using detail::bread;
using detail::BRead;
using detail::grid_first;
using detail::grid_stride;

// z[i] = re[i] + i·im[i], a null part read as 0.
template <class R> __global__ void make_complex_kernel(const R* re, const R* im, Cx<R>* z, std::int64_t n) {
  for (std::int64_t i = grid_first(); i < n; i += grid_stride()) z[i] = Cx<R>(re ? re[i] : R(0), im ? im[i] : R(0));
}
// out[i] = Re z[i] (imag = false) or Im z[i] (imag = true).
template <class R> __global__ void part_kernel(const Cx<R>* z, R* out, std::int64_t n, bool imag) {
  for (std::int64_t i = grid_first(); i < n; i += grid_stride()) out[i] = imag ? z[i].imag() : z[i].real();
}
// z[i] = μ·exp(iθ) with μ and θ read through their broadcasts to z's shape.
template <class R>
__global__ void euler_kernel(const R* mu, BRead bm, const R* th, BRead bt, Cx<R>* z, std::int64_t n) {
  for (std::int64_t i = grid_first(); i < n; i += grid_stride()) {
    R zr, zi;
    fn::euler(mu[at(bm, i)], th[at(bt, i)], zr, zi);
    z[i] = Cx<R>(zr, zi);
  }
}
// Full-shape adjoints of the Euler map (fn::euler_backward); null outputs are skipped.
template <class R>
__global__ void euler_backward_kernel(const Cx<R>* g, const Cx<R>* z, const R* th, BRead bt, R* g_mu, R* g_th,
                                      std::int64_t n) {
  for (std::int64_t i = grid_first(); i < n; i += grid_stride()) {
    const Cx<R> gv = g[i], zv = z[i];
    R gm, gt;
    fn::euler_backward(gv.real(), gv.imag(), zv.real(), zv.imag(), th[at(bt, i)], gm, gt);
    if (g_mu) g_mu[i] = gm;
    if (g_th) g_th[i] = gt;
  }
}
// out[i] = |z[i]|.
template <class R> __global__ void abs_kernel(const Cx<R>* z, R* out, std::int64_t n) {
  for (std::int64_t i = grid_first(); i < n; i += grid_stride()) out[i] = fn::complex_abs(z[i].real(), z[i].imag());
}
// out[i] = G·z/|z| (0 at z = 0).
template <class R> __global__ void abs_backward_kernel(const Cx<R>* z, const R* g, Cx<R>* out, std::int64_t n) {
  for (std::int64_t i = grid_first(); i < n; i += grid_stride()) {
    R gx, gy;
    fn::complex_abs_backward(z[i].real(), z[i].imag(), g[i], gx, gy);
    out[i] = Cx<R>(gx, gy);
  }
}
// out[i] = arg z[i] (arg 0 = 0).
template <class R> __global__ void arg_kernel(const Cx<R>* z, R* out, std::int64_t n) {
  for (std::int64_t i = grid_first(); i < n; i += grid_stride()) out[i] = fn::complex_arg(z[i].real(), z[i].imag());
}
// out[i] = i·G·z/|z|² (0 at z = 0).
template <class R> __global__ void arg_backward_kernel(const Cx<R>* z, const R* g, Cx<R>* out, std::int64_t n) {
  for (std::int64_t i = grid_first(); i < n; i += grid_stride()) {
    R gx, gy;
    fn::complex_arg_backward(z[i].real(), z[i].imag(), g[i], gx, gy);
    out[i] = Cx<R>(gx, gy);
  }
}
// out[i] = CReLU(z[i]).
template <class R> __global__ void crelu_kernel(const Cx<R>* z, Cx<R>* out, std::int64_t n) {
  for (std::int64_t i = grid_first(); i < n; i += grid_stride()) {
    R re, im;
    fn::crelu(z[i].real(), z[i].imag(), re, im);
    out[i] = Cx<R>(re, im);
  }
}
// out[i] = Re(G)·1[Re z > 0] + i·Im(G)·1[Im z > 0].
template <class R> __global__ void crelu_backward_kernel(const Cx<R>* z, const Cx<R>* g, Cx<R>* out, std::int64_t n) {
  for (std::int64_t i = grid_first(); i < n; i += grid_stride()) {
    R re, im;
    fn::crelu_backward(z[i].real(), z[i].imag(), g[i].real(), g[i].imag(), re, im);
    out[i] = Cx<R>(re, im);
  }
}
// out[i] = z[·]·r[·], both read through their broadcasts to out's shape.
template <class R>
__global__ void mul_complex_real_kernel(const Cx<R>* z, BRead bz, const R* r, BRead br, Cx<R>* out,
                                        std::int64_t n) {
  for (std::int64_t i = grid_first(); i < n; i += grid_stride()) {
    const Cx<R> zv = z[at(bz, i)];
    R re, im;
    fn::mul_complex_real(zv.real(), zv.imag(), r[at(br, i)], re, im);
    out[i] = Cx<R>(re, im);
  }
}
// out[i] = Re(conj(g[i])·z[·]), z read through its broadcast.
template <class R>
__global__ void re_conj_mul_kernel(const Cx<R>* g, const Cx<R>* z, BRead bz, R* out, std::int64_t n) {
  for (std::int64_t i = grid_first(); i < n; i += grid_stride()) {
    const Cx<R> gv = g[i], zv = z[at(bz, i)];
    out[i] = fn::re_conj_mul(gv.real(), gv.imag(), zv.real(), zv.imag());
  }
}
// (rows, cols) complex <-> (2·rows, cols) real stacked as [Re rows; Im rows]; one thread per
// complex element e = r·cols + c, whose parts sit at e and rows·cols + e of the stack.
template <class R> __global__ void deinterleave_kernel(const Cx<R>* z, std::int64_t n, R* out) {
  for (std::int64_t e = grid_first(); e < n; e += grid_stride()) {
    const Cx<R> v = z[e];
    out[e] = v.real();
    out[n + e] = v.imag();
  }
}
template <class R> __global__ void interleave_kernel(const R* stacked, std::int64_t n, Cx<R>* z) {
  for (std::int64_t e = grid_first(); e < n; e += grid_stride()) z[e] = Cx<R>(stacked[e], stacked[n + e]);
}

}  // namespace

template <class R> void make_complex(const R* re, const R* im, std::complex<R>* z, std::int64_t n) {
  if (n <= 0) return;
  make_complex_kernel<<<detail::blocks_for(n), kThreads, 0, stream()>>>(re, im, dev(z), n);
  check_launch("make_complex_kernel");
}

template <class R> void real_part(const std::complex<R>* z, R* out, std::int64_t n) {
  if (n <= 0) return;
  part_kernel<<<detail::blocks_for(n), kThreads, 0, stream()>>>(dev(z), out, n, false);
  check_launch("part_kernel(real)");
}

template <class R> void imag_part(const std::complex<R>* z, R* out, std::int64_t n) {
  if (n <= 0) return;
  part_kernel<<<detail::blocks_for(n), kThreads, 0, stream()>>>(dev(z), out, n, true);
  check_launch("part_kernel(imag)");
}

template <class R>
void euler(const R* mu, const Dims& ms, const R* th, const Dims& ts, std::complex<R>* z, const Dims& zs) {
  const std::int64_t n = zs.numel();
  if (n <= 0) return;
  euler_kernel<<<detail::blocks_for(n), kThreads, 0, stream()>>>(mu, bread(ms, zs), th,
                                                                 bread(ts, zs), dev(z), n);
  check_launch("euler_kernel");
}

template <class R>
void euler_backward(const std::complex<R>* g, const std::complex<R>* z, const R* th, const Dims& ts, R* g_mu, R* g_th,
                    const Dims& zs) {
  const std::int64_t n = zs.numel();
  if (n <= 0 || (!g_mu && !g_th)) return;
  euler_backward_kernel<<<detail::blocks_for(n), kThreads, 0, stream()>>>(dev(g), dev(z), th,
                                                                          bread(ts, zs), g_mu, g_th, n);
  check_launch("euler_backward_kernel");
}

template <class R> void abs_complex(const std::complex<R>* z, R* out, std::int64_t n) {
  if (n <= 0) return;
  abs_kernel<<<detail::blocks_for(n), kThreads, 0, stream()>>>(dev(z), out, n);
  check_launch("abs_kernel");
}

template <class R> void abs_complex_backward(const std::complex<R>* z, const R* g, std::complex<R>* out, std::int64_t n) {
  if (n <= 0) return;
  abs_backward_kernel<<<detail::blocks_for(n), kThreads, 0, stream()>>>(dev(z), g, dev(out), n);
  check_launch("abs_backward_kernel");
}

template <class R> void arg(const std::complex<R>* z, R* out, std::int64_t n) {
  if (n <= 0) return;
  arg_kernel<<<detail::blocks_for(n), kThreads, 0, stream()>>>(dev(z), out, n);
  check_launch("arg_kernel");
}

template <class R> void arg_backward(const std::complex<R>* z, const R* g, std::complex<R>* out, std::int64_t n) {
  if (n <= 0) return;
  arg_backward_kernel<<<detail::blocks_for(n), kThreads, 0, stream()>>>(dev(z), g, dev(out), n);
  check_launch("arg_backward_kernel");
}

template <class R> void crelu(const std::complex<R>* z, std::complex<R>* out, std::int64_t n) {
  if (n <= 0) return;
  crelu_kernel<<<detail::blocks_for(n), kThreads, 0, stream()>>>(dev(z), dev(out), n);
  check_launch("crelu_kernel");
}

template <class R>
void crelu_backward(const std::complex<R>* z, const std::complex<R>* g, std::complex<R>* out, std::int64_t n) {
  if (n <= 0) return;
  crelu_backward_kernel<<<detail::blocks_for(n), kThreads, 0, stream()>>>(dev(z), dev(g), dev(out), n);
  check_launch("crelu_backward_kernel");
}

template <class R>
void mul_complex_real(const std::complex<R>* z, const Dims& zs, const R* r, const Dims& rs, std::complex<R>* out,
                      const Dims& os) {
  const std::int64_t n = os.numel();
  if (n <= 0) return;
  mul_complex_real_kernel<<<detail::blocks_for(n), kThreads, 0, stream()>>>(
      dev(z), bread(zs, os), r, bread(rs, os), dev(out), n);
  check_launch("mul_complex_real_kernel");
}

template <class R>
void re_conj_mul(const std::complex<R>* g, const std::complex<R>* z, const Dims& zs, R* out, const Dims& os) {
  const std::int64_t n = os.numel();
  if (n <= 0) return;
  re_conj_mul_kernel<<<detail::blocks_for(n), kThreads, 0, stream()>>>(dev(g), dev(z), bread(zs, os),
                                                                       out, n);
  check_launch("re_conj_mul_kernel");
}

template <class R> void deinterleave(const std::complex<R>* z, std::int64_t rows, std::int64_t cols, R* out) {
  const std::int64_t n = rows * cols;
  if (n <= 0) return;
  deinterleave_kernel<<<detail::blocks_for(n), kThreads, 0, stream()>>>(dev(z), n, out);
  check_launch("deinterleave_kernel");
}

template <class R> void interleave(const R* stacked, std::int64_t rows, std::int64_t cols, std::complex<R>* z) {
  const std::int64_t n = rows * cols;
  if (n <= 0) return;
  interleave_kernel<<<detail::blocks_for(n), kThreads, 0, stream()>>>(stacked, n, dev(z));
  check_launch("interleave_kernel");
}

#define ERLMR_INST(R)                                                                                               \
  template void make_complex<R>(const R*, const R*, std::complex<R>*, std::int64_t);                                \
  template void real_part<R>(const std::complex<R>*, R*, std::int64_t);                                             \
  template void imag_part<R>(const std::complex<R>*, R*, std::int64_t);                                             \
  template void euler<R>(const R*, const Dims&, const R*, const Dims&, std::complex<R>*, const Dims&);              \
  template void euler_backward<R>(const std::complex<R>*, const std::complex<R>*, const R*, const Dims&, R*, R*,    \
                                  const Dims&);                                                                     \
  template void abs_complex<R>(const std::complex<R>*, R*, std::int64_t);                                           \
  template void abs_complex_backward<R>(const std::complex<R>*, const R*, std::complex<R>*, std::int64_t);          \
  template void arg<R>(const std::complex<R>*, R*, std::int64_t);                                                   \
  template void arg_backward<R>(const std::complex<R>*, const R*, std::complex<R>*, std::int64_t);                  \
  template void crelu<R>(const std::complex<R>*, std::complex<R>*, std::int64_t);                                   \
  template void crelu_backward<R>(const std::complex<R>*, const std::complex<R>*, std::complex<R>*, std::int64_t); \
  template void mul_complex_real<R>(const std::complex<R>*, const Dims&, const R*, const Dims&, std::complex<R>*,   \
                                    const Dims&);                                                                   \
  template void re_conj_mul<R>(const std::complex<R>*, const std::complex<R>*, const Dims&, R*, const Dims&);       \
  template void deinterleave<R>(const std::complex<R>*, std::int64_t, std::int64_t, R*);                            \
  template void interleave<R>(const R*, std::int64_t, std::int64_t, std::complex<R>*);
ERLMR_CUDA_FOR_R(ERLMR_INST)
#undef ERLMR_INST

}  // namespace erlmr::cuda
