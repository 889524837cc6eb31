#pragma once
// erlmr/data/wav.hpp: RIFF/WAVE reader and writer, safe against hostile input.
//
// Contract
//   Reads   RIFF/WAVE files with a 'fmt ' chunk of format tag 1 (PCM: 8-bit unsigned, 16-,
//           24- or 32-bit signed), 3 (IEEE float, 32-bit) or 0xFFFE (WAVE_FORMAT_EXTENSIBLE
//           whose subformat GUID is PCM or IEEE float, same sample sizes), 1 to 64 channels,
//           any sample rate from 1 to INT_MAX. Chunks other than 'fmt ' and 'data' are skipped
//           (odd sizes are followed by a pad byte; a missing pad byte at the very end is
//           tolerated). Bytes after the RIFF chunk are ignored.
//   Result  Wav: sample rate, channel count and the samples interleaved, scaled to [-1, 1)
//           (integers v are divided by 2^(bits-1), 8-bit ones after subtracting 128; a 32-bit
//           value whose quotient rounds to 1.0f in float is stored as the largest float below
//           1). Float data is returned as stored (it may hold values outside [-1, 1], or NaN).
//   Writes  PCM 16-bit (values clamped to [-1, 1] and rounded) or IEEE float 32-bit.
//   Throws  FormatError "<file>: byte <offset>: <problem>" for every malformed input,
//           std::system_error for I/O failures, std::invalid_argument for an inconsistent Wav
//           or bit depth given to the writer, std::out_of_range from Wav::channel.
//   Never   reads outside the buffer: every chunk size is checked against the bytes left in
//           the RIFF chunk before use; the output holds at most 4 floats per data byte.

#include <erlmr/data/npy.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace erlmr::data {

/// Decoded audio: samples interleaved (frame 0 channel 0, frame 0 channel 1, ...).
struct Wav {
  int sample_rate = 0;
  int channels = 0;
  std::vector<float> samples;

  /// Number of frames (samples per channel); 0 when channels is not positive.
  std::int64_t frames() const {
    return channels > 0 ? static_cast<std::int64_t>(samples.size() / static_cast<std::size_t>(channels)) : 0;
  }

  /// The samples of channel c (0-based). Throws std::out_of_range for c outside [0, channels).
  std::vector<float> channel(int c) const {
    if (c < 0 || c >= channels)
      throw std::out_of_range("erlmr::data: channel " + std::to_string(c) + " of a " + std::to_string(channels) +
                              "-channel Wav");
    const auto n = static_cast<std::size_t>(frames());
    std::vector<float> out(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = samples[i * static_cast<std::size_t>(channels) + static_cast<std::size_t>(c)];
    return out;
  }

  bool operator==(const Wav&) const = default;
};

inline constexpr int kWavMaxChannels = 64;

namespace detail {

inline std::string fourcc_str(const std::byte* p) {
  return printable(std::string_view(reinterpret_cast<const char*>(p), 4));
}

/// The 14 bytes after the format code in the KSDATAFORMAT_SUBTYPE_PCM / _IEEE_FLOAT GUIDs.
inline constexpr unsigned char kWavGuidTail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80,
                                                  0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};

inline bool fourcc_is(const std::byte* p, const char* s) { return std::memcmp(p, s, 4) == 0; }

}  // namespace detail

/// Parses an in-memory WAV file; name is used in messages. Throws FormatError.
inline Wav parse_wav(const std::byte* data, std::size_t size, const std::string& name) {
  using detail::fail;
  using detail::rd16;
  using detail::rd32;
  if (size == 0) fail(name, 0, "empty input");
  if (size < 12) fail(name, size, "ends inside the 12-byte RIFF/WAVE header");
  if (!detail::fourcc_is(data, "RIFF"))
    fail(name, 0, "bad magic: expected 'RIFF', got " + detail::fourcc_str(data));
  if (!detail::fourcc_is(data + 8, "WAVE"))
    fail(name, 8, "not a WAVE file: RIFF form type " + detail::fourcc_str(data + 8));
  const std::uint64_t riff_size = rd32(data + 4);
  if (riff_size < 4) fail(name, 4, "RIFF size " + std::to_string(riff_size) + " is smaller than its form type");
  if (8 + riff_size > size)
    fail(name, 4, "truncated: RIFF size " + std::to_string(riff_size) + " needs " + std::to_string(8 + riff_size) +
                      " bytes but the file has " + std::to_string(size));
  const std::size_t end = static_cast<std::size_t>(8 + riff_size);

  bool have_fmt = false, have_data = false;
  unsigned tag = 0, channels = 0, block_align = 0, bits = 0;
  std::uint32_t rate = 0;
  bool is_float = false;
  std::size_t data_off = 0, data_len = 0;

  std::size_t pos = 12;
  while (pos < end) {
    if (end - pos < 8)
      fail(name, pos, "truncated chunk header: " + std::to_string(end - pos) + " bytes left in the RIFF chunk");
    const std::byte* ck = data + pos;
    const std::uint64_t ck_size = rd32(ck + 4);
    const std::size_t body = pos + 8;
    if (ck_size > end - body)
      fail(name, pos + 4, "chunk " + detail::fourcc_str(ck) + " size " + std::to_string(ck_size) + " exceeds the " +
                              std::to_string(end - body) + " bytes left in the RIFF chunk");
    const auto len = static_cast<std::size_t>(ck_size);
    if (detail::fourcc_is(ck, "fmt ")) {
      if (have_fmt) fail(name, pos, "duplicate 'fmt ' chunk");
      have_fmt = true;
      if (len < 16) fail(name, pos + 4, "'fmt ' chunk size " + std::to_string(len) + " is smaller than 16");
      const std::byte* f = data + body;
      tag = rd16(f);
      channels = rd16(f + 2);
      rate = rd32(f + 4);
      block_align = rd16(f + 12);
      bits = rd16(f + 14);
      unsigned sub = tag;
      if (tag == 0xFFFE) {
        if (len < 40)
          fail(name, pos + 4, "WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk size " + std::to_string(len) +
                                  " is smaller than 40");
        const unsigned cb = rd16(f + 16);
        if (cb < 22) fail(name, body + 16, "WAVE_FORMAT_EXTENSIBLE extension size " + std::to_string(cb) + " is smaller than 22");
        const unsigned valid_bits = rd16(f + 18);
        if (valid_bits > bits)
          fail(name, body + 18, "valid bits per sample " + std::to_string(valid_bits) + " exceed the container's " +
                                    std::to_string(bits));
        sub = rd16(f + 24);
        if (std::memcmp(f + 26, detail::kWavGuidTail, 14) != 0 || (sub != 1 && sub != 3))
          fail(name, body + 24, "unsupported WAVE_FORMAT_EXTENSIBLE subformat GUID (only PCM and IEEE float)");
      }
      if (sub != 1 && sub != 3) fail(name, body, "unsupported format tag " + std::to_string(tag) + " (only PCM 1, IEEE float 3, extensible 0xFFFE)");
      is_float = sub == 3;
      if (channels < 1 || channels > kWavMaxChannels)
        fail(name, body + 2, "channel count " + std::to_string(channels) + " outside [1, 64]");
      if (rate == 0 || rate > static_cast<std::uint32_t>(std::numeric_limits<int>::max()))
        fail(name, body + 4, "sample rate " + std::to_string(rate) + " outside [1, 2^31-1]");
      if (is_float ? bits != 32 : (bits != 8 && bits != 16 && bits != 24 && bits != 32))
        fail(name, body + 14, std::string("unsupported ") + (is_float ? "float" : "PCM") + " bits per sample " +
                                  std::to_string(bits));
      if (block_align != channels * (bits / 8))
        fail(name, body + 12, "block align " + std::to_string(block_align) + " differs from " +
                                  std::to_string(channels) + " channels x " + std::to_string(bits / 8) + " bytes");
    } else if (detail::fourcc_is(ck, "data")) {
      if (have_data) fail(name, pos, "duplicate 'data' chunk");
      have_data = true;
      data_off = body;
      data_len = len;
    }
    pos = body + len;
    if ((len & 1) && pos < end) ++pos;  // pad byte (tolerated missing at the very end)
  }
  if (!have_fmt) fail(name, end, "no 'fmt ' chunk");
  if (!have_data) fail(name, end, "no 'data' chunk");
  if (data_len % block_align != 0)
    fail(name, data_off + data_len - data_len % block_align,
         "truncated data: 'data' chunk size " + std::to_string(data_len) + " is not a multiple of the " +
             std::to_string(block_align) + "-byte frame");

  Wav w;
  w.sample_rate = static_cast<int>(rate);
  w.channels = static_cast<int>(channels);
  const std::size_t bps = bits / 8;
  const std::size_t n = data_len / bps;
  w.samples.resize(n);
  const std::byte* d = data + data_off;
  constexpr float kBelowOne = 0x1.fffffep-1f;
  for (std::size_t i = 0; i < n; ++i) {
    const std::byte* p = d + i * bps;
    float v;
    if (is_float) {
      std::uint32_t u = rd32(p);
      std::memcpy(&v, &u, 4);
    } else if (bits == 8) {
      v = static_cast<float>(static_cast<int>(detail::u8(p)) - 128) / 128.0f;
    } else if (bits == 16) {
      v = static_cast<float>(static_cast<std::int16_t>(rd16(p))) / 32768.0f;
    } else if (bits == 24) {
      const std::uint32_t u = detail::u8(p) | detail::u8(p + 1) << 8 | detail::u8(p + 2) << 16;
      const std::int32_t s = static_cast<std::int32_t>(u << 8) >> 8;
      v = static_cast<float>(s) / 8388608.0f;
    } else {
      v = static_cast<float>(static_cast<double>(static_cast<std::int32_t>(rd32(p))) / 2147483648.0);
      if (v >= 1.0f) v = kBelowOne;
    }
    w.samples[i] = v;
  }
  return w;
}

inline Wav parse_wav(const std::vector<std::byte>& bytes, const std::string& name) {
  return parse_wav(bytes.data(), bytes.size(), name);
}

/// Reads a WAV file. Throws FormatError (bad content) or std::system_error (I/O).
inline Wav read_wav(const std::string& path) {
  const auto bytes = detail::read_file(path);
  return parse_wav(bytes.data(), bytes.size(), path);
}

/// Serialises as PCM 16-bit (bits = 16; values clamped to [-1, 1], scaled by 32768, rounded,
/// clamped to int16; NaN becomes 0) or IEEE float 32-bit (bits = 32). Throws
/// std::invalid_argument for another bit depth, channels outside [1, 64], a sample rate <= 0,
/// a sample count that is not a multiple of channels, or data over 4 GiB.
inline std::vector<std::byte> serialize_wav(const Wav& w, int bits = 16) {
  if (bits != 16 && bits != 32)
    throw std::invalid_argument("erlmr::data: write_wav supports 16-bit PCM or 32-bit float, not " +
                                std::to_string(bits) + " bits");
  if (w.channels < 1 || w.channels > kWavMaxChannels)
    throw std::invalid_argument("erlmr::data: Wav channel count " + std::to_string(w.channels) + " outside [1, 64]");
  if (w.sample_rate <= 0)
    throw std::invalid_argument("erlmr::data: Wav sample rate " + std::to_string(w.sample_rate) + " is not positive");
  if (w.samples.size() % static_cast<std::size_t>(w.channels) != 0)
    throw std::invalid_argument("erlmr::data: " + std::to_string(w.samples.size()) +
                                " samples are not a whole number of " + std::to_string(w.channels) + "-channel frames");
  const std::size_t bps = static_cast<std::size_t>(bits) / 8;
  const std::uint64_t data_len = static_cast<std::uint64_t>(w.samples.size()) * bps;
  if (data_len > 0xFFFFFFFFull - 36) throw std::invalid_argument("erlmr::data: Wav data exceeds the RIFF 4 GiB limit");
  std::vector<std::byte> out;
  out.reserve(static_cast<std::size_t>(44 + data_len));
  auto tag = [&](const char* s) { detail::put(out, s, 4); };
  tag("RIFF");
  detail::wr32(out, static_cast<std::uint32_t>(36 + data_len));
  tag("WAVE");
  tag("fmt ");
  detail::wr32(out, 16);
  detail::wr16(out, bits == 32 ? 3 : 1);
  detail::wr16(out, static_cast<std::uint16_t>(w.channels));
  detail::wr32(out, static_cast<std::uint32_t>(w.sample_rate));
  const auto align = static_cast<std::uint32_t>(w.channels) * static_cast<std::uint32_t>(bps);
  detail::wr32(out, static_cast<std::uint32_t>(static_cast<std::uint64_t>(w.sample_rate) * align));
  detail::wr16(out, static_cast<std::uint16_t>(align));
  detail::wr16(out, static_cast<std::uint16_t>(bits));
  tag("data");
  detail::wr32(out, static_cast<std::uint32_t>(data_len));
  for (float x : w.samples) {
    if (bits == 32) {
      std::uint32_t u;
      std::memcpy(&u, &x, 4);
      detail::wr32(out, u);
    } else {
      const double c = std::isnan(x) ? 0.0 : std::clamp(static_cast<double>(x), -1.0, 1.0);
      const double s = std::clamp(std::nearbyint(c * 32768.0), -32768.0, 32767.0);
      detail::wr16(out, static_cast<std::uint16_t>(static_cast<std::int16_t>(s)));
    }
  }
  return out;
}

/// Writes a WAV file atomically (temporary file + rename); see serialize_wav.
inline void write_wav(const std::string& path, const Wav& w, int bits = 16) {
  detail::write_file_atomic(path, serialize_wav(w, bits));
}

}  // namespace erlmr::data
