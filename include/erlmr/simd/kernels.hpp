// erlmr/simd/kernels.hpp — vectorised elementwise kernels over contiguous arrays.
//
// Each kernel has an xsimd path (compiled when ERLMR_USE_XSIMD is defined, the
// default; CMake option ERLMR_SIMD=OFF removes it) and a scalar path. The
// vector path can also be switched off at run time with simd::set_enabled(false),
// which is how the tests compare the two in one binary. xsimd's exp/sin/cos/atan2
// are accurate to a few ulps; the two paths agree to that, not bitwise.
// Kernels are split over threads in fixed chunks (CpuDevice::parallel_for), so
// the result never depends on the thread count.
#pragma once
#include <atomic>
#include <cmath>
#include <complex>
#include <cstdint>
#include <stdexcept>
#include <tuple>

#include "erlmr/core/device.hpp"
#include "erlmr/core/scalar.hpp"

#ifdef ERLMR_USE_XSIMD
#include <xsimd/xsimd.hpp>
#endif

namespace erlmr::simd {

namespace detail {
inline std::atomic<bool>& enabled_flag() {
  static std::atomic<bool> on{true};
  return on;
}
}  // namespace detail

inline bool compiled() {
#ifdef ERLMR_USE_XSIMD
  return true;
#else
  return false;
#endif
}
inline bool enabled() { return compiled() && detail::enabled_flag().load(std::memory_order_relaxed); }
inline void set_enabled(bool on) { detail::enabled_flag().store(on); }

inline constexpr std::int64_t kGrain = 1 << 14;  // elements per parallel chunk

// Applies vf to full SIMD batches and sf to the tail (and to everything when SIMD is off).
// VF: (const T* in..., T* out) on one batch; SF: scalar index function.
#ifdef ERLMR_USE_XSIMD
template <class T> using batch = xsimd::batch<T>;
#endif

enum class Unary { exp, log, sqrt, sin, cos, tanh, sigmoid };

template <class T> inline T scalar_unary(Unary op, T x) {
  switch (op) {
    case Unary::exp: return std::exp(x);
    case Unary::log: return std::log(x);
    case Unary::sqrt: return std::sqrt(x);
    case Unary::sin: return std::sin(x);
    case Unary::cos: return std::cos(x);
    case Unary::tanh: return std::tanh(x);
    case Unary::sigmoid: return T(1) / (T(1) + std::exp(-x));
  }
  return x;
}

#ifdef ERLMR_USE_XSIMD
template <class B> inline B batch_unary(Unary op, const B& x) {
  switch (op) {
    case Unary::exp: return xsimd::exp(x);
    case Unary::log: return xsimd::log(x);
    case Unary::sqrt: return xsimd::sqrt(x);
    case Unary::sin: return xsimd::sin(x);
    case Unary::cos: return xsimd::cos(x);
    case Unary::tanh: return xsimd::tanh(x);
    case Unary::sigmoid: return B(1) / (B(1) + xsimd::exp(-x));
  }
  return x;
}
#endif

// y[i] = op(x[i]). Real types use xsimd; complex types use std:: (holomorphic formulas).
template <class T> void unary(Unary op, const T* x, T* y, std::int64_t n) {
  CpuDevice::parallel_for(n, kGrain, [&](std::int64_t b, std::int64_t e) {
    std::int64_t i = b;
#ifdef ERLMR_USE_XSIMD
    if constexpr (RealScalar<T>) {
      if (enabled()) {
        constexpr std::int64_t W = batch<T>::size;
        for (; i + W <= e; i += W) batch_unary(op, xsimd::load_unaligned(x + i)).store_unaligned(y + i);
      }
    }
#endif
    for (; i < e; ++i) y[i] = scalar_unary(op, x[i]);
  });
}

// out[i] = atan2(y[i], x[i]), with atan2(0, 0) = 0.
template <class T> void atan2(const T* y, const T* x, T* out, std::int64_t n) {
  CpuDevice::parallel_for(n, kGrain, [&](std::int64_t b, std::int64_t e) {
    std::int64_t i = b;
#ifdef ERLMR_USE_XSIMD
    if (enabled()) {
      constexpr std::int64_t W = batch<T>::size;
      for (; i + W <= e; i += W) {
        auto yy = xsimd::load_unaligned(y + i), xx = xsimd::load_unaligned(x + i);
        auto r = xsimd::atan2(yy, xx);
        r = xsimd::select((yy == batch<T>(0)) & (xx == batch<T>(0)), batch<T>(0), r);
        r.store_unaligned(out + i);
      }
    }
#endif
    for (; i < e; ++i) out[i] = (y[i] == T(0) && x[i] == T(0)) ? T(0) : std::atan2(y[i], x[i]);
  });
}

// z[i] = mu[i] * (cos(theta[i]) + i sin(theta[i]))  (the Euler map).
template <class R> void euler(const R* mu, const R* theta, std::complex<R>* z, std::int64_t n) {
  CpuDevice::parallel_for(n, kGrain, [&](std::int64_t b, std::int64_t e) {
    std::int64_t i = b;
#ifdef ERLMR_USE_XSIMD
    if (enabled()) {
      using B = batch<R>;
      using CB = xsimd::batch<std::complex<R>>;
      constexpr std::int64_t W = B::size;
      for (; i + W <= e; i += W) {
        const B t = xsimd::load_unaligned(theta + i), m = xsimd::load_unaligned(mu + i);
        B s, c;
        std::tie(s, c) = xsimd::sincos(t);
        CB(m * c, m * s).store_unaligned(z + i);
      }
    }
#endif
    for (; i < e; ++i) z[i] = std::complex<R>(mu[i] * std::cos(theta[i]), mu[i] * std::sin(theta[i]));
  });
}

// The Euler map by rows with one μ per row (μ broadcast along the rows, the ERL-MR layout:
// μ (1, C, 1) against θ (B, C, P)): z[r·n + p] = mu[row_mu(r)]·exp(iθ[r·n + p]), with
// row_mu(r) = r mod m. The same formula as euler(); each row's last n mod W elements use the
// scalar std::cos/std::sin (a few ulps from the SIMD ones), so the bits can differ from
// euler()'s on the expanded μ.
// f(r) for rows r of n elements, in parallel chunks of about kGrain elements (whole rows).
template <class F> void for_each_row(std::int64_t rows, std::int64_t n, F&& f) {
  CpuDevice::parallel_for(rows, std::max<std::int64_t>(1, kGrain / std::max<std::int64_t>(n, 1)), [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) f(r);
  });
}

template <class R>
void euler_rows(const R* mu, std::int64_t m, const R* theta, std::complex<R>* z, std::int64_t rows, std::int64_t n) {
  for_each_row(rows, n, [&](std::int64_t r) {
    const R mr = mu[r % m];
    const R* t = theta + r * n;
    std::complex<R>* zr = z + r * n;
    std::int64_t i = 0;
#ifdef ERLMR_USE_XSIMD
    if (enabled()) {
      using B = batch<R>;
      using CB = xsimd::batch<std::complex<R>>;
      constexpr std::int64_t W = B::size;
      const B mb(mr);
      for (; i + W <= n; i += W) {
        B sn, cs;
        std::tie(sn, cs) = xsimd::sincos(B(xsimd::load_unaligned(t + i)));
        CB(mb * cs, mb * sn).store_unaligned(zr + i);
      }
    }
#endif
    for (; i < n; ++i) zr[i] = std::complex<R>(mr * std::cos(t[i]), mr * std::sin(t[i]));
  });
}

// The adjoint of euler_rows for a gradient g of z (spec §2: G_θ = Im(G)·Re(z) − Re(G)·Im(z),
// G_μ = Re(conj(G)·exp(iθ)) summed over the row):
//   gtheta[i] = Im g[i]·Re z[i] − Re g[i]·Im z[i]               (skipped when gtheta is null)
//   rowsum[r] = Σ_p Re g·cos θ + Im g·sin θ over row r            (skipped when rowsum is null)
// exp(iθ) is recomputed from θ (not z/μ, which fails at μ = 0). Each row is one thread's,
// summed in a fixed order (SIMD lanes, then the lanes' sum, then the tail).
//
// For several seeds' gradients of the same z at once (grad_seeds), euler_rows_backward_seeds:
// g[s], gtheta[s], rowsum[s] per seed (g[s] null: the seed did not reach z), θ, z and
// exp(iθ) read or computed once per element for all of them. Each seed's arithmetic is the
// one-seed kernel's — which is this kernel with one seed — so each seed gets the same bits as
// its own pass.
inline constexpr int kEulerMaxSeeds = 4;
template <class R>
void euler_rows_backward_seeds(const std::complex<R>* const* g, int seeds, const R* theta, const std::complex<R>* z,
                               R* const* gtheta, R* const* rowsum, std::int64_t rows, std::int64_t n) {
  if (seeds < 1 || seeds > kEulerMaxSeeds) throw std::invalid_argument("euler_rows_backward_seeds: 1 to 4 seeds");
  bool any_gt = false, any_sum = false;
  for (int s = 0; s < seeds; ++s)
    if (g[s]) {
      any_gt = any_gt || gtheta[s];
      any_sum = any_sum || rowsum[s];
    }
  for_each_row(rows, n, [&](std::int64_t r) {
    const std::complex<R>* zr = z + r * n;
    const R* t = theta + r * n;
    R sum[kEulerMaxSeeds] = {};
    std::int64_t i = 0;
#ifdef ERLMR_USE_XSIMD
    if (enabled()) {
      using B = batch<R>;
      using CB = xsimd::batch<std::complex<R>>;
      constexpr std::int64_t W = B::size;
      B acc[kEulerMaxSeeds];
      for (auto& a : acc) a = B(R(0));
      for (; i + W <= n; i += W) {
        B sn(R(0)), cs(R(0));
        if (any_sum) std::tie(sn, cs) = xsimd::sincos(B(xsimd::load_unaligned(t + i)));
        CB zv;
        if (any_gt) zv = CB::load_unaligned(zr + i);
        for (int s = 0; s < seeds; ++s) {
          if (!g[s]) continue;
          const CB gv = CB::load_unaligned(g[s] + r * n + i);
          if (gtheta[s]) (gv.imag() * zv.real() - gv.real() * zv.imag()).store_unaligned(gtheta[s] + r * n + i);
          if (rowsum[s]) acc[s] = acc[s] + (gv.real() * cs + gv.imag() * sn);
        }
      }
      for (int s = 0; s < seeds; ++s)
        if (g[s] && rowsum[s]) sum[s] = xsimd::hadd(acc[s]);
    }
#endif
    for (; i < n; ++i) {
      R cs = 0, sn = 0;
      if (any_sum) {
        cs = std::cos(t[i]);
        sn = std::sin(t[i]);
      }
      for (int s = 0; s < seeds; ++s) {
        if (!g[s]) continue;
        const std::complex<R> gi = g[s][r * n + i];
        if (gtheta[s]) gtheta[s][r * n + i] = gi.imag() * zr[i].real() - gi.real() * zr[i].imag();
        if (rowsum[s]) sum[s] += gi.real() * cs + gi.imag() * sn;
      }
    }
    for (int s = 0; s < seeds; ++s)
      if (g[s] && rowsum[s]) rowsum[s][r] = sum[s];
  });
}
template <class R>
void euler_rows_backward(const std::complex<R>* g, const R* theta, const std::complex<R>* z, R* gtheta, R* rowsum, std::int64_t rows,
                         std::int64_t n) {
  euler_rows_backward_seeds(&g, 1, theta, z, &gtheta, &rowsum, rows, n);
}

// c[i] = a[i] * b[i] for complex arrays (interleaved storage).
template <class R> void complex_mul(const std::complex<R>* a, const std::complex<R>* b, std::complex<R>* c, std::int64_t n) {
  CpuDevice::parallel_for(n, kGrain, [&](std::int64_t bgn, std::int64_t e) {
    std::int64_t i = bgn;
#ifdef ERLMR_USE_XSIMD
    if (enabled()) {
      using CB = xsimd::batch<std::complex<R>>;
      constexpr std::int64_t W = CB::size;
      for (; i + W <= e; i += W) (xsimd::load_unaligned(a + i) * xsimd::load_unaligned(b + i)).store_unaligned(c + i);
    }
#endif
    // Plain formula (no C99 Annex G inf/nan recovery), the same as the vector path.
    for (; i < e; ++i) {
      const R ar = a[i].real(), ai = a[i].imag(), br = b[i].real(), bi = b[i].imag();
      c[i] = std::complex<R>(ar * br - ai * bi, ar * bi + ai * br);
    }
  });
}

}  // namespace erlmr::simd
