// src/cuda/elementwise.cu — fill, scalar arithmetic (scale, add_scalar, axpy),
// broadcasting copies (expand and its adjoint sum_to), broadcasting binary ops and the
// unary functions with their backward rules, for T = float, double, std::complex<float>,
// std::complex<double>.
//
// Every kernel is a grid-stride loop in which each output element is computed by one
// thread from its own inputs, so results do not depend on the launch geometry. The only
// sums (sum_to) are taken by one thread per output element in increasing row-major index
// order of g, the same order as the CPU's sum_to, with no atomics: bitwise reproducible.
// The per-element math is erlmr/cuda/functors.hpp (shared with the host tests).
#include <string>

#include "common.cuh"
#include "erlmr/cuda/functors.hpp"

namespace erlmr::cuda {
namespace {

using detail::BStrides;
using detail::dev;
using detail::dev_t;
using detail::dev_value;
using detail::is_cplx;
using detail::kThreads;

using detail::at;
using detail::bread;
using detail::BRead;
using detail::grid_first;
using detail::grid_stride;

// ---- plain elementwise ------------------------------------------------------------------
// p[i] = v.
template <class D> __global__ void fill_kernel(D* p, std::int64_t n, D v) {
  for (std::int64_t i = grid_first(); i < n; i += grid_stride()) p[i] = v;
}
// dst[i] += src[i].
template <class D> __global__ void add_inplace_kernel(D* dst, const D* src, std::int64_t n) {
  for (std::int64_t i = grid_first(); i < n; i += grid_stride()) dst[i] = dst[i] + src[i];
}
// out[i] = x[i]·k (complex: the plain product formula of fn::cmul).
template <class D> __global__ void scale_kernel(const D* x, D k, D* out, std::int64_t n) {
  for (std::int64_t i = grid_first(); i < n; i += grid_stride()) {
    if constexpr (is_cplx<D>::value) {
      typename D::value_type re, im;
      const D v = x[i];
      fn::cmul(v.real(), v.imag(), k.real(), k.imag(), re, im);
      out[i] = D(re, im);
    } else {
      out[i] = x[i] * k;
    }
  }
}
// y[i] += a·x[i] (complex: the product by fn::cmul, as scale_kernel).
template <class D> __global__ void axpy_kernel(D* y, D a, const D* x, std::int64_t n) {
  for (std::int64_t i = grid_first(); i < n; i += grid_stride()) {
    if constexpr (is_cplx<D>::value) {
      typename D::value_type re, im;
      const D v = x[i];
      fn::cmul(a.real(), a.imag(), v.real(), v.imag(), re, im);
      y[i] = y[i] + D(re, im);
    } else {
      y[i] = y[i] + a * x[i];
    }
  }
}
// out[i] = x[i] + k.
template <class D> __global__ void add_scalar_kernel(const D* x, D k, D* out, std::int64_t n) {
  for (std::int64_t i = grid_first(); i < n; i += grid_stride()) out[i] = x[i] + k;
}

// ---- broadcasting -----------------------------------------------------------------------
// out[i] = x[offset of the broadcast source of output element i].
template <class D> __global__ void expand_kernel(const D* x, BRead b, D* out, std::int64_t n) {
  for (std::int64_t i = grid_first(); i < n; i += grid_stride()) out[i] = x[at(b, i)];
}

// Geometry of sum_to: g's shape (rank r) with out's shape aligned to its trailing axes.
// Output element j fixes the index of every kept axis; the g elements that broadcast from
// it are those with any index along the broadcast axes (out extent 1, g extent ≠ 1),
// enumerated in row-major order over those axes, i.e. in increasing g index.
struct SumToGeom {
  int rank;                 // rank of g
  std::int64_t out_d[8];    // out extent per aligned axis (1 where out lacks the axis)
  std::int64_t g_stride[8]; // row-major stride of g per axis
  int nb;                   // number of broadcast axes
  std::int64_t b_ext[8];    // their g extents (outermost first)
  std::int64_t b_stride[8]; // their g strides
  std::int64_t count;       // product of b_ext: terms per output element
};

SumToGeom sum_to_geom(const Dims& gs, const Dims& os) {
  SumToGeom s{};
  s.rank = gs.rank;
  std::int64_t st = 1;
  for (int k = gs.rank - 1; k >= 0; --k) {
    s.g_stride[k] = st;
    st *= gs.d[k];
  }
  s.count = 1;
  for (int k = 0, off = gs.rank - os.rank; k < gs.rank; ++k) {
    const int j = k - off;
    const std::int64_t e = j >= 0 ? os.d[j] : 1;
    s.out_d[k] = e;
    if (e == 1 && gs.d[k] != 1) {
      s.b_ext[s.nb] = gs.d[k];
      s.b_stride[s.nb] = s.g_stride[k];
      ++s.nb;
      s.count *= gs.d[k];
    }
  }
  return s;
}

// out[j] = Σ of the g elements broadcast from out element j, one thread per j, added in
// increasing g index starting from 0 (the CPU's order), so the result is deterministic.
template <class D> __global__ void sum_to_kernel(const D* g, SumToGeom s, D* out, std::int64_t n) {
  for (std::int64_t j = grid_first(); j < n; j += grid_stride()) {
    std::int64_t base = 0, rest = j;
    for (int k = s.rank - 1; k >= 0; --k) {
      const std::int64_t e = s.out_d[k];
      base += (rest % e) * s.g_stride[k];  // broadcast axes have e = 1: index 0
      rest /= e;
    }
    D acc = D(0);
    std::int64_t idx[8] = {};
    std::int64_t off = base;
    for (std::int64_t m = 0; m < s.count; ++m) {
      acc = acc + g[off];
      for (int a = s.nb - 1; a >= 0; --a) {  // odometer over the broadcast axes
        if (++idx[a] < s.b_ext[a]) {
          off += s.b_stride[a];
          break;
        }
        off -= s.b_stride[a] * (s.b_ext[a] - 1);
        idx[a] = 0;
      }
    }
    out[j] = acc;
  }
}

// ---- binary -----------------------------------------------------------------------------
// out[i] = a[·] op b[·] with both operands read through their broadcasts.
template <Binary Op, class D>
__global__ void binary_kernel(const D* a, BRead ba, const D* b, BRead bb, D* out, std::int64_t n) {
  for (std::int64_t i = grid_first(); i < n; i += grid_stride()) {
    const D x = a[at(ba, i)];
    const D y = b[at(bb, i)];
    if constexpr (is_cplx<D>::value) {
      typename D::value_type re, im;
      fn::binary_complex(Op, x.real(), x.imag(), y.real(), y.imag(), re, im);
      out[i] = D(re, im);
    } else {
      out[i] = fn::binary_real(Op, x, y);
    }
  }
}

template <Binary Op, class T>
void launch_binary(const T* a, const Dims& as, const T* b, const Dims& bs, T* out, const Dims& os, std::int64_t n) {
  binary_kernel<Op><<<detail::blocks_for(n), kThreads, 0, stream()>>>(dev(a), bread(as, os), dev(b), bread(bs, os),
                                                                      dev(out), n);
  check_launch("binary_kernel");
}

// ---- unary ------------------------------------------------------------------------------
// out[i] = op(x[i]).
template <Unary Op, class D> __global__ void unary_kernel(const D* x, D* out, std::int64_t n) {
  for (std::int64_t i = grid_first(); i < n; i += grid_stride()) {
    const D v = x[i];
    if constexpr (is_cplx<D>::value) {
      typename D::value_type re, im;
      fn::unary_complex(Op, v.real(), v.imag(), re, im);
      out[i] = D(re, im);
    } else {
      out[i] = fn::unary_real(Op, v);
    }
  }
}

// Which of x and y = f(x) a backward rule reads (the other may be null).
__host__ __device__ constexpr bool backward_reads_x(Unary op) {
  return op == Unary::log || op == Unary::sin || op == Unary::cos || op == Unary::relu || op == Unary::abs;
}
__host__ __device__ constexpr bool backward_reads_y(Unary op) {
  return op == Unary::exp || op == Unary::sqrt || op == Unary::tanh || op == Unary::sigmoid;
}

// out[i] = G·conj(f'(x)) from x[i], y[i] and g[i] (see fn::unary_backward_*).
template <Unary Op, class D>
__global__ void unary_backward_kernel(const D* x, const D* y, const D* g, D* out, std::int64_t n) {
  for (std::int64_t i = grid_first(); i < n; i += grid_stride()) {
    const D xv = backward_reads_x(Op) ? x[i] : D(0);
    const D yv = backward_reads_y(Op) ? y[i] : D(0);
    const D gv = g[i];
    if constexpr (is_cplx<D>::value) {
      typename D::value_type re, im;
      fn::unary_backward_complex(Op, xv.real(), xv.imag(), yv.real(), yv.imag(), gv.real(), gv.imag(), re, im);
      out[i] = D(re, im);
    } else {
      out[i] = fn::unary_backward_real(Op, xv, yv, gv);
    }
  }
}

const char* unary_name(Unary op) {
  switch (op) {
    case Unary::neg: return "neg";
    case Unary::exp: return "exp";
    case Unary::log: return "log";
    case Unary::sqrt: return "sqrt";
    case Unary::sin: return "sin";
    case Unary::cos: return "cos";
    case Unary::tanh: return "tanh";
    case Unary::sigmoid: return "sigmoid";
    case Unary::relu: return "relu";
    case Unary::abs: return "abs";
    case Unary::conj: return "conj";
  }
  return "?";
}

// relu and abs have no complex version here (abs of a complex tensor is abs_complex).
template <class T> void check_unary_type(Unary op, const char* what) {
  if (is_cplx<dev_t<T>>::value && (op == Unary::relu || op == Unary::abs))
    throw CudaError(std::string("CUDA ") + what + ": " + unary_name(op) +
                    " is defined for real tensors only (use abs_complex or crelu for complex ones)");
}

// Calls f(std::integral_constant<Unary, op>) so that kernels are instantiated per op.
template <class F> void dispatch_unary(Unary op, F&& f) {
  switch (op) {
    case Unary::neg: f(std::integral_constant<Unary, Unary::neg>{}); return;
    case Unary::exp: f(std::integral_constant<Unary, Unary::exp>{}); return;
    case Unary::log: f(std::integral_constant<Unary, Unary::log>{}); return;
    case Unary::sqrt: f(std::integral_constant<Unary, Unary::sqrt>{}); return;
    case Unary::sin: f(std::integral_constant<Unary, Unary::sin>{}); return;
    case Unary::cos: f(std::integral_constant<Unary, Unary::cos>{}); return;
    case Unary::tanh: f(std::integral_constant<Unary, Unary::tanh>{}); return;
    case Unary::sigmoid: f(std::integral_constant<Unary, Unary::sigmoid>{}); return;
    case Unary::relu: f(std::integral_constant<Unary, Unary::relu>{}); return;
    case Unary::abs: f(std::integral_constant<Unary, Unary::abs>{}); return;
    case Unary::conj: f(std::integral_constant<Unary, Unary::conj>{}); return;
  }
  throw CudaError("CUDA unary: unknown op");
}

}  // namespace

template <class T> void fill(T* p, std::int64_t n, T v) {
  if (n <= 0) return;
  fill_kernel<<<detail::blocks_for(n), kThreads, 0, stream()>>>(dev(p), n, dev_value(v));
  check_launch("fill_kernel");
}

template <class T> void add_inplace(T* dst, const T* src, std::int64_t n) {
  if (n <= 0) return;
  add_inplace_kernel<<<detail::blocks_for(n), kThreads, 0, stream()>>>(dev(dst), dev(src), n);
  check_launch("add_inplace_kernel");
}

template <class T> void scale(const T* x, T k, T* out, std::int64_t n) {
  if (n <= 0) return;
  scale_kernel<<<detail::blocks_for(n), kThreads, 0, stream()>>>(dev(x), dev_value(k), dev(out), n);
  check_launch("scale_kernel");
}

template <class T> void add_scalar(const T* x, T k, T* out, std::int64_t n) {
  if (n <= 0) return;
  add_scalar_kernel<<<detail::blocks_for(n), kThreads, 0, stream()>>>(dev(x), dev_value(k), dev(out), n);
  check_launch("add_scalar_kernel");
}

template <class T> void axpy(T* y, T a, const T* x, std::int64_t n) {
  if (n <= 0) return;
  axpy_kernel<<<detail::blocks_for(n), kThreads, 0, stream()>>>(dev(y), dev_value(a), dev(x), n);
  check_launch("axpy_kernel");
}

template <class T> void expand(const T* x, const Dims& xs, T* out, const Dims& os) {
  const std::int64_t n = os.numel();
  if (n <= 0) return;
  expand_kernel<<<detail::blocks_for(n), kThreads, 0, stream()>>>(dev(x), bread(xs, os), dev(out), n);
  check_launch("expand_kernel");
}

template <class T> void sum_to(const T* g, const Dims& gs, T* out, const Dims& os) {
  const std::int64_t n = os.numel();
  if (n <= 0) return;
  if (os.rank > gs.rank) throw CudaError("CUDA sum_to: target rank exceeds the gradient's rank");
  sum_to_kernel<<<detail::blocks_for(n), kThreads, 0, stream()>>>(dev(g), sum_to_geom(gs, os), dev(out), n);
  check_launch("sum_to_kernel");
}

template <class T>
void binary(Binary op, const T* a, const Dims& as, const T* b, const Dims& bs, T* out, const Dims& os) {
  const std::int64_t n = os.numel();
  if (n <= 0) return;
  switch (op) {
    case Binary::add: launch_binary<Binary::add>(a, as, b, bs, out, os, n); return;
    case Binary::sub: launch_binary<Binary::sub>(a, as, b, bs, out, os, n); return;
    case Binary::mul: launch_binary<Binary::mul>(a, as, b, bs, out, os, n); return;
    case Binary::div: launch_binary<Binary::div>(a, as, b, bs, out, os, n); return;
    case Binary::mul_conj: launch_binary<Binary::mul_conj>(a, as, b, bs, out, os, n); return;
    case Binary::div_conj: launch_binary<Binary::div_conj>(a, as, b, bs, out, os, n); return;
  }
  throw CudaError("CUDA binary: unknown op");
}

template <class T> void unary(Unary op, const T* x, T* out, std::int64_t n) {
  check_unary_type<T>(op, "unary");
  if (n <= 0) return;
  dispatch_unary(op, [&](auto c) {
    unary_kernel<decltype(c)::value><<<detail::blocks_for(n), kThreads, 0, stream()>>>(dev(x), dev(out), n);
    check_launch("unary_kernel");
  });
}

template <class T> void unary_backward(Unary op, const T* x, const T* y, const T* g, T* out, std::int64_t n) {
  check_unary_type<T>(op, "unary_backward");
  if (n <= 0) return;
  dispatch_unary(op, [&](auto c) {
    unary_backward_kernel<decltype(c)::value>
        <<<detail::blocks_for(n), kThreads, 0, stream()>>>(dev(x), dev(y), dev(g), dev(out), n);
    check_launch("unary_backward_kernel");
  });
}

#define ERLMR_INST(T)                                                                                 \
  template void fill<T>(T*, std::int64_t, T);                                                         \
  template void add_inplace<T>(T*, const T*, std::int64_t);                                           \
  template void scale<T>(const T*, T, T*, std::int64_t);                                              \
  template void add_scalar<T>(const T*, T, T*, std::int64_t);                                         \
  template void axpy<T>(T*, T, const T*, std::int64_t);                                               \
  template void expand<T>(const T*, const Dims&, T*, const Dims&);                                    \
  template void sum_to<T>(const T*, const Dims&, T*, const Dims&);                                    \
  template void binary<T>(Binary, const T*, const Dims&, const T*, const Dims&, T*, const Dims&);     \
  template void unary<T>(Unary, const T*, T*, std::int64_t);                                          \
  template void unary_backward<T>(Unary, const T*, const T*, const T*, T*, std::int64_t);
ERLMR_CUDA_FOR_T(ERLMR_INST)
#undef ERLMR_INST

}  // namespace erlmr::cuda
