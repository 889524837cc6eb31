#include "test_util.hpp"

using namespace erlmr;
using test::cd;
using test::check_grad;
using test::rnd;

TEST_CASE("batch_norm: training statistics, running update and gradient") {
  auto x = rnd<double>(Shape{4, 3, 2, 5}, 1, true, 2.0);
  auto g = rnd<double>(Shape{3}, 2), b = rnd<double>(Shape{3}, 3);
  auto rm = Tensor<double>::zeros(Shape{3}), rv = Tensor<double>::ones(Shape{3});
  auto y = batch_norm(x, g, b, rm, rv, true, 0.1, 1e-5).value();
  for (int c = 0; c < 3; ++c) {
    double m = 0, v = 0;
    const int cnt = 4 * 10;
    for (int n = 0; n < 4; ++n)
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 5; ++j) m += x.value().at({n, c, i, j});
    m /= cnt;
    for (int n = 0; n < 4; ++n)
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 5; ++j) v += std::pow(x.value().at({n, c, i, j}) - m, 2);
    const double vb = v / cnt;
    CHECK(rm[c] == doctest::Approx(0.1 * m).epsilon(1e-12));
    CHECK(rv[c] == doctest::Approx(0.9 + 0.1 * v / (cnt - 1)).epsilon(1e-12));  // unbiased running variance
    const double want = g.value()[c] * (x.value().at({2, c, 1, 3}) - m) / std::sqrt(vb + 1e-5) + b.value()[c];
    CHECK(y.at({2, c, 1, 3}) == doctest::Approx(want).epsilon(1e-12));
  }
  check_grad([&] {
    auto m = Tensor<double>::zeros(Shape{3}), v = Tensor<double>::ones(Shape{3});
    return batch_norm(x, g, b, m, v, true);
  }, x, g, b);
}

TEST_CASE("batch_norm: evaluation uses running statistics") {
  auto x = rnd<double>(Shape{2, 3, 4}, 1);
  auto g = rnd<double>(Shape{3}, 2), b = rnd<double>(Shape{3}, 3);
  auto rm = Tensor<double>::from_vector(Shape{3}, {0.1, -0.2, 0.3});
  auto rv = Tensor<double>::from_vector(Shape{3}, {1.5, 0.5, 2.0});
  auto y = batch_norm(x, g, b, rm, rv, false).value();
  CHECK(y.at({1, 2, 3}) == doctest::Approx(g.value()[2] * (x.value().at({1, 2, 3}) - 0.3) / std::sqrt(2.0 + 1e-5) + b.value()[2]));
  CHECK(rm[0] == 0.1);  // untouched
  check_grad([&] { return batch_norm(x, g, b, rm, rv, false); }, x, g, b);
}

TEST_CASE_TEMPLATE("dropout: masks from the counter-based RNG", T, double, cd) {
  auto x = rnd<T>(Shape{200, 50}, 1);
  Generator g1(5), g2(5);
  auto a = dropout(x, 0.5, true, g1).value();
  auto b = dropout(x, 0.5, true, g2).value();
  CHECK(test::bitwise_equal(a, b));
  CHECK(g1.offset() == std::uint64_t((is_complex_v<T> ? 2 : 1) * 10000));
  // About half the (real) parts are dropped, survivors are scaled by 2.
  std::int64_t zeros = 0, parts = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    if constexpr (is_complex_v<T>) {
      zeros += (a[i].real() == 0) + (a[i].imag() == 0);
      parts += 2;
      if (a[i].real() != 0) CHECK(a[i].real() == doctest::Approx(2 * x.value()[i].real()));
    } else {
      zeros += a[i] == 0;
      parts += 1;
      if (a[i] != 0) CHECK(a[i] == doctest::Approx(2 * x.value()[i]));
    }
  }
  CHECK(double(zeros) / parts == doctest::Approx(0.5).epsilon(0.03));
  // Evaluation mode is the identity.
  CHECK(test::bitwise_equal(dropout(x, 0.5, false, g1).value(), x.value()));
  auto small = rnd<T>(Shape{3, 4}, 2);
  check_grad([&] {
    Generator g(11);
    return dropout(small, 0.3, true, g);
  }, small);
}

TEST_CASE("dropout: element i is kept iff uniform(first + i) >= p, on the 64-wide block path and the scalar edges") {
  for (std::uint64_t offset : {0u, 3u, 6u}) {
    CAPTURE(offset);
    Generator g(9, offset), ref(9, offset);
    Var<float> x(Tensor<float>::ones(Shape{1003}));
    const auto y = dropout(x, 0.3, true, g).value();
    const std::uint64_t first = ref.reserve(1003);
    for (std::int64_t i = 0; i < 1003; ++i) {
      const bool keep = ref.uniform(first + static_cast<std::uint64_t>(i)) >= 0.3;
      if (keep != (y[i] != 0.f)) {
        FAIL_CHECK("element " << i << " kept=" << (y[i] != 0.f) << ", expected " << keep);
        break;
      }
      if (keep) CHECK(y[i] == doctest::Approx(1 / 0.7));
    }
  }
}

TEST_CASE("dropout: complex parts get independent masks") {
  auto x = Var<cd>(Tensor<cd>::full(Shape{10000}, cd(1, 1)));
  Generator g(3);
  auto y = dropout(x, 0.5, true, g).value();
  int differ = 0;
  for (int i = 0; i < 10000; ++i) differ += (y[i].real() == 0) != (y[i].imag() == 0);
  CHECK(differ > 4000);  // independent: about half the elements lose exactly one part
  CHECK(differ < 6000);
}

TEST_CASE_TEMPLATE("batch_norm_relu_dropout: the same bits as batch_norm, relu and dropout one after another", T, float, double) {
  // Shapes with segments shorter and longer than a SIMD vector and a mask that spans
  // several 64-wide Philox groups; training with and without dropout, and evaluation. Also
  // the op not recorded (NoGradGuard: without dropout it keeps no gradient codes and only
  // rectifies): the same values, running statistics and generator position.
  for (const Shape& s : {Shape{4, 3, 5, 7}, Shape{2, 5, 130}, Shape{3, 2}}) {
    for (const double p : {0.0, 0.3}) {
      for (const bool training : {true, false}) {
        CAPTURE(s.str());
        CAPTURE(p);
        CAPTURE(training);
        const std::int64_t C = s[1];
        auto run = [&](bool fused, bool recorded = true) {
          auto x = rnd<T>(s, 1, true, 2.0);
          auto g = rnd<T>(Shape{C}, 2), b = rnd<T>(Shape{C}, 3);
          auto rm = Tensor<T>::full(Shape{C}, T(0.2)), rv = Tensor<T>::full(Shape{C}, T(1.5));
          Generator gen(7);
          gen.reserve(13);  // not at a block boundary: the scalar edges of the mask path too
          Var<T> y;
          if (!recorded) {
            NoGradGuard ng;
            y = batch_norm_relu_dropout(x, g, b, rm, rv, training, 0.1, 1e-5, p, &gen);
            CHECK(!y.requires_grad());
            return std::vector<Tensor<T>>{y.value(), rm, rv, Tensor<T>::full(Shape{1}, T(gen.reserve(1)))};
          }
          if (fused) {
            y = batch_norm_relu_dropout(x, g, b, rm, rv, training, 0.1, 1e-5, p, &gen);
          } else {
            y = relu(batch_norm(x, g, b, rm, rv, training, 0.1, 1e-5));
            y = dropout(y, p, training, gen);
          }
          auto w = rnd<T>(s, 4, false);  // a loss that weights every element differently
          backward(sum(mul(y, w)));
          return std::vector<Tensor<T>>{y.value(), rm, rv, x.grad(), g.grad(), b.grad(), Tensor<T>::full(Shape{1}, T(gen.reserve(1)))};
        };
        const auto a = run(true), e = run(false), f = run(true, false);
        for (std::size_t i = 0; i < a.size(); ++i) {
          CAPTURE(i);
          CHECK(test::bitwise_equal(a[i], e[i]));
        }
        const std::size_t same_as[] = {0, 1, 2, 6};  // y, running mean and variance, generator position
        for (std::size_t i = 0; i < f.size(); ++i) {
          CAPTURE(i);
          CHECK(test::bitwise_equal(f[i], a[same_as[i]]));
        }
      }
    }
  }
}

TEST_CASE("batch_norm_relu_dropout: gradient check (training, with dropout) and its argument checks") {
  auto x = rnd<double>(Shape{3, 2, 11}, 5, true, 2.0);
  auto g = rnd<double>(Shape{2}, 6), b = rnd<double>(Shape{2}, 7);
  check_grad([&] {
    auto m = Tensor<double>::zeros(Shape{2}), v = Tensor<double>::ones(Shape{2});
    Generator gen(3);  // the same mask on every evaluation
    return batch_norm_relu_dropout(x, g, b, m, v, true, 0.1, 1e-5, 0.25, &gen);
  }, x, g, b);
  auto m = Tensor<double>::zeros(Shape{2}), v = Tensor<double>::ones(Shape{2});
  CHECK_THROWS_AS(batch_norm_relu_dropout(x, g, b, m, v, true, 0.1, 1e-5, 0.25, nullptr), std::invalid_argument);
  CHECK_THROWS_AS(batch_norm_relu_dropout(x, g, b, m, v, true, 0.1, 1e-5, 1.0, nullptr), std::invalid_argument);
  CHECK_NOTHROW(batch_norm_relu_dropout(x, g, b, m, v, false, 0.1, 1e-5, 0.25, nullptr));  // evaluation: no dropout
}

TEST_CASE("nn::Sequential fuses BatchNorm2d, ReLU[, Dropout] with the same results as the layers one by one") {
  auto build = [] {
    Generator init(11);
    auto s = std::make_unique<nn::Sequential<double>>();
    s->add<nn::Conv2d<double>>(2, 4, std::array<std::int64_t, 2>{2, 2}, init);
    s->add<nn::BatchNorm2d<double>>(4);
    s->add<nn::ReLU<double>>();
    s->add<nn::Dropout<double>>(0.4);
    s->add<nn::Conv2d<double>>(4, 3, std::array<std::int64_t, 2>{1, 1}, init);
    s->add<nn::BatchNorm2d<double>>(3);
    s->add<nn::ReLU<double>>();
    return s;
  };
  auto run = [&](bool fuse, bool training) {
    auto s = build();
    s->fuse = fuse;
    nn::StateLists<double> st;
    s->collect("", st);
    Generator drop(21);
    nn::Context ctx{training, &drop, 1.0};
    auto x = rnd<double>(Shape{3, 2, 4, 9}, 8, true);
    std::vector<Tensor<double>> out;
    for (int step = 0; step < 2; ++step) {  // twice: the second pass sees updated statistics
      auto y = s->forward(x, ctx);
      CHECK(std::string(y.op()) == (fuse ? "batch_norm_relu_dropout" : "relu"));  // the fusion happened (or not)
      backward(sum(mul(y, y)));
      out.push_back(y.value());
    }
    out.push_back(x.grad());
    for (auto& p : st.params) out.push_back(p.var.grad());
    for (auto& b : st.buffers) out.push_back(b.tensor);
    for (auto& c : st.counters) out.push_back(Tensor<double>::full(Shape{1}, double(c.tensor.data()[0])));
    return out;
  };
  {  // dropout without a Generator: both throw, after the first batch norm's update
    auto fused = build(), plain = build();
    plain->fuse = false;
    nn::Context ctx{true, nullptr, 1.0};
    auto x = rnd<double>(Shape{3, 2, 4, 9}, 8, false);
    CHECK_THROWS_AS(fused->forward(x, ctx), std::logic_error);
    CHECK_THROWS_AS(plain->forward(x, ctx), std::logic_error);
    auto* bf = dynamic_cast<nn::BatchNorm2d<double>*>(fused->layers[1].get());
    auto* bp = dynamic_cast<nn::BatchNorm2d<double>*>(plain->layers[1].get());
    CHECK(test::bitwise_equal(bf->running_mean, bp->running_mean));
    CHECK(bf->num_batches_tracked.data()[0] == 1);
    CHECK(bp->num_batches_tracked.data()[0] == 1);
  }
  for (const bool training : {true, false}) {
    CAPTURE(training);
    const auto a = run(true, training), e = run(false, training);
    REQUIRE(a.size() == e.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      CAPTURE(i);
      CHECK(test::bitwise_equal(a[i], e[i]));
    }
  }
}
