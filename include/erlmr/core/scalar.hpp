// erlmr/core/scalar.hpp — element types and their traits.
//
// Tensors hold float, double, std::complex<float> or std::complex<double>.
// `real_t<T>` is the real type underlying T; `is_complex_v<T>` tells the two
// families apart; `conj_if` is the identity on reals so generic backward rules
// can be written once with the complex convention of spec §2.
#pragma once
#include <complex>
#include <concepts>
#include <cstdint>
#include <string>
#include <type_traits>

namespace erlmr {

template <class T> struct is_complex : std::false_type {};
template <class T> struct is_complex<std::complex<T>> : std::true_type {};
template <class T> inline constexpr bool is_complex_v = is_complex<T>::value;

template <class T> struct real_type { using type = T; };
template <class T> struct real_type<std::complex<T>> { using type = T; };
template <class T> using real_t = typename real_type<T>::type;

template <class T> using complex_t = std::complex<real_t<T>>;

template <class T>
concept RealScalar = std::same_as<T, float> || std::same_as<T, double>;
template <class T>
concept ComplexScalar = std::same_as<T, std::complex<float>> || std::same_as<T, std::complex<double>>;
template <class T>
concept Scalar = RealScalar<T> || ComplexScalar<T>;

template <class T> constexpr T conj_if(const T& x) {
  if constexpr (is_complex_v<T>) return std::conj(x); else return x;
}
template <class T> constexpr real_t<T> real_part(const T& x) {
  if constexpr (is_complex_v<T>) return x.real(); else return x;
}

template <class T> constexpr const char* scalar_name() {
  if constexpr (std::is_same_v<T, float>) return "float32";
  else if constexpr (std::is_same_v<T, double>) return "float64";
  else if constexpr (std::is_same_v<T, std::complex<float>>) return "complex64";
  else if constexpr (std::is_same_v<T, std::complex<double>>) return "complex128";
  else if constexpr (std::is_same_v<T, std::int64_t>) return "int64";
  else return "unknown";
}

}  // namespace erlmr
