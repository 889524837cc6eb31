// erlmr/cuda/philox.hpp — Philox4x32-10 for host and device code.
//
// philox_bits(seed, c) returns exactly erlmr::Generator(seed).bits(c) of
// core/rng.hpp: word (c & 3) of the Philox4x32-10 block with counter words
// (lo(c >> 2), hi(c >> 2), 0, 0) and key (lo(seed), hi(seed)). Only plain
// 32/64-bit integer arithmetic is used, so the same function compiles with nvcc
// (as __host__ __device__) and with any host C++ compiler (tests compare it with
// the CPU Generator). No CUDA header is included.
//
// philox_normal(seed, i) returns Generator(seed).normal(i): Box–Muller on the
// separate counter lane (lo(i >> 1), hi(i >> 1), 1, 0). It uses <cmath>'s sqrt, log,
// sin and cos, which nvcc also provides in device code; on the host the result is
// bitwise the CPU's, on the GPU it differs only by the device libm's rounding.
#pragma once
#include <cmath>
#include <cstdint>

// ERLMR_HD marks functions callable from host and device code under nvcc; empty for
// a plain host compiler.
#ifndef ERLMR_HD
#if defined(__CUDACC__)
#define ERLMR_HD __host__ __device__
#else
#define ERLMR_HD
#endif
#endif

namespace erlmr::cuda {

// hi:lo = a·b (the 64-bit product split into 32-bit halves).
ERLMR_HD inline void philox_mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t& hi, std::uint32_t& lo) {
#if defined(__CUDA_ARCH__)
  lo = a * b;
  hi = __umulhi(a, b);
#else
  const std::uint64_t p = static_cast<std::uint64_t>(a) * static_cast<std::uint64_t>(b);
  hi = static_cast<std::uint32_t>(p >> 32);
  lo = static_cast<std::uint32_t>(p);
#endif
}

// The four output words of Philox4x32-10 for the 128-bit counter c and 64-bit key
// (k0, k1), in place (same rounds and constants as Philox4x32::generate).
ERLMR_HD inline void philox4x32_10(std::uint32_t (&c)[4], std::uint32_t k0, std::uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    std::uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(0xD2511F53u, c[0], hi0, lo0);
    philox_mulhilo(0xCD9E8D57u, c[2], hi1, lo1);
    const std::uint32_t n0 = hi1 ^ c[1] ^ k0, n1 = lo1, n2 = hi0 ^ c[3] ^ k1, n3 = lo0;
    c[0] = n0;
    c[1] = n1;
    c[2] = n2;
    c[3] = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

// The four words of Philox block b for `seed`: out[k] = Generator(seed).bits(4b + k).
ERLMR_HD inline void philox_block(std::uint64_t seed, std::uint64_t b, std::uint32_t (&out)[4]) {
  out[0] = static_cast<std::uint32_t>(b);
  out[1] = static_cast<std::uint32_t>(b >> 32);
  out[2] = 0u;
  out[3] = 0u;
  philox4x32_10(out, static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
}

// 32 random bits for counter `counter`, identical to Generator(seed).bits(counter).
ERLMR_HD inline std::uint32_t philox_bits(std::uint64_t seed, std::uint64_t counter) {
  std::uint32_t w[4];
  philox_block(seed, counter >> 2, w);
  return w[counter & 3u];
}

// Dropout's keep decision for one counter (ops/norm.hpp): keep iff the top 24 bits,
// read as an integer in [0, 2^24), are at least threshold = ceil(p·2^24).
ERLMR_HD inline bool dropout_keep(std::uint32_t bits, std::uint32_t threshold) { return (bits >> 8) >= threshold; }

// Box–Muller inputs of the normal pair in lane block b (counters 2b and 2b + 1 of
// Generator::normal): r = √(−2 log u1) and θ = 2π·u2, with u1 = ((w0 >> 8) + 1)/(2^24 + 1)
// in (0, 1] and u2 = (w1 >> 8)/2^24 from words 0 and 1 of the Philox block with counter
// words (lo(b), hi(b), 1, 0). Written as Generator::normal writes them, operation for
// operation, so the host result is bitwise equal.
ERLMR_HD inline void philox_box_muller(std::uint64_t seed, std::uint64_t b, double& r, double& theta) {
  std::uint32_t w[4] = {static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(b >> 32), 1u, 0u};
  philox4x32_10(w, static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
  const double u1 = ((w[0] >> 8) + 1) * (1.0 / 16777217.0);  // (0, 1]
  const double u2 = (w[1] >> 8) * (1.0 / 16777216.0);
  r = std::sqrt(-2.0 * std::log(u1));
  theta = 6.283185307179586 * u2;
}

// Standard normal number i of `seed`, identical (on the host) to Generator(seed).normal(i):
// r·cos θ for even i, r·sin θ for odd i, (r, θ) from lane block i >> 1.
ERLMR_HD inline double philox_normal(std::uint64_t seed, std::uint64_t i) {
  double r, theta;
  philox_box_muller(seed, i >> 1, r, theta);
  return (i & 1u) ? r * std::sin(theta) : r * std::cos(theta);
}

}  // namespace erlmr::cuda
