// Shared helpers for the doctest suite.
#pragma once
#include <doctest/doctest.h>

#include <complex>
#include <erlmr/erlmr.hpp>
#include <string>

namespace erlmr::test {

// Switches the SIMD kernels off for a scope and restores the previous setting on every way out
// (a failed REQUIRE too).
struct SimdOff {
  bool saved = simd::enabled();
  SimdOff() { simd::set_enabled(false); }
  ~SimdOff() { simd::set_enabled(saved); }
  SimdOff(const SimdOff&) = delete;
  SimdOff& operator=(const SimdOff&) = delete;
};

using cd = std::complex<double>;

template <class T> Var<T> rnd(const Shape& s, std::uint64_t seed, bool requires_grad = true, double scale = 1.0) {
  Generator g(seed);
  return Var<T>(Tensor<T>::randn(s, g, scale), requires_grad);
}
template <class T> Var<T> rnd_uniform(const Shape& s, std::uint64_t seed, double lo, double hi, bool requires_grad = true) {
  Generator g(seed);
  return Var<T>(Tensor<T>::uniform(s, g, lo, hi), requires_grad);
}

// Runs the finite-difference check of `f` (which builds the op's output from the
// registered inputs) and reports the failing component if any.
template <class F, class... Vs> void check_grad(F&& f, const Vs&... inputs) {
  GradCheck gc;
  (gc.input(inputs), ...);
  auto r = gc.run([&] { return project(f()); });
  INFO(r.message);
  CHECK(r.ok);
  CHECK(r.checked > 0);
}

template <class T> double max_abs_diff(const Tensor<T>& a, const Tensor<T>& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) m = std::max(m, double(std::abs(a.data()[i] - b.data()[i])));
  return m;
}

template <class T> bool bitwise_equal(const Tensor<T>& a, const Tensor<T>& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.nbytes()) == 0;
}

}  // namespace erlmr::test
