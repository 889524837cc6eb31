// libFuzzer target for erlmr::data::parse_idx (built and run by tools/fuzz.sh).
//
// Checks, beyond "no crash, no sanitizer report": the only exception parse_idx lets out is
// FormatError; a parsed array is self-consistent; serialising it (plain and gzip) and parsing
// the result gives the same array back; as<T>() fails only with std::range_error.
#include <erlmr/data/idx.hpp>

#include <cstddef>
#include <cstdint>
#include <stdexcept>

namespace {

using erlmr::data::IdxArray;

template <class T> void convert(const IdxArray& a) {
  try {
    if (a.as<T>().size() != static_cast<std::size_t>(a.numel())) __builtin_trap();
  } catch (const std::range_error&) {  // value does not fit an integer type
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  IdxArray a;
  try {
    a = erlmr::data::parse_idx(reinterpret_cast<const std::byte*>(data), size, "fuzz.idx");
  } catch (const erlmr::data::FormatError&) {
    return 0;
  }
  if (a.data.size() != static_cast<std::size_t>(a.numel()) * erlmr::data::idx_type_size(a.type)) __builtin_trap();
  const auto bytes = erlmr::data::serialize_idx(a);
  if (!(erlmr::data::parse_idx(bytes, "reserialized.idx") == a)) __builtin_trap();
  if (bytes.size() <= 4096 && !(erlmr::data::parse_idx(erlmr::data::gzip_bytes(bytes), "regzipped.idx") == a))
    __builtin_trap();
  convert<float>(a);
  convert<double>(a);
  convert<std::int64_t>(a);
  convert<std::int32_t>(a);
  convert<std::uint8_t>(a);
  return 0;
}
