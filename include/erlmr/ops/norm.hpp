// erlmr/ops/norm.hpp — batch normalisation and dropout.
//
// batch_norm over axis 1 of x (N, C, ...), statistics over all other axes
// (m = N·∏spatial values per channel), as torch.nn.functional.batch_norm:
//   training:   μ = mean, σ² = biased variance, x̂ = (x − μ)/√(σ² + ε), y = γ·x̂ + β;
//               running_mean ← (1−m)·running_mean + m·μ,
//               running_var  ← (1−m)·running_var + m·σ²·n/(n−1)   (unbiased, as PyTorch).
//   evaluation: the running statistics replace μ and σ².
// Backward (training), per channel, with s = 1/√(σ² + ε):
//   G_β = Σ G,  G_γ = Σ G·x̂,  G_x = γ·s·(G − mean(G) − x̂·mean(G·x̂)).
// Backward (evaluation): G_x = G·γ·s with the running σ².
//
// dropout(x, p): y = x·mask/(1−p), mask ~ Bernoulli(1−p) from the counter-based
// Generator (element i uses counter offset + i). A complex x gets independent
// masks for the real and imaginary parts (spec §3.1). G_x = G·mask/(1−p), per part.
#pragma once
#include "erlmr/ops/reduce.hpp"

namespace erlmr {

struct BatchNormState {
  double momentum = 0.1;
  double eps = 1e-5;
};

namespace detail {
struct BatchNormDims {
  std::int64_t N, C, inner;  // x viewed as (N, C, inner)
};
// batch_norm's checks (shared with the device version, cuda/ops.hpp).
inline BatchNormDims batch_norm_dims(const Shape& s, const Shape& gamma, const Shape& beta, const Shape& rmean, const Shape& rvar,
                                     bool training) {
  if (s.rank() < 2) throw ShapeError("batch_norm: input " + s.str() + " has no channel axis");
  const std::int64_t N = s[0], C = s[1], inner = s.numel() / std::max<std::int64_t>(N * C, 1);
  const Shape cs{C};
  for (const Shape* p : {&gamma, &beta, &rmean, &rvar})
    if (!(*p == cs)) throw ShapeError("batch_norm: input " + s.str() + " and per-channel parameter " + p->str() + " differ");
  if (training && N * inner < 2)
    throw ShapeError("batch_norm: need more than one value per channel in training, got input " + s.str());
  return {N, C, inner};
}
}  // namespace detail

template <RealScalar T>
Var<T> batch_norm(const Var<T>& x, const Var<T>& gamma, const Var<T>& beta, const Tensor<T>& running_mean,
                  const Tensor<T>& running_var, bool training, double momentum = 0.1, double eps = 1e-5) {
  const Shape& s = x.shape();
  const auto [N, C, inner] = detail::batch_norm_dims(s, gamma.shape(), beta.shape(), running_mean.shape(), running_var.shape(), training);
  const std::int64_t m = N * inner;
  const Shape cs{C};
  Tensor<T> mu(cs), inv(cs), xhat(s), y(s);
  const T* xv = x.value().data();
  using Seg = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
  using MSeg = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
  // Channels are independent: parallel over C, and within a channel the sums run over the
  // N contiguous segments of length `inner` in a fixed order (bitwise the same for any
  // thread count).
  CpuDevice::parallel_for(C, 1, [&](std::int64_t c0, std::int64_t c1) {
    for (std::int64_t c = c0; c < c1; ++c) {
      T mean, var;
      if (training) {
        T acc = 0;
        for (std::int64_t n = 0; n < N; ++n) acc += Seg(xv + (n * C + c) * inner, inner).sum();
        mean = acc / T(m);
        T sq = 0;
        for (std::int64_t n = 0; n < N; ++n) sq += (Seg(xv + (n * C + c) * inner, inner) - mean).square().sum();
        var = sq / T(m);
        running_mean.data()[c] = T(1 - momentum) * running_mean.data()[c] + T(momentum) * mean;
        running_var.data()[c] = T(1 - momentum) * running_var.data()[c] + T(momentum) * var * T(m) / T(m - 1);
      } else {
        mean = running_mean.data()[c];
        var = running_var.data()[c];
      }
      mu.data()[c] = mean;
      inv.data()[c] = T(1) / std::sqrt(var + T(eps));
      const T gm = gamma.value().data()[c], bt = beta.value().data()[c], is = inv.data()[c];
      for (std::int64_t n = 0; n < N; ++n) {
        const std::int64_t k = (n * C + c) * inner;
        MSeg xh(xhat.data() + k, inner);
        xh = (Seg(xv + k, inner) - mean) * is;
        MSeg(y.data() + k, inner) = gm * xh + bt;
      }
    }
  });
  auto rule = [x, gamma, beta, xhat, inv, training, N, C, inner, m](const Tensor<T>& g) {
    Tensor<T> gx(x.shape()), gg(Shape{C}), gb(Shape{C});
    CpuDevice::parallel_for(C, 1, [&](std::int64_t c0, std::int64_t c1) {
      for (std::int64_t c = c0; c < c1; ++c) {
        T sg = 0, sgx = 0;
        for (std::int64_t n = 0; n < N; ++n) {
          const std::int64_t k = (n * C + c) * inner;
          const Seg gs(g.data() + k, inner), xs(xhat.data() + k, inner);
          sg += gs.sum();
          sgx += (gs * xs).sum();
        }
        gb.data()[c] = sg;
        gg.data()[c] = sgx;
        const T a = gamma.value().data()[c] * inv.data()[c];
        const T mg = sg / T(m), mgx = sgx / T(m);
        for (std::int64_t n = 0; n < N; ++n) {
          const std::int64_t k = (n * C + c) * inner;
          const Seg gs(g.data() + k, inner), xs(xhat.data() + k, inner);
          if (training) MSeg(gx.data() + k, inner) = a * (gs - mg - xs * mgx);
          else MSeg(gx.data() + k, inner) = a * gs;
        }
      }
    });
    add_grad(x, std::move(gx));
    add_grad(gamma, std::move(gg));
    add_grad(beta, std::move(gb));
  };
  return record("batch_norm", y, rule, x, gamma, beta);
}

namespace detail {
// Dropout's check of p and its keep rule, shared with the device version (cuda/ops.hpp):
// counter c keeps its element iff (bits(c) >> 8) ≥ ceil(p·2²⁴), scaled by 1/(1 − p).
inline void check_dropout_p(double p) {
  if (p < 0 || p >= 1) throw std::invalid_argument("dropout: p must be in [0, 1), got " + std::to_string(p));
}
inline std::uint32_t dropout_threshold(double p) { return static_cast<std::uint32_t>(std::ceil(p * 16777216.0)); }
}  // namespace detail

// Dropout; identity when !training or p == 0.
template <Scalar T> Var<T> dropout(const Var<T>& x, double p, bool training, Generator& gen) {
  detail::check_dropout_p(p);
  if (!training || p == 0) return x;
  using R = real_t<T>;
  constexpr int parts = is_complex_v<T> ? 2 : 1;
  const std::int64_t n = x.numel();
  const std::uint64_t first = gen.reserve(static_cast<std::uint64_t>(parts * n));
  const R keep_scale = R(1) / R(1 - p);
  // mask holds 0 or 1/(1−p) for each real part; counter first + i decides part i. Whole
  // Philox blocks are evaluated once for their four words (same values as gen.uniform).
  Tensor<R> mask(Shape{parts * n});
  const std::int64_t total = parts * n;
  const std::uint32_t threshold = detail::dropout_threshold(p);  // keep iff (bits >> 8) >= p·2²⁴
  CpuDevice::parallel_for(total, 1 << 14, [&](std::int64_t b, std::int64_t e) {
    // Locals, not the captured references: read through the capture, the compiler must
    // assume the stores below may change them and emits a scalar load-compare-branch per mask.
    const R ks = keep_scale;
    const std::uint32_t thr = threshold;
    std::int64_t i = b;
    std::uint32_t w[4][Generator::kLanes];
    while (i < e) {
      const std::uint64_t c = first + static_cast<std::uint64_t>(i);
      if ((c & 3) == 0 && e - i >= 4 * Generator::kLanes) {  // 64 masks from 16 blocks at once
        gen.blocks(c >> 2, w);
        R m[4][Generator::kLanes];  // compare in the blocks' SoA layout (vectorises) ...
        for (int k = 0; k < 4; ++k)
          for (int j = 0; j < Generator::kLanes; ++j) m[k][j] = R((w[k][j] >> 8) >= thr) * ks;
        R* dst = mask.data() + i;  // ... then interleave: counter c + 4j + k is word k of block j
        for (int j = 0; j < Generator::kLanes; ++j)
          for (int k = 0; k < 4; ++k) dst[4 * j + k] = m[k][j];
        i += 4 * Generator::kLanes;
        continue;
      }
      const auto w1 = gen.block(c >> 2);
      for (std::uint64_t k = c & 3; k < 4 && i < e; ++k, ++i) mask.data()[i] = R((w1[k] >> 8) >= thr) * ks;
    }
  });
  auto apply = [mask, n](const Tensor<T>& in) {  // elementwise, so any split is exact
    Tensor<T> out(in.shape());
    // A complex tensor is 2n interleaved reals, one mask value per part. Local restrict
    // pointers: read through the lambda's reference captures, the loop stays scalar.
    const R* mp = mask.data();
    const R* ip = reinterpret_cast<const R*>(in.data());
    R* op = reinterpret_cast<R*>(out.data());
    CpuDevice::parallel_for(parts * n, 1 << 15, [mp, ip, op](std::int64_t b, std::int64_t e) {
      const R* __restrict mk = mp;
      const R* __restrict x = ip;
      R* __restrict o = op;
      for (std::int64_t i = b; i < e; ++i) o[i] = x[i] * mk[i];
    });
    return out;
  };
  return record("dropout", apply(x.value()), [x, apply](const Tensor<T>& g) { add_grad(x, apply(g)); }, x);
}

}  // namespace erlmr
