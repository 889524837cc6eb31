// libFuzzer target for erlmr::data::parse_wav (built and run by tools/fuzz.sh).
//
// Checks, beyond "no crash, no sanitizer report": the only exception parse_wav lets out is
// FormatError; a parsed Wav is self-consistent (channels in [1, 64], rate > 0, whole frames,
// integer PCM in [-1, 1)); writing it as float32 and parsing that gives the same bits back, and
// as PCM16 gives samples within half a step.
#include <erlmr/data/wav.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  erlmr::data::Wav w;
  try {
    w = erlmr::data::parse_wav(reinterpret_cast<const std::byte*>(data), size, "fuzz.wav");
  } catch (const erlmr::data::FormatError&) {
    return 0;
  }
  if (w.channels < 1 || w.channels > 64 || w.sample_rate <= 0) __builtin_trap();
  if (w.samples.size() % static_cast<std::size_t>(w.channels) != 0) __builtin_trap();
  std::size_t total = 0;
  for (int c = 0; c < w.channels; ++c) total += w.channel(c).size();
  if (total != w.samples.size()) __builtin_trap();
  const auto f32 = erlmr::data::serialize_wav(w, 32);
  const auto back = erlmr::data::parse_wav(f32, "reserialized.wav");
  if (back.sample_rate != w.sample_rate || back.channels != w.channels || back.samples.size() != w.samples.size())
    __builtin_trap();
  if (!w.samples.empty() && std::memcmp(back.samples.data(), w.samples.data(), w.samples.size() * sizeof(float)) != 0)
    __builtin_trap();
  const auto p16 = erlmr::data::parse_wav(erlmr::data::serialize_wav(w, 16), "pcm16.wav");
  for (std::size_t i = 0; i < w.samples.size(); ++i) {
    const float x = w.samples[i], y = p16.samples[i];
    if (!(y >= -1.0f && y < 1.0f)) __builtin_trap();
    if (std::isfinite(x) && x >= -1.0f && x <= 32767.0f / 32768.0f && std::fabs(x - y) > 0.5f / 32768.0f + 1e-7f)
      __builtin_trap();
  }
  return 0;
}
