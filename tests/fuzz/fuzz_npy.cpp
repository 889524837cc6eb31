// libFuzzer target for erlmr::data::parse_npy (built and run by tools/fuzz.sh).
//
// Checks, beyond "no crash, no sanitizer report": the only exception parse_npy lets out is
// FormatError; a parsed array is self-consistent; serialising it and parsing the result gives
// the same array back; the element conversions fail only in their documented ways.
#include <erlmr/data/npy.hpp>

#include <complex>
#include <cstddef>
#include <cstdint>
#include <stdexcept>

namespace {

using erlmr::data::NpyArray;

template <class T> void convert(const NpyArray& a) {
  try {
    (void)a.as<T>();
  } catch (const std::invalid_argument&) {  // complex -> real
  } catch (const std::range_error&) {       // value does not fit an integer type
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  NpyArray a;
  try {
    a = erlmr::data::parse_npy(reinterpret_cast<const std::byte*>(data), size, "fuzz.npy");
  } catch (const erlmr::data::FormatError&) {
    return 0;
  }
  if (a.data.size() != static_cast<std::size_t>(a.numel()) * erlmr::data::dtype_size(a.dtype)) __builtin_trap();
  const auto bytes = erlmr::data::serialize_npy(a);
  if (!(erlmr::data::parse_npy(bytes.data(), bytes.size(), "reserialized.npy") == a)) __builtin_trap();
  convert<double>(a);
  convert<float>(a);
  convert<std::int64_t>(a);
  convert<std::int32_t>(a);
  convert<std::uint8_t>(a);
  convert<bool>(a);
  convert<std::complex<float>>(a);
  convert<std::complex<double>>(a);
  return 0;
}
