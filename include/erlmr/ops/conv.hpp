// erlmr/ops/conv.hpp — 2-D convolution (cross-correlation, like PyTorch) and pooling.
//
// conv2d(x, W, b, stride, padding): x (N, C, H, W), W (O, C, kh, kw), b (O).
// Lowered to one GEMM over the whole batch: cols = im2col(x) has shape
// (C·kh·kw, N·Ho·Wo) and Y = W·cols (+ b), then Y is laid out as (N, O, Ho, Wo).
// Backward, with G laid out the same way as Y (O, N·Ho·Wo):
//   G_W = G·colsᴴ,  G_cols = Wᴴ·G  → col2im (sums overlapping windows),  G_b = Σ G.
// (ᴴ reduces to ᵀ for real tensors.) col2im accumulates in a fixed order. For real tensors
// the three products go through linalg.hpp's product_ab / product_abt / product_atb, which
// read cols (or G) in place with simd::gemm_nn when the weight side is thin (and use Eigen
// otherwise: see kThinMin/kThinMax there); G_W is formed as (cols·Gᵀ)ᵀ so that the long axis
// N·Ho·Wo is the kernel's k.
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

// cols[(c·kh + i)·kw + j, (n·Ho + y)·Wo + x] = x[n, c, y·sh − ph + i, x·sw − pw + j] (0 outside).
template <class T> Tensor<T> im2col(const Tensor<T>& x, const Conv2dGeometry& g) {
  Tensor<T> cols(Shape{g.patch(), g.positions()});
  const std::int64_t P = g.positions();
  CpuDevice::parallel_for(g.patch(), 8, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const std::int64_t c = r / (g.kh * g.kw), i = (r / g.kw) % g.kh, j = r % g.kw;
      const auto [ylo, yhi] = valid_range(g.h, g.ho, g.sh, g.ph, i);
      const auto [xlo, xhi] = valid_range(g.w, g.wo, g.sw, g.pw, j);
      T* dst = cols.data() + r * P;
      for (std::int64_t n = 0; n < g.n; ++n)
        for (std::int64_t y = 0; y < g.ho; ++y, dst += g.wo) {
          if (y < ylo || y >= yhi) {
            std::fill_n(dst, g.wo, T(0));
            continue;
          }
          const T* src = x.data() + ((n * g.c + c) * g.h + (y * g.sh - g.ph + i)) * g.w - g.pw + j;
          std::fill_n(dst, xlo, T(0));
          if (g.sw == 1) std::copy(src + xlo, src + xhi, dst + xlo);
          else
            for (std::int64_t xx = xlo; xx < xhi; ++xx) dst[xx] = src[xx * g.sw];
          std::fill(dst + xhi, dst + g.wo, T(0));
        }
    }
  });
  return cols;
}

// Adjoint of im2col: scatter-adds columns back into an (N, C, H, W) tensor.
// Parallel over (n, c) planes; within a plane the (i, j, y, x) order is fixed. Each plane
// is zeroed by the thread that fills it (no serial memset of the whole tensor); a 1×1
// kernel with stride 1 and no padding reads every input element exactly once, so its
// planes are plain copies.
template <class T> Tensor<T> col2im(const Tensor<T>& cols, const Conv2dGeometry& g, const Shape& xs) {
  Tensor<T> gx(xs);
  const std::int64_t P = g.positions(), hw = g.h * g.w;
  const bool pointwise = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
  CpuDevice::parallel_for(g.n * g.c, 4, [&](std::int64_t p0, std::int64_t p1) {
    for (std::int64_t p = p0; p < p1; ++p) {
      const std::int64_t n = p / g.c, c = p % g.c;
      T* plane = gx.data() + p * hw;
      if (pointwise) {  // Ho = H, Wo = W: cols[c, n·HW + k] is the only contribution to plane[k]
        std::copy_n(cols.data() + c * P + n * hw, hw, plane);
        continue;
      }
      std::fill_n(plane, hw, T(0));
      for (std::int64_t i = 0; i < g.kh; ++i) {
        const auto [ylo, yhi] = valid_range(g.h, g.ho, g.sh, g.ph, i);
        for (std::int64_t j = 0; j < g.kw; ++j) {
          const auto [xlo, xhi] = valid_range(g.w, g.wo, g.sw, g.pw, j);
          const T* src = cols.data() + ((c * g.kh + i) * g.kw + j) * P + n * g.ho * g.wo;
          for (std::int64_t y = ylo; y < yhi; ++y) {
            T* row = plane + (y * g.sh - g.ph + i) * g.w - g.pw + j;
            const T* s = src + y * g.wo;
            if (g.sw == 1)
              for (std::int64_t xx = xlo; xx < xhi; ++xx) row[xx] += s[xx];
            else
              for (std::int64_t xx = xlo; xx < xhi; ++xx) row[xx * g.sw] += s[xx];
          }
        }
      }
    }
  });
  return gx;
}

// (O, N·HW) -> (N, O, HW) when to_nohw, else the reverse: N·O row copies of HW elements,
// parallel over the rows (as cuda::permute_onhw).
template <class T> void permute_onhw(const T* src, T* dst, std::int64_t n, std::int64_t o, std::int64_t hw, bool to_nohw) {
  CpuDevice::parallel_for(n * o, std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(hw, 1)), [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {  // r = b·o + k; the (O, N·HW) row is k·n + b
      const std::int64_t onhw = (r % o) * n + r / o;
      if (to_nohw) std::copy_n(src + onhw * hw, hw, dst + r * hw);
      else std::copy_n(src + r * hw, hw, dst + onhw * hw);
    }
  });
}
}  // namespace detail

template <Scalar T>
Var<T> conv2d(const Var<T>& x, const Var<T>& w, const Var<T>& b = Var<T>(), std::array<std::int64_t, 2> stride = {1, 1},
              std::array<std::int64_t, 2> padding = {0, 0}) {
  const auto g = detail::conv_geometry(x.shape(), w.shape(), stride, padding);
  if (b.defined() && !(b.shape() == Shape{g.o}))
    throw ShapeError("conv2d: bias " + b.shape().str() + " does not match weight " + w.shape().str());
  const std::int64_t hw = g.ho * g.wo, K = g.patch(), P = g.positions();
  Tensor<T> cols = detail::im2col(x.value(), g);
  Tensor<T> yt(Shape{g.o, P});
  if constexpr (RealScalar<T>) detail::product_ab<T>(detail::mmat(yt, g.o, P), detail::cmat(w.value(), g.o, K), detail::cmat(cols, K, P), false);
  else detail::gemm_into<T>(detail::mmat(yt, g.o, P), detail::cmat(w.value(), g.o, K), detail::cmat(cols, K, P), false);
  if (b.defined()) detail::mmat(yt, g.o, P).colwise() += detail::cmat(b.value(), g.o, 1).col(0);
  Tensor<T> y(Shape{g.n, g.o, g.ho, g.wo});
  detail::permute_onhw(yt.data(), y.data(), g.n, g.o, hw, true);
  auto rule = [x, w, b, g, cols, hw, K, P](const Tensor<T>& gy) {
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
      Tensor<T> gc(Shape{K, P});
      if constexpr (RealScalar<T>) detail::product_atb<T>(detail::mmat(gc, K, P), detail::cmat(w.value(), g.o, K), G, false);
      else detail::gemm_into<T>(detail::mmat(gc, K, P), detail::cmat(w.value(), g.o, K).adjoint(), G, false);
      add_grad(x, detail::col2im(gc, g, x.shape()));
    }
    if (b.defined() && b.requires_grad()) {
      Tensor<T> gb(b.shape());
      CpuDevice::parallel_for(g.o, 1, [&](std::int64_t k0, std::int64_t k1) {
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
