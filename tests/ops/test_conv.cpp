#include "test_util.hpp"

using namespace erlmr;
using test::cd;
using test::check_grad;
using test::rnd;

namespace {
// Sets the pool's thread count for a scope and restores it on every way out (a failed
// REQUIRE too).
struct ThreadCount {
  int saved = ThreadPool::instance().num_threads();
  explicit ThreadCount(int n) { ThreadPool::instance().set_num_threads(n); }
  ~ThreadCount() { ThreadPool::instance().set_num_threads(saved); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;
};

// Direct definition of cross-correlation, for reference.
template <class T>
Tensor<T> naive_conv(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& b, int sh, int sw, int ph, int pw) {
  const auto N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3), O = w.dim(0), kh = w.dim(2), kw = w.dim(3);
  const auto Ho = (H + 2 * ph - kh) / sh + 1, Wo = (W + 2 * pw - kw) / sw + 1;
  auto y = Tensor<T>::zeros(Shape{N, O, Ho, Wo});
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < O; ++o)
      for (int i = 0; i < Ho; ++i)
        for (int j = 0; j < Wo; ++j) {
          T acc = b.defined() ? b[o] : T(0);
          for (int c = 0; c < C; ++c)
            for (int u = 0; u < kh; ++u)
              for (int v = 0; v < kw; ++v) {
                const auto yy = i * sh - ph + u, xx = j * sw - pw + v;
                if (yy >= 0 && yy < H && xx >= 0 && xx < W) acc += w.at({o, c, u, v}) * x.at({n, c, yy, xx});
              }
          y.at({n, o, i, j}) = acc;
        }
  return y;
}
}  // namespace

TEST_CASE_TEMPLATE("conv2d: value against the definition, and gradients", T, double, cd) {
  auto x = rnd<T>(Shape{2, 3, 6, 5}, 1);
  auto w = rnd<T>(Shape{4, 3, 3, 2}, 2);
  auto b = rnd<T>(Shape{4}, 3);
  for (const auto& sp : {std::pair<int, int>{1, 0}, {2, 1}, {1, 2}, {3, 2}, {2, 3}}) {
    const int s = sp.first, p = sp.second;  // CAPTURE's lambda cannot name a binding before clang 16
    CAPTURE(s);
    CAPTURE(p);
    auto y = conv2d(x, w, b, {s, s}, {p, p}).value();
    auto r = naive_conv(x.value(), w.value(), b.value(), s, s, p, p);
    CHECK(test::max_abs_diff(y, r) < 1e-12);
  }
  SUBCASE("stride 1, no padding") { check_grad([&] { return conv2d(x, w, b); }, x, w, b); }
  SUBCASE("stride 2, padding 1, no bias") { check_grad([&] { return conv2d(x, w, Var<T>(), {2, 2}, {1, 1}); }, x, w); }
  SUBCASE("1x1 kernel, stride 2, padding 1 (whole rows and columns of padding)") {
    auto w1 = rnd<T>(Shape{4, 3, 1, 1}, 4);
    CHECK(test::max_abs_diff(conv2d(x, w1, b, {2, 2}, {1, 1}).value(), naive_conv(x.value(), w1.value(), b.value(), 2, 2, 1, 1)) < 1e-12);
    check_grad([&] { return conv2d(x, w1, b, {2, 2}, {1, 1}); }, x, w1, b);
  }
  SUBCASE("stride 3, padding 2") { check_grad([&] { return conv2d(x, w, b, {3, 3}, {2, 2}); }, x, w, b); }
  SUBCASE("asymmetric stride/padding") { check_grad([&] { return conv2d(x, w, b, {1, 2}, {2, 0}); }, x, w, b); }
}

TEST_CASE_TEMPLATE("conv2d: pointwise kernels and batches of one and several samples", T, double, cd) {
  // A 1×1 kernel with stride 1 and no padding takes col2im's plane-copy path; batches of 1
  // and 6: against the definition and gradcheck.
  for (const std::int64_t n : {1, 6}) {
    CAPTURE(n);
    auto x = rnd<T>(Shape{n, 5, 3, 7}, 5);
    auto w1 = rnd<T>(Shape{4, 5, 1, 1}, 6), w2 = rnd<T>(Shape{4, 5, 2, 3}, 7);
    auto b = rnd<T>(Shape{4}, 8);
    CHECK(test::max_abs_diff(conv2d(x, w1, b).value(), naive_conv(x.value(), w1.value(), b.value(), 1, 1, 0, 0)) < 1e-12);
    CHECK(test::max_abs_diff(conv2d(x, w2, b, {1, 2}, {1, 0}).value(), naive_conv(x.value(), w2.value(), b.value(), 1, 2, 1, 0)) < 1e-12);
    check_grad([&] { return conv2d(x, w1, b); }, x, w1, b);
    check_grad([&] { return conv2d(x, w2, b, {1, 2}, {1, 0}); }, x, w2, b);
  }
}

TEST_CASE("conv2d: the same bits with one thread and with two") {
  auto run = [](int threads) {
    auto& pool = ThreadPool::instance();
    const int saved = pool.num_threads();
    pool.set_num_threads(threads);
    auto x = rnd<float>(Shape{8, 6, 2, 45}, 9), w = rnd<float>(Shape{16, 6, 2, 2}, 10), b = rnd<float>(Shape{16}, 11);
    auto y = conv2d(x, w, b);
    backward(sum(mul(y, y)));
    pool.set_num_threads(saved);
    return std::vector<Tensor<float>>{y.value(), x.grad(), w.grad(), b.grad()};
  };
  const auto a = run(1), c = run(2);
  for (std::size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    CHECK(test::bitwise_equal(a[i], c[i]));
  }
}

TEST_CASE("conv2d: products by chunks of samples give the whole-matrix products' bits") {
  // 12 samples whose column gradient (72 patch rows × 1064 positions each) exceeds one chunk
  // buffer: one sample per chunk, several chunks per thread. The reference is the
  // whole-batch lowering: im2col, one gemm_nn, bias, permutation; Wᵀ·G in one gemm_nn, col2im.
  if (!simd::gemm_available()) return;
  for (const int threads : {1, 2}) {
    CAPTURE(threads);
    const ThreadCount scope(threads);
    auto x = rnd<float>(Shape{12, 8, 40, 30}, 12), w = rnd<float>(Shape{4, 8, 3, 3}, 13), b = rnd<float>(Shape{4}, 14);
    const auto g = detail::conv_geometry(x.shape(), w.shape(), {1, 1}, {1, 1});
    REQUIRE(detail::conv_chunked<float>(g));
    REQUIRE(detail::SampleChunks::of(g.n, g.patch() * g.ho * g.wo).chunk == 1);
    auto y = conv2d(x, w, b, {1, 1}, {1, 1});
    const Tensor<float> gy = rnd<float>(y.shape(), 15, false).value();
    backward(y, false, &gy);
    const std::int64_t K = g.patch(), P = g.positions(), hw = g.ho * g.wo;
    const Tensor<float> cols = detail::im2col(x.value(), g);
    Tensor<float> yt(Shape{g.o, P}), yr(y.shape()), gt(Shape{g.o, P}), wt(Shape{K, g.o}), gc(Shape{K, P});
    simd::gemm_nn<float>(g.o, P, K, w.value().data(), K, cols.data(), P, yt.data(), P, false);
    for (std::int64_t o = 0; o < g.o; ++o)
      for (std::int64_t k = 0; k < P; ++k) yt.data()[o * P + k] += b.value().data()[o];
    detail::permute_onhw(yt.data(), yr.data(), g.n, g.o, hw, true);
    CHECK(test::bitwise_equal(y.value(), yr));
    detail::permute_onhw(gy.data(), gt.data(), g.n, g.o, hw, false);
    detail::transpose_into(w.value().data(), g.o, K, wt.data());
    simd::gemm_nn<float>(K, P, g.o, wt.data(), g.o, gt.data(), P, gc.data(), P, false);
    CHECK(test::bitwise_equal(x.grad(), detail::col2im(gc, g, x.shape())));
    CHECK(test::max_abs_diff(y.value(), naive_conv(x.value(), w.value(), b.value(), 1, 1, 1, 1)) < 1e-4);
  }
}

TEST_CASE("conv2d: without a graph the columns stay in the chunk buffers, with the same bits") {
  // Under NoGradGuard (or with nothing requiring a gradient) the op is not recorded, so the
  // chunked forward writes each chunk's columns into its thread's buffer instead of keeping
  // the whole im2col matrix. The output must be the recorded forward's, bit for bit: a wide
  // layer (64 -> 64, 2 x 2) and a narrow one, several chunks per thread, 1 and 2 threads.
  // (That the matrix is not formed shows in memory, not here: erlmr_step_bench's infer-b64
  // peak went from 72 to 60 MB.)
  if (!simd::gemm_available()) return;
  struct Layer {
    Shape xs, ws;
  };
  for (const Layer& l : {Layer{Shape{6, 64, 2, 41}, Shape{64, 64, 2, 2}}, Layer{Shape{9, 3, 5, 17}, Shape{8, 3, 2, 3}}}) {
    CAPTURE(l.xs.str());
    auto x = rnd<float>(l.xs, 41), w = rnd<float>(l.ws, 42), b = rnd<float>(Shape{l.ws[0]}, 43);
    REQUIRE(detail::conv_chunked<float>(detail::conv_geometry(l.xs, l.ws, {1, 1}, {0, 0})));
    for (const int threads : {1, 2}) {
      CAPTURE(threads);
      const ThreadCount scope(threads);
      const auto recorded = conv2d(x, w, b);
      REQUIRE(recorded.requires_grad());
      Var<float> y_free;
      {
        NoGradGuard ng;
        y_free = conv2d(x, w, b);
      }
      CHECK(!y_free.requires_grad());
      CHECK(test::bitwise_equal(recorded.value(), y_free.value()));
      // Nothing requires a gradient: not recorded either.
      Var<float> xc(x.value(), false), wc(w.value(), false), bc(b.value(), false);
      CHECK(test::bitwise_equal(recorded.value(), conv2d(xc, wc, bc).value()));
    }
  }
}

TEST_CASE("conv2d: the sensor encoder's first layer geometry") {
  auto x = rnd<double>(Shape{2, 1, 3, 20}, 1, false);
  auto w = rnd<double>(Shape{64, 1, 2, 2}, 2, false);
  CHECK(conv2d(x, w).shape() == Shape{2, 64, 2, 19});
}

TEST_CASE_TEMPLATE("conv2d: a first layer's weight and bias gradients, read from the output gradient in place", T, float, double) {
  // x needs no gradient and the patch is short against the output plane: the rule takes G_W
  // and G_b sample by sample from gy's (N, O, HW) layout (conv_weight_bias_grads).
  if (!simd::gemm_available()) return;
  using Seg = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
  auto x = rnd<T>(Shape{5, 1, 3, 80}, 21, false), w = rnd<T>(Shape{20, 1, 2, 2}, 22), b = rnd<T>(Shape{20}, 23);
  const auto g = detail::conv_geometry(x.shape(), w.shape(), {1, 1}, {0, 0});
  const std::int64_t N = 5, O = 20, K = 4, hw = 2 * 79, P = N * hw;
  REQUIRE(detail::conv_chunked<T>(g));
  REQUIRE(g.patch() * detail::kNtReduceCost <= g.ho * g.wo);
  const Tensor<T> gy = rnd<T>(Shape{5, 20, 2, 79}, 24, false).value();
  // The reference of the in-place path, computed here the same way: per sample gemm_nt of
  // G_n against its columns, added in sample order; G_b per channel, sample by sample. Its
  // bits differ from the whole-matrix path's (one chain over all N·HW positions), so equality
  // shows that the in-place path ran.
  const Tensor<T> cols = detail::im2col(x.value(), g);
  Tensor<T> rw(Shape{O, K}), rb(Shape{O});
  for (std::int64_t n = 0; n < N; ++n)
    simd::gemm_nt<T>(O, K, hw, gy.data() + n * O * hw, hw, cols.data() + n * hw, P, rw.data(), K, n > 0);
  for (std::int64_t o = 0; o < O; ++o) {
    T s = 0;
    for (std::int64_t n = 0; n < N; ++n) s += Seg(gy.data() + (n * O + o) * hw, hw).sum();
    rb.data()[o] = s;
  }
  auto run = [&](int threads, const Var<T>& wv, const Var<T>& bv) {
    const ThreadCount scope(threads);
    wv.zero_grad();
    if (bv.defined()) bv.zero_grad();
    backward(conv2d(x, wv, bv), false, &gy);
  };
  for (const int threads : {1, 2}) {
    CAPTURE(threads);
    run(threads, w, b);
    CHECK(test::bitwise_equal(w.grad(), rw.reshape(w.shape())));
    CHECK(test::bitwise_equal(b.grad(), rb));
    // Only the bias wants a gradient; then no bias at all.
    Var<T> wc(w.value(), false);
    run(threads, wc, b);
    CHECK(!wc.grad().defined());
    CHECK(test::bitwise_equal(b.grad(), rb));
    run(threads, w, Var<T>());
    CHECK(test::bitwise_equal(w.grad(), rw.reshape(w.shape())));
  }
  // The definition: G_W[o, 0, u, v] = Σ gy[n, o, i, j]·x[n, 0, i + u, j + v], G_b[o] = Σ gy[n, o, ·].
  const double tol = std::is_same_v<T, float> ? 1e-3 : 1e-11;
  for (std::int64_t o = 0; o < O; ++o) {
    double sb = 0;
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t i = 0; i < 2; ++i)
        for (std::int64_t j = 0; j < 79; ++j) sb += double(gy.at({n, o, i, j}));
    CHECK(std::abs(double(rb.at({o})) - sb) < tol);
    for (std::int64_t u = 0; u < 2; ++u)
      for (std::int64_t v = 0; v < 2; ++v) {
        double s = 0;
        for (std::int64_t n = 0; n < N; ++n)
          for (std::int64_t i = 0; i < 2; ++i)
            for (std::int64_t j = 0; j < 79; ++j) s += double(gy.at({n, o, i, j})) * double(x.value().at({n, 0, i + u, j + v}));
        CHECK(std::abs(double(rw.at({o, u * 2 + v})) - s) < tol);
      }
  }
}

TEST_CASE_TEMPLATE("conv2d: a wide patch's gradients, read from the output gradient in place", T, float, double) {
  // K = C·kh·kw ≥ kNtMaxRows (the sensor encoder's 64 → 64, 2 × 2 layer, narrowed): the rule
  // reads G from gy's (N, O, HW) layout (conv_wide_patch_grads), never permuting it. Its
  // weight gradient is the bits of the whole-matrix path's product on the permuted G
  // (product_abt); its bias gradient adds each sample's per-channel sum in sample order. Its
  // input gradient: with two input rows (one output row) the shifted products' chains
  // (conv_shifted_input_grad: for each element one FMA chain over o for j = 0, continued for
  // j = 1, checked against that chain written out with std::fma); with three input rows the
  // whole-matrix path's bits (one gemm_nn of Wᵀ·G, col2im). Same bits with one thread and
  // with two; against the definition in float64 (gradcheck).
  if (!simd::gemm_available()) return;
  for (const std::int64_t H : {2, 3}) {
    CAPTURE(H);
    using Seg = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
    const std::int64_t N = 5, C = 64, O = 16, Wd = 23;
    auto x = rnd<T>(Shape{N, C, H, Wd}, 31), w = rnd<T>(Shape{O, C, 2, 2}, 32), b = rnd<T>(Shape{O}, 33);
    const auto g = detail::conv_geometry(x.shape(), w.shape(), {1, 1}, {0, 0});
    const std::int64_t K = g.patch(), P = g.positions(), hw = g.ho * g.wo;
    REQUIRE(detail::conv_chunked<T>(g));
    REQUIRE(K >= detail::kNtMaxRows);
    REQUIRE(detail::conv_shifted_input_grad(g) == (H == 2));
    const Tensor<T> gy = rnd<T>(Shape{N, O, H - 1, 22}, 34, false).value();
    // The references.
    const Tensor<T> cols = detail::im2col(x.value(), g);
    Tensor<T> gt(Shape{O, P}), wt(Shape{K, O}), gc(Shape{K, P}), rw(Shape{O, K}), rb(Shape{O});
    detail::permute_onhw(gy.data(), gt.data(), N, O, hw, false);
    detail::product_abt<T>(detail::mmat(rw, O, K), detail::cmat(gt, O, P), detail::cmat(cols, K, P));
    detail::transpose_into(w.value().data(), O, K, wt.data());
    simd::gemm_nn<T>(K, P, O, wt.data(), O, gt.data(), P, gc.data(), P, false);
    Tensor<T> rx = detail::col2im(gc, g, x.shape());
    bool exact = true;  // whether rx is the path's bits (the chains below need fused multiply-adds in gemm_nn)
    if (H == 2) {
  #if !(defined(__FMA__) || defined(__AVX512F__))
      exact = false;
  #endif
      for (std::int64_t n = 0; n < N; ++n)
        for (std::int64_t c = 0; c < C; ++c)
          for (std::int64_t i = 0; i < 2; ++i)
            for (std::int64_t v = 0; v < Wd; ++v) {
              T acc = 0;
              for (std::int64_t j = 0; j < 2; ++j)
                if (v - j >= 0 && v - j < g.wo)
                  for (std::int64_t o = 0; o < O; ++o) acc = std::fma(w.value().at({o, c, i, j}), gy.at({n, o, 0, v - j}), acc);
              rx.at({n, c, i, v}) = acc;
            }
    }
    auto check_x = [&](const Tensor<T>& got) {
      if (exact) CHECK(test::bitwise_equal(got, rx));
      else CHECK(test::max_abs_diff(got, rx) < (std::is_same_v<T, float> ? 1e-4 : 1e-12));
    };
    for (std::int64_t o = 0; o < O; ++o) {
      T acc = 0;
      for (std::int64_t n = 0; n < N; ++n) acc += Seg(gy.data() + (n * O + o) * hw, hw).sum();
      rb.data()[o] = acc;
    }
    for (const int threads : {1, 2}) {
      CAPTURE(threads);
      const ThreadCount scope(threads);
      x.zero_grad();
      w.zero_grad();
      b.zero_grad();
      backward(conv2d(x, w, b), false, &gy);
      CHECK(test::bitwise_equal(w.grad(), rw.reshape(w.shape())));
      check_x(x.grad());
      CHECK(test::bitwise_equal(b.grad(), rb));
      // Only some of the three wanted: the input alone; the weight without a bias.
      Var<T> wc(w.value(), false), xc(x.value(), false);
      x.zero_grad();
      backward(conv2d(x, wc), false, &gy);
      check_x(x.grad());
      w.zero_grad();
      backward(conv2d(xc, w), false, &gy);
      CHECK(test::bitwise_equal(w.grad(), rw.reshape(w.shape())));
      CHECK(!xc.grad().defined());
      b.zero_grad();
      backward(conv2d(xc, wc, b), false, &gy);  // the bias alone
      CHECK(test::bitwise_equal(b.grad(), rb));
    }
    {
      // SIMD switched off between the forward and the backward pass: the rule takes the general
      // path (Eigen products on the kept columns): the same gradients to rounding.
      x.zero_grad();
      w.zero_grad();
      b.zero_grad();
      const auto y = conv2d(x, w, b);
      const test::SimdOff off;
      backward(y, false, &gy);
      const double tol = std::is_same_v<T, float> ? 1e-3 : 1e-10;
      CHECK(test::max_abs_diff(w.grad(), rw.reshape(w.shape())) < tol);
      CHECK(test::max_abs_diff(x.grad(), rx) < tol);
      CHECK(test::max_abs_diff(b.grad(), rb) < tol);
    }
  }
  if constexpr (std::is_same_v<T, double>) {
    const std::int64_t C = 64, O = 16;
    // Small values (a loss of order 1), so that finite differences resolve every component.
    auto xs = test::rnd_uniform<T>(Shape{2, C, 2, 4}, 35, -0.25, 0.25), ws = test::rnd_uniform<T>(Shape{O, C, 2, 2}, 36, -0.25, 0.25);
    auto bs = rnd<T>(Shape{O}, 37);
    REQUIRE(detail::conv_chunked<T>(detail::conv_geometry(xs.shape(), ws.shape(), {1, 1}, {0, 0})));
    CHECK(test::max_abs_diff(conv2d(xs, ws, bs).value(), naive_conv(xs.value(), ws.value(), bs.value(), 1, 1, 0, 0)) < 1e-12);
    check_grad([&] { return conv2d(xs, ws, bs); }, xs, ws, bs);
  }
}

TEST_CASE_TEMPLATE("conv2d: a pointwise layer's products read x, gy and gx in place", T, float, double) {
  // A 1 × 1 kernel with stride 1 and no padding (the sensor encoder's 64 → 32 and 32 → 16
  // layers): x is its own column matrix, sample by sample, so the products read x, y, gy and gx
  // where they are (conv_pointwise). Against the whole-matrix lowering: the output and the
  // input gradient are its bits (the same chains); the weight gradient is the bits of
  // gemm_nn(C, O, P)'s cols·Gᵀ transposed (one chain over all positions in order); the bias
  // gradient adds each sample's per-channel sum in sample order. 1 and 2 threads; subsets of
  // the three gradients; gradcheck in float64.
  if (!simd::gemm_available()) return;
  using Seg = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
  const std::int64_t N = 5, C = 24, O = 12;
  auto x = rnd<T>(Shape{N, C, 2, 11}, 51), w = rnd<T>(Shape{O, C, 1, 1}, 52), b = rnd<T>(Shape{O}, 53);
  const auto g = detail::conv_geometry(x.shape(), w.shape(), {1, 1}, {0, 0});
  const std::int64_t K = g.patch(), P = g.positions(), hw = g.ho * g.wo;
  REQUIRE(detail::conv_chunked<T>(g));
  REQUIRE(detail::conv_pointwise<T>(g, true));
  const Tensor<T> gy = rnd<T>(Shape{N, O, 2, 11}, 54, false).value();
  // The references, from the whole (C × N·HW) column matrix and the permuted G.
  const Tensor<T> cols = detail::im2col(x.value(), g);
  Tensor<T> yt(Shape{O, P}), ry(Shape{N, O, 2, 11}), gt(Shape{O, P}), gtt(Shape{P, O}), wt(Shape{K, O}), gc(Shape{K, P}), ct(Shape{K, O}),
      rw(Shape{O, K}), rb(Shape{O});
  simd::gemm_nn<T>(O, P, K, w.value().data(), K, cols.data(), P, yt.data(), P, false);
  for (std::int64_t o = 0; o < O; ++o)
    for (std::int64_t k = 0; k < P; ++k) yt.data()[o * P + k] += b.value().data()[o];
  detail::permute_onhw(yt.data(), ry.data(), N, O, hw, true);
  detail::permute_onhw(gy.data(), gt.data(), N, O, hw, false);
  detail::transpose_into(w.value().data(), O, K, wt.data());
  simd::gemm_nn<T>(K, P, O, wt.data(), O, gt.data(), P, gc.data(), P, false);
  const Tensor<T> rx = detail::col2im(gc, g, x.shape());
  detail::transpose_into(gt.data(), O, P, gtt.data());
  simd::gemm_nn<T>(K, O, P, cols.data(), P, gtt.data(), O, ct.data(), O, false);
  detail::transpose_into(ct.data(), K, O, rw.data());
  for (std::int64_t o = 0; o < O; ++o) {
    T acc = 0;
    for (std::int64_t n = 0; n < N; ++n) acc += Seg(gy.data() + (n * O + o) * hw, hw).sum();
    rb.data()[o] = acc;
  }
  for (const int threads : {1, 2}) {
    CAPTURE(threads);
    const ThreadCount scope(threads);
    x.zero_grad();
    w.zero_grad();
    b.zero_grad();
    const auto y = conv2d(x, w, b);
    CHECK(test::bitwise_equal(y.value(), ry));
    backward(y, false, &gy);
    CHECK(test::bitwise_equal(w.grad(), rw.reshape(w.shape())));
    CHECK(test::bitwise_equal(x.grad(), rx));
    CHECK(test::bitwise_equal(b.grad(), rb));
    // Only some of the three wanted: the input alone; the weight without a bias; the bias alone.
    Var<T> wc(w.value(), false), xc(x.value(), false);
    x.zero_grad();
    backward(conv2d(x, wc), false, &gy);
    CHECK(test::bitwise_equal(x.grad(), rx));
    w.zero_grad();
    backward(conv2d(xc, w), false, &gy);
    CHECK(test::bitwise_equal(w.grad(), rw.reshape(w.shape())));
    CHECK(!xc.grad().defined());
    b.zero_grad();
    backward(conv2d(xc, wc, b), false, &gy);
    CHECK(test::bitwise_equal(b.grad(), rb));
    // The weight wanted no gradient when the forward ran (so x's transposed samples were not
    // formed) and wants one in the backward pass: the rule forms them then.
    Var<T> wl(w.value(), false);
    const auto yl = conv2d(x, wl, b);
    wl.set_requires_grad(true);
    backward(yl, false, &gy);
    CHECK(test::bitwise_equal(wl.grad(), rw.reshape(w.shape())));
    // SIMD switched off between the passes: the pointwise rule still runs (gemm_nn is compiled
    // in; the forward chose the path), with the same bits.
    x.zero_grad();
    w.zero_grad();
    b.zero_grad();
    const auto ys = conv2d(x, w, b);
    {
      const test::SimdOff off;
      backward(ys, false, &gy);
    }
    CHECK(test::bitwise_equal(w.grad(), rw.reshape(w.shape())));
    CHECK(test::bitwise_equal(x.grad(), rx));
    CHECK(test::bitwise_equal(b.grad(), rb));
  }
  if constexpr (std::is_same_v<T, double>) {
    CHECK(test::max_abs_diff(conv2d(x, w, b).value(), naive_conv(x.value(), w.value(), b.value(), 1, 1, 0, 0)) < 1e-12);
    auto xs = rnd<T>(Shape{2, 3, 2, 5}, 55), ws = rnd<T>(Shape{4, 3, 1, 1}, 56), bs = rnd<T>(Shape{4}, 57);
    REQUIRE(detail::conv_pointwise<T>(detail::conv_geometry(xs.shape(), ws.shape(), {1, 1}, {0, 0}), true));
    check_grad([&] { return conv2d(xs, ws, bs); }, xs, ws, bs);
  }
}

TEST_CASE("conv2d: shape errors") {
  auto x = rnd<double>(Shape{2, 3, 6, 5}, 1), w = rnd<double>(Shape{4, 2, 3, 3}, 2);
  CHECK_THROWS_WITH_AS(conv2d(x, w), "conv2d: input (2, 3, 6, 5) and weight (4, 2, 3, 3) are not (N, C, H, W) and (O, C, kh, kw)",
                       ShapeError);
  CHECK_THROWS_AS(conv2d(x, rnd<double>(Shape{4, 3, 9, 9}, 3)), ShapeError);
}

TEST_CASE_TEMPLATE("global average pooling", T, double, cd) {
  auto x = rnd<T>(Shape{2, 3, 4, 5}, 1);
  auto y = global_avg_pool(x);
  CHECK(y.shape() == Shape{2, 3});
  T s(0);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 5; ++j) s += x.value().at({1, 2, i, j});
  CHECK(std::abs(y.value().at({1, 2}) - s / T(20.0)) < 1e-12);
  check_grad([&] { return global_avg_pool(x); }, x);
}
