// erlmr/cuda/functors.hpp — the per-element math of the CUDA kernels.
//
// Every formula the elementwise and complex kernels apply to one element lives
// here, written on real scalars (a complex number is passed as its real and
// imaginary parts, results come back through references). The functions are
// ERLMR_HD: nvcc compiles them into the kernels (src/cuda/elementwise.cu,
// src/cuda/complex.cu), and a plain host compiler compiles the same code for the
// tests (tests/cuda/test_cuda_functors.cpp), which check it against the CPU ops.
//
// The formulas follow ops/elementwise.hpp and ops/complex.hpp (spec §2):
//   unary backward:  G_z = G·conj(f'(z)) (real: G·f'(z)), relu: G·1[x > 0],
//                    abs (real): G·sign(x) with sign(0) = 0, conj: conj(G);
//   complex division is C99 Annex G's algorithm (as compiler-rt's __divdc3):
//   scaled by a power of two against overflow, with the inf/0 recoveries.
//
// Math functions are called unqualified after using-declarations of the std ones:
// on the host they are <cmath>'s, under nvcc the CUDA device overloads.
// No CUDA header is included here.
#pragma once
#include <cmath>
#include <cstdint>

#include "erlmr/cuda/kernels.hpp"  // Unary, Binary (no CUDA headers)
#include "erlmr/cuda/philox.hpp"   // ERLMR_HD

namespace erlmr::cuda::fn {

using std::atan2;
using std::copysign;
using std::cos;
using std::cosh;
using std::exp;
using std::fabs;
using std::fmax;
using std::hypot;
using std::isfinite;
using std::isinf;
using std::isnan;
using std::log;
using std::logb;
using std::scalbn;
using std::sin;
using std::sinh;
using std::sqrt;
using std::tan;
using std::tanh;

template <class R> ERLMR_HD inline R inf_value() { return static_cast<R>(HUGE_VAL); }
template <class R> ERLMR_HD inline R nan_value() { return static_cast<R>(NAN); }

// ---- complex arithmetic on (re, im) pairs ----------------------------------------------
// (ar + i·ai)·(br + i·bi), the plain formula.
template <class R> ERLMR_HD inline void cmul(R ar, R ai, R br, R bi, R& re, R& im) {
  const R r = ar * br - ai * bi, i = ar * bi + ai * br;
  re = r;
  im = i;
}

// (a + i·b)/(c + i·d) by C99 Annex G (compiler-rt __divdc3): the divisor is scaled by
// 2^−⌊log₂ max(|c|, |d|)⌋ so neither the squares nor the quotient overflow needlessly,
// and a NaN result is repaired to the correct infinity or zero where one is defined.
template <class R> ERLMR_HD inline void cdiv(R a, R b, R c, R d, R& re, R& im) {
  int ilogbw = 0;
  const R logbw = logb(fmax(fabs(c), fabs(d)));
  if (isfinite(logbw)) {
    ilogbw = static_cast<int>(logbw);
    c = scalbn(c, -ilogbw);
    d = scalbn(d, -ilogbw);
  }
  const R denom = c * c + d * d;
  R x = scalbn((a * c + b * d) / denom, -ilogbw);
  R y = scalbn((b * c - a * d) / denom, -ilogbw);
  if (isnan(x) && isnan(y)) {
    const R inf = inf_value<R>();
    if (denom == R(0) && (!isnan(a) || !isnan(b))) {
      x = copysign(inf, c) * a;
      y = copysign(inf, c) * b;
    } else if ((isinf(a) || isinf(b)) && isfinite(c) && isfinite(d)) {
      a = copysign(isinf(a) ? R(1) : R(0), a);
      b = copysign(isinf(b) ? R(1) : R(0), b);
      x = inf * (a * c + b * d);
      y = inf * (b * c - a * d);
    } else if (isinf(logbw) && logbw > R(0) && isfinite(a) && isfinite(b)) {
      c = copysign(isinf(c) ? R(1) : R(0), c);
      d = copysign(isinf(d) ? R(1) : R(0), d);
      x = R(0) * (a * c + b * d);
      y = R(0) * (b * c - a * d);
    }
  }
  re = x;
  im = y;
}

// ---- complex elementary functions (x + i·y) --------------------------------------------
// exp(z) = e^x (cos y + i sin y); y = 0 gives (e^x, y) exactly (no ∞·0).
template <class R> ERLMR_HD inline void cexp(R x, R y, R& re, R& im) {
  if (y == R(0)) {
    re = exp(x);
    im = y;
    return;
  }
  const R e = exp(x);
  re = e * cos(y);
  im = e * sin(y);
}
// log(z) = log|z| + i·atan2(y, x) (principal branch).
template <class R> ERLMR_HD inline void clog(R x, R y, R& re, R& im) {
  const R r = log(hypot(x, y)), t = atan2(y, x);
  re = r;
  im = t;
}
// Principal square root: with t = √((|x| + |z|)/2), √z = (t, y/2t) for x ≥ 0 and
// (|y|/2t, ±t) for x < 0 (no cancellation in either case); √(0 + i·y) at y = 0 is (0, y).
template <class R> ERLMR_HD inline void csqrt(R x, R y, R& re, R& im) {
  if (x == R(0) && y == R(0)) {
    re = R(0);
    im = y;
    return;
  }
  const R t = sqrt(R(0.5) * fabs(x) + R(0.5) * hypot(x, y));
  if (x >= R(0)) {
    re = t;
    im = y / (R(2) * t);
  } else {
    re = fabs(y) / (R(2) * t);
    im = copysign(t, y);
  }
}
// sin z = sin x cosh y + i cos x sinh y.
template <class R> ERLMR_HD inline void csin(R x, R y, R& re, R& im) {
  const R r = sin(x) * cosh(y), i = cos(x) * sinh(y);
  re = r;
  im = i;
}
// cos z = cos x cosh y − i sin x sinh y.
template <class R> ERLMR_HD inline void ccos(R x, R y, R& re, R& im) {
  const R r = cos(x) * cosh(y), i = -(sin(x) * sinh(y));
  re = r;
  im = i;
}
// tanh z by Kahan's formula (as FreeBSD's ctanh): with t = tan y, β = 1 + t², s = sinh x,
// ρ = √(1 + s²): tanh z = (β·ρ·s + i·t)/(1 + β·s²); for |x| ≥ 22, tanh z = ±1 + i·4 sin y cos y e^{−2|x|}.
template <class R> ERLMR_HD inline void ctanh(R x, R y, R& re, R& im) {
  if (fabs(x) >= R(22)) {
    const R e = exp(-fabs(x));
    re = copysign(R(1), x);
    im = R(4) * sin(y) * cos(y) * e * e;
    return;
  }
  const R t = tan(y), beta = R(1) + t * t, s = sinh(x), rho = sqrt(R(1) + s * s), den = R(1) + beta * s * s;
  re = beta * rho * s / den;
  im = t / den;
}
// sigmoid z = 1/(1 + exp(−z)).
template <class R> ERLMR_HD inline void csigmoid(R x, R y, R& re, R& im) {
  R er, ei;
  cexp(-x, -y, er, ei);
  cdiv(R(1), R(0), R(1) + er, ei, re, im);
}

// ---- unary ops: forward ------------------------------------------------------------------
// y = op(x) for real x. relu keeps NaN and −0 like the CPU's max(x, 0) (x < 0 ? 0 : x).
template <class R> ERLMR_HD inline R unary_real(Unary op, R x) {
  switch (op) {
    case Unary::neg: return -x;
    case Unary::exp: return exp(x);
    case Unary::log: return log(x);
    case Unary::sqrt: return sqrt(x);
    case Unary::sin: return sin(x);
    case Unary::cos: return cos(x);
    case Unary::tanh: return tanh(x);
    case Unary::sigmoid: return R(1) / (R(1) + exp(-x));
    case Unary::relu: return x < R(0) ? R(0) : x;
    case Unary::abs: return fabs(x);
    case Unary::conj: return x;
  }
  return x;
}
// (re, im) = op(x + i·y) for complex z. relu and abs are not complex ops (the host entry
// point refuses them); here they give NaN.
template <class R> ERLMR_HD inline void unary_complex(Unary op, R x, R y, R& re, R& im) {
  switch (op) {
    case Unary::neg: re = -x; im = -y; return;
    case Unary::exp: cexp(x, y, re, im); return;
    case Unary::log: clog(x, y, re, im); return;
    case Unary::sqrt: csqrt(x, y, re, im); return;
    case Unary::sin: csin(x, y, re, im); return;
    case Unary::cos: ccos(x, y, re, im); return;
    case Unary::tanh: ctanh(x, y, re, im); return;
    case Unary::sigmoid: csigmoid(x, y, re, im); return;
    case Unary::conj: re = x; im = -y; return;
    case Unary::relu:
    case Unary::abs: break;
  }
  re = nan_value<R>();
  im = nan_value<R>();
}

// ---- unary ops: backward -----------------------------------------------------------------
// G_x = G·f'(x) for real x, given x, y = f(x) and G (same expressions as ops/elementwise.hpp).
template <class R> ERLMR_HD inline R unary_backward_real(Unary op, R x, R y, R g) {
  switch (op) {
    case Unary::neg: return -g;
    case Unary::exp: return g * y;                  // f' = e^x = y
    case Unary::log: return g / x;                  // f' = 1/x
    case Unary::sqrt: return g / (R(2) * y);        // f' = 1/(2√x)
    case Unary::sin: return g * cos(x);             // f' = cos x
    case Unary::cos: return -g * sin(x);            // f' = −sin x
    case Unary::tanh: return g * (R(1) - y * y);    // f' = 1 − y²
    case Unary::sigmoid: return g * (y * (R(1) - y));  // f' = y(1 − y)
    case Unary::relu: return x > R(0) ? g : R(0);   // 0 at the kink
    case Unary::abs: return g * (R(x > R(0)) - R(x < R(0)));  // sign(x), sign(0) = 0
    case Unary::conj: return g;
  }
  return g;
}
// G_z = G·conj(f'(z)) for complex z = xr + i·xi, y = f(z), G = gr + i·gi; conj: conj(G).
template <class R>
ERLMR_HD inline void unary_backward_complex(Unary op, R xr, R xi, R yr, R yi, R gr, R gi, R& re, R& im) {
  switch (op) {
    case Unary::neg: re = -gr; im = -gi; return;
    case Unary::exp: cmul(gr, gi, yr, -yi, re, im); return;                    // G·conj(y)
    case Unary::log: cdiv(gr, gi, xr, -xi, re, im); return;                    // G/conj(z)
    case Unary::sqrt: cdiv(gr, gi, R(2) * yr, -(R(2) * yi), re, im); return;   // G/(2·conj(y))
    case Unary::sin: {                                                         // G·conj(cos z)
      R cr, ci;
      ccos(xr, xi, cr, ci);
      cmul(gr, gi, cr, -ci, re, im);
      return;
    }
    case Unary::cos: {  // −G·conj(sin z)
      R sr, si;
      csin(xr, xi, sr, si);
      cmul(-gr, -gi, sr, -si, re, im);
      return;
    }
    case Unary::tanh: {  // G·conj(1 − y²)
      R sr, si;
      cmul(yr, yi, yr, yi, sr, si);
      cmul(gr, gi, R(1) - sr, si, re, im);  // conj(1 − y²) = (1 − Re y², Im y²)
      return;
    }
    case Unary::sigmoid: {  // G·conj(y(1 − y))
      R dr, di;
      cmul(yr, yi, R(1) - yr, -yi, dr, di);
      cmul(gr, gi, dr, -di, re, im);
      return;
    }
    case Unary::conj: re = gr; im = -gi; return;
    case Unary::relu:
    case Unary::abs: break;
  }
  re = nan_value<R>();
  im = nan_value<R>();
}

// ---- binary ops --------------------------------------------------------------------------
// a op b for real operands (conjugation is the identity on reals).
template <class R> ERLMR_HD inline R binary_real(Binary op, R a, R b) {
  switch (op) {
    case Binary::add: return a + b;
    case Binary::sub: return a - b;
    case Binary::mul:
    case Binary::mul_conj: return a * b;
    case Binary::div:
    case Binary::div_conj: return a / b;
  }
  return a;
}
// (ar + i·ai) op (br + i·bi); mul_conj: a·conj(b), div_conj: a/conj(b).
template <class R> ERLMR_HD inline void binary_complex(Binary op, R ar, R ai, R br, R bi, R& re, R& im) {
  switch (op) {
    case Binary::add: re = ar + br; im = ai + bi; return;
    case Binary::sub: re = ar - br; im = ai - bi; return;
    case Binary::mul: cmul(ar, ai, br, bi, re, im); return;
    case Binary::div: cdiv(ar, ai, br, bi, re, im); return;
    case Binary::mul_conj: cmul(ar, ai, br, -bi, re, im); return;
    case Binary::div_conj: cdiv(ar, ai, br, -bi, re, im); return;
  }
  re = ar;
  im = ai;
}

// ---- complex ops (ops/complex.hpp) -------------------------------------------------------
// Euler map z = μ·(cos θ + i·sin θ).
template <class R> ERLMR_HD inline void euler(R mu, R th, R& zr, R& zi) {
  const R c = cos(th), s = sin(th);
  zr = mu * c;
  zi = mu * s;
}
// Adjoints of the Euler map for G = gr + i·gi and z = zr + i·zi:
//   G_μ = Re(conj(G)·exp(iθ)) = gr·cos θ + gi·sin θ (from θ, right at μ = 0),
//   G_θ = Im(G)·Re(z) − Re(G)·Im(z).
template <class R> ERLMR_HD inline void euler_backward(R gr, R gi, R zr, R zi, R th, R& g_mu, R& g_th) {
  const R c = cos(th), s = sin(th);
  g_mu = gr * c + gi * s;
  g_th = gi * zr - gr * zi;
}
// |z| = hypot(x, y).
template <class R> ERLMR_HD inline R complex_abs(R x, R y) { return hypot(x, y); }
// G_z = G·z/|z|, 0 at z = 0.
template <class R> ERLMR_HD inline void complex_abs_backward(R x, R y, R g, R& gx, R& gy) {
  const R s = hypot(x, y);
  if (s > R(0)) {
    const R k = g / s;
    gx = x * k;
    gy = y * k;
  } else {
    gx = R(0);
    gy = R(0);
  }
}
// arg z = atan2(y, x), with arg 0 = 0 (also for signed zeros).
template <class R> ERLMR_HD inline R complex_arg(R x, R y) {
  return (y == R(0) && x == R(0)) ? R(0) : atan2(y, x);
}
// G_z = i·G·z/|z|² = (−y + i·x)·G/|z|², 0 at z = 0.
template <class R> ERLMR_HD inline void complex_arg_backward(R x, R y, R g, R& gx, R& gy) {
  const R r2 = x * x + y * y;
  if (r2 > R(0)) {
    const R k = g / r2;
    gx = -y * k;
    gy = x * k;
  } else {
    gx = R(0);
    gy = R(0);
  }
}
// CReLU(z) = relu(x) + i·relu(y) (relu as the CPU's max(·, 0)).
template <class R> ERLMR_HD inline void crelu(R x, R y, R& re, R& im) {
  re = x < R(0) ? R(0) : x;
  im = y < R(0) ? R(0) : y;
}
// G_z = Re(G)·1[x > 0] + i·Im(G)·1[y > 0].
template <class R> ERLMR_HD inline void crelu_backward(R x, R y, R gr, R gi, R& re, R& im) {
  re = x > R(0) ? gr : R(0);
  im = y > R(0) ? gi : R(0);
}
// z·r for complex z and real r.
template <class R> ERLMR_HD inline void mul_complex_real(R zr, R zi, R r, R& re, R& im) {
  re = zr * r;
  im = zi * r;
}
// Re(conj(G)·z) = gr·zr + gi·zi.
template <class R> ERLMR_HD inline R re_conj_mul(R gr, R gi, R zr, R zi) { return gr * zr + gi * zi; }

}  // namespace erlmr::cuda::fn
