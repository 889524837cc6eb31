// Tests for erlmr/data/wav.hpp: every sample format written byte by byte, extensible
// headers, skipped chunks and padding, the writer, malformed inputs (each must throw
// FormatError naming the file and the problem), and truncations / mutations.
#include <doctest/doctest.h>

#include "data/data_test_util.hpp"

#include <erlmr/data/wav.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

namespace {

using erlmr::test::TempDir;

using namespace erlmr::data;
namespace fs = std::filesystem;
using erlmr::test::Bytes;

void le(Bytes& b, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b.push_back(std::byte{static_cast<unsigned char>(v >> (8 * i) & 0xFF)});
}
void tag(Bytes& b, const char* s) {
  for (int i = 0; i < 4; ++i) b.push_back(std::byte{static_cast<unsigned char>(s[i])});
}

/// A 'fmt ' chunk body (16 bytes, or 40 for WAVE_FORMAT_EXTENSIBLE with subformat `sub`).
Bytes fmt_body(unsigned format, unsigned channels, std::uint32_t rate, unsigned bits, unsigned sub = 1,
               int align = -1) {
  Bytes f;
  const unsigned ba = align >= 0 ? static_cast<unsigned>(align) : channels * bits / 8;
  le(f, format, 2);
  le(f, channels, 2);
  le(f, rate, 4);
  le(f, std::uint64_t{rate} * ba, 4);
  le(f, ba, 2);
  le(f, bits, 2);
  if (format == 0xFFFE) {
    le(f, 22, 2);
    le(f, bits, 2);                          // valid bits
    le(f, channels == 2 ? 3 : 4, 4);         // channel mask
    le(f, sub, 2);                           // GUID: format code ...
    for (unsigned x : {0x00u, 0x00u, 0x00u, 0x00u, 0x10u, 0x00u, 0x80u, 0x00u, 0x00u, 0xAAu, 0x00u, 0x38u, 0x9Bu, 0x71u})
      f.push_back(std::byte{static_cast<unsigned char>(x)});  // ... then the fixed tail
  }
  return f;
}

/// A chunk: id, size (the body's unless given), body, pad byte for an odd size.
void chunk(Bytes& b, const char* id, const Bytes& body, std::int64_t size = -1, bool pad = true) {
  tag(b, id);
  le(b, size >= 0 ? static_cast<std::uint64_t>(size) : body.size(), 4);
  b.insert(b.end(), body.begin(), body.end());
  if (pad && body.size() % 2) b.push_back(std::byte{0});
}

/// RIFF/WAVE around the given chunks (RIFF size computed unless given).
Bytes riff(const Bytes& chunks, std::int64_t size = -1) {
  Bytes b;
  tag(b, "RIFF");
  le(b, size >= 0 ? static_cast<std::uint64_t>(size) : 4 + chunks.size(), 4);
  tag(b, "WAVE");
  b.insert(b.end(), chunks.begin(), chunks.end());
  return b;
}

Bytes simple(const Bytes& fmt, const Bytes& data) {
  Bytes c;
  chunk(c, "fmt ", fmt);
  chunk(c, "data", data);
  return riff(c);
}

void expect_wav_error(const Bytes& b, const std::string& name, const std::string& problem) {
  erlmr::test::expect_format_error([](const Bytes& x, const std::string& n) { (void)parse_wav(x.data(), x.size(), n); }, b, name,
                                    problem);
}

void wav_must_not_misbehave(const Bytes& b) {
  try {
    const Wav w = parse_wav(b.data(), b.size(), "mutant.wav");
    CHECK(w.channels >= 1);
    CHECK(w.channels <= 64);
    CHECK(w.sample_rate > 0);
    CHECK(w.samples.size() % static_cast<std::size_t>(w.channels) == 0);
  } catch (const FormatError& e) {
    CHECK(std::string(e.what()).rfind("mutant.wav: byte ", 0) == 0);
  }
}

}  // namespace

TEST_SUITE("data.wav") {

TEST_CASE("every sample format, hand-written bytes") {
  SUBCASE("PCM 8-bit unsigned, mono") {
    Bytes d;
    for (unsigned v : {0u, 64u, 128u, 192u, 255u}) le(d, v, 1);
    const Wav w = parse_wav(simple(fmt_body(1, 1, 8000, 8), d), "u8.wav");  // odd data size: padded
    CHECK(w.sample_rate == 8000);
    CHECK(w.channels == 1);
    CHECK(w.frames() == 5);
    CHECK(w.samples == std::vector<float>{-1.0f, -0.5f, 0.0f, 0.5f, 127.0f / 128.0f});
  }
  SUBCASE("PCM 16-bit, stereo") {
    Bytes d;
    for (int v : {-32768, 32767, 16384, -1, 0, 1}) le(d, static_cast<std::uint16_t>(v), 2);
    const Wav w = parse_wav(simple(fmt_body(1, 2, 44100, 16), d), "s16.wav");
    CHECK(w.sample_rate == 44100);
    CHECK(w.channels == 2);
    CHECK(w.frames() == 3);
    CHECK(w.channel(0) == std::vector<float>{-1.0f, 0.5f, 0.0f});
    CHECK(w.channel(1) == std::vector<float>{32767.0f / 32768.0f, -1.0f / 32768.0f, 1.0f / 32768.0f});
    CHECK_THROWS_AS((void)w.channel(2), std::out_of_range);
    CHECK_THROWS_AS((void)w.channel(-1), std::out_of_range);
  }
  SUBCASE("PCM 24-bit, 3 channels") {
    Bytes d;
    for (int v : {-8388608, 8388607, 4194304, -2, 0, 1}) le(d, static_cast<std::uint32_t>(v) & 0xFFFFFF, 3);
    const Wav w = parse_wav(simple(fmt_body(1, 3, 96000, 24), d), "s24.wav");
    CHECK(w.channels == 3);
    CHECK(w.frames() == 2);
    CHECK(w.samples == std::vector<float>{-1.0f, 8388607.0f / 8388608.0f, 0.5f, -2.0f / 8388608.0f, 0.0f,
                                          1.0f / 8388608.0f});
  }
  SUBCASE("PCM 32-bit: the maximum stays below 1") {
    Bytes d;
    for (std::int64_t v : {-2147483648LL, 2147483647LL, 1073741824LL, 0LL}) le(d, static_cast<std::uint32_t>(v), 4);
    const Wav w = parse_wav(simple(fmt_body(1, 1, 48000, 32), d), "s32.wav");
    REQUIRE(w.samples.size() == 4);
    CHECK(w.samples[0] == -1.0f);
    CHECK(w.samples[1] < 1.0f);
    CHECK(w.samples[1] > 0.9999f);
    CHECK(w.samples[2] == 0.5f);
    CHECK(w.samples[3] == 0.0f);
  }
  SUBCASE("IEEE float 32-bit") {
    Bytes d;
    for (float x : {0.25f, -0.75f, 1.5f, -1.0f}) {
      std::uint32_t u;
      std::memcpy(&u, &x, 4);
      le(d, u, 4);
    }
    const Wav w = parse_wav(simple(fmt_body(3, 2, 22050, 32), d), "f32.wav");
    CHECK(w.samples == std::vector<float>{0.25f, -0.75f, 1.5f, -1.0f});
  }
  SUBCASE("WAVE_FORMAT_EXTENSIBLE, PCM 24-bit and float") {
    Bytes d;
    for (int v : {4194304, -4194304}) le(d, static_cast<std::uint32_t>(v) & 0xFFFFFF, 3);
    const Wav w = parse_wav(simple(fmt_body(0xFFFE, 2, 48000, 24, 1), d), "ext24.wav");
    CHECK(w.samples == std::vector<float>{0.5f, -0.5f});
    Bytes f;
    le(f, 0x3F000000u, 4);  // 0.5f
    const Wav g = parse_wav(simple(fmt_body(0xFFFE, 1, 16000, 32, 3), f), "extf.wav");
    CHECK(g.samples == std::vector<float>{0.5f});
  }
  SUBCASE("unknown chunks skipped, odd sizes padded, chunk order, trailing bytes, empty data") {
    Bytes c;
    chunk(c, "LIST", Bytes(7, std::byte{'x'}));  // odd: pad byte follows
    Bytes d;
    le(d, 0x4000, 2);
    chunk(c, "data", d);  // data before fmt
    chunk(c, "fact", Bytes(4, std::byte{0}));
    chunk(c, "fmt ", fmt_body(1, 1, 11025, 16));
    chunk(c, "junk", Bytes(3, std::byte{1}), -1, false);  // odd final chunk without its pad byte
    Bytes b = riff(c);
    for (int i = 0; i < 5; ++i) b.push_back(std::byte{0xEE});  // after the RIFF chunk: ignored
    const Wav w = parse_wav(b, "chunks.wav");
    CHECK(w.sample_rate == 11025);
    CHECK(w.samples == std::vector<float>{0.5f});
    const Wav e = parse_wav(simple(fmt_body(1, 2, 8000, 16), {}), "empty_data.wav");
    CHECK(e.frames() == 0);
    CHECK(e.channel(1).empty());
  }
}

TEST_CASE("write_wav round trips: PCM16 and float32, through files") {
  TempDir dir("wav");
  Wav w;
  w.sample_rate = 16000;
  w.channels = 2;
  for (int i = 0; i < 400; ++i) w.samples.push_back(static_cast<float>(std::sin(0.05 * i) * 0.9));
  write_wav(dir.file("f.wav"), w, 32);
  CHECK(read_wav(dir.file("f.wav")) == w);
  write_wav(dir.file("p.wav"), w);
  const Wav p = read_wav(dir.file("p.wav"));
  CHECK(p.sample_rate == 16000);
  CHECK(p.channels == 2);
  REQUIRE(p.samples.size() == w.samples.size());
  for (std::size_t i = 0; i < p.samples.size(); ++i) CHECK(std::fabs(p.samples[i] - w.samples[i]) <= 0.5f / 32768.0f);
  // PCM16 is exact for multiples of 1/32768; clamping and NaN
  Wav q;
  q.sample_rate = 8000;
  q.channels = 1;
  q.samples = {-1.0f, 0.5f, -2.0f, 2.0f, std::nanf(""), 1.0f / 32768.0f};
  const Wav r = parse_wav(serialize_wav(q), "q.wav");
  CHECK(r.samples == std::vector<float>{-1.0f, 0.5f, -1.0f, 32767.0f / 32768.0f, 0.0f, 1.0f / 32768.0f});
  // the PCM16 header is the canonical 44-byte one
  Bytes d;
  for (int v : {-32768, 16384, -32768, 32767, 0, 1}) le(d, static_cast<std::uint16_t>(v), 2);
  CHECK(serialize_wav(q) == simple(fmt_body(1, 1, 8000, 16), d));
  // writer rejects inconsistent input
  Wav bad = q;
  CHECK_THROWS_AS((void)serialize_wav(bad, 24), std::invalid_argument);
  bad.channels = 4;
  CHECK_THROWS_AS((void)serialize_wav(bad), std::invalid_argument);  // 6 samples, 4 channels
  bad.channels = 0;
  CHECK_THROWS_AS((void)serialize_wav(bad), std::invalid_argument);
  bad = q;
  bad.sample_rate = 0;
  CHECK_THROWS_AS((void)serialize_wav(bad), std::invalid_argument);
  CHECK_THROWS_AS((void)read_wav(dir.file("missing.wav")), std::system_error);
}

TEST_CASE("malformed inputs throw FormatError naming the file and the problem") {
  Bytes pcm;
  le(pcm, 0x1234, 2);
  le(pcm, 0x5678, 2);
  const Bytes good = simple(fmt_body(1, 1, 8000, 16), pcm);
  CHECK_NOTHROW((void)parse_wav(good, "good.wav"));
  expect_wav_error({}, "empty.wav", "empty input");
  expect_wav_error(Bytes(good.begin(), good.begin() + 10), "short.wav", "ends inside the 12-byte RIFF/WAVE header");
  {
    Bytes b = good;
    b[0] = std::byte{'R'}, b[1] = std::byte{'I'}, b[2] = std::byte{'F'}, b[3] = std::byte{'X'};
    expect_wav_error(b, "magic.wav", "bad magic: expected 'RIFF', got 'RIFX'");
    b = good;
    b[8] = std::byte{'A'};
    expect_wav_error(b, "avi.wav", "not a WAVE file");
  }
  expect_wav_error(Bytes(good.begin(), good.end() - 1), "trunc.wav", "truncated: RIFF size 40 needs 48 bytes");
  expect_wav_error(riff({}, 2), "riff_small.wav", "RIFF size 2 is smaller");
  expect_wav_error(riff({}), "nochunks.wav", "no 'fmt ' chunk");
  {
    Bytes c;
    chunk(c, "fmt ", fmt_body(1, 1, 8000, 16));
    expect_wav_error(riff(c), "nodata.wav", "no 'data' chunk");
    Bytes t = c;
    t.push_back(std::byte{'d'});
    t.push_back(std::byte{'a'});
    expect_wav_error(riff(t), "cut_header.wav", "truncated chunk header: 2 bytes left");
    Bytes big = c;
    chunk(big, "data", pcm, 0x7FFFFFF0);
    expect_wav_error(riff(big), "data_size.wav", "chunk 'data' size 2147483632 exceeds the 4 bytes left");
    Bytes list;
    chunk(list, "LIST", pcm, 0xFFFFFFFF);
    expect_wav_error(riff(list), "list_size.wav", "chunk 'LIST' size 4294967295 exceeds");
    Bytes odd = c;
    chunk(odd, "data", Bytes(3, std::byte{0}));
    expect_wav_error(riff(odd), "partial_frame.wav", "truncated data: 'data' chunk size 3 is not a multiple of the 2-byte");
    Bytes dup = c;
    chunk(dup, "fmt ", fmt_body(1, 1, 8000, 16));
    expect_wav_error(riff(dup), "dup_fmt.wav", "duplicate 'fmt ' chunk");
    Bytes dd = c;
    chunk(dd, "data", pcm);
    chunk(dd, "data", pcm);
    expect_wav_error(riff(dd), "dup_data.wav", "duplicate 'data' chunk");
  }
  {
    Bytes c;
    Bytes f = fmt_body(1, 1, 8000, 16);
    f.resize(14);
    chunk(c, "fmt ", f);
    chunk(c, "data", pcm);
    expect_wav_error(riff(c), "fmt_short.wav", "'fmt ' chunk size 14 is smaller than 16");
  }
  expect_wav_error(simple(fmt_body(2, 1, 8000, 4), pcm), "adpcm.wav", "unsupported format tag 2");
  expect_wav_error(simple(fmt_body(0x55, 1, 8000, 16), pcm), "mp3.wav", "unsupported format tag 85");
  expect_wav_error(simple(fmt_body(1, 0, 8000, 16), pcm), "ch0.wav", "channel count 0 outside [1, 64]");
  expect_wav_error(simple(fmt_body(1, 65, 8000, 16), pcm), "ch65.wav", "channel count 65 outside [1, 64]");
  expect_wav_error(simple(fmt_body(1, 1, 0, 16), pcm), "rate0.wav", "sample rate 0 outside");
  expect_wav_error(simple(fmt_body(1, 1, 0x80000000u, 16), pcm), "rate_big.wav", "sample rate 2147483648 outside");
  expect_wav_error(simple(fmt_body(1, 1, 8000, 12), pcm), "bits12.wav", "unsupported PCM bits per sample 12");
  expect_wav_error(simple(fmt_body(1, 1, 8000, 0), pcm), "bits0.wav", "unsupported PCM bits per sample 0");
  expect_wav_error(simple(fmt_body(3, 1, 8000, 64), pcm), "f64.wav", "unsupported float bits per sample 64");
  expect_wav_error(simple(fmt_body(3, 1, 8000, 16), pcm), "f16.wav", "unsupported float bits per sample 16");
  expect_wav_error(simple(fmt_body(1, 2, 8000, 16, 1, 2), pcm), "align.wav", "block align 2 differs from 2 channels x 2 bytes");
  expect_wav_error(simple(fmt_body(1, 1, 8000, 16, 1, 0), pcm), "align0.wav", "block align 0 differs");
  {
    Bytes f = fmt_body(0xFFFE, 1, 8000, 16, 1);
    f.resize(30);
    expect_wav_error(simple(f, pcm), "ext_short.wav", "WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk size 30 is smaller than 40");
    f = fmt_body(0xFFFE, 1, 8000, 16, 2);
    expect_wav_error(simple(f, pcm), "ext_adpcm.wav", "unsupported WAVE_FORMAT_EXTENSIBLE subformat GUID");
    f = fmt_body(0xFFFE, 1, 8000, 16, 1);
    f[30] = std::byte{0x11};  // GUID tail
    expect_wav_error(simple(f, pcm), "ext_guid.wav", "unsupported WAVE_FORMAT_EXTENSIBLE subformat GUID");
    f = fmt_body(0xFFFE, 1, 8000, 16, 1);
    f[18] = std::byte{20};  // valid bits 20 > 16
    expect_wav_error(simple(f, pcm), "ext_valid.wav", "valid bits per sample 20 exceed");
    f = fmt_body(0xFFFE, 1, 8000, 16, 1);
    f[16] = std::byte{0};  // cbSize 0
    expect_wav_error(simple(f, pcm), "ext_cb.wav", "extension size 0 is smaller than 22");
  }
  // through a file: the message starts with the path and the offset points at the field
  TempDir dir("wav");
  const Bytes b = simple(fmt_body(1, 1, 8000, 12), pcm);
  {
    std::FILE* f = std::fopen(dir.file("bits.wav").c_str(), "wb");
    REQUIRE(f);
    std::fwrite(b.data(), 1, b.size(), f);
    std::fclose(f);
  }
  try {
    (void)read_wav(dir.file("bits.wav"));
    FAIL("no exception");
  } catch (const FormatError& e) {
    CHECK(std::string(e.what()).rfind(dir.file("bits.wav") + ": byte 34: unsupported PCM bits", 0) == 0);
    CHECK(e.offset() == 34);
  }
}

TEST_CASE("every truncation and many single-byte mutations fail only with FormatError") {
  std::vector<Bytes> inputs;
  Bytes d;
  for (int i = 0; i < 12; ++i) le(d, static_cast<std::uint32_t>(i * 99991), 3);
  inputs.push_back(simple(fmt_body(1, 2, 44100, 24), Bytes(d.begin(), d.begin() + 12)));
  inputs.push_back(simple(fmt_body(0xFFFE, 2, 48000, 16, 1), Bytes(d.begin(), d.begin() + 8)));
  inputs.push_back(simple(fmt_body(0xFFFE, 1, 48000, 32, 3), Bytes(d.begin(), d.begin() + 8)));
  {
    Bytes c;
    chunk(c, "LIST", Bytes(5, std::byte{'a'}));
    chunk(c, "fmt ", fmt_body(1, 1, 8000, 8));
    chunk(c, "data", Bytes(d.begin(), d.begin() + 7));
    inputs.push_back(riff(c));
  }
  std::size_t n = 0;
  for (const auto& in : inputs) {
    for (std::size_t k = 0; k < in.size(); ++k, ++n)
      wav_must_not_misbehave(Bytes(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(k)));
    for (std::size_t i = 0; i < in.size(); ++i)
      for (unsigned v : {0x00u, 0xFFu, 0x7Fu, 0x80u, 0x01u, 0x03u, 0xFEu}) {
        Bytes m = in;
        m[i] = std::byte{static_cast<unsigned char>(v)};
        wav_must_not_misbehave(m);
        ++n;
      }
  }
  CHECK(n > 1000);
}

TEST_CASE("a WAV written by a tool, when one is installed") {
  // No audio tool is a dependency; look for a few common system sounds.
  bool found = false;
  for (const char* path : {"/usr/share/sounds/alsa/Front_Center.wav", "/usr/share/sounds/alsa/Noise.wav",
                           "/usr/share/sounds/sound-icons/prompt.wav"}) {
    if (!fs::exists(path)) continue;
    found = true;
    INFO(path);
    const Wav w = read_wav(path);
    CHECK(w.channels >= 1);
    CHECK(w.sample_rate > 0);
    CHECK(w.frames() > 0);
  }
  if (!found) MESSAGE("no system WAV files found; tool-written WAV check skipped");
}

}  // TEST_SUITE
