// Tests for erlmr/data/npy.hpp: round trips, files written by numpy, malformed files, the
// reference fixture, and truncated / mutated inputs (which must fail only with FormatError).
#include <doctest/doctest.h>

#include "data/data_test_util.hpp"

#include <erlmr/core/shape.hpp>
#include <erlmr/data/npy.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <complex>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace {

using erlmr::test::TempDir;

using namespace erlmr::data;
namespace fs = std::filesystem;
using c64 = std::complex<float>;
using c128 = std::complex<double>;

const std::string kCorpus = std::string(ERLMR_SOURCE_DIR) + "/tests/data/npy_corpus/";
const std::string kValid = kCorpus + "valid/";
const std::string kMalformed = kCorpus + "malformed/";

std::vector<std::byte> file_bytes(const std::string& path) { return erlmr::data::detail::read_file(path); }

/// An array of the given dtype and shape filled with deterministic bytes (0/1 for bool).
NpyArray pattern_array(DType t, std::vector<std::int64_t> shape, unsigned seed) {
  NpyArray a;
  a.dtype = t;
  a.shape = std::move(shape);
  const auto n = static_cast<std::size_t>(a.numel());
  a.data.resize(n * dtype_size(t));
  std::mt19937 rng(seed);
  for (auto& b : a.data) b = std::byte(static_cast<unsigned char>(t == DType::b1 ? rng() & 1 : rng()));
  return a;
}

const std::vector<DType> kAllDtypes = {DType::f4, DType::f8, DType::i8, DType::i4,
                                       DType::u1, DType::b1, DType::c8, DType::c16};
const std::vector<std::vector<std::int64_t>> kShapes = {{}, {5}, {2, 3}, {0, 3}, {2, 3, 4}, {1, 1, 1, 7}};

NpzMap all_dtype_map() {
  NpzMap m;
  unsigned seed = 1;
  for (DType t : kAllDtypes)
    for (const auto& s : kShapes) {
      std::string key = std::string(dtype_name(t)) + "/";
      for (auto d : s) key += std::to_string(d) + "x";
      m[key] = pattern_array(t, s, seed++);
    }
  return m;
}

template <class T> void check_values(const NpyArray& a, DType dtype, std::vector<std::int64_t> shape,
                                     const std::vector<T>& expect) {
  CHECK(a.dtype == dtype);
  CHECK(a.shape == shape);
  REQUIRE(a.data.size() == expect.size() * dtype_size(dtype));
  const std::vector<T> got = a.as<T>();
  REQUIRE(got.size() == expect.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    if constexpr (std::is_same_v<T, c64> || std::is_same_v<T, c128>) {
      CHECK(got[i].real() == expect[i].real());
      CHECK(got[i].imag() == expect[i].imag());
    } else {
      CHECK(got[i] == expect[i]);
    }
  }
}

std::vector<std::int64_t> iota64(std::int64_t n, std::int64_t from = 0) {
  std::vector<std::int64_t> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = from + i;
  return v;
}

/// Parses bytes as npy or npz; success and FormatError are both fine, anything else fails.
void parse_must_not_misbehave(const std::vector<std::byte>& bytes, bool npz) {
  try {
    if (npz) (void)parse_npz(bytes.data(), bytes.size(), "mutant.npz");
    else (void)parse_npy(bytes.data(), bytes.size(), "mutant.npy");
  } catch (const FormatError& e) {
    CHECK(std::string(e.what()).rfind("mutant.np", 0) == 0);
  }
}

}  // namespace

TEST_SUITE("data.npy") {

TEST_CASE("dtype sizes and names") {
  CHECK(dtype_size(DType::f4) == 4);
  CHECK(dtype_size(DType::f8) == 8);
  CHECK(dtype_size(DType::i8) == 8);
  CHECK(dtype_size(DType::i4) == 4);
  CHECK(dtype_size(DType::u1) == 1);
  CHECK(dtype_size(DType::b1) == 1);
  CHECK(dtype_size(DType::c8) == 8);
  CHECK(dtype_size(DType::c16) == 16);
  CHECK(std::string(dtype_name(DType::f4)) == "float32");
  CHECK(std::string(dtype_name(DType::c16)) == "complex128");
  CHECK(std::string(dtype_name(DType::b1)) == "bool");
  CHECK_THROWS_AS(dtype_size(static_cast<DType>(99)), std::invalid_argument);
}

TEST_CASE("FormatError carries file, offset and problem") {
  const FormatError e("x.npy", 12, "bad thing");
  CHECK(std::string(e.what()) == "x.npy: byte 12: bad thing");
  CHECK(e.file() == "x.npy");
  CHECK(e.offset() == 12);
  CHECK(e.problem() == "bad thing");
  try {
    const std::vector<std::byte> junk(16, std::byte{'x'});
    parse_npy(junk.data(), junk.size(), "junk.npy");
    FAIL("no exception");
  } catch (const FormatError& err) {
    CHECK(std::string(err.what()) == "junk.npy: byte 0: bad magic: not an NPY file");
    CHECK(err.offset() == 0);
  }
}

TEST_CASE("npy round trip of every dtype and shape, in memory and through files") {
  TempDir dir("npy");
  unsigned seed = 100;
  for (DType t : kAllDtypes)
    for (const auto& s : kShapes) {
      INFO(dtype_name(t) << " " << erlmr::data::detail::shape_str(s));
      const NpyArray a = pattern_array(t, s, seed++);
      const std::vector<std::byte> bytes = serialize_npy(a);
      // 1.0 header, data on a 64-byte boundary, as numpy writes it
      CHECK(bytes[6] == std::byte{1});
      CHECK((bytes.size() - a.data.size()) % 64 == 0);
      CHECK(parse_npy(bytes.data(), bytes.size(), "mem") == a);
      const std::string path = dir.file("a.npy");
      write_npy(path, a);
      CHECK(read_npy(path) == a);
    }
  // only the target remains: the temporary file was renamed
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);
}

TEST_CASE("serialize_npy is byte-identical to numpy.save for C-ordered little-endian arrays") {
  for (const char* f : {"f4_c.npy", "i8_le.npy", "u1.npy", "b1.npy", "c8.npy", "scalar_f8.npy", "one_tuple.npy",
                        "empty.npy"}) {
    INFO(f);
    const auto bytes = file_bytes(kValid + f);
    CHECK(serialize_npy(parse_npy(bytes.data(), bytes.size(), f)) == bytes);
  }
}

TEST_CASE("npz round trip of every dtype, compressed and stored") {
  TempDir dir("npy");
  const NpzMap m = all_dtype_map();
  for (bool compress : {true, false}) {
    INFO("compress=" << compress);
    const std::string path = dir.file(compress ? "c.npz" : "s.npz");
    write_npz(path, m, compress);
    const NpzMap back = read_npz(path);
    CHECK(back.size() == m.size());
    CHECK(back == m);
    const auto bytes = serialize_npz(m, compress, /*force_zip64=*/true);
    CHECK(parse_npz(bytes.data(), bytes.size(), "zip64.npz") == m);
  }
  // deflate really compresses, and the empty map is a valid (empty) archive
  const NpzMap zeros{{"z", NpyArray::make<double>({1000}, std::vector<double>(1000, 0.0))}};
  CHECK(serialize_npz(zeros, true).size() < 400);
  const auto empty = serialize_npz({}, true);
  CHECK(empty.size() == 22);
  CHECK(parse_npz(empty.data(), empty.size(), "empty").empty());
  write_npz(dir.file("c.npz"), zeros);  // overwrite an existing archive
  CHECK(read_npz(dir.file("c.npz")) == zeros);
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 2);
}

TEST_CASE("writers reject inconsistent arrays and keys; I/O errors are system_error") {
  NpyArray bad = NpyArray::make<float>({2, 2}, {1, 2, 3, 4});
  bad.data.pop_back();
  CHECK_THROWS_AS(serialize_npy(bad), std::invalid_argument);
  NpyArray neg;
  neg.dtype = DType::u1;
  neg.shape = {-1};
  CHECK_THROWS_AS(serialize_npy(neg), std::invalid_argument);
  CHECK_THROWS_AS(neg.numel(), std::invalid_argument);
  NpyArray huge;
  huge.shape = {std::int64_t{1} << 62, 4};
  CHECK_THROWS_AS(huge.numel(), std::overflow_error);
  CHECK_THROWS_AS(NpyArray::make<double>({3}, {1.0, 2.0}), std::invalid_argument);
  CHECK_THROWS_AS(serialize_npz({{"", NpyArray::make<double>({}, {1.0})}}), std::invalid_argument);
  CHECK_THROWS_AS(read_npy(kCorpus + "does-not-exist.npy"), std::system_error);
  CHECK_THROWS_AS(read_npz(kCorpus + "does-not-exist.npz"), std::system_error);
  CHECK_THROWS_AS(write_npy(kCorpus + "no-such-dir/x.npy", NpyArray::make<double>({}, {1.0})), std::system_error);
}

TEST_CASE("as<T> conversions") {
  const NpyArray i = NpyArray::make<std::int32_t>({4}, {-3, 0, 7, 255});
  CHECK(i.as<double>() == std::vector<double>{-3, 0, 7, 255});
  CHECK(i.as<std::int64_t>() == std::vector<std::int64_t>{-3, 0, 7, 255});
  CHECK(i.as<bool>() == std::vector<bool>{true, false, true, true});
  CHECK(i.as<c128>() == std::vector<c128>{-3, 0, 7, 255});
  CHECK_THROWS_AS(i.as<std::uint8_t>(), std::range_error);  // -3

  const NpyArray f = NpyArray::make<double>({3}, {2.9, -2.9, 1e300});
  CHECK(f.as<float>()[0] == 2.9f);
  CHECK(std::isinf(f.as<float>()[2]));
  CHECK_THROWS_AS(f.as<std::int64_t>(), std::range_error);  // 1e300
  CHECK(NpyArray::make<double>({2}, {2.9, -2.9}).as<std::int32_t>() == std::vector<std::int32_t>{2, -2});
  CHECK(NpyArray::make<double>({1}, {-0.5}).as<std::uint8_t>() == std::vector<std::uint8_t>{0});
  CHECK(NpyArray::make<double>({1}, {255.9}).as<std::uint8_t>() == std::vector<std::uint8_t>{255});
  CHECK_THROWS_AS(NpyArray::make<double>({1}, {256.0}).as<std::uint8_t>(), std::range_error);
  CHECK_THROWS_AS(NpyArray::make<double>({1}, {std::nan("")}).as<std::int32_t>(), std::range_error);
  CHECK_THROWS_AS(NpyArray::make<double>({1}, {9.3e18}).as<std::int64_t>(), std::range_error);
  CHECK(NpyArray::make<double>({1}, {-9223372036854775808.0}).as<std::int64_t>()[0] ==
        std::numeric_limits<std::int64_t>::min());
  CHECK_THROWS_AS(NpyArray::make<std::int64_t>({1}, {std::int64_t{1} << 40}).as<std::int32_t>(), std::range_error);

  const NpyArray c = NpyArray::make<c128>({2}, {c128(1, -2), c128(0.5, 4)});
  CHECK_THROWS_AS(c.as<double>(), std::invalid_argument);
  CHECK_THROWS_AS(c.as<bool>(), std::invalid_argument);
  CHECK(c.as<c64>() == std::vector<c64>{c64(1, -2), c64(0.5, 4)});

  NpyArray b = NpyArray::make<std::uint8_t>({3}, {0, 1, 2});
  CHECK(b.as<bool>() == std::vector<bool>{false, true, true});
  b.dtype = DType::b1;  // a bool array holding a byte other than 0/1 is still read safely
  CHECK(b.as<bool>() == std::vector<bool>{false, true, true});
  CHECK(b.as<float>() == std::vector<float>{0, 1, 1});
  // the writer normalises it
  CHECK(parse_npy(serialize_npy(b), "b").data == std::vector<std::byte>{std::byte{0}, std::byte{1}, std::byte{1}});
  b.data.push_back(std::byte{0});
  CHECK_THROWS_AS(b.as<bool>(), std::invalid_argument);  // data does not match the shape
}

TEST_CASE("files written by numpy: every dtype, byte order, order and version") {
  const auto read = [](const char* f) { return read_npy(kValid + f); };
  check_values<float>(read("f4_c.npy"), DType::f4, {2, 3}, {0, 0.5, 1, 1.5, 2, 2.5});
  check_values<double>(read("f8_be.npy"), DType::f8, {2, 3}, {-2, -0.75, 0.5, 1.75, 3, 4.25});
  const std::vector<std::int64_t> i8v = {-(std::int64_t{1} << 62), -1, 0, 1, (std::int64_t{1} << 62) + 7};
  check_values<std::int64_t>(read("i8_le.npy"), DType::i8, {5}, i8v);
  check_values<std::int64_t>(read("i8_be.npy"), DType::i8, {5}, i8v);
  check_values<std::int32_t>(read("i4_be.npy"), DType::i4, {2, 2},
                             {std::numeric_limits<std::int32_t>::min(), std::numeric_limits<std::int32_t>::max(), 0, -5});
  check_values<std::uint8_t>(read("u1.npy"), DType::u1, {5}, {0, 1, 127, 128, 255});
  check_values<bool>(read("b1.npy"), DType::b1, {2, 3}, {true, false, true, false, false, true});
  check_values<c64>(read("c8.npy"), DType::c8, {3}, {c64(1, 2), c64(-3.5f, 0.25f), c64(0, -1)});
  check_values<c128>(read("c16_be.npy"), DType::c16, {1, 2}, {c128(1e300, 1), c128(-2, -2)});
  {
    std::vector<std::int32_t> v(24);
    for (int k = 0; k < 24; ++k) v[static_cast<std::size_t>(k)] = k;
    check_values<std::int32_t>(read("fortran_i4.npy"), DType::i4, {2, 3, 4}, v);
  }
  {
    std::vector<double> v(12);
    for (int k = 0; k < 12; ++k) v[static_cast<std::size_t>(k)] = k + 0.5;
    check_values<double>(read("fortran_f8_be.npy"), DType::f8, {3, 4}, v);
  }
  {
    std::vector<c64> v;
    for (int k = 0; k < 6; ++k) v.emplace_back(static_cast<float>(k), static_cast<float>(-k));
    check_values<c64>(read("fortran_c8_be.npy"), DType::c8, {2, 3}, v);
  }
  check_values<double>(read("scalar_f8.npy"), DType::f8, {}, {-7.25});
  check_values<c128>(read("scalar_c16_be.npy"), DType::c16, {}, {c128(1.5, -2.5)});
  check_values<std::int64_t>(read("one_tuple.npy"), DType::i8, {5}, iota64(5));
  check_values<float>(read("empty.npy"), DType::f4, {0, 3}, {});
  CHECK(file_bytes(kValid + "v2.npy")[6] == std::byte{2});
  check_values<double>(read("v2.npy"), DType::f8, {5}, {0, 0.25, 0.5, 0.75, 1});
  CHECK(file_bytes(kValid + "v3.npy")[6] == std::byte{3});
  check_values<std::int32_t>(read("v3.npy"), DType::i4, {2, 2}, {1, -2, 3, -4});
  check_values<std::int32_t>(read("hdr_reordered.npy"), DType::i4, {2, 2}, {7, 8, 9, 10});
  check_values<double>(read("hdr_spaces.npy"), DType::f8, {3, 2}, {1, 2, 3, 4, 5, 6});
}

TEST_CASE("archives written by numpy.savez, savez_compressed, and a ZIP64 archive") {
  for (const char* f : {"savez.npz", "savez_compressed.npz"}) {
    INFO(f);
    const NpzMap m = read_npz(kValid + f);
    CHECK(m.size() == (std::string(f) == "savez.npz" ? 4u : 5u));
    check_values<std::int32_t>(m.at("a"), DType::i4, {2, 3}, {0, 1, 2, 3, 4, 5});
    check_values<double>(m.at("param/w"), DType::f8, {2, 2}, {0.5, -1.5, 2.25, 1e-300});
    check_values<bool>(m.at("flag"), DType::b1, {}, {true});
    check_values<c64>(m.at("z"), DType::c8, {2}, {c64(1, -1), c64(2.5f, 0)});
    if (m.count("big")) {
      std::vector<double> v(20000);
      for (std::size_t k = 0; k < v.size(); ++k) v[k] = static_cast<double>(k % 7);
      check_values<double>(m.at("big"), DType::f8, {20000}, v);
    }
  }
  const NpzMap z = read_npz(kValid + "zip64.npz");
  CHECK(z.size() == 2);
  check_values<double>(z.at("x"), DType::f8, {3}, {1, 2, 3});
  check_values<std::int64_t>(z.at("y"), DType::i8, {2}, {4, 5});
}

TEST_CASE("malformed files throw FormatError naming the file and the problem") {
  // file -> substring its problem must contain
  const std::map<std::string, std::string> expect = {
      {"empty.npy", "empty input"},
      {"bad_magic.npy", "bad magic"},
      {"short_preamble.npy", "ends inside the NPY preamble"},
      {"bad_version.npy", "unsupported NPY format version 4.0"},
      {"bad_minor_version.npy", "unsupported NPY format version 1.1"},
      {"header_len_too_large.npy", "header length 65535 exceeds"},
      {"header_len_too_large_v2.npy", "header length 4294967295 exceeds"},
      {"truncated_header.npy", "header length 118 exceeds"},
      {"truncated_data.npy", "truncated data"},
      {"absurd_dims.npy", "overflows 64-bit sizes"},
      {"huge_dims.npy", "truncated data: shape (1099511627776,)"},
      {"overflow_bytes.npy", "overflows 64-bit sizes"},
      {"overflow_count.npy", "overflows 64-bit sizes"},
      {"negative_dim.npy", "negative dimension -1"},
      {"dim_too_large.npy", "exceeds 2^63-1"},
      {"unsupported_f2.npy", "unsupported dtype '<f2'"},
      {"unsupported_structured.npy", "structured dtypes are not supported"},
      {"unsupported_object.npy", "unsupported dtype '|O'"},
      {"unsupported_pipe_f8.npy", "unsupported dtype '|f8'"},
      {"missing_shape.npy", "header lacks key 'shape'"},
      {"unknown_key.npy", "unexpected key 'x'"},
      {"duplicate_key.npy", "duplicate key 'descr'"},
      {"fortran_not_bool.npy", "fortran_order must be True or False"},
      {"shape_not_tuple.npy", "shape must be a tuple"},
      {"shape_paren_int.npy", "1-tuple needs a trailing comma"},
      {"unterminated_string.npy", "unterminated string"},
      {"trailing_garbage.npy", "unexpected characters after the header dictionary"},
      {"header_not_dict.npy", "expected the header dictionary's '{'"},
      {"unclosed_dict.npy", "header ends early"},
      {"too_many_dims.npy", "more than 64 dimensions"},
      {"empty.npz", "empty input"},
      {"not_a_zip.npz", "end of central directory record not found"},
      {"eocd_missing.npz", "end of central directory record not found"},
      {"truncated_half.npz", "end of central directory record not found"},
      {"bad_crc_stored.npz", "CRC-32 mismatch"},
      {"bad_crc_deflate.npz", "CRC-32 mismatch"},
      {"truncated_deflate.npz", "truncated deflate stream"},
      {"empty_deflate.npz", "truncated deflate stream"},
      {"corrupt_deflate.npz", "corrupt deflate stream"},
      {"usize_impossible.npz", "declared uncompressed size 4294967280 is impossible"},
      {"usize_impossible_zip64.npz", "declared uncompressed size 1099511627776 is impossible"},
      {"usize_too_small.npz", "inflates to more than its declared uncompressed size"},
      {"usize_too_large.npz", "inflates to 640 bytes but declares 650"},
      {"stored_size_mismatch.npz", "stored entry declares compressed size 640 but uncompressed size 648"},
      {"csize_past_end.npz", "compressed size 1000000000"},
      {"csize_into_cd.npz", "runs past the archive's data area"},
      {"local_offset_past_end.npz", "local header offset 2147483647 lies outside"},
      {"local_offset_into_data.npz", "bad local header signature"},
      {"cd_offset_past_end.npz", "central directory (offset 2147483632"},
      {"cd_size_past_end.npz", "size 2147483632) lies outside the file"},
      {"entry_count_lie.npz", "claims 60000 entries"},
      {"multi_disk.npz", "multi-disk"},
      {"overlapping_entries.npz", "overlaps entry"},
      {"local_name_mismatch.npz", "local header name differs"},
      {"duplicate_names.npz", "duplicate entry 'a.npy'"},
      {"duplicate_keys.npz", "duplicate entry 'a'"},
      {"encrypted.npz", "encrypted entries are not supported"},
      {"method_bzip2.npz", "unsupported compression method 12"},
      {"zip64_locator_lie.npz", "ZIP64 end of central directory offset 1099511627776 is invalid"},
      {"zip64_extra_missing.npz", "need a ZIP64 extra field, which is missing"},
      {"zip64_extra_short.npz", "ZIP64 extra field too short"},
      {"inner_bad_magic.npz", "bad magic"},
      {"inner_truncated.npz", "truncated data"},
  };
  std::set<std::string> seen;
  for (const auto& entry : fs::directory_iterator(kMalformed)) {
    const std::string name = entry.path().filename().string();
    const std::string path = entry.path().string();
    const bool npz = entry.path().extension() == ".npz";
    INFO(name);
    REQUIRE_MESSAGE(expect.count(name), "malformed file without an expected problem: " << name);
    seen.insert(name);
    CHECK_THROWS_AS(npz ? (void)read_npz(path) : (void)read_npy(path), FormatError);
    try {
      if (npz) (void)read_npz(path);
      else (void)read_npy(path);
    } catch (const FormatError& e) {
      const std::string what = e.what();
      INFO(what);
      CHECK(what.find(name) != std::string::npos);
      CHECK(what.rfind(path, 0) == 0);  // "<file>: byte <n>: ..." (npz entries: "<file>[entry]: ...")
      CHECK(what.find(": byte ") != std::string::npos);
      CHECK(e.problem().find(expect.at(name)) != std::string::npos);
    }
    // the same bytes in memory fail the same way
    const auto bytes = file_bytes(path);
    CHECK_THROWS_AS(npz ? (void)parse_npz(bytes.data(), bytes.size(), name)
                        : (void)parse_npy(bytes.data(), bytes.size(), name),
                    FormatError);
  }
  CHECK(seen.size() == expect.size());
}

TEST_CASE("every truncation and many single-byte mutations fail only with FormatError") {
  std::vector<std::pair<std::vector<std::byte>, bool>> inputs;
  for (const char* f : {"f8_be.npy", "fortran_c8_be.npy", "v3.npy", "hdr_spaces.npy", "scalar_c16_be.npy"})
    inputs.emplace_back(file_bytes(kValid + f), false);
  for (const char* f : {"savez.npz", "zip64.npz"}) inputs.emplace_back(file_bytes(kValid + f), true);
  NpzMap small{{"w", NpyArray::make<double>({2, 3}, {1, 2, 3, 4, 5, 6})},
               {"k", NpyArray::make<std::int32_t>({}, {7})}};
  inputs.emplace_back(serialize_npz(small, true), true);
  inputs.emplace_back(serialize_npz(small, true, true), true);
  std::size_t parsed = 0;
  for (const auto& [bytes, npz] : inputs) {
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      parse_must_not_misbehave(std::vector<std::byte>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n)),
                               npz);
      ++parsed;
    }
    for (std::size_t i = 0; i < bytes.size(); ++i)
      for (unsigned char v : {0x00, 0xFF, 0x7F, 0x80}) {
        auto m = bytes;
        m[i] = std::byte{v};
        parse_must_not_misbehave(m, npz);
        m[i] = bytes[i] ^ std::byte{0x01};
        parse_must_not_misbehave(m, npz);
        parsed += 2;
      }
  }
  CHECK(parsed > 10000);
}

TEST_CASE("reference fixture: ERL-MR training step") {
  const std::string path = std::string(ERLMR_FIXTURE_DIR) + "/erlmr-step-concat-t20-b8.npz";
  const NpzMap m = read_npz(path);
  CHECK(m.size() == 129);
  const NpyArray& w = m.at("param/im.weight");
  CHECK(w.dtype == DType::f8);
  CHECK(w.shape == std::vector<std::int64_t>{144, 288});
  CHECK(w.data.size() == 144 * 288 * 8);
  const NpyArray& y = m.at("input/y");
  CHECK(y.dtype == DType::i8);
  CHECK(y.shape == std::vector<std::int64_t>{8});
  for (std::int64_t label : y.as<std::int64_t>()) CHECK((label >= 0 && label < 12));
  const NpyArray& loss = m.at("expect/loss");
  CHECK(loss.shape.empty());
  CHECK(loss.numel() == 1);
  CHECK(std::abs(loss.as<double>()[0] - 3.16694453) < 1e-8);
  // what we write from it, numpy-compatible, reads back identical
  TempDir dir("npy");
  write_npz(dir.file("copy.npz"), m);
  CHECK(read_npz(dir.file("copy.npz")) == m);
}

}  // TEST_SUITE

TEST_CASE("npy: a zero extent beside huge ones is an empty array, not an overflow (fuzzer finding)") {
  // Shape (1, ..., 9223372036854775807, ..., 2, ..., 0, ...): the product of the non-zero
  // extents overflows int64, but the array has no elements.
  const NpyArray a = read_npy(kValid + "zero_extent_huge_dims.npy");
  CHECK(a.numel() == 0);
  CHECK(a.data.empty());
  const auto bytes = serialize_npy(a);
  CHECK(parse_npy(bytes.data(), bytes.size(), "re.npy") == a);
  CHECK(erlmr::Shape(std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::max(), 2, 0}).numel() == 0);
}
