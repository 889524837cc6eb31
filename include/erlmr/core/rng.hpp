// erlmr/core/rng.hpp — counter-based random numbers (Philox4x32-10).
//
// Philox (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11)
// maps (key, counter) to four 32-bit words with a fixed bijection, so the i-th
// random number of a draw depends only on (seed, offset + i) — never on which
// thread computes it or in what order. A Generator is just (seed, offset):
// each draw of n values consumes the counters [offset, offset + n) and advances
// offset, which makes state trivially checkpointable (two integers).
#pragma once
#include <array>
#include <cmath>
#include <cstdint>

#ifdef ERLMR_USE_XSIMD
#include <xsimd/xsimd.hpp>
#endif

namespace erlmr {

struct Philox4x32 {
  using Counter = std::array<std::uint32_t, 4>;
  using Key = std::array<std::uint32_t, 2>;

  static Counter round(const Counter& c, const Key& k) {
    constexpr std::uint64_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
    const std::uint64_t p0 = M0 * c[0], p1 = M1 * c[2];
    return {static_cast<std::uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<std::uint32_t>(p1),
            static_cast<std::uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<std::uint32_t>(p0)};
  }
  static Counter generate(Counter c, Key k) {
    constexpr std::uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    for (int r = 0; r < 10; ++r) {
      c = round(c, k);
      k[0] += W0;
      k[1] += W1;
    }
    return c;
  }
};

class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0, std::uint64_t offset = 0) : seed_(seed), offset_(offset) {}

  std::uint64_t seed() const { return seed_; }
  std::uint64_t offset() const { return offset_; }
  void set_state(std::uint64_t seed, std::uint64_t offset) { seed_ = seed; offset_ = offset; }

  // Reserves n counters and returns the first; the caller evaluates them in any order.
  std::uint64_t reserve(std::uint64_t n) {
    const std::uint64_t first = offset_;
    offset_ += n;
    return first;
  }

  // 32 random bits for counter i (four words per Philox block; word i%4 of block i/4).
  std::uint32_t bits(std::uint64_t i) const {
    const std::uint64_t block = i >> 2;
    const auto out = Philox4x32::generate(
        {static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32), 0u, 0u},
        {static_cast<std::uint32_t>(seed_), static_cast<std::uint32_t>(seed_ >> 32)});
    return out[i & 3];
  }
  // The four words of Philox block b, i.e. bits(4b), ..., bits(4b + 3), in one evaluation.
  std::array<std::uint32_t, 4> block(std::uint64_t b) const {
    return Philox4x32::generate({static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(b >> 32), 0u, 0u},
                                {static_cast<std::uint32_t>(seed_), static_cast<std::uint32_t>(seed_ >> 32)});
  }
  static double to_uniform(std::uint32_t w) { return (w >> 8) * (1.0 / 16777216.0); }

  // Words of kLanes consecutive blocks b0, b0+1, ... in structure-of-arrays form
  // (out[k][j] = word k of block b0 + j): the same numbers as block(), for many blocks at
  // once. With xsimd the ten rounds run on 64-bit lanes holding the 32-bit words, so each
  // 32×32 → 64-bit product is one vector multiply (GCC left the plain loops below scalar
  // once inlined into dropout: 1.6 ns per mask instead of ≈ 0.4). Same bits either way
  // (tests/core/test_rng.cpp).
  static constexpr int kLanes = 16;
#ifdef ERLMR_USE_XSIMD
  // a·b for 64-bit lanes whose values are below 2³²: the unsigned 32 × 32 → 64-bit multiply
  // (one vpmuludq) where the target has it; xsimd's 64-bit multiply is a full 64 × 64 product
  // (vpmullq on AVX-512, several times slower; emulated on AVX2).
  template <class V> static V mul32(const V& a, const V& b) {
#if defined(__AVX512F__)
    if constexpr (sizeof(V) == 64) return V(_mm512_mul_epu32(a, b));
#endif
#if defined(__AVX2__)
    if constexpr (sizeof(V) == 32) return V(_mm256_mul_epu32(a, b));
#endif
#if defined(__SSE2__)
    if constexpr (sizeof(V) == 16) return V(_mm_mul_epu32(a, b));
#endif
    return a * b;
  }
#endif
  void blocks(std::uint64_t b0, std::uint32_t (&out)[4][kLanes]) const {
    const std::uint32_t key0 = static_cast<std::uint32_t>(seed_), key1 = static_cast<std::uint32_t>(seed_ >> 32);
#ifdef ERLMR_USE_XSIMD
    using U = xsimd::batch<std::uint64_t>;
    constexpr int S = int(U::size);
    static_assert(kLanes % S == 0, "kLanes must be a multiple of the SIMD width");
    const U lo32(0xFFFFFFFFull), m0(0xD2511F53ull), m1(0xCD9E8D57ull);
    for (int h = 0; h < kLanes; h += S) {
      alignas(64) std::uint64_t w[4][S];
      for (int j = 0; j < S; ++j) {
        const std::uint64_t b = b0 + static_cast<std::uint64_t>(h + j);
        w[0][j] = b & 0xFFFFFFFFull;
        w[1][j] = b >> 32;
      }
      U c0 = U::load_aligned(w[0]), c1 = U::load_aligned(w[1]), c2(0ull), c3(0ull);
      std::uint32_t k0 = key0, k1 = key1;
      for (int r = 0; r < 10; ++r) {
        const U p0 = mul32(m0, c0), p1 = mul32(m1, c2);  // exact: both factors are below 2³²
        const U n0 = (p1 >> 32) ^ c1 ^ U(std::uint64_t(k0));
        const U n2 = (p0 >> 32) ^ c3 ^ U(std::uint64_t(k1));
        c1 = p1 & lo32;
        c3 = p0 & lo32;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
      }
      c0.store_aligned(w[0]);
      c1.store_aligned(w[1]);
      c2.store_aligned(w[2]);
      c3.store_aligned(w[3]);
      for (int k = 0; k < 4; ++k)
        for (int j = 0; j < S; ++j) out[k][h + j] = static_cast<std::uint32_t>(w[k][j]);
    }
#else
    std::uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
    for (int j = 0; j < kLanes; ++j) {
      const std::uint64_t b = b0 + static_cast<std::uint64_t>(j);
      c0[j] = static_cast<std::uint32_t>(b);
      c1[j] = static_cast<std::uint32_t>(b >> 32);
      c2[j] = 0;
      c3[j] = 0;
    }
    std::uint32_t k0 = key0, k1 = key1;
    for (int r = 0; r < 10; ++r) {
      for (int j = 0; j < kLanes; ++j) {
        const std::uint64_t p0 = std::uint64_t(0xD2511F53u) * c0[j], p1 = std::uint64_t(0xCD9E8D57u) * c2[j];
        const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1[j] ^ k0, n1 = static_cast<std::uint32_t>(p1);
        const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3[j] ^ k1, n3 = static_cast<std::uint32_t>(p0);
        c0[j] = n0;
        c1[j] = n1;
        c2[j] = n2;
        c3[j] = n3;
      }
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    for (int j = 0; j < kLanes; ++j) {
      out[0][j] = c0[j];
      out[1][j] = c1[j];
      out[2][j] = c2[j];
      out[3][j] = c3[j];
    }
#endif
  }
  // Uniform in [0, 1) with 24 random bits (exact in float and double).
  double uniform(std::uint64_t i) const { return (bits(i) >> 8) * (1.0 / 16777216.0); }
  // Standard normal by Box–Muller from two counters (2i, 2i+1) of a separate lane.
  double normal(std::uint64_t i) const {
    const std::uint64_t blk = i >> 1;
    const auto out = Philox4x32::generate(
        {static_cast<std::uint32_t>(blk), static_cast<std::uint32_t>(blk >> 32), 1u, 0u},
        {static_cast<std::uint32_t>(seed_), static_cast<std::uint32_t>(seed_ >> 32)});
    const double u1 = ((out[0] >> 8) + 1) * (1.0 / 16777217.0);  // (0, 1]
    const double u2 = (out[1] >> 8) * (1.0 / 16777216.0);
    const double r = std::sqrt(-2.0 * std::log(u1));
    return (i & 1) ? r * std::sin(6.283185307179586 * u2) : r * std::cos(6.283185307179586 * u2);
  }

 private:
  std::uint64_t seed_, offset_;
};

}  // namespace erlmr
