// Tests for erlmr/data/idx.hpp: every element type, plain and gzip (zlib's gzwrite), round
// trips, malformed inputs (each must throw FormatError naming the file and the problem),
// truncations / mutations, and the real Fashion-MNIST files when installed.
#include <doctest/doctest.h>

#include "data/data_test_util.hpp"

#include <erlmr/data/idx.hpp>

#include <zlib.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

using erlmr::test::TempDir;

using namespace erlmr::data;
namespace fs = std::filesystem;

using erlmr::test::Bytes;

void push(Bytes& b, std::initializer_list<unsigned> v) {
  for (unsigned x : v) b.push_back(std::byte{static_cast<unsigned char>(x)});
}
void push_be32(Bytes& b, std::uint32_t v) { push(b, {v >> 24 & 0xFF, v >> 16 & 0xFF, v >> 8 & 0xFF, v & 0xFF}); }

/// An IDX header written by hand.
Bytes header(unsigned type, std::vector<std::uint32_t> dims) {
  Bytes b;
  push(b, {0, 0, type, static_cast<unsigned>(dims.size())});
  for (auto d : dims) push_be32(b, d);
  return b;
}

/// Appends the big-endian bytes of v (any trivially copyable scalar).
template <class T> void push_be(Bytes& b, T v) {
  unsigned char raw[sizeof(T)];
  std::memcpy(raw, &v, sizeof v);
  for (std::size_t i = sizeof(T); i-- > 0;) b.push_back(std::byte{raw[i]});
}

/// Writes bytes gzip-compressed with zlib's gzFile API (what `gzip` produces).
void write_gz(const std::string& path, const Bytes& b) {
  gzFile f = gzopen(path.c_str(), "wb9");
  REQUIRE(f != nullptr);
  if (!b.empty()) REQUIRE(gzwrite(f, b.data(), static_cast<unsigned>(b.size())) == static_cast<int>(b.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

void write_raw(const std::string& path, const Bytes& b) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  if (!b.empty()) REQUIRE(std::fwrite(b.data(), 1, b.size(), f) == b.size());
  std::fclose(f);
}

void expect_idx_error(const Bytes& b, const std::string& name, const std::string& problem) {
  erlmr::test::expect_format_error([](const Bytes& x, const std::string& n) { (void)parse_idx(x.data(), x.size(), n); }, b, name,
                                    problem);
}

void idx_must_not_misbehave(const Bytes& b) {
  try {
    const IdxArray a = parse_idx(b.data(), b.size(), "mutant.idx");
    CHECK(a.data.size() == static_cast<std::size_t>(a.numel()) * idx_type_size(a.type));
  } catch (const FormatError& e) {
    CHECK(std::string(e.what()).rfind("mutant.idx: byte ", 0) == 0);
  }
}

}  // namespace

TEST_SUITE("data.idx") {

TEST_CASE("every element type, hand-written big-endian bytes") {
  SUBCASE("u8 (MNIST images)") {
    Bytes b = header(0x08, {2, 2, 3});
    for (unsigned v = 0; v < 12; ++v) push(b, {v * 21});
    const IdxArray a = parse_idx(b, "u8.idx");
    CHECK(a.type == IdxType::u8);
    CHECK(a.shape == std::vector<std::int64_t>{2, 2, 3});
    const auto f = a.as<float>();
    REQUIRE(f.size() == 12);
    for (unsigned v = 0; v < 12; ++v) CHECK(f[v] == static_cast<float>(v * 21));
    CHECK(a.as<std::uint8_t>()[11] == 231);
  }
  SUBCASE("i8") {
    Bytes b = header(0x09, {4});
    push(b, {0x80, 0xFF, 0x00, 0x7F});
    const IdxArray a = parse_idx(b, "i8.idx");
    CHECK(a.as<std::int32_t>() == std::vector<std::int32_t>{-128, -1, 0, 127});
    CHECK_THROWS_AS((void)a.as<std::uint8_t>(), std::range_error);
  }
  SUBCASE("i16") {
    Bytes b = header(0x0B, {3});
    for (std::int16_t v : {std::int16_t{-32768}, std::int16_t{258}, std::int16_t{32767}}) push_be(b, v);
    CHECK(parse_idx(b, "i16.idx").as<std::int64_t>() == std::vector<std::int64_t>{-32768, 258, 32767});
  }
  SUBCASE("i32") {
    Bytes b = header(0x0C, {1, 3});
    for (std::int32_t v : {std::numeric_limits<std::int32_t>::min(), 16909060, 2147483647}) push_be(b, v);
    const IdxArray a = parse_idx(b, "i32.idx");
    CHECK(a.shape == std::vector<std::int64_t>{1, 3});
    CHECK(a.as<std::int32_t>() ==
          std::vector<std::int32_t>{std::numeric_limits<std::int32_t>::min(), 16909060, 2147483647});
    CHECK(a.as<double>()[1] == 16909060.0);
  }
  SUBCASE("f32") {
    Bytes b = header(0x0D, {2});
    push_be(b, 1.5f);
    push_be(b, -0.125f);
    CHECK(parse_idx(b, "f32.idx").as<float>() == std::vector<float>{1.5f, -0.125f});
  }
  SUBCASE("f64") {
    Bytes b = header(0x0E, {2, 1});
    push_be(b, 1e300);
    push_be(b, -2.25);
    const IdxArray a = parse_idx(b, "f64.idx");
    CHECK(a.as<double>() == std::vector<double>{1e300, -2.25});
    CHECK(std::isinf(a.as<float>()[0]));
    CHECK_THROWS_AS((void)a.as<std::int32_t>(), std::range_error);
  }
  SUBCASE("0-d, empty dimension, trailing bytes ignored") {
    Bytes s = header(0x0C, {});
    push_be(s, std::int32_t{-7});
    const IdxArray a = parse_idx(s, "scalar.idx");
    CHECK(a.shape.empty());
    CHECK(a.as<std::int32_t>() == std::vector<std::int32_t>{-7});
    Bytes e = header(0x0D, {0, 5});
    push(e, {1, 2, 3});  // trailing garbage
    const IdxArray z = parse_idx(e, "empty.idx");
    CHECK(z.shape == std::vector<std::int64_t>{0, 5});
    CHECK(z.data.empty());
  }
}

TEST_CASE("round trip through files, plain and gzip (written by zlib's gzwrite and by write_idx)") {
  TempDir dir("idx");
  std::mt19937 rng(5);
  std::vector<std::uint8_t> img(3 * 28 * 28);
  for (auto& v : img) v = static_cast<std::uint8_t>(rng());
  const IdxArray a = IdxArray::make<std::uint8_t>({3, 28, 28}, img);
  const IdxArray b = IdxArray::make<float>({2, 3}, {0.5f, -1.0f, 3.25f, 1e-30f, -0.0f, 7.0f});
  const IdxArray c = IdxArray::make<std::int16_t>({4}, {-1, 2, -300, 32767});
  const IdxArray d = IdxArray::make<double>({}, {3.5});
  for (const IdxArray* x : {&a, &b, &c, &d}) {
    const auto bytes = serialize_idx(*x);
    CHECK(parse_idx(bytes, "mem.idx") == *x);
    write_idx(dir.file("p.idx"), *x);
    CHECK(read_idx(dir.file("p.idx")) == *x);
    write_idx(dir.file("p.idx.gz"), *x, true);
    CHECK(read_idx(dir.file("p.idx.gz")) == *x);
    write_gz(dir.file("z.gz"), bytes);
    CHECK(read_idx(dir.file("z.gz")) == *x);
  }
  // the bytes serialize_idx writes are the hand-written ones
  Bytes h = header(0x0B, {4});
  for (std::int16_t v : {std::int16_t{-1}, std::int16_t{2}, std::int16_t{-300}, std::int16_t{32767}}) push_be(h, v);
  CHECK(serialize_idx(c) == h);
  // concatenated gzip members, and garbage after the stream
  const auto raw = serialize_idx(a);
  const Bytes first(raw.begin(), raw.begin() + 1000), second(raw.begin() + 1000, raw.end());
  Bytes cat = gzip_bytes(first);
  const Bytes g2 = gzip_bytes(second);
  cat.insert(cat.end(), g2.begin(), g2.end());
  CHECK(parse_idx(cat, "cat.gz") == a);
  Bytes trail = gzip_bytes(raw);
  push(trail, {0, 0, 0, 0, 1, 2, 3});
  CHECK(parse_idx(trail, "trail.gz") == a);
  // writer rejects inconsistent arrays
  IdxArray bad = a;
  bad.data.pop_back();
  CHECK_THROWS_AS((void)serialize_idx(bad), std::invalid_argument);
  bad = b;
  bad.shape = {std::int64_t{1} << 33};
  CHECK_THROWS_AS((void)serialize_idx(bad), std::invalid_argument);
  CHECK_THROWS_AS((void)read_idx(dir.file("missing.idx")), std::system_error);
}

TEST_CASE("malformed inputs throw FormatError naming the file and the problem") {
  expect_idx_error({}, "empty.idx", "empty input");
  expect_idx_error(Bytes{std::byte{0}, std::byte{0}, std::byte{8}}, "short.idx", "ends inside the 4-byte IDX magic");
  {
    Bytes b = header(0x08, {1});
    b[0] = std::byte{0x50};
    push(b, {1});
    expect_idx_error(b, "magic.idx", "bad magic");
  }
  {
    Bytes b = header(0x0A, {1});
    push(b, {1, 2});
    expect_idx_error(b, "type0a.idx", "unsupported IDX element type 0x0a");
    b[2] = std::byte{0xFF};
    expect_idx_error(b, "typeff.idx", "unsupported IDX element type 0xff");
  }
  {
    Bytes b = header(0x08, {3, 4});
    b.resize(9);
    expect_idx_error(b, "dims.idx", "ends inside the dimensions: 2 dimensions need 12 header bytes");
  }
  {
    Bytes b = header(0x08, {60000, 28, 28});
    push(b, {1, 2, 3, 4});
    expect_idx_error(b, "trunc.idx", "truncated data: shape (60000, 28, 28) of uint8 needs 47040000 bytes");
  }
  {
    Bytes b = header(0x0E, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF});
    expect_idx_error(b, "overflow.idx", "exceed the 17179869184-byte limit (overflow)");
    Bytes c = header(0x08, {0x10000, 0x10000, 0x10});  // 2^36 bytes: no overflow, over the limit
    expect_idx_error(c, "huge.idx", "(65536, 65536, 16) of uint8 exceed");
  }
  {
    Bytes b = header(0x0C, {3});
    push_be(b, std::int32_t{1});
    push_be(b, std::int32_t{2});
    push(b, {0, 0});
    expect_idx_error(b, "trunc_i32.idx", "needs 12 bytes after the 8-byte header but the file has 10");
  }
  // gzip variants
  {
    Bytes raw = header(0x08, {100, 100});
    raw.resize(raw.size() + 10000, std::byte{7});
    const Bytes gz = gzip_bytes(raw);
    Bytes cut(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(gz.size() / 2));
    expect_idx_error(cut, "cut.gz", "truncated gzip stream");
    Bytes short_raw(raw.begin(), raw.begin() + 5000);
    expect_idx_error(gzip_bytes(short_raw), "short.gz", "truncated data: shape (100, 100) of uint8 needs 10000 bytes");
    expect_idx_error(gzip_bytes(short_raw), "short.gz", "decompressed gzip stream");
    Bytes corrupt = gz;
    corrupt[12] ^= std::byte{0xFF};
    corrupt[13] ^= std::byte{0xFF};
    corrupt[14] ^= std::byte{0xFF};
    expect_idx_error(corrupt, "corrupt.gz", "gzip stream");
    // a tiny gzip file that claims 4 GiB of data: refused before any allocation
    expect_idx_error(gzip_bytes(header(0x08, {0x10000, 0x10000})), "bomb.gz",
                 "needs 4294967296 bytes, more than");
    expect_idx_error(gzip_bytes({}), "empty.gz", "empty input");
    expect_idx_error(gzip_bytes(Bytes{std::byte{0}, std::byte{0}, std::byte{8}, std::byte{2}, std::byte{0}}),
                 "gzdims.gz", "ends inside the dimensions");
    expect_idx_error(Bytes{std::byte{0x1f}, std::byte{0x8b}}, "magic_only.gz", "truncated gzip stream");
  }
  // the same through files: messages start with the path
  TempDir dir("idx");
  Bytes b = header(0x08, {10});
  write_raw(dir.file("t.idx"), b);
  try {
    (void)read_idx(dir.file("t.idx"));
    FAIL("no exception");
  } catch (const FormatError& e) {
    CHECK(std::string(e.what()).rfind(dir.file("t.idx") + ": byte 8: truncated data", 0) == 0);
    CHECK(e.offset() == 8);
  }
  write_gz(dir.file("t.gz"), b);
  CHECK_THROWS_WITH_AS((void)read_idx(dir.file("t.gz")), doctest::Contains("t.gz: byte 8: truncated data"),
                       FormatError);
}

TEST_CASE("every truncation and many single-byte mutations fail only with FormatError") {
  std::vector<Bytes> inputs;
  Bytes a = header(0x0C, {2, 3});
  for (int i = 0; i < 6; ++i) push_be(a, std::int32_t{i * 1000 - 2500});
  inputs.push_back(a);
  Bytes f = header(0x0E, {2});
  push_be(f, 0.5);
  push_be(f, -3.0);
  inputs.push_back(f);
  inputs.push_back(gzip_bytes(a));
  inputs.push_back(gzip_bytes(serialize_idx(IdxArray::make<std::uint8_t>({5, 7}, std::vector<std::uint8_t>(35, 9)))));
  std::size_t n = 0;
  for (const auto& in : inputs) {
    for (std::size_t k = 0; k < in.size(); ++k, ++n) idx_must_not_misbehave(Bytes(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(k)));
    for (std::size_t i = 0; i < in.size(); ++i)
      for (unsigned v : {0x00u, 0xFFu, 0x7Fu, 0x80u, 0x01u}) {
        Bytes m = in;
        m[i] = std::byte{static_cast<unsigned char>(v)};
        idx_must_not_misbehave(m);
        ++n;
      }
  }
  CHECK(n > 500);
}

TEST_CASE("real Fashion-MNIST / MNIST files, when installed") {
  const std::vector<std::string> dirs = {"/usr/share/datasets/fashion-mnist", "/usr/share/datasets/mnist"};
  bool found = false;
  for (const auto& d : dirs) {
    for (const std::string stem : {"train-images-idx3-ubyte", "t10k-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                   "t10k-labels-idx1-ubyte"}) {
      for (const std::string ext : {"", ".gz"}) {
        const std::string path = d + "/" + stem + ext;
        if (!fs::exists(path)) continue;
        found = true;
        INFO(path);
        const IdxArray a = read_idx(path);
        CHECK(a.type == IdxType::u8);
        const bool images = stem.find("images") != std::string::npos;
        const std::int64_t count = stem.rfind("train", 0) == 0 ? 60000 : 10000;
        if (images) {
          CHECK(a.shape == std::vector<std::int64_t>{count, 28, 28});
        } else {
          CHECK(a.shape == std::vector<std::int64_t>{count});
          for (std::uint8_t l : a.as<std::uint8_t>()) CHECK_LE(static_cast<int>(l), 9);
        }
      }
    }
  }
  if (!found) MESSAGE("no MNIST / Fashion-MNIST files under /usr/share/datasets; real-file check skipped");
}

}  // TEST_SUITE
