#include "test_util.hpp"

using namespace erlmr;

TEST_CASE("rng: Philox4x32-10 matches the Random123 known-answer vectors") {
  // From Random123's kat_vectors: philox4x32 10 rounds.
  auto r = Philox4x32::generate({0, 0, 0, 0}, {0, 0});
  CHECK(r[0] == 0x6627e8d5u);
  CHECK(r[1] == 0xe169c58du);
  CHECK(r[2] == 0xbc57ac4cu);
  CHECK(r[3] == 0x9b00dbd8u);
  auto s = Philox4x32::generate({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu});
  CHECK(s[0] == 0x408f276du);
  CHECK(s[1] == 0x41c83b0eu);
  CHECK(s[2] == 0xa20bc7c6u);
  CHECK(s[3] == 0x6d5451fdu);
}

TEST_CASE("rng: draws depend on (seed, counter) only, and the offset advances") {
  Generator a(42), b(42), c(43);
  auto x = Tensor<double>::randn(Shape{100}, a);
  auto y = Tensor<double>::randn(Shape{100}, b);
  CHECK(test::bitwise_equal(x, y));
  CHECK(a.offset() == 100);
  auto z = Tensor<double>::randn(Shape{100}, c);
  CHECK_FALSE(test::bitwise_equal(x, z));
  // A generator restored to a state reproduces the stream.
  Generator d(42, 50);
  auto w = Tensor<double>::randn(Shape{50}, d);
  for (int i = 0; i < 50; ++i) CHECK(w[i] == x[50 + i]);
}

TEST_CASE("rng: moments of uniform and normal are right") {
  Generator g(7);
  const int n = 200000;
  auto u = Tensor<double>::uniform(Shape{n}, g, 0, 1);
  auto z = Tensor<double>::randn(Shape{n}, g);
  const double mu = u.vec().mean(), mz = z.vec().mean();
  const double vz = (z.vec() - mz).square().mean();
  CHECK(mu == doctest::Approx(0.5).epsilon(0.01));
  CHECK(std::abs(mz) < 0.01);
  CHECK(vz == doctest::Approx(1.0).epsilon(0.02));
  CHECK(u.vec().minCoeff() >= 0.0);
  CHECK(u.vec().maxCoeff() < 1.0);
}

TEST_CASE("rng: the vectorised block generator gives the same words as block() and bits()") {
  // Small counters, a run across the 2³² boundary of the block counter's low word, and
  // counters with high words set (both of the counter's words enter the rounds).
  for (const std::uint64_t b0 : {std::uint64_t{1000}, std::uint64_t{0xFFFFFFF8u}, std::uint64_t{0x00000123FFFFFFF0ull},
                                 std::uint64_t{0x0FEDCBA987654321ull}})
    for (const std::uint64_t seed : {std::uint64_t{0x123456789abcdefULL}, std::uint64_t{0xFFFFFFFFFFFFFFFFULL}}) {
      CAPTURE(b0);
      Generator g(seed);
      std::uint32_t w[4][Generator::kLanes];
      g.blocks(b0, w);
      for (int j = 0; j < Generator::kLanes; ++j) {
        const auto b = g.block(b0 + std::uint64_t(j));
        for (int k = 0; k < 4; ++k) {
          CHECK(w[k][j] == b[static_cast<std::size_t>(k)]);
          if (b0 < (std::uint64_t{1} << 60)) CHECK(w[k][j] == g.bits(4 * (b0 + std::uint64_t(j)) + std::uint64_t(k)));
        }
      }
    }
}
