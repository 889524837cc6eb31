// libFuzzer target for erlmr::data::parse_npz (built and run by tools/fuzz.sh).
//
// Checks, beyond "no crash, no sanitizer report, no allocation over the -malloc_limit_mb that
// tools/fuzz.sh sets": the only exception parse_npz lets out is FormatError; every array read is
// self-consistent; writing the map as an archive (stored, deflated, forced ZIP64) and parsing it
// again gives the same map back.
#include <erlmr/data/npy.hpp>

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  erlmr::data::NpzMap m;
  try {
    m = erlmr::data::parse_npz(reinterpret_cast<const std::byte*>(data), size, "fuzz.npz");
  } catch (const erlmr::data::FormatError&) {
    return 0;
  }
  for (const auto& [key, a] : m) {
    if (key.empty() || a.data.size() != static_cast<std::size_t>(a.numel()) * erlmr::data::dtype_size(a.dtype))
      __builtin_trap();
    if (key.size() > 0xFFFF - 4) return 0;  // "<key>.npy" would not fit a ZIP name: the writer refuses it
  }
  const auto stored = erlmr::data::serialize_npz(m, /*compress=*/false);
  if (!(erlmr::data::parse_npz(stored.data(), stored.size(), "stored.npz") == m)) __builtin_trap();
  const auto deflated = erlmr::data::serialize_npz(m, /*compress=*/true, /*force_zip64=*/true);
  if (!(erlmr::data::parse_npz(deflated.data(), deflated.size(), "deflated.npz") == m)) __builtin_trap();
  return 0;
}
