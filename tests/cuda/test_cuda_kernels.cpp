// Kernel paths the op-level tests do not reach, called directly and checked against
// plain host references:
// sum_all's two-level tree (n > 4096: chunk_sum_kernel + final_sum_kernel), gram3 over
// several 16384-element chunks, gemm with k = 0 (scale_matrix_kernel) and with the
// leading dimensions cuBLAS rejects unless fix_ld raises them, batch norm with m > 256
// and an inner extent that does not divide 256 (ChannelWalk's carry), max_axis with NaN;
// and the gradient arithmetic of the rebalancing methods: add_normal_noise (OGM-GE) against
// Generator::normal, axpy, CudaDevice::scale_inplace and CudaDevice::sum.
#include <doctest/doctest.h>

#include <cmath>
#include <complex>
#include <cstring>
#include <limits>
#include <vector>

#include "erlmr/cuda.hpp"

using namespace erlmr;

namespace {
template <class T> std::vector<T> host_random(std::int64_t n, std::uint64_t seed) {
  Generator g(seed);
  const auto t = Tensor<T>::uniform(Shape{n}, g, -1, 1);
  return std::vector<T>(t.data(), t.data() + n);
}
template <class T> CudaTensor<T> dev(const std::vector<T>& v) {
  return Tensor<T>::from_vector(Shape{static_cast<std::int64_t>(v.size())}, v).template to<CudaDevice>();
}
template <class T> double mag(T v) { return std::abs(v); }
// `got` is Σ h to the sum's rounding (float 1e-6, double 1e-13 relative to Σ|h|), per component.
template <class T> void check_sum(const std::vector<T>& h, T got) {
  double want_re = 0, want_im = 0, scale = 0;
  for (auto v : h) {
    want_re += double(std::real(v));
    want_im += double(std::imag(v));
    scale += mag(v);
  }
  const double tol = std::is_same_v<real_t<T>, float> ? 1e-6 : 1e-13;
  CHECK(std::abs(double(std::real(got)) - want_re) <= tol * scale);
  CHECK(std::abs(double(std::imag(got)) - want_im) <= tol * scale);
}
}  // namespace

TEST_CASE_TEMPLATE("CUDA kernels: sum_all two-level tree", T, float, double, std::complex<double>) {
  for (std::int64_t n : {1, 255, 4096, 4097, 3 * 4096 + 5, 100000}) {
    CAPTURE(n);
    const auto h = host_random<T>(n, 7 + n);
    const auto x = dev(h);
    CudaTensor<T> out(Shape{});
    cuda::sum_all<T>(x.data(), n, out.data());
    check_sum(h, out.to_vector()[0]);
  }
}

TEST_CASE_TEMPLATE("CUDA kernels: gram3 over several chunks", R, float, double) {
  for (std::int64_t n : {0, 5, 16384, 16385, 50000}) {
    CAPTURE(n);
    const auto a = host_random<R>(n, 1), b = host_random<R>(n, 2);
    double w[3] = {0, 0, 0};
    for (std::int64_t i = 0; i < n; ++i) {
      w[0] += double(a[i]) * double(a[i]);
      w[1] += double(a[i]) * double(b[i]);
      w[2] += double(b[i]) * double(b[i]);
    }
    double got[3] = {-1, -1, -1};
    if (n == 0) {
      CudaDevice::gram<R>(nullptr, nullptr, 0, got);
    } else {
      const auto da = dev(a), db = dev(b);
      CudaDevice::gram<R>(da.data(), db.data(), n, got);
    }
    for (int k = 0; k < 3; ++k) CHECK(std::abs(got[k] - w[k]) <= 1e-12 * std::max(1.0, std::abs(w[k])));
  }
}

TEST_CASE_TEMPLATE("CUDA kernels: gemm edge cases", T, float, double, std::complex<float>, std::complex<double>) {
  using cuda::Op;
  const double tol = std::is_same_v<real_t<T>, float> ? 1e-5 : 1e-12;
  // k = 0: C = beta·C; beta = 0 must write zeros over garbage (fresh device memory is NaN here)
  for (T beta : {T(0), T(2)}) {
    const std::int64_t m = 3, n = 4, ldc = 6;
    CudaTensor<T> c(Shape{m * ldc});  // uninitialised
    std::vector<T> hc(m * ldc, T(1));
    if (beta != T(0)) c = dev(hc);
    cuda::gemm<T>(Op::N, Op::N, m, n, 0, T(1), nullptr, 1, nullptr, 1, beta, c.data(), ldc);
    const auto r = c.to_vector();
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) CHECK(mag(r[i * ldc + j] - (beta == T(0) ? T(0) : beta)) <= tol);
  }
  // every op pair, shapes with m = 1 / n = 1 / k = 1 and tight or loose leading dims
  const Op ops[3] = {Op::N, Op::T, Op::C};
  std::uint64_t seed = 100;
  struct Shp { std::int64_t m, n, k; };
  for (auto ta : ops)
    for (auto tb : ops)
      for (Shp s : {Shp{5, 7, 4}, Shp{1, 6, 3}, Shp{4, 1, 1}, Shp{1, 1, 5}, Shp{3, 2, 1}})
        for (int loose = 0; loose < 2; ++loose) {
          CAPTURE(int(ta));
          CAPTURE(int(tb));
          CAPTURE(s.m);
          CAPTURE(s.n);
          CAPTURE(s.k);
          CAPTURE(loose);
          const std::int64_t ar = ta == Op::N ? s.m : s.k, ac = ta == Op::N ? s.k : s.m;
          const std::int64_t br = tb == Op::N ? s.k : s.n, bc = tb == Op::N ? s.n : s.k;
          const std::int64_t lda = ac + 2 * loose, ldb = bc + loose, ldc = s.n + 3 * loose;
          const auto A = host_random<T>(ar * lda, seed++), B = host_random<T>(br * ldb, seed++);
          const auto C0 = host_random<T>(s.m * ldc, seed++);
          auto cj = [](T v) { if constexpr (is_complex_v<T>) return std::conj(v); else return v; };
          auto a = [&](std::int64_t i, std::int64_t l) {
            return ta == Op::N ? A[i * lda + l] : ta == Op::T ? A[l * lda + i] : cj(A[l * lda + i]);
          };
          auto b = [&](std::int64_t l, std::int64_t j) {
            return tb == Op::N ? B[l * ldb + j] : tb == Op::T ? B[j * ldb + l] : cj(B[j * ldb + l]);
          };
          const T alpha = T(1.5), beta = T(-0.5);
          std::vector<T> want = C0;
          for (std::int64_t i = 0; i < s.m; ++i)
            for (std::int64_t j = 0; j < s.n; ++j) {
              T acc = 0;
              for (std::int64_t l = 0; l < s.k; ++l) acc += a(i, l) * b(l, j);
              want[i * ldc + j] = alpha * acc + beta * C0[i * ldc + j];
            }
          const auto dA = dev(A), dB = dev(B);
          auto dC = dev(C0);
          cuda::gemm<T>(ta, tb, s.m, s.n, s.k, alpha, dA.data(), lda, dB.data(), ldb, beta, dC.data(), ldc);
          const auto got = dC.to_vector();
          double worst = 0;
          for (std::size_t i = 0; i < got.size(); ++i) worst = std::max(worst, mag(got[i] - want[i]));
          CHECK(worst <= tol * 10);
        }
}

TEST_CASE_TEMPLATE("CUDA kernels: batch norm with m > 256 and inner not dividing 256", R, float, double) {
  const std::int64_t N = 3, C = 2, inner = 100, m = N * inner;
  const auto x = host_random<R>(N * C * inner, 5), gam = host_random<R>(C, 6), bet = host_random<R>(C, 7);
  const auto g = host_random<R>(N * C * inner, 8);
  std::vector<R> rm = {0.1f, -0.2f}, rv = {1.0f, 2.0f};
  const double mom = 0.1, eps = 1e-5;
  auto dx = dev(x), dg = dev(gam), db = dev(bet), drm = dev(rm), drv = dev(rv), dG = dev(g);
  CudaTensor<R> y(Shape{N * C * inner}), xh(Shape{N * C * inner}), inv(Shape{C}), gx(Shape{N * C * inner}),
      gg(Shape{C}), gb(Shape{C});
  cuda::batch_norm<R>(dx.data(), dg.data(), db.data(), drm.data(), drv.data(), N, C, inner, true, mom, eps, y.data(),
                      xh.data(), inv.data());
  cuda::batch_norm_backward<R>(dG.data(), xh.data(), dg.data(), inv.data(), N, C, inner, true, gx.data(), gg.data(),
                               gb.data());
  const auto hy = y.to_vector(), hgx = gx.to_vector(), hgg = gg.to_vector(), hgb = gb.to_vector(),
             hrm = drm.to_vector(), hrv = drv.to_vector();
  const double tol = std::is_same_v<R, float> ? 1e-4 : 1e-10;
  for (std::int64_t c = 0; c < C; ++c) {
    CAPTURE(c);
    auto at = [&](std::int64_t e) { return (e / inner * C + c) * inner + e % inner; };
    double mean = 0, var = 0;
    for (std::int64_t e = 0; e < m; ++e) mean += x[at(e)];
    mean /= m;
    for (std::int64_t e = 0; e < m; ++e) var += (x[at(e)] - mean) * (x[at(e)] - mean);
    var /= m;
    const double is = 1 / std::sqrt(var + eps);
    double sg = 0, sgx = 0;
    for (std::int64_t e = 0; e < m; ++e) {
      const double xhat = (x[at(e)] - mean) * is;
      CHECK(std::abs(hy[at(e)] - (gam[c] * xhat + bet[c])) <= tol);
      sg += g[at(e)];
      sgx += g[at(e)] * xhat;
    }
    CHECK(std::abs(hgb[c] - sg) <= tol * m);
    CHECK(std::abs(hgg[c] - sgx) <= tol * m);
    for (std::int64_t e = 0; e < m; ++e) {
      const double xhat = (x[at(e)] - mean) * is;
      CHECK(std::abs(hgx[at(e)] - gam[c] * is * (g[at(e)] - sg / m - xhat * sgx / m)) <= tol * 10);
    }
    CHECK(std::abs(hrm[c] - ((1 - mom) * rm[c] + mom * mean)) <= tol);
    CHECK(std::abs(hrv[c] - ((1 - mom) * rv[c] + mom * var * m / (m - 1))) <= tol);
  }
}

TEST_CASE("CUDA kernels: max_axis with NaN picks the first NaN, like the CPU") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> h = {1, nan, 3, nan, 2, 5};  // (1, 6, 1)
  auto x = dev(h);
  CudaTensor<double> out(Shape{1});
  CudaTensor<std::int64_t> idx(Shape{1});
  cuda::max_axis<double>(x.data(), 1, 6, 1, out.data(), idx.data());
  CHECK(std::isnan(out.to_vector()[0]));
  CHECK(idx.to_vector()[0] == 1);
}

// OGM-GE's noise on the device against the CPU loop of balance/ogm_ge.hpp (g = R(k·g + sd·normal)):
// n not a multiple of the pair/block sizes, odd first offsets (the first pair half outside the
// range), a first offset whose lane blocks straddle 2^32, several launch blocks; n = 0 is a no-op.
TEST_CASE_TEMPLATE("CUDA kernels: add_normal_noise equals Generator::normal on the host", R, float, double) {
  const double tol = std::is_same_v<R, float> ? 1e-6 : 1e-12;
  struct Case { std::int64_t n; std::uint64_t first; double k, sd; };
  for (Case c : {Case{1, 0, 1.0, 1.0}, Case{1, 3, 0.5, 2.0}, Case{7, 0, 1.0, 0.1}, Case{7, 5, 0.8, 0.3},
                 Case{1001, 17, 0.25, 1e-3}, Case{70001, 1, 1.5, 0.7}, Case{13, 0x1FFFFFFF9ull, 0.9, 1.0},
                 Case{10, 0, 1.0, 0.0}}) {
    CAPTURE(c.n);
    CAPTURE(c.first);
    const std::uint64_t seed = 0x4F474D2D4745ull ^ std::uint64_t(c.n);
    const auto h = host_random<R>(c.n, 31 + c.n);
    auto d = dev(h);
    cuda::add_normal_noise<R>(d.data(), c.n, c.k, c.sd, seed, c.first);
    const auto got = d.to_vector();
    const Generator gen(seed);
    int bad = 0;
    for (std::int64_t i = 0; i < c.n; ++i) {
      const double z = gen.normal(c.first + std::uint64_t(i));
      const R want = R(c.k * double(h[i]) + c.sd * z);
      const double scale = std::abs(c.k * double(h[i])) + c.sd * std::abs(z) + 1e-30;
      if (std::abs(double(got[i]) - double(want)) > tol * scale) {
        if (++bad <= 3) {
          INFO("i " << i << ": " << got[i] << " vs " << want);
          CHECK(false);
        }
      }
    }
    CHECK(bad == 0);
  }
  // n = 0: nothing is written (and nothing launched)
  const auto h = host_random<R>(4, 3);
  auto d = dev(h);
  cuda::add_normal_noise<R>(d.data(), 0, 2.0, 1.0, 1, 0);
  CudaDevice::add_normal_noise<R>(d.data(), -1, 2.0, 1.0, 1, 0);
  CHECK(d.to_vector() == h);
  // the CudaDevice member forwards (same numbers as the kernel entry point)
  auto e = dev(h);
  CudaDevice::add_normal_noise<R>(e.data(), 4, 0.5, 0.25, 9, 1);
  const Generator gen(9);
  const auto ge = e.to_vector();
  for (std::int64_t i = 0; i < 4; ++i)
    CHECK(std::abs(double(ge[i]) - double(R(0.5 * double(h[i]) + 0.25 * gen.normal(1 + std::uint64_t(i))))) <= tol);
}

TEST_CASE_TEMPLATE("CUDA kernels: axpy and scale_inplace", T, float, double, std::complex<double>) {
  const double tol = std::is_same_v<real_t<T>, float> ? 1e-6 : 1e-14;
  for (std::int64_t n : {1, 5, 1000, 70001}) {
    CAPTURE(n);
    const auto x = host_random<T>(n, 40 + n), y = host_random<T>(n, 50 + n);
    T a = T(-1.25);
    if constexpr (is_complex_v<T>) a = T(0.75, -1.5);
    auto dy = dev(y);
    const auto dx = dev(x);
    CudaDevice::axpy<T>(dy.data(), a, dx.data(), n);
    const auto got = dy.to_vector();
    double worst = 0;
    for (std::int64_t i = 0; i < n; ++i) worst = std::max(worst, mag(got[i] - (y[i] + a * x[i])));
    CHECK(worst <= tol * 4);
    // scale_inplace: p *= k through cuda::scale with out == x
    T k = T(0.5);
    if constexpr (is_complex_v<T>) k = T(-0.5, 2.0);
    CudaDevice::scale_inplace<T>(dy.data(), k, n);
    const auto sc = dy.to_vector();
    worst = 0;
    for (std::int64_t i = 0; i < n; ++i) worst = std::max(worst, mag(sc[i] - got[i] * k));
    CHECK(worst <= tol * 4);
  }
  // n = 0: no launch, nothing touched
  CudaDevice::axpy<T>(nullptr, T(1), nullptr, 0);
  CudaDevice::scale_inplace<T>(nullptr, T(2), 0);
}

TEST_CASE_TEMPLATE("CUDA kernels: CudaDevice::sum", T, float, double, std::complex<double>) {
  CHECK(CudaDevice::sum<T>(nullptr, 0) == T(0));
  for (std::int64_t n : {1, 300, 4097, 50000}) {
    CAPTURE(n);
    const auto h = host_random<T>(n, 60 + n);
    const auto d = dev(h);
    const T got = CudaDevice::sum<T>(d.data(), n);
    check_sum(h, got);
    // repeatable bitwise (fixed tree, no atomics)
    const T again = CudaDevice::sum<T>(d.data(), n);
    CHECK(std::memcmp(&got, &again, sizeof(T)) == 0);
  }
}
