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

namespace detail {
// batch_norm's forward on the CPU: per-channel statistics (training) or the running ones,
// and y = γ·x̂ + β with x̂ = (x − μ)·s. x̂ is not stored: the backward rule recomputes it from
// x (which the rule keeps anyway) and the μ and s recorded here (mean_used, inv), by the same
// expression, so to the same bits — one tensor less to write and keep per op. (x − μ)·s only
// ever feeds products, never an addition, so no contraction (GCC's default -ffp-contract=fast,
// clang's =on) can fuse it into an FMA here or in the rule: keep it so (not x·s − μ·s, not
// γ·s·(x − μ)). Channels are independent: parallel over C, and within a channel the sums run
// over the N contiguous segments of length `inner` in a fixed order (bitwise the same for any
// thread count). epilogue(k, len) runs on each segment [k, k + len) of y right after it is
// written, in the same thread (the fused rectifier and dropout below). Each thread takes one
// block of channels (block_grain): channels' segments share cache lines.
template <RealScalar T, class Epilogue>
void batch_norm_forward(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta, const Tensor<T>& running_mean,
                        const Tensor<T>& running_var, bool training, double momentum, double eps, const BatchNormDims& d,
                        Tensor<T>& inv, Tensor<T>& mean_used, Tensor<T>& y, Epilogue&& epilogue) {
  const std::int64_t N = d.N, C = d.C, inner = d.inner;  // not a binding: lambdas use them (clang < 16)
  const std::int64_t m = N * inner;
  const T* xv = x.data();
  using Seg = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
  using MSeg = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
  CpuDevice::parallel_for(C, CpuDevice::block_grain(C), [&](std::int64_t c0, std::int64_t c1) {
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
      inv.data()[c] = T(1) / std::sqrt(var + T(eps));
      mean_used.data()[c] = mean;
      const T gm = gamma.data()[c], bt = beta.data()[c], is = inv.data()[c];
      for (std::int64_t n = 0; n < N; ++n) {
        const std::int64_t k = (n * C + c) * inner;
        MSeg(y.data() + k, inner) = gm * ((Seg(xv + k, inner) - mean) * is) + bt;
        epilogue(k, inner);
      }
    }
  });
}

// batch_norm's rule: G_β = Σ G, G_γ = Σ G·x̂, G_x = γ·s·(G − mean(G) − x̂·mean(G·x̂)) per
// channel (training), G_x = γ·s·G (evaluation); parallel over blocks of channels, fixed-order
// sums; x̂ = (x − μ)·s is recomputed from x and the forward's μ (mean_used) and s (inv). With
// a gate (batch_norm_relu_dropout's one code per element: 0 rectified, 1 dropped, 2 kept), G
// is g gated as that op's rule says, G = (code == 0 ? 0 : g·(code == 2 ? keep_scale : 0)):
// each segment is gated into its place in gx and the sums and G_x are taken from there — the
// same values at the same offsets within a 64-byte-aligned buffer (every tensor starts at a
// HostMemory::kAlignment boundary, at least Eigen's packet alignment, so Eigen's sums peel and
// split them the same way), so the same bits as gating into a tensor of its own first, without
// that tensor's trip through memory (the channel's segments are still in cache when G_x
// overwrites them).
// One channel of batch_norm_backward (below): G_β[c], G_γ[c] and channel c's segments of gx.
template <RealScalar T>
void batch_norm_backward_channel(std::int64_t c, const T* g, const T* x, const Tensor<T>& mean_used, const Tensor<T>& inv,
                                 const Tensor<T>& gamma, bool training, const BatchNormDims& d, T* gx, T* gg, T* gb,
                                 const std::uint8_t* gate, T keep_scale) {
  const std::int64_t N = d.N, C = d.C, inner = d.inner, m = N * inner;
  using Seg = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
  using MSeg = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
  const T* gsrc = gate ? gx : g;  // where G's segments are read from
  const T mu = mean_used.data()[c], is = inv.data()[c];
  T sg = 0, sgx = 0;
  for (std::int64_t n = 0; n < N; ++n) {
    const std::int64_t k = (n * C + c) * inner;
    if (gate) {
      const T* __restrict gk = g + k;
      const std::uint8_t* __restrict kk = gate + k;
      T* __restrict ok = gx + k;
      const T ks = keep_scale;
      for (std::int64_t i = 0; i < inner; ++i) {
        const T f = kk[i] == 2 ? ks : T(0);
        ok[i] = kk[i] != 0 ? gk[i] * f : T(0);
      }
    }
    const Seg gs(gsrc + k, inner);
    const auto xs = (Seg(x + k, inner) - mu) * is;
    sg += gs.sum();
    sgx += (gs * xs).sum();
  }
  gb[c] = sg;
  gg[c] = sgx;
  const T a = gamma.data()[c] * is;
  const T mg = sg / T(m), mgx = sgx / T(m);
  for (std::int64_t n = 0; n < N; ++n) {
    const std::int64_t k = (n * C + c) * inner;
    const Seg gs(gsrc + k, inner);
    const auto xs = (Seg(x + k, inner) - mu) * is;
    if (training) MSeg(gx + k, inner) = a * (gs - mg - xs * mgx);
    else MSeg(gx + k, inner) = a * gs;
  }
}
template <RealScalar T>
void batch_norm_backward(const T* g, const T* x, const Tensor<T>& mean_used, const Tensor<T>& inv, const Tensor<T>& gamma,
                         bool training, const BatchNormDims& d, Tensor<T>& gx, Tensor<T>& gg, Tensor<T>& gb,
                         const std::uint8_t* gate = nullptr, T keep_scale = T(1)) {
  CpuDevice::parallel_for(d.C, CpuDevice::block_grain(d.C), [&](std::int64_t c0, std::int64_t c1) {
    for (std::int64_t c = c0; c < c1; ++c)
      batch_norm_backward_channel(c, g, x, mean_used, inv, gamma, training, d, gx.data(), gg.data(), gb.data(), gate, keep_scale);
  });
}
// The rule for several seeds' output gradients at once (grad_seeds): g[s] is seed s's
// gradient, or null. Channel by channel, every seed's gradients are computed as
// batch_norm_backward computes them (the same bits) while the channel's x and gate
// segments are still in cache: x and the gate are read from memory once, not once per seed.
template <RealScalar T>
void batch_norm_backward_seeds(const T* const* g, int seeds, const T* x, const Tensor<T>& mean_used, const Tensor<T>& inv,
                               const Tensor<T>& gamma, bool training, const BatchNormDims& d, Tensor<T>* gx, Tensor<T>* gg,
                               Tensor<T>* gb, const std::uint8_t* gate, T keep_scale) {
  CpuDevice::parallel_for(d.C, CpuDevice::block_grain(d.C), [&](std::int64_t c0, std::int64_t c1) {
    for (std::int64_t c = c0; c < c1; ++c)
      for (int s = 0; s < seeds; ++s)
        if (g[s])
          batch_norm_backward_channel(c, g[s], x, mean_used, inv, gamma, training, d, gx[s].data(), gg[s].data(), gb[s].data(), gate,
                                      keep_scale);
  });
}
}  // namespace detail

template <RealScalar T>
Var<T> batch_norm(const Var<T>& x, const Var<T>& gamma, const Var<T>& beta, const Tensor<T>& running_mean,
                  const Tensor<T>& running_var, bool training, double momentum = 0.1, double eps = 1e-5) {
  const Shape& s = x.shape();
  const auto d = detail::batch_norm_dims(s, gamma.shape(), beta.shape(), running_mean.shape(), running_var.shape(), training);
  Tensor<T> inv(Shape{d.C}), mean_used(Shape{d.C}), y(s);
  detail::batch_norm_forward(x.value(), gamma.value(), beta.value(), running_mean, running_var, training, momentum, eps, d, inv,
                             mean_used, y, [](std::int64_t, std::int64_t) {});
  auto rule = [x, gamma, beta, mean_used, inv, training, d](const Tensor<T>& g) {
    Tensor<T> gx(x.shape()), gg(Shape{d.C}), gb(Shape{d.C});
    detail::batch_norm_backward(g.data(), x.value().data(), mean_used, inv, gamma.value(), training, d, gx, gg, gb);
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

namespace detail {
// Dropout's keep decisions for `total` elements into out: out[i] = kv (kept) or 0 (dropped),
// counter first + i deciding element i (first = gen.reserve(total)). Whole Philox blocks are
// evaluated once for their four words (the same values as gen.uniform). U is the mask's real
// type (kv = 1/(1−p)) or a byte (a code).
template <class U> void dropout_keep_into(Generator& gen, std::int64_t total, double p, U* out, U kv) {
  static_assert(!std::is_same_v<U, std::uint8_t> || std::is_same_v<std::uint8_t, unsigned char>,
                "byte codes are written into other tensors' storage: std::uint8_t must be unsigned char");
  const std::uint64_t first = gen.reserve(static_cast<std::uint64_t>(total));
  const std::uint32_t threshold = dropout_threshold(p);  // keep iff (bits >> 8) >= p·2²⁴
  CpuDevice::parallel_for(total, 1 << 14, [&](std::int64_t b, std::int64_t e) {
    // Locals, not the captured references: read through the capture, the compiler must
    // assume the stores below may change them and emits a scalar load-compare-branch per mask.
    const U ks = kv;
    const std::uint32_t thr = threshold;
    const std::uint64_t c0 = first;
    U* const dst0 = out;
    std::int64_t i = b;
    std::uint32_t w[4][Generator::kLanes];
    while (i < e) {
      const std::uint64_t c = c0 + static_cast<std::uint64_t>(i);
      if ((c & 3) == 0 && e - i >= 4 * Generator::kLanes) {  // 64 masks from 16 blocks at once
        gen.blocks(c >> 2, w);
        U m[4][Generator::kLanes];  // compare in the blocks' SoA layout (vectorises) ...
        for (int k = 0; k < 4; ++k)
          for (int j = 0; j < Generator::kLanes; ++j) m[k][j] = static_cast<U>(U((w[k][j] >> 8) >= thr) * ks);
        U* dst = dst0 + i;  // ... then interleave: counter c + 4j + k is word k of block j
        for (int j = 0; j < Generator::kLanes; ++j)
          for (int k = 0; k < 4; ++k) dst[4 * j + k] = m[k][j];
        i += 4 * Generator::kLanes;
        continue;
      }
      const auto w1 = gen.block(c >> 2);
      for (std::uint64_t k = c & 3; k < 4 && i < e; ++k, ++i) dst0[i] = static_cast<U>(U((w1[k] >> 8) >= thr) * ks);
    }
  });
}
// The mask of `total` reals: 0 or 1/(1−p) each.
template <RealScalar R> Tensor<R> dropout_mask(Generator& gen, std::int64_t total, double p) {
  Tensor<R> mask(Shape{total});
  dropout_keep_into<R>(gen, total, p, mask.data(), R(1) / R(1 - p));
  return mask;
}
}  // namespace detail

// Dropout; identity when !training or p == 0.
template <Scalar T> Var<T> dropout(const Var<T>& x, double p, bool training, Generator& gen) {
  detail::check_dropout_p(p);
  if (!training || p == 0) return x;
  using R = real_t<T>;
  constexpr int parts = is_complex_v<T> ? 2 : 1;
  const std::int64_t n = x.numel();
  const Tensor<R> mask = detail::dropout_mask<R>(gen, parts * n, p);
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

// batch_norm → relu → dropout(p) as one op: the sensor encoder's blocks and the CNN's stem
// (nn::Sequential calls it for BatchNorm2d, ReLU[, Dropout] on the CPU). It gives the values,
// the running statistics and the gradients of the three ops applied one after another with
// the same Generator, bit for bit, in one pass over the data each way instead of three:
//   forward   y as batch_norm computes it, then per element d = (y < 0 ? 0 : y)·mask
//             (mask = kept ? 1/(1−p) : 0, the values dropout_mask would draw, from
//             dropout_keep_into's decisions at the same point of the Generator's stream;
//             without dropout — p = 0 — d = (y < 0 ? 0 : y));
//   backward  the op keeps one byte per element in place of the three ops' saved tensors,
//             code = (y > 0 ? (kept ? 2 : 1) : 0), and batch_norm's rule takes
//             G_y = (code == 0 ? 0 : G·(code == 2 ? 1/(1−p) : 0)) — what dropout's rule
//             (G·mask, a signed zero where dropped) and then relu's (G where y > 0, else +0)
//             compute — segment by segment as it goes (batch_norm_backward's gate). Without
//             dropout the kept factor is 1 (G·1 = G).
template <RealScalar T>
Var<T> batch_norm_relu_dropout(const Var<T>& x, const Var<T>& gamma, const Var<T>& beta, const Tensor<T>& running_mean,
                               const Tensor<T>& running_var, bool training, double momentum, double eps, double p, Generator* gen) {
  detail::check_dropout_p(p);
  const bool drop = training && p > 0;
  if (drop && !gen) throw std::invalid_argument("batch_norm_relu_dropout: dropout needs a Generator");
  const Shape& s = x.shape();
  const auto d = detail::batch_norm_dims(s, gamma.shape(), beta.shape(), running_mean.shape(), running_var.shape(), training);
  Tensor<T> inv(Shape{d.C}), mean_used(Shape{d.C}), y(s);
  // The keep decisions are drawn before the statistics: batch norm draws nothing, so the
  // counters are the ones dropout would take after it. One byte per element (2 kept, 0
  // dropped), in a tensor of T's of the same byte size rounded up; it becomes the gate's codes
  // in place (without dropout nothing is drawn and the epilogue writes the codes directly).
  // The kept scale is dropout_mask's, 1/(1−p).
  const std::int64_t numel = s.numel();
  T* yp = y.data();
  // Not recorded (NoGradGuard, or nothing requires a gradient) and nothing to draw: the rule
  // and its codes would be dropped, so the epilogue only rectifies (inference).
  if (!will_record(x, gamma, beta) && !drop) {
    detail::batch_norm_forward(x.value(), gamma.value(), beta.value(), running_mean, running_var, training, momentum, eps, d, inv,
                               mean_used, y, [yp](std::int64_t k, std::int64_t len) {
                                 T* __restrict yk = yp + k;
                                 for (std::int64_t i = 0; i < len; ++i) yk[i] = yk[i] < T(0) ? T(0) : yk[i];
                               });
    return record("batch_norm_relu_dropout", y, [](const Tensor<T>&) {}, x, gamma, beta);  // (not kept: nothing needs it)
  }
  Tensor<T> gate(Shape{(numel + std::int64_t(sizeof(T)) - 1) / std::int64_t(sizeof(T))});
  auto* gp = reinterpret_cast<std::uint8_t*>(gate.data());
  const T ks = drop ? T(1) / T(1 - p) : T(1);
  if (drop) detail::dropout_keep_into<std::uint8_t>(*gen, numel, p, gp, 2);
  detail::batch_norm_forward(x.value(), gamma.value(), beta.value(), running_mean, running_var, training, momentum, eps, d, inv,
                             mean_used, y, [gp, yp, drop, ks](std::int64_t k, std::int64_t len) {
                               T* __restrict yk = yp + k;
                               std::uint8_t* __restrict gk = gp + k;
                               const T kv = ks;
                               if (drop)
                                 for (std::int64_t i = 0; i < len; ++i) {
                                   const T v = yk[i];
                                   const bool kept = gk[i] == 2;
                                   const T mk = kept ? kv : T(0);
                                   gk[i] = v > T(0) ? (kept ? 2 : 1) : 0;
                                   yk[i] = (v < T(0) ? T(0) : v) * mk;
                                 }
                               else
                                 for (std::int64_t i = 0; i < len; ++i) {
                                   const T v = yk[i];
                                   gk[i] = v > T(0) ? 2 : 0;
                                   yk[i] = v < T(0) ? T(0) : v;
                                 }
                             });
  auto rule = [x, gamma, beta, mean_used, inv, gate, ks, training, d](const Tensor<T>& g) {
    Tensor<T> gx(x.shape()), gg(Shape{d.C}), gb(Shape{d.C});
    detail::batch_norm_backward(g.data(), x.value().data(), mean_used, inv, gamma.value(), training, d, gx, gg, gb,
                                reinterpret_cast<const std::uint8_t*>(gate.data()), ks);
    add_grad(x, std::move(gx));
    add_grad(gamma, std::move(gg));
    add_grad(beta, std::move(gb));
  };
  // grad_seeds: all seeds channel by channel (batch_norm_backward_seeds), the same bits.
  auto seeds_rule = [x, gamma, beta, mean_used, inv, gate, ks, training, d](const Tensor<T>* const* adj, int seeds) {
    Tensor<T> gx[kMaxSeeds], gg[kMaxSeeds], gb[kMaxSeeds];
    const T* gs[kMaxSeeds] = {};
    for (int s = 0; s < seeds; ++s)
      if (adj[s]) {
        gs[s] = adj[s]->data();
        gx[s] = Tensor<T>(x.shape());
        gg[s] = Tensor<T>(Shape{d.C});
        gb[s] = Tensor<T>(Shape{d.C});
      }
    detail::batch_norm_backward_seeds(gs, seeds, x.value().data(), mean_used, inv, gamma.value(), training, d, gx, gg, gb,
                                      reinterpret_cast<const std::uint8_t*>(gate.data()), ks);
    for (int s = 0; s < seeds; ++s)
      if (adj[s]) {
        const detail::ActiveSeed active(s);
        add_grad(x, std::move(gx[s]));
        add_grad(gamma, std::move(gg[s]));
        add_grad(beta, std::move(gb[s]));
      }
  };
  auto v = record("batch_norm_relu_dropout", y, rule, x, gamma, beta);
  record_seeds(v, seeds_rule);
  return v;
}

}  // namespace erlmr
