// erlmr/ops/complex.hpp — building, taking apart and rectifying complex tensors.
//
// Rules from spec §2: for s = f(z), G_z = conj(G_s)·∂s/∂z̄ + G_s·conj(∂s/∂z);
// for a real input x of a complex output, G_x = Re(conj(G_s)·ds/dx).
// Derivations are in docs/gradients.md; each rule is restated above its op.
#pragma once
#include "erlmr/ops/elementwise.hpp"

namespace erlmr {

// z = x + i·y.  ds/dx = 1 ⇒ G_x = Re(G);  ds/dy = i ⇒ G_y = Re(conj(G)·i) = Im(G).
template <RealScalar R> Var<std::complex<R>> make_complex(const Var<R>& x, const Var<R>& y) {
  using C = std::complex<R>;
  check_same_shape(x.shape(), y.shape(), "make_complex");
  Tensor<C> z(x.shape());
  z.vec() = x.value().vec().template cast<C>() + C(0, 1) * y.value().vec().template cast<C>();
  return record("make_complex", z, [x, y](const Tensor<C>& g) {
    if (x.requires_grad()) add_grad(x, detail::from_array<R>(g.shape(), g.vec().real()));
    if (y.requires_grad()) add_grad(y, detail::from_array<R>(g.shape(), g.vec().imag()));
  }, x, y);
}

// Euler map z = μ·exp(iθ) (μ, θ real, broadcast together).
//   ds/dμ = exp(iθ)     ⇒ G_μ = Re(conj(G)·exp(iθ))
//   ds/dθ = i·z         ⇒ G_θ = Re(conj(G)·i·z) = Im(G)·Re(z) − Re(G)·Im(z)
namespace detail {
// Whether μ broadcast to s reads μ's m elements along a middle run of axes: s as
// (outer, m, inner) in row-major order and element i of s using μ[(i / inner) mod m]
// (μ's non-1 axes, right-aligned to s, are contiguous and equal s there).
inline bool slab_broadcast(const Shape& mu, const Shape& s, std::int64_t& m, std::int64_t& inner) {
  const int r = s.rank(), rm = mu.rank();
  if (rm > r) return false;
  int a0 = -1, a1 = -1;  // [a0, a1): μ's non-1 axes (in s's numbering)
  bool gap = false;      // a broadcast axis (μ 1, s > 1) after a0
  for (int ax = r - rm; ax < r; ++ax) {
    const std::int64_t d = mu[ax - (r - rm)];
    if (d == 1) {
      if (a0 >= 0 && s[ax] != 1) gap = true;
      continue;
    }
    if (d != s[ax] || gap) return false;
    if (a0 < 0) a0 = ax;
    a1 = ax + 1;
  }
  m = 1, inner = 1;
  if (a0 < 0) a0 = a1 = r;
  for (int ax = a0; ax < a1; ++ax) m *= s[ax];
  for (int ax = a1; ax < r; ++ax) inner *= s[ax];
  return true;
}
}  // namespace detail

static_assert(simd::kEulerMaxSeeds >= kMaxSeeds, "euler's seeds rule takes every seed of a grad_seeds pass");
template <RealScalar R> Var<std::complex<R>> euler(const Var<R>& mu, const Var<R>& theta) {
  using C = std::complex<R>;
  const Shape s = broadcast_shapes(mu.shape(), theta.shape(), "euler");
  std::int64_t mu_len = 0, inner = 0;
  if (theta.shape() == s && s.numel() > 0 && detail::slab_broadcast(mu.shape(), s, mu_len, inner) && inner >= 16) {
    // θ full, μ one value per row of `inner` ≥ 16 elements (ERL-MR's μ (1, C, 1) against θ
    // (B, C, P)): no expanded copies, one parallel pass each way.
    Tensor<C> z(s);
    const std::int64_t rows = s.numel() / inner;
    simd::euler_rows(mu.value().data(), mu_len, theta.value().data(), z.data(), rows, inner);
    // The gradients of the seeds whose adjoints are in adj[0, seeds) (null: not reached), in
    // one pass over θ and z (simd::euler_rows_backward_seeds; one seed for an ordinary pass),
    // each then handed to μ and θ under its own seed.
    auto grads = [mu, theta, z, mu_len, inner, rows](const Tensor<C>* const* adj, int seeds, bool under_seeds) {
      Tensor<R> gt[kMaxSeeds], rs[kMaxSeeds];
      const C* gp[kMaxSeeds] = {};
      R* gtp[kMaxSeeds] = {};
      R* rsp[kMaxSeeds] = {};
      for (int s = 0; s < seeds; ++s) {
        if (!adj[s]) continue;
        gp[s] = adj[s]->data();
        if (theta.requires_grad()) gtp[s] = (gt[s] = Tensor<R>(theta.shape())).data();
        if (mu.requires_grad()) rsp[s] = (rs[s] = Tensor<R>(Shape{rows})).data();
      }
      simd::euler_rows_backward_seeds(gp, seeds, theta.value().data(), z.data(), gtp, rsp, rows, inner);
      for (int s = 0; s < seeds; ++s) {
        if (!adj[s]) continue;
        const detail::ActiveSeed active(under_seeds ? s : detail::g_active_seed);
        if (mu.requires_grad()) {
          auto gm = Tensor<R>::zeros(mu.shape());  // Σ over the outer index in increasing order
          for (std::int64_t r = 0; r < rows; ++r) gm.data()[r % mu_len] += rs[s].data()[r];
          add_grad(mu, std::move(gm));
        }
        if (theta.requires_grad()) add_grad(theta, std::move(gt[s]));
      }
    };
    auto out = record("euler", z, [grads](const Tensor<C>& g) {
      const Tensor<C>* adj[1] = {&g};
      grads(adj, 1, false);
    }, mu, theta);
    record_seeds(out, [grads](const Tensor<C>* const* adj, int seeds) { grads(adj, seeds, true); });
    return out;
  }
  const Tensor<R> m = expand(mu.value(), s, "euler"), t = expand(theta.value(), s, "euler");
  Tensor<C> z(s);
  simd::euler(m.data(), t.data(), z.data(), z.numel());
  return record("euler", z, [mu, theta, t, z](const Tensor<C>& g) {
    const auto gr = g.vec().real();  // two declarations: the views have different types
    const auto gi = g.vec().imag();
    if (mu.requires_grad()) {
      // exp(iθ) recomputed from θ (not z/μ, which fails at μ = 0).
      const Tensor<R> one = Tensor<R>::ones(t.shape());
      Tensor<C> e(t.shape());
      simd::euler(one.data(), t.data(), e.data(), e.numel());
      add_grad(mu, sum_to(detail::from_array<R>(g.shape(), gr * e.vec().real() + gi * e.vec().imag()), mu.shape()));
    }
    if (theta.requires_grad())
      add_grad(theta, sum_to(detail::from_array<R>(g.shape(), gi * z.vec().real() - gr * z.vec().imag()), theta.shape()));
  }, mu, theta);
}

namespace detail {
// Puts a complex gradient into z's adjoint in place: written when it is the first to arrive,
// else added element by element (the sums add_grad of a whole tensor makes). The rules of
// real, imag and arg, which all read one complex tensor (the projection's output, in the
// Euler block), so fill one adjoint instead of making three complex tensors and adding them
// up. terms(i0, i1, dst) writes elements [i0, i1) as interleaved reals into dst: the adjoint
// itself when fresh, else a buffer of at most kPutBlock elements (in L1) that is then added.
// The buffer keeps each term rounded before the addition, as when it was a tensor of its own
// (in one expression the compiler could fuse a product and the sum into one FMA, with other
// last bits). Parallel over fixed chunks. Nothing when z needs no gradient.
inline constexpr std::int64_t kPutBlock = 256;
template <RealScalar R, class Terms> void put_complex_grad(const Var<std::complex<R>>& z, const Terms& terms) {
  bool fresh = false;
  Tensor<std::complex<R>>* a = adjoint_to_fill(z, fresh);
  if (!a) return;
  R* const out = reinterpret_cast<R*>(a->data());
  CpuDevice::parallel_for(a->numel(), 1 << 14, [out, fresh, &terms](std::int64_t b, std::int64_t e) {
    if (fresh) {
      terms(b, e, out + 2 * b);
      return;
    }
    alignas(64) R buf[2 * kPutBlock];
    for (std::int64_t i0 = b; i0 < e; i0 += kPutBlock) {
      const std::int64_t i1 = std::min(e, i0 + kPutBlock);
      terms(i0, i1, buf);
      CpuDevice::add_inplace(out + 2 * i0, static_cast<const R*>(buf), 2 * (i1 - i0));
    }
  });
}
}  // namespace detail

// Re z: s = (z + z̄)/2 ⇒ G_z = G (as a complex number with zero imaginary part).
template <RealScalar R> Var<R> real(const Var<std::complex<R>>& z) {
  Tensor<R> s(z.shape());
  s.vec() = z.value().vec().real();
  return record("real", s, [z](const Tensor<R>& g) {
    detail::put_complex_grad(z, [gp = g.data()](std::int64_t i0, std::int64_t i1, R* dst) {
      const R* __restrict gs = gp + i0;
      R* __restrict t = dst;
      for (std::int64_t i = 0; i < i1 - i0; ++i) {
        t[2 * i] = gs[i];
        t[2 * i + 1] = R(0);
      }
    });
  }, z);
}
// Im z: s = (z − z̄)/(2i) ⇒ G_z = i·G: the product i·(G + 0i) as complex multiplication
// forms it, (0·G − 1·0) + i·(0·0 + 1·G), kept term for term so that signed zeros and
// non-finite G come out as they always have.
template <RealScalar R> Var<R> imag(const Var<std::complex<R>>& z) {
  Tensor<R> s(z.shape());
  s.vec() = z.value().vec().imag();
  return record("imag", s, [z](const Tensor<R>& g) {
    detail::put_complex_grad(z, [gp = g.data()](std::int64_t i0, std::int64_t i1, R* dst) {
      const R* __restrict gs = gp + i0;
      R* __restrict t = dst;
      for (std::int64_t i = 0; i < i1 - i0; ++i) {
        t[2 * i] = R(0) * gs[i] - R(0);
        t[2 * i + 1] = R(0) + gs[i];
      }
    });
  }, z);
}
// conj z: ∂s/∂z̄ = 1, ∂s/∂z = 0 ⇒ G_z = conj(G).
template <RealScalar R> Var<std::complex<R>> conj(const Var<std::complex<R>>& z) {
  using C = std::complex<R>;
  Tensor<C> s(z.shape());
  s.vec() = z.value().vec().conjugate();
  return record("conj", s, [z](const Tensor<C>& g) { add_grad(z, detail::from_array<C>(g.shape(), g.vec().conjugate())); }, z);
}
// |z| = √(x² + y²): ∂/∂x = x/|z|, ∂/∂y = y/|z| ⇒ G_z = G·z/|z|; 0 at z = 0.
template <RealScalar R> Var<R> abs(const Var<std::complex<R>>& z) {
  using C = std::complex<R>;
  Tensor<R> s(z.shape());
  s.vec() = z.value().vec().abs();
  return record("abs", s, [z, s](const Tensor<R>& g) {
    Tensor<C> gz(g.shape());
    const C* zv = z.value().data();
    for (std::int64_t i = 0; i < gz.numel(); ++i)
      gz.data()[i] = s.data()[i] > R(0) ? zv[i] * (g.data()[i] / s.data()[i]) : C(0);
    add_grad(z, std::move(gz));
  }, z);
}
// arg z = atan2(y, x): ∂/∂x = −y/|z|², ∂/∂y = x/|z|² ⇒ G_z = G·(−y + i·x)/|z|² = i·G·z/|z|².
// arg 0 = 0 with zero gradient.
template <RealScalar R> Var<R> arg(const Var<std::complex<R>>& z) {
  const std::int64_t n = z.numel();
  Tensor<R> re(z.shape()), im(z.shape()), s(z.shape());
  re.vec() = z.value().vec().real();
  im.vec() = z.value().vec().imag();
  simd::atan2(im.data(), re.data(), s.data(), n);
  return record("arg", s, [z](const Tensor<R>& g) {
    // G_z = G·i·z/|z|² (0 at the origin), on the interleaved reals, branch-free over local
    // restrict pointers so that it vectorises, into z's adjoint.
    const R* zp = reinterpret_cast<const R*>(z.value().data());
    detail::put_complex_grad(z, [zp, gp = g.data()](std::int64_t i0, std::int64_t i1, R* dst) {
      const R* __restrict zs = zp + 2 * i0;
      const R* __restrict gs = gp + i0;
      R* __restrict t = dst;
      for (std::int64_t i = 0; i < i1 - i0; ++i) {
        const R re = zs[2 * i], im = zs[2 * i + 1];
        const R r2 = re * re + im * im;
        const bool on = r2 > R(0);  // false at the origin (and for NaN): exactly +0 there
        const R k = on ? gs[i] / r2 : R(0);
        t[2 * i] = on ? -im * k : R(0);
        t[2 * i + 1] = on ? re * k : R(0);
      }
    });
  }, z);
}
// CReLU(z) = relu(x) + i·relu(y) ⇒ G_z = Re(G)·1[x > 0] + i·Im(G)·1[y > 0].
template <RealScalar R> Var<std::complex<R>> crelu(const Var<std::complex<R>>& z) {
  using C = std::complex<R>;
  Tensor<C> s(z.shape());
  // std::complex<R> is two interleaved R (array-compatible by the standard): ReLU on 2n reals.
  auto re = [](const Tensor<C>& t) { return reinterpret_cast<R*>(t.data()); };
  detail::relu_forward(re(z.value()), re(s), 2 * s.numel());
  return record("crelu", s, [z, re](const Tensor<C>& g) {
    Tensor<C> gz(g.shape());
    detail::relu_backward(re(z.value()), re(g), re(gz), 2 * g.numel());
    add_grad(z, std::move(gz));
  }, z);
}

// z·r for complex z and real r (broadcast): ds/dz = r (holomorphic in z) ⇒ G_z = G·r;
// ds/dr = z ⇒ G_r = Re(conj(G)·z).
template <RealScalar R> Var<std::complex<R>> mul(const Var<std::complex<R>>& z, const Var<R>& r) {
  using C = std::complex<R>;
  const Shape s = broadcast_shapes(z.shape(), r.shape(), "mul");
  const Tensor<C> ez = expand(z.value(), s, "mul");
  const Tensor<R> er = expand(r.value(), s, "mul");
  Tensor<C> out(s);
  out.vec() = ez.vec() * er.vec().template cast<C>();
  return record("mul_complex_real", out, [z, r, ez, er](const Tensor<C>& g) {
    if (z.requires_grad()) add_grad(z, sum_to(detail::from_array<C>(g.shape(), g.vec() * er.vec().template cast<C>()), z.shape()));
    if (r.requires_grad()) add_grad(r, sum_to(detail::from_array<R>(g.shape(), (g.vec().conjugate() * ez.vec()).real()), r.shape()));
  }, z, r);
}

}  // namespace erlmr
