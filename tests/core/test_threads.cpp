#include "test_util.hpp"

using namespace erlmr;

namespace {
// A small model-like computation touching every parallel kernel: GEMM panels,
// im2col/col2im, elementwise SIMD kernels, dropout masks. Returns all values and gradients.
std::vector<Tensor<double>> run_once() {
  Generator g(99);
  Var<double> x(Tensor<double>::randn(Shape{4, 3, 9, 9}, g), true);
  Var<double> w(Tensor<double>::randn(Shape{8, 3, 3, 3}, g), true);
  Var<double> W(Tensor<double>::randn(Shape{300, 392}, g, 0.05), true);
  Var<double> mu(Tensor<double>::ones(Shape{8, 1}), true);
  auto h = relu(conv2d(x, w, Var<double>(), {1, 1}, {0, 0}));      // (4, 8, 7, 7)
  auto hf = reshape(h, {4, 8, 49});
  auto z = euler(mu, hf);                                           // complex (4, 8, 49)
  auto zf = reshape(dropout(z, 0.3, true, g), {4, 392});
  auto y = crelu(linear(zf, W));                                    // (4, 300)
  auto th = arg(y);
  auto loss = sum(mul(th, sin(th)));
  backward(loss);
  return {loss.value(), x.grad(), w.grad(), W.grad(), mu.grad()};
}
}  // namespace

TEST_CASE("threads: results are bitwise identical with 1 and 2 threads") {
  const int before = num_threads();
  set_num_threads(1);
  auto a = run_once();
  set_num_threads(2);
  auto b = run_once();
  set_num_threads(4);
  auto c = run_once();
  set_num_threads(before);
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(test::bitwise_equal(a[i], b[i]));
    CHECK(test::bitwise_equal(a[i], c[i]));
  }
}

TEST_CASE("threads: large GEMM is identical across thread counts") {
  Generator g(5);
  auto A = Var<double>(Tensor<double>::randn(Shape{300, 500}, g));
  auto B = Var<double>(Tensor<double>::randn(Shape{500, 700}, g));
  set_num_threads(1);
  auto c1 = matmul(A, B).value();
  set_num_threads(2);
  auto c2 = matmul(A, B).value();
  CHECK(test::bitwise_equal(c1, c2));
  Eigen::MatrixXd ref = A.value().mat().template cast<double>() * B.value().mat();
  CHECK((ref - Eigen::MatrixXd(c1.mat())).cwiseAbs().maxCoeff() < 1e-10);
}

TEST_CASE("threads: an exception inside a parallel region reaches the caller") {
  set_num_threads(2);
  CHECK_THROWS_AS(CpuDevice::parallel_for(100, 1, [](std::int64_t b, std::int64_t) {
                    if (b == 37) throw std::runtime_error("boom");
                  }),
                  std::runtime_error);
}

TEST_CASE("threads: a parallel_for nested in a chunk runs serially instead of deadlocking") {
  set_num_threads(4);
  std::vector<int> hits(64, 0);
  CpuDevice::parallel_for(8, 1, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i)
      CpuDevice::parallel_for(8, 1, [&](std::int64_t b2, std::int64_t e2) {
        for (std::int64_t j = b2; j < e2; ++j) hits[static_cast<std::size_t>(i * 8 + j)] += 1;
      });
  });
  for (int h : hits) CHECK(h == 1);
  set_num_threads(2);
}
