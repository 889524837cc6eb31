// erlmr/ops/conv.hpp — 2-D convolution (cross-correlation, like PyTorch) and pooling.
//
// conv2d(x, W, b, stride, padding): x (N, C, H, W), W (O, C, kh, kw), b (O).
// Lowered to one GEMM over the whole batch: cols = im2col(x) has shape
// (C·kh·kw, N·Ho·Wo) and Y = W·cols (+ b), then Y is laid out as (N, O, Ho, Wo).
// Backward, with G laid out the same way as Y (O, N·Ho·Wo):
//   G_W = G·colsᴴ,  G_cols = Wᴴ·G  → col2im (sums overlapping windows),  G_b = Σ G.
// (ᴴ reduces to ᵀ for real tensors.) col2im accumulates in a fixed order. For real tensors
// with a thin weight (O and C·kh·kw at most kThinMax, SIMD on) Y and G_cols are computed by
// chunks of samples with simd::gemm_nn, each chunk's slice laid out (or col2im'd) from a
// buffer that stays in cache, so Y's (O, N·HW) form and G_cols are never formed whole (see
// SampleChunks); otherwise the products go through linalg.hpp's product_ab / product_atb.
// G_W goes through product_abt (gemm_nt for short patches, else as (cols·Gᵀ)ᵀ so that the
// long axis N·Ho·Wo is the kernel's k). On the chunked path, a layer whose input needs no
// gradient and whose patch is short against the output plane (K < kNtMaxRows and
// K·kNtReduceCost ≤ Ho·Wo: the sensor encoder's first layer) takes G_W and G_b from G's
// (N, O, Ho·Wo) layout in place, sample by sample (conv_weight_bias_grads); a layer with a
// wide patch (K ≥ kNtMaxRows: the sensor encoder's 2 × 2 layer) reads G from that layout in
// all three gradients and never forms the permuted G (conv_wide_patch_grads); a pointwise
// layer (1 × 1, stride 1, no padding, whether or not its input needs a gradient) reads x, y,
// gy and gx in place and forms no columns (conv_pointwise).
#pragma once
#include "erlmr/ops/linalg.hpp"

namespace erlmr {

struct Conv2dGeometry {
  std::int64_t n, c, h, w, o, kh, kw, sh, sw, ph, pw, ho, wo;
  std::int64_t patch() const { return c * kh * kw; }
  std::int64_t positions() const { return n * ho * wo; }
};

namespace detail {
inline Conv2dGeometry conv_geometry(const Shape& x, const Shape& w, std::array<std::int64_t, 2> stride,
                                    std::array<std::int64_t, 2> pad) {
  if (x.rank() != 4 || w.rank() != 4 || x[1] != w[1])
    throw ShapeError("conv2d: input " + x.str() + " and weight " + w.str() + " are not (N, C, H, W) and (O, C, kh, kw)");
  if (stride[0] < 1 || stride[1] < 1 || pad[0] < 0 || pad[1] < 0) throw ShapeError("conv2d: stride must be >= 1 and padding >= 0");
  Conv2dGeometry g{x[0], x[1], x[2], x[3], w[0], w[2], w[3], stride[0], stride[1], pad[0], pad[1], 0, 0};
  const std::int64_t hp = g.h + 2 * g.ph - g.kh, wp = g.w + 2 * g.pw - g.kw;
  if (hp < 0 || wp < 0)
    throw ShapeError("conv2d: kernel " + w.str() + " larger than padded input " + x.str());
  g.ho = hp / g.sh + 1;
  g.wo = wp / g.sw + 1;
  return g;
}

// The output positions t in [0, n_out) whose input coordinate t·stride − pad + k lies in
// [0, n_in): a half-open range [lo, hi), so the copy loops below carry no bounds tests.
inline std::pair<std::int64_t, std::int64_t> valid_range(std::int64_t n_in, std::int64_t n_out, std::int64_t stride,
                                                         std::int64_t pad, std::int64_t k) {
  const std::int64_t first = pad - k, last = n_in - 1 + pad - k;  // need first <= t·stride <= last
  if (last < 0) return {0, 0};
  const std::int64_t lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  const std::int64_t hi = std::min(n_out, last / stride + 1);
  return {std::min(lo, hi), hi};
}

// cols[(c·kh + i)·kw + j, (n·Ho + y)·Wo + x] = x[n, c, y·sh − ph + i, x·sw − pw + j] (0 outside):
// rows [r0, r1) and the columns of samples [n0, n1) of a cols matrix with leading dimension ld
// whose column 0 is the first column of sample n_first (the whole matrix: 0; a buffer holding
// a few samples' columns: the first of them).
template <class T>
void im2col_block(const T* x, const Conv2dGeometry& g, T* cols, std::int64_t ld, std::int64_t r0, std::int64_t r1, std::int64_t n0,
                  std::int64_t n1, std::int64_t n_first = 0) {
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::int64_t c = r / (g.kh * g.kw), i = (r / g.kw) % g.kh, j = r % g.kw;
    const auto [ylo, yhi] = valid_range(g.h, g.ho, g.sh, g.ph, i);
    const auto [xlo, xhi] = valid_range(g.w, g.wo, g.sw, g.pw, j);
    T* dst = cols + r * ld + (n0 - n_first) * g.ho * g.wo;
    for (std::int64_t n = n0; n < n1; ++n)
      for (std::int64_t y = 0; y < g.ho; ++y, dst += g.wo) {
        if (y < ylo || y >= yhi) {
          std::fill_n(dst, g.wo, T(0));
          continue;
        }
        const T* src = x + ((n * g.c + c) * g.h + (y * g.sh - g.ph + i)) * g.w - g.pw + j;
        std::fill_n(dst, xlo, T(0));
        if (g.sw == 1) std::copy(src + xlo, src + xhi, dst + xlo);
        else
          for (std::int64_t xx = xlo; xx < xhi; ++xx) dst[xx] = src[xx * g.sw];
        std::fill(dst + xhi, dst + g.wo, T(0));
      }
  }
}
// The whole (C·kh·kw, N·Ho·Wo) matrix, parallel over its rows.
template <class T> Tensor<T> im2col(const Tensor<T>& x, const Conv2dGeometry& g) {
  Tensor<T> cols(Shape{g.patch(), g.positions()});
  CpuDevice::parallel_for(g.patch(), 8, [&](std::int64_t r0, std::int64_t r1) {
    im2col_block(x.data(), g, cols.data(), g.positions(), r0, r1, 0, g.n);
  });
  return cols;
}

// Adjoint of im2col: scatter-adds columns back into an (N, C, H, W) tensor, for the (n, c)
// planes [p0, p1) of gx. cols has leading dimension ld and its column 0 is the first column of
// sample n_first (the whole matrix: n_first = 0; a buffer holding a few samples' columns: the
// first of them). Within a plane the (i, j, y, x) order is fixed; each plane is zeroed by the
// thread that fills it (no serial memset of the whole tensor); a 1×1 kernel with stride 1 and
// no padding reads every input element exactly once, so its planes are plain copies.
template <class T>
void col2im_block(const T* cols, std::int64_t ld, std::int64_t n_first, const Conv2dGeometry& g, T* gx, std::int64_t p0,
                  std::int64_t p1) {
  const std::int64_t hw = g.h * g.w, howo = g.ho * g.wo;
  const bool pointwise = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
  for (std::int64_t p = p0; p < p1; ++p) {
    const std::int64_t n = p / g.c, c = p % g.c;
    T* plane = gx + p * hw;
    if (pointwise) {  // Ho = H, Wo = W: cols[c, n·HW + k] is the only contribution to plane[k]
      std::copy_n(cols + c * ld + (n - n_first) * hw, hw, plane);
      continue;
    }
    std::fill_n(plane, hw, T(0));
    for (std::int64_t i = 0; i < g.kh; ++i) {
      const auto [ylo, yhi] = valid_range(g.h, g.ho, g.sh, g.ph, i);
      for (std::int64_t j = 0; j < g.kw; ++j) {
        const auto [xlo, xhi] = valid_range(g.w, g.wo, g.sw, g.pw, j);
        const T* src = cols + ((c * g.kh + i) * g.kw + j) * ld + (n - n_first) * howo;
        for (std::int64_t y = ylo; y < yhi; ++y) {
          T* row = plane + (y * g.sh - g.ph + i) * g.w - g.pw + j;
          const T* sy = src + y * g.wo;
          if (g.sw == 1)
            for (std::int64_t xx = xlo; xx < xhi; ++xx) row[xx] += sy[xx];
          else
            for (std::int64_t xx = xlo; xx < xhi; ++xx) row[xx * g.sw] += sy[xx];
        }
      }
    }
  }
}
template <class T> Tensor<T> col2im(const Tensor<T>& cols, const Conv2dGeometry& g, const Shape& xs) {
  Tensor<T> gx(xs);
  CpuDevice::parallel_for(g.n * g.c, 4, [&](std::int64_t p0, std::int64_t p1) {
    col2im_block(cols.data(), g.positions(), 0, g, gx.data(), p0, p1);
  });
  return gx;
}

// The real products by chunks of samples (simd::gemm_nn available): each chunk's slice of
// the product goes to a small buffer that stays in this core's cache and is laid out from
// there (forward: bias and the (N, O, HW) order; input gradient: col2im), so neither the
// (O, N·HW) output nor the (C·kh·kw, N·HW) column gradient is formed in memory. Chunks of
// about kConvChunk buffer elements; thread slot s takes chunks s, s + slots, … with its own
// buffer. Every element is computed as by the whole product (gemm_nn's chains do not depend
// on the column split) and written once, so the results are the same bits as the
// whole-matrix path and do not depend on the thread count.
inline constexpr std::int64_t kConvChunk = 1 << 16;
struct SampleChunks {
  std::int64_t n, chunk, chunks, slots;  // samples, samples per chunk, chunks, thread slots
  static SampleChunks of(std::int64_t n, std::int64_t buffer_per_sample) {
    const std::int64_t threads = CpuDevice::num_threads();
    // At most kConvChunk buffer elements, and at least one chunk per thread.
    const std::int64_t by_cache = kConvChunk / std::max<std::int64_t>(buffer_per_sample, 1);
    SampleChunks c{n, std::max<std::int64_t>(1, std::min(by_cache, (n + threads - 1) / threads)), 0, 0};
    c.chunks = (n + c.chunk - 1) / c.chunk;
    c.slots = std::min(threads, c.chunks);
    return c;
  }
  // f(slot, n0, n1) for every chunk [n0, n1); one slot's chunks run in one thread, in order.
  template <class F> void run(F&& f) const {
    CpuDevice::parallel_for(slots, 1, [&](std::int64_t s0, std::int64_t s1) {
      for (std::int64_t s = s0; s < s1; ++s)
        for (std::int64_t k = s; k < chunks; k += slots) f(s, k * chunk, std::min(n, (k + 1) * chunk));
    });
  }
};
// f(buf, n0, n1) for every chunk of n samples, buf holding buffer_per_sample elements per
// sample of the chunk (each thread slot its own).
template <class T, class F> void for_sample_chunks(std::int64_t n, std::int64_t buffer_per_sample, F&& f) {
  const auto ch = SampleChunks::of(n, buffer_per_sample);
  const std::int64_t per_slot = buffer_per_sample * ch.chunk;
  Tensor<T> scratch(Shape{ch.slots, per_slot});
  ch.run([&](std::int64_t s, std::int64_t n0, std::int64_t n1) { f(scratch.data() + s * per_slot, n0, n1); });
}

// (O, N·HW) -> (N, O, HW) when to_nohw, else the reverse: N·O row copies of HW elements,
// parallel over chunks of consecutive destination rows (each chunk writes one contiguous run,
// so two threads can share a cache line only at a chunk boundary; as cuda::permute_onhw).
template <class T> void permute_onhw(const T* src, T* dst, std::int64_t n, std::int64_t o, std::int64_t hw, bool to_nohw) {
  CpuDevice::parallel_for(n * o, std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(hw, 1)), [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      // (N, O, HW) row b·o + k is (O, N·HW) row k·n + b.
      const std::int64_t other = to_nohw ? (r % o) * n + r / o : (r % n) * o + r / n;
      std::copy_n(src + other * hw, hw, dst + r * hw);
    }
  });
}

// Whether conv2d takes the chunked real path (the products through simd::gemm_nn).
template <class T> bool conv_chunked(const Conv2dGeometry& g) {
  if constexpr (RealScalar<T>) return thin_product(g.o) && g.patch() <= kThinMax;
  else return (void)g, false;
}

// G_W = G·colsᵀ and G_b = Σ G with G read in place from the output gradient gy (N, O, HW),
// for a layer whose input needs no gradient (so that G is not wanted as (O, N·HW) for the
// input gradient either): sample by sample, simd::gemm_nt(G_n, cols_n) added in, by blocks
// of output channels, one per thread; G_b[o] = Σ_n Σ_k gy[n, o, k]. The permutation of the
// whole gy it replaces copies O·N·HW elements; the price is one lane reduction per output
// element and sample, about kNtReduceCost operations each, O·K·N of them — worth it when
// K·kNtReduceCost ≤ HW (the sensor encoder's first layer: K = 4, HW = 398), for patches
// short enough for gemm_nt (K < kNtMaxRows, as product_abt). Real types on the chunked path
// only. The bits differ from product_abt's single chain over all N·HW positions (one lane
// reduction per sample here), so a first layer's gradients depend, in their last bits, on
// whether its input needs a gradient.
inline constexpr std::int64_t kNtReduceCost = 16;
template <RealScalar T> void conv_weight_bias_grads(const T* gy, const Conv2dGeometry& g, const T* cols, T* gw, T* gb) {
  const std::int64_t N = g.n, O = g.o, K = g.patch(), hw = g.ho * g.wo, P = g.positions();
  using Seg = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
  CpuDevice::parallel_for(O, CpuDevice::block_grain(O), [&](std::int64_t o0, std::int64_t o1) {
    if (gw && N == 0) std::fill(gw + o0 * K, gw + o1 * K, T(0));
    if (gb) std::fill(gb + o0, gb + o1, T(0));
    // Sample by sample: the block's rows of G_n feed the product, then the bias sums while
    // they are still in cache (one pass over gy; G_b[o] adds the samples' sums in order).
    for (std::int64_t n = 0; n < N; ++n) {
      const T* gn = gy + (n * O + o0) * hw;
      if (gw) simd::gemm_nt<T>(o1 - o0, K, hw, gn, hw, cols + n * hw, P, gw + o0 * K, K, n > 0);
      if (gb)
        for (std::int64_t o = o0; o < o1; ++o) gb[o] += Seg(gn + (o - o0) * hw, hw).sum();
    }
  });
}

// Whether a wide patch's input gradient is taken without col2im: stride 1, no padding and one
// output row (the sensor encoder's 2 × 2 layer: H = kh). Kernel row i then meets input row i
// only, and output position t meets input column t + j, so with Wᵢⱼ = W[:, :, i, j] (O × C)
//   G_x,n[:, i, j : j + Wo] += Wᵢⱼᵀ·G_n      (C × Wo, G_n = gy's (O × Wo) block, in place)
// for j = 0, 1, …: kh·kw gemm_nn products per sample straight into gx, the first of each row
// written (the columns past Wo zeroed first), the others added — each element one chain over
// o for j = 0, continued over o for j = 1, …, instead of col2im's sum of separately rounded
// chains: other bits than the chunked path's, and no (K × HW) buffer to write and read back.
inline bool conv_shifted_input_grad(const Conv2dGeometry& g) {
  return g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0 && g.ho == 1;
}

// The gradients of a layer with a wide patch (K ≥ kNtMaxRows, O ≥ kThinMin, chunked path:
// the sensor encoder's (64 → 64, 2 × 2) layer), with G read from the output gradient gy
// (N, O, HW) in place instead of being permuted into (O, N·HW) first:
//   G_W: product_abt's (cols·Gᵀ)ᵀ with Gᵀ (N·HW × O) formed straight from gy (one transpose
//        per sample's (O × HW) block), so the same gemm_nn and the same bits as product_abt;
//   G_x: per sample, Wᵀ·G_n with G_n = gy's (O × HW) block as gemm_nn's right operand, into
//        the chunk buffer, then col2im — each element the same chain over O as the chunk's
//        product on the permuted G, so the same bits; with stride 1, no padding and one
//        output row, kh·kw shifted products straight into gx (conv_shifted_input_grad);
//   G_b: G_b[o] = Σ_n Σ_k gy[n, o, k], the samples' sums added in sample order (as
//        conv_weight_bias_grads; parallel over samples for the sums, then over channels).
// The permuted G (O·N·HW elements written, then read twice) is not formed: one pass over gy
// for Gᵀ and the sums, and the input gradient's products read gy where it is.
template <RealScalar T>
void conv_wide_patch_grads(const T* gy, const Conv2dGeometry& g, const T* cols, const T* w, T* gw, T* gx, T* gb) {
  const std::int64_t N = g.n, O = g.o, K = g.patch(), hw = g.ho * g.wo, P = g.positions();
  using Seg = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
  Tensor<T> gtt, sums;  // Gᵀ (P × O); per-sample channel sums (N × O)
  if (gw) gtt = Tensor<T>(Shape{P, O});
  if (gb) sums = Tensor<T>(Shape{N, O});
  if (gw || gb) {
    T* gtp = gw ? gtt.data() : nullptr;
    T* sp = gb ? sums.data() : nullptr;
    CpuDevice::parallel_for(N, 1, [=](std::int64_t n0, std::int64_t n1) {
      for (std::int64_t n = n0; n < n1; ++n) {
        const T* gn = gy + n * O * hw;
        if (gtp) transpose_into(gn, O, hw, gtp + n * hw * O);  // (runs serially inside a parallel_for)
        if (sp)
          for (std::int64_t o = 0; o < O; ++o) sp[n * O + o] = Seg(gn + o * hw, hw).sum();
      }
    });
  }
  if (gw) {  // as product_abt: Cᵀ = cols·Gᵀ through gemm_nn, then transposed
    Tensor<T> ct(Shape{K, O});
    simd::gemm_nn<T>(K, O, P, cols, P, gtt.data(), O, ct.data(), O, false);
    transpose_into(ct.data(), K, O, gw);
  }
  if (gx && conv_shifted_input_grad(g)) {
    // Wᵢⱼᵀ (C × O) for every kernel offset (i, j), then per sample the kh·kw products into gx.
    const std::int64_t C = g.c, kk = g.kh * g.kw, plane = g.h * g.w;
    Tensor<T> wij(Shape{kk, C, O});
    for (std::int64_t o = 0; o < O; ++o)
      for (std::int64_t c = 0; c < C; ++c)
        for (std::int64_t ij = 0; ij < kk; ++ij) wij.data()[(ij * C + c) * O + o] = w[(o * C + c) * kk + ij];
    CpuDevice::parallel_for(N, 1, [&](std::int64_t n0, std::int64_t n1) {
      for (std::int64_t n = n0; n < n1; ++n) {
        T* gxn = gx + n * C * plane;
        for (std::int64_t r = 0; r < C * g.h; ++r) std::fill(gxn + r * g.w + g.wo, gxn + (r + 1) * g.w, T(0));  // reached by j > 0 only
        for (std::int64_t i = 0; i < g.kh; ++i)
          for (std::int64_t j = 0; j < g.kw; ++j)
            simd::gemm_nn<T>(C, g.wo, O, wij.data() + (i * g.kw + j) * C * O, O, gy + n * O * hw, hw, gxn + i * g.w + j, plane, j > 0);
      }
    });
  } else if (gx) {
    Tensor<T> wt(Shape{K, O});
    transpose_into(w, O, K, wt.data());
    for_sample_chunks<T>(N, K * hw, [&](T* buf, std::int64_t n0, std::int64_t n1) {
      const std::int64_t cw = (n1 - n0) * hw;
      for (std::int64_t n = n0; n < n1; ++n)
        simd::gemm_nn<T>(K, hw, O, wt.data(), O, gy + n * O * hw, hw, buf + (n - n0) * hw, cw, false);
      col2im_block(buf, cw, n0, g, gx, n0 * g.c, n1 * g.c);
    });
  }
  if (gb)
    CpuDevice::parallel_for(O, CpuDevice::block_grain(O), [&](std::int64_t o0, std::int64_t o1) {
      for (std::int64_t o = o0; o < o1; ++o) {
        T acc = 0;
        for (std::int64_t n = 0; n < N; ++n) acc += sums.data()[n * O + o];
        gb[o] = acc;
      }
    });
}
// A pointwise layer (1 × 1 kernel, stride 1, no padding, chunked path: the sensor encoder's
// 64 → 32 and 32 → 16 layers) has cols = x: sample n's columns are x's (C × HW) block. Its
// products read x, y, gy and gx in place, sample by sample, so neither im2col's copy of x,
// nor the permuted G, nor col2im's copy is made:
//   Y_n   = W·X_n (+ b)            gemm_nn(O, HW, C): the chunked path's chains, the same bits;
//   G_x,n = Wᵀ·G_n                 gemm_nn(C, HW, O): the same bits as the chunked path;
//   G_W   = Σ_n G_n·X_nᵀ           gemm_nn(O-block, C, HW) per sample, added in sample order,
//                                  with X_nᵀ from xt (P × C, formed by the forward pass): each
//                                  element one chain over all N·HW positions in order, the
//                                  bits of gemm_nn(C, O, P)'s (cols·Gᵀ) (product_abt's route for
//                                  long patches; shorter ones went through gemm_nt, whose
//                                  lanes sum in another order);
//   G_b[o] = Σ_n Σ_k gy[n, o, k]   each sample's sum added in sample order (as the wide patch).
// G_W and G_b are parallel over blocks of output channels (each block's rows are independent),
// G_x over samples.
template <class T> bool conv_pointwise(const Conv2dGeometry& g, bool chunked) {
  return chunked && g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
}
// xt (P × C): each sample's (C × HW) block of x transposed.
template <RealScalar T> void pointwise_transpose(const T* x, const Conv2dGeometry& g, T* xt) {
  const std::int64_t hw = g.h * g.w;
  CpuDevice::parallel_for(g.n, 1, [=](std::int64_t n0, std::int64_t n1) {
    for (std::int64_t n = n0; n < n1; ++n) transpose_into(x + n * g.c * hw, g.c, hw, xt + n * hw * g.c);  // (serial inside)
  });
}
template <RealScalar T> void pointwise_forward(const T* x, const T* w, const T* b, const Conv2dGeometry& g, T* y) {
  const std::int64_t hw = g.h * g.w;
  CpuDevice::parallel_for(g.n, 1, [=](std::int64_t n0, std::int64_t n1) {
    for (std::int64_t n = n0; n < n1; ++n) {
      T* yn = y + n * g.o * hw;
      simd::gemm_nn<T>(g.o, hw, g.c, w, g.c, x + n * g.c * hw, hw, yn, hw, false);
      if (b)
        for (std::int64_t o = 0; o < g.o; ++o) {
          const T bo = b[o];
          for (std::int64_t k = 0; k < hw; ++k) yn[o * hw + k] += bo;
        }
    }
  });
}
template <RealScalar T>
void pointwise_grads(const T* gy, const Conv2dGeometry& g, const T* xt, const T* w, T* gw, T* gx, T* gb) {
  const std::int64_t N = g.n, O = g.o, C = g.c, hw = g.h * g.w;
  using Seg = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
  if (gw || gb)
    CpuDevice::parallel_for(O, CpuDevice::block_grain(O), [&](std::int64_t o0, std::int64_t o1) {
      if (gw && N == 0) std::fill(gw + o0 * C, gw + o1 * C, T(0));
      if (gb) std::fill(gb + o0, gb + o1, T(0));
      for (std::int64_t n = 0; n < N; ++n) {
        const T* gn = gy + (n * O + o0) * hw;
        if (gw) simd::gemm_nn<T>(o1 - o0, C, hw, gn, hw, xt + n * hw * C, C, gw + o0 * C, C, n > 0);
        if (gb)
          for (std::int64_t o = o0; o < o1; ++o) gb[o] += Seg(gn + (o - o0) * hw, hw).sum();
      }
    });
  if (gx) {
    Tensor<T> wt(Shape{C, O});
    transpose_into(w, O, C, wt.data());
    CpuDevice::parallel_for(N, 1, [&](std::int64_t n0, std::int64_t n1) {
      for (std::int64_t n = n0; n < n1; ++n) simd::gemm_nn<T>(C, hw, O, wt.data(), O, gy + n * O * hw, hw, gx + n * C * hw, hw, false);
    });
  }
}
}  // namespace detail

template <Scalar T>
Var<T> conv2d(const Var<T>& x, const Var<T>& w, const Var<T>& b = Var<T>(), std::array<std::int64_t, 2> stride = {1, 1},
              std::array<std::int64_t, 2> padding = {0, 0}) {
  const auto g = detail::conv_geometry(x.shape(), w.shape(), stride, padding);
  if (b.defined() && !(b.shape() == Shape{g.o}))
    throw ShapeError("conv2d: bias " + b.shape().str() + " does not match weight " + w.shape().str());
  const std::int64_t hw = g.ho * g.wo, K = g.patch(), P = g.positions();
  const bool chunked = detail::conv_chunked<T>(g);
  Tensor<T> cols;
  Tensor<T> y(Shape{g.n, g.o, g.ho, g.wo});
  const bool pointwise = detail::conv_pointwise<T>(g, chunked);
  Tensor<T> xt;  // a pointwise layer's x, sample by sample transposed (P × C), for G_W
  if constexpr (RealScalar<T>) {
    if (pointwise) {
      detail::pointwise_forward<T>(x.value().data(), w.value().data(), b.defined() ? b.value().data() : nullptr, g, y.data());
      if (will_record(x, w, b) && w.requires_grad()) {
        xt = Tensor<T>(Shape{P, g.c});
        detail::pointwise_transpose<T>(x.value().data(), g, xt.data());
      }
    } else if (chunked) {
      // Per chunk of samples: its columns of cols, its slice of W·cols into the buffer, then
      // bias and layout into y. The columns are kept for the backward pass when the op will
      // be recorded; otherwise (inference, NoGradGuard) each chunk's columns go to the
      // thread's buffer after its product's slice, and the (C·kh·kw, N·Ho·Wo) matrix is never
      // formed (the same products, so the same bits).
      const T* bp = b.defined() ? b.value().data() : nullptr;
      const bool keep_cols = will_record(x, w, b);
      if (keep_cols) cols = Tensor<T>(Shape{K, P});
      detail::for_sample_chunks<T>(g.n, (g.o + (keep_cols ? 0 : K)) * hw, [&](T* buf, std::int64_t n0, std::int64_t n1) {
        const std::int64_t cw = (n1 - n0) * hw;
        const T* cb = keep_cols ? cols.data() + n0 * hw : buf + g.o * cw;  // the chunk's columns
        const std::int64_t ldc = keep_cols ? P : cw;
        if (keep_cols) detail::im2col_block(x.value().data(), g, cols.data(), P, 0, K, n0, n1);
        else detail::im2col_block(x.value().data(), g, buf + g.o * cw, cw, 0, K, n0, n1, n0);
        simd::gemm_nn<T>(g.o, cw, K, w.value().data(), K, cb, ldc, buf, cw, false);
        for (std::int64_t n = n0; n < n1; ++n)
          for (std::int64_t o = 0; o < g.o; ++o) {
            const T* src = buf + o * cw + (n - n0) * hw;
            T* dst = y.data() + (n * g.o + o) * hw;
            if (bp) {
              const T bo = bp[o];
              for (std::int64_t k = 0; k < hw; ++k) dst[k] = src[k] + bo;
            } else {
              std::copy_n(src, hw, dst);
            }
          }
      });
    }
  }
  if (!chunked) {
    cols = detail::im2col(x.value(), g);
    Tensor<T> yt(Shape{g.o, P});
    if constexpr (RealScalar<T>) detail::product_ab<T>(detail::mmat(yt, g.o, P), detail::cmat(w.value(), g.o, K), detail::cmat(cols, K, P), false);
    else detail::gemm_into<T>(detail::mmat(yt, g.o, P), detail::cmat(w.value(), g.o, K), detail::cmat(cols, K, P), false);
    if (b.defined()) detail::mmat(yt, g.o, P).colwise() += detail::cmat(b.value(), g.o, 1).col(0);
    detail::permute_onhw(yt.data(), y.data(), g.n, g.o, hw, true);
  }
  // A first layer (few rows per output channel, and no input gradient wanted) takes its weight
  // and bias gradients straight from gy, without the permutation: see conv_weight_bias_grads.
  // The shape test is decided once here; x.requires_grad() is read in the rule, when the
  // backward runs, as by the input-gradient branch below and every other op.
  const bool first_layer_shape = chunked && K < detail::kNtMaxRows && K * detail::kNtReduceCost <= hw;
  // A wide patch (the sensor encoder's 2 × 2 layer): every product reads G from gy's
  // (N, O, HW) layout, sample by sample, without the permutation (conv_wide_patch_grads).
  const bool wide_patch = chunked && K >= detail::kNtMaxRows && g.o >= detail::kThinMin;
  auto rule = [x, w, b, g, cols, xt, hw, K, P, chunked, first_layer_shape, wide_patch, pointwise](const Tensor<T>& gy) {
    // The in-place paths below: each wanted gradient allocated, kernel(gw, gx, gb) fills the
    // wanted ones (null pointers for the others), then each is handed to the tape.
    [[maybe_unused]] auto in_place = [&](auto&& kernel) {
      const bool want_w = w.requires_grad(), want_x = x.requires_grad(), want_b = b.defined() && b.requires_grad();
      Tensor<T> gw, gx, gb;
      if (want_w) gw = Tensor<T>(w.shape());
      if (want_x) gx = Tensor<T>(x.shape());
      if (want_b) gb = Tensor<T>(b.shape());
      kernel(want_w ? gw.data() : nullptr, want_x ? gx.data() : nullptr, want_b ? gb.data() : nullptr);
      if (want_w) add_grad(w, std::move(gw));
      if (want_x) add_grad(x, std::move(gx));
      if (want_b) add_grad(b, std::move(gb));
    };
    if (pointwise) {  // (gemm_nn was available when the forward chose this path; cols were not formed)
      if constexpr (RealScalar<T>) {
        in_place([&](T* gw, T* gx, T* gb) {
          Tensor<T> xtw = xt;
          if (gw && !xtw.defined()) {  // w did not want a gradient when the forward ran
            xtw = Tensor<T>(Shape{P, g.c});
            detail::pointwise_transpose<T>(x.value().data(), g, xtw.data());
          }
          detail::pointwise_grads<T>(gy.data(), g, gw ? xtw.data() : nullptr, w.value().data(), gw, gx, gb);
        });
        return;
      }
    }
    if (first_layer_shape && !x.requires_grad()) {
      if constexpr (RealScalar<T>) {  // (complex T takes the general path below)
        in_place([&](T* gw, T*, T* gb) { detail::conv_weight_bias_grads<T>(gy.data(), g, gw ? cols.data() : nullptr, gw, gb); });
        return;
      }
    }
    if (wide_patch && simd::gemm_available()) {  // (SIMD switched off since the forward: product_abt's Eigen route below)
      if constexpr (RealScalar<T>) {
        in_place([&](T* gw, T* gx, T* gb) {
          detail::conv_wide_patch_grads<T>(gy.data(), g, gw ? cols.data() : nullptr, w.value().data(), gw, gx, gb);
        });
        return;
      }
    }
    Tensor<T> gt(Shape{g.o, P});
    detail::permute_onhw(gy.data(), gt.data(), g.n, g.o, hw, false);
    const auto G = detail::cmat(gt, g.o, P);
    if (w.requires_grad()) {
      Tensor<T> gw(w.shape());
      if constexpr (RealScalar<T>) detail::product_abt<T>(detail::mmat(gw, g.o, K), G, detail::cmat(cols, K, P));
      else detail::gemm_into<T>(detail::mmat(gw, g.o, K), G, detail::cmat(cols, K, P).adjoint(), false);
      add_grad(w, std::move(gw));
    }
    if (x.requires_grad()) {
      Tensor<T> gx;
      if constexpr (RealScalar<T>) {
        if (chunked) {
          gx = Tensor<T>(x.shape());
          // Per chunk of samples: Wᵀ·G's columns for those samples into the buffer, then
          // col2im of their planes from there.
          Tensor<T> wt(Shape{K, g.o});
          detail::transpose_into(w.value().data(), g.o, K, wt.data());
          detail::for_sample_chunks<T>(g.n, K * hw, [&](T* buf, std::int64_t n0, std::int64_t n1) {
            const std::int64_t cw = (n1 - n0) * hw;
            simd::gemm_nn<T>(K, cw, g.o, wt.data(), g.o, gt.data() + n0 * hw, P, buf, cw, false);
            detail::col2im_block(buf, cw, n0, g, gx.data(), n0 * g.c, n1 * g.c);
          });
        }
      }
      if (!chunked) {
        Tensor<T> gc(Shape{K, P});
        if constexpr (RealScalar<T>) detail::product_atb<T>(detail::mmat(gc, K, P), detail::cmat(w.value(), g.o, K), G, false);
        else detail::gemm_into<T>(detail::mmat(gc, K, P), detail::cmat(w.value(), g.o, K).adjoint(), G, false);
        gx = detail::col2im(gc, g, x.shape());
      }
      add_grad(x, std::move(gx));
    }
    if (b.defined() && b.requires_grad()) {
      Tensor<T> gb(b.shape());
      CpuDevice::parallel_for(g.o, CpuDevice::block_grain(g.o), [&](std::int64_t k0, std::int64_t k1) {
        for (std::int64_t k = k0; k < k1; ++k) gb.data()[k] = G.row(k).sum();
      });
      add_grad(b, std::move(gb));
    }
  };
  if (b.defined()) return record("conv2d", y, rule, x, w, b);
  return record("conv2d", y, rule, x, w);
}

// Global average pooling: (N, C, H, W) -> (N, C); G_x = G / (H·W) broadcast.
template <Scalar T> Var<T> global_avg_pool(const Var<T>& x) {
  if (x.shape().rank() != 4) throw ShapeError("global_avg_pool: input " + x.shape().str() + " is not (N, C, H, W)");
  return mean(x, std::vector<int>{2, 3}, false);
}

}  // namespace erlmr
