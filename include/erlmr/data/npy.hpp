#pragma once
// erlmr/data/npy.hpp: NumPy .npy / .npz reader and writer, safe against hostile input.
//
// Contract
//   Reads   NPY format versions 1.0, 2.0 and 3.0 holding one of the dtypes
//             <f4 <f8 <i8 <i4 |u1 |b1 <c8 <c16
//           or its big-endian '>' variant, in C or Fortran order, of any rank up to
//           kMaxDims (0-d included). The result is always C order, native little-endian,
//           and bool bytes are normalised to 0/1. Bytes after the array data are ignored,
//           as numpy.load ignores them.
//           NPZ archives (ZIP, what numpy.savez / savez_compressed write): end of central
//           directory record, ZIP64 records and extra fields, entries stored (method 0) or
//           deflated (method 8), CRC-32 checked. An entry "k.npy" becomes key "k"; an entry
//           with another name keeps it, and must hold NPY data too.
//   Writes  NPY 1.0 (2.0 when the header does not fit in 64 KiB), '<' little-endian, C order,
//           header padded to a 64-byte boundary as numpy does. NPZ archives stored or deflated,
//           with ZIP64 records only where sizes or offsets need them. Files are written to a
//           temporary name beside the target and renamed over it (no fsync).
//   Throws  FormatError for every malformed input: "<file>: byte <offset>: <problem>". The
//           offset is into the file; for an npz entry the file is named "archive.npz[entry.npy]"
//           and the offset is into the entry's uncompressed bytes.
//           std::system_error (std::filesystem::filesystem_error included) for I/O failures,
//           std::invalid_argument for an inconsistent NpyArray given to a writer or a
//           complex->real conversion, std::range_error for a value that does not fit the
//           requested type in NpyArray::as<T>().
//   Never   reads outside the buffer, and never allocates more than the input justifies:
//           every size and offset is checked against the bytes present before use; an npy
//           array may not claim more bytes than follow its header; a deflated entry may not
//           claim more than 1032 x its compressed size + 1 MiB (the deflate limit), and its
//           output buffer grows only with what inflate actually produces. Entries may not
//           overlap, so the total decompressed size is bounded by ~1032 x the file size.
//
// Requires a little-endian host (static_assert below) and zlib.

#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cmath>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(_WIN32)
#include <process.h>
#else
#include <unistd.h>
#endif

namespace erlmr::data {

static_assert(std::endian::native == std::endian::little,
              "erlmr/data/npy.hpp stores arrays in native order and assumes a little-endian host");
static_assert(std::numeric_limits<float>::is_iec559 && std::numeric_limits<double>::is_iec559,
              "erlmr/data/npy.hpp assumes IEEE-754 float and double");

// ------------------------------------------------------------------------------------------
// Element types
// ------------------------------------------------------------------------------------------

/// The NumPy dtypes supported: '<f4','<f8','<i8','<i4','|u1','|b1','<c8','<c16'.
enum class DType { f4, f8, i8, i4, u1, b1, c8, c16 };

/// Bytes per element. Throws std::invalid_argument for a value outside the enumeration.
inline std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::f4: return 4;
    case DType::f8: return 8;
    case DType::i8: return 8;
    case DType::i4: return 4;
    case DType::u1: return 1;
    case DType::b1: return 1;
    case DType::c8: return 8;
    case DType::c16: return 16;
  }
  throw std::invalid_argument("erlmr::data: invalid DType value " + std::to_string(static_cast<int>(t)));
}

/// NumPy's name of the dtype ("float32", ...), for messages.
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::f4: return "float32";
    case DType::f8: return "float64";
    case DType::i8: return "int64";
    case DType::i4: return "int32";
    case DType::u1: return "uint8";
    case DType::b1: return "bool";
    case DType::c8: return "complex64";
    case DType::c16: return "complex128";
  }
  return "invalid";
}

/// The little-endian NPY descr string ("<f4", "|u1", ...) that the writer emits.
inline const char* dtype_descr(DType t) {
  switch (t) {
    case DType::f4: return "<f4";
    case DType::f8: return "<f8";
    case DType::i8: return "<i8";
    case DType::i4: return "<i4";
    case DType::u1: return "|u1";
    case DType::b1: return "|b1";
    case DType::c8: return "<c8";
    case DType::c16: return "<c16";
  }
  throw std::invalid_argument("erlmr::data: invalid DType value " + std::to_string(static_cast<int>(t)));
}

inline bool dtype_is_complex(DType t) { return t == DType::c8 || t == DType::c16; }

/// The largest rank read or written (numpy 2 allows 64).
inline constexpr std::size_t kMaxDims = 64;

// ------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------

/// A malformed or hostile input. what() is "<file>: byte <offset>: <problem>".
class FormatError : public std::runtime_error {
 public:
  FormatError(const std::string& file, std::uint64_t offset, const std::string& problem)
      : std::runtime_error(file + ": byte " + std::to_string(offset) + ": " + problem),
        file_(file), offset_(offset), problem_(problem) {}
  const std::string& file() const noexcept { return file_; }
  std::uint64_t offset() const noexcept { return offset_; }
  const std::string& problem() const noexcept { return problem_; }

 private:
  std::string file_;
  std::uint64_t offset_;
  std::string problem_;
};

// ------------------------------------------------------------------------------------------
// Arrays
// ------------------------------------------------------------------------------------------

namespace detail {

template <class T> struct always_false : std::false_type {};

/// The DType that stores T.
template <class T> constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>) return DType::f4;
  else if constexpr (std::is_same_v<T, double>) return DType::f8;
  else if constexpr (std::is_same_v<T, std::int64_t>) return DType::i8;
  else if constexpr (std::is_same_v<T, std::int32_t>) return DType::i4;
  else if constexpr (std::is_same_v<T, std::uint8_t>) return DType::u1;
  else if constexpr (std::is_same_v<T, bool>) return DType::b1;
  else if constexpr (std::is_same_v<T, std::complex<float>>) return DType::c8;
  else if constexpr (std::is_same_v<T, std::complex<double>>) return DType::c16;
  else static_assert(always_false<T>::value,
                     "supported element types: float, double, int64_t, int32_t, uint8_t, bool, "
                     "std::complex<float>, std::complex<double>");
}

template <class T> struct is_complex : std::false_type {};
template <class T> struct is_complex<std::complex<T>> : std::true_type {};

/// Calls f.template operator()<S>() with S the C++ type stored by t.
template <class F> decltype(auto) visit_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f4: return f.template operator()<float>();
    case DType::f8: return f.template operator()<double>();
    case DType::i8: return f.template operator()<std::int64_t>();
    case DType::i4: return f.template operator()<std::int32_t>();
    case DType::u1: return f.template operator()<std::uint8_t>();
    case DType::b1: return f.template operator()<bool>();
    case DType::c8: return f.template operator()<std::complex<float>>();
    case DType::c16: return f.template operator()<std::complex<double>>();
  }
  throw std::invalid_argument("erlmr::data: invalid DType value " + std::to_string(static_cast<int>(t)));
}

/// Loads one element. Bool bytes other than 0 and 1 are read as true (never memcpy'd into a bool).
template <class S> S load_elem(const std::byte* p) {
  if constexpr (std::is_same_v<S, bool>) {
    return std::to_integer<unsigned>(*p) != 0;
  } else {
    S s;
    std::memcpy(&s, p, sizeof s);
    return s;
  }
}

template <class S> void store_elem(std::byte* p, const S& s) {
  if constexpr (std::is_same_v<S, bool>) {
    *p = std::byte{static_cast<unsigned char>(s ? 1 : 0)};
  } else {
    std::memcpy(p, &s, sizeof s);
  }
}

/// Converts a real scalar S to a real scalar T; throws std::range_error where the value does
/// not fit an integer T (NaN, infinity, out of range), so that no conversion is undefined.
template <class T, class S> T convert_real(S s) {
  if constexpr (std::is_same_v<T, bool>) {
    return s != S(0);
  } else if constexpr (std::is_same_v<S, bool>) {
    return static_cast<T>(s ? 1 : 0);
  } else if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(s);  // IEEE: out-of-range doubles become +-inf for float
  } else if constexpr (std::is_floating_point_v<S>) {
    const double t = std::trunc(static_cast<double>(s));
    const double hi = std::ldexp(1.0, std::numeric_limits<T>::digits);  // 2^63, 2^31, 2^8
    const double lo = std::is_signed_v<T> ? -hi : 0.0;
    if (!(t >= lo && t < hi))
      throw std::range_error("erlmr::data: value " + std::to_string(static_cast<double>(s)) +
                             " does not fit the requested integer type");
    return static_cast<T>(t);
  } else {
    if (!std::in_range<T>(s))
      throw std::range_error("erlmr::data: value " + std::to_string(s) +
                             " does not fit the requested integer type");
    return static_cast<T>(s);
  }
}

template <class T, class S> T convert(const S& s) {
  if constexpr (is_complex<T>::value) {
    using V = typename T::value_type;
    if constexpr (is_complex<S>::value) return T(convert_real<V>(s.real()), convert_real<V>(s.imag()));
    else return T(convert_real<V>(s), V(0));
  } else {
    static_assert(!is_complex<S>::value, "complex to real is rejected before the loop");
    return convert_real<T>(s);
  }
}

inline std::string shape_str(const std::vector<std::int64_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

/// Element count and byte size of a shape, or false on a negative dimension or when the
/// count exceeds INT64_MAX or the byte size exceeds UINT64_MAX.
inline bool shape_extent(const std::vector<std::int64_t>& shape, std::size_t itemsize,
                         std::uint64_t& count, std::uint64_t& bytes) {
  std::uint64_t n = 1;
  for (std::int64_t d : shape) {
    if (d < 0) return false;
    if (__builtin_mul_overflow(n, static_cast<std::uint64_t>(d), &n)) return false;
  }
  if (n > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return false;
  std::uint64_t b = 0;
  if (__builtin_mul_overflow(n, static_cast<std::uint64_t>(itemsize), &b)) return false;
  count = n;
  bytes = b;
  return true;
}

}  // namespace detail

/// An n-d array: dtype, shape (empty = 0-d, one element), and the elements in C order,
/// native little-endian. Readers always produce data.size() == numel() * dtype_size(dtype).
struct NpyArray {
  DType dtype = DType::f8;
  std::vector<std::int64_t> shape;
  std::vector<std::byte> data;

  /// Product of the dimensions (1 for a 0-d array). Throws std::invalid_argument on a negative
  /// dimension and std::overflow_error when the product does not fit in int64.
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (std::int64_t d : shape)  // a zero extent makes the product 0, however large the others
      if (d == 0) return 0;
    for (std::int64_t d : shape) {
      if (d < 0) throw std::invalid_argument("erlmr::data: negative dimension in shape " + detail::shape_str(shape));
      if (__builtin_mul_overflow(n, d, &n))
        throw std::overflow_error("erlmr::data: element count of shape " + detail::shape_str(shape) + " overflows");
    }
    return n;
  }

  /// The elements converted to T (float, double, int64_t, int32_t, uint8_t, bool,
  /// std::complex<float>, std::complex<double>). Complex to real throws std::invalid_argument;
  /// a value that does not fit an integer T throws std::range_error; a data size that does not
  /// match the shape throws std::invalid_argument.
  template <class T> std::vector<T> as() const;

  /// Builds an array of T's dtype from values in C order. Throws std::invalid_argument when
  /// values.size() does not match the shape.
  template <class T> static NpyArray make(std::vector<std::int64_t> shape, const std::vector<T>& values);

  bool operator==(const NpyArray&) const = default;
};

namespace detail {

/// Checks that the array is self-consistent; returns its element count.
inline std::size_t checked_count(const NpyArray& a) {
  const std::size_t es = dtype_size(a.dtype);
  if (a.shape.size() > kMaxDims)
    throw std::invalid_argument("erlmr::data: rank " + std::to_string(a.shape.size()) + " exceeds " +
                                std::to_string(kMaxDims));
  std::uint64_t count = 0, bytes = 0;
  if (!shape_extent(a.shape, es, count, bytes))
    throw std::invalid_argument("erlmr::data: invalid shape " + shape_str(a.shape));
  if (bytes != a.data.size())
    throw std::invalid_argument("erlmr::data: shape " + shape_str(a.shape) + " of " + dtype_name(a.dtype) +
                                " needs " + std::to_string(bytes) + " bytes but data holds " +
                                std::to_string(a.data.size()));
  return static_cast<std::size_t>(count);
}

}  // namespace detail

template <class T> std::vector<T> NpyArray::as() const {
  constexpr DType target = detail::dtype_of<T>();  // rejects unsupported T at compile time
  (void)target;
  const std::size_t n = detail::checked_count(*this);
  if (dtype_is_complex(dtype) && !detail::is_complex<T>::value)
    throw std::invalid_argument(std::string("erlmr::data: cannot convert ") + dtype_name(dtype) +
                                " to the real type " + dtype_name(detail::dtype_of<T>()));
  std::vector<T> out(n);
  const std::size_t es = dtype_size(dtype);
  detail::visit_dtype(dtype, [&]<class S>() {
    if constexpr (detail::is_complex<S>::value && !detail::is_complex<T>::value) {
      // unreachable: rejected above
    } else {
      for (std::size_t i = 0; i < n; ++i) out[i] = detail::convert<T>(detail::load_elem<S>(data.data() + i * es));
    }
  });
  return out;
}

template <class T> NpyArray NpyArray::make(std::vector<std::int64_t> shape, const std::vector<T>& values) {
  NpyArray a;
  a.dtype = detail::dtype_of<T>();
  a.shape = std::move(shape);
  std::uint64_t count = 0, bytes = 0;
  if (!detail::shape_extent(a.shape, sizeof(T), count, bytes) || count != values.size())
    throw std::invalid_argument("erlmr::data: " + std::to_string(values.size()) + " values do not fill shape " +
                                detail::shape_str(a.shape));
  a.data.resize(static_cast<std::size_t>(bytes));
  for (std::size_t i = 0; i < values.size(); ++i) detail::store_elem<T>(a.data.data() + i * sizeof(T), values[i]);
  return a;
}

// ------------------------------------------------------------------------------------------
// Byte helpers, file I/O
// ------------------------------------------------------------------------------------------

namespace detail {

inline unsigned u8(const std::byte* p) { return std::to_integer<unsigned>(*p); }
inline std::uint16_t rd16(const std::byte* p) { return static_cast<std::uint16_t>(u8(p) | u8(p + 1) << 8); }
inline std::uint32_t rd32(const std::byte* p) {
  return static_cast<std::uint32_t>(rd16(p)) | static_cast<std::uint32_t>(rd16(p + 2)) << 16;
}
inline std::uint64_t rd64(const std::byte* p) {
  return static_cast<std::uint64_t>(rd32(p)) | static_cast<std::uint64_t>(rd32(p + 4)) << 32;
}

inline void put(std::vector<std::byte>& out, const void* p, std::size_t n) {
  if (n == 0) return;
  const auto* b = static_cast<const std::byte*>(p);
  out.insert(out.end(), b, b + n);
}
inline void wr16(std::vector<std::byte>& out, std::uint16_t v) {
  out.push_back(std::byte(v & 0xFF));
  out.push_back(std::byte(v >> 8));
}
inline void wr32(std::vector<std::byte>& out, std::uint32_t v) {
  wr16(out, static_cast<std::uint16_t>(v & 0xFFFF));
  wr16(out, static_cast<std::uint16_t>(v >> 16));
}
inline void wr64(std::vector<std::byte>& out, std::uint64_t v) {
  wr32(out, static_cast<std::uint32_t>(v & 0xFFFFFFFFu));
  wr32(out, static_cast<std::uint32_t>(v >> 32));
}

/// Quotes untrusted text for a message: printable ASCII kept, the rest as \xNN, cut at max.
inline std::string printable(std::string_view s, std::size_t max = 48) {
  static const char* hex = "0123456789abcdef";
  std::string r = "'";
  for (std::size_t i = 0; i < s.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7F && c != '\\' && c != '\'') {
      r += static_cast<char>(c);
    } else {
      r += "\\x";
      r += hex[c >> 4];
      r += hex[c & 15];
    }
  }
  if (s.size() > max) r += "...";
  return r + "'";
}

[[noreturn]] inline void fail(const std::string& file, std::uint64_t offset, const std::string& problem) {
  throw FormatError(file, offset, problem);
}

/// Reads a whole file (regular or not) into memory; the buffer grows only with bytes read.
inline std::vector<std::byte> read_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw std::system_error(errno, std::generic_category(), "erlmr::data: cannot open " + path);
  // Start with the size the file system reports (+1 to see EOF in one read); grow only if the
  // file turns out longer (it changed, or it is not a regular file).
  std::error_code size_ec;
  const std::uintmax_t expected = std::filesystem::file_size(path, size_ec);
  std::vector<std::byte> buf(!size_ec && expected < (std::uintmax_t{1} << 48) ? static_cast<std::size_t>(expected) + 1
                                                                            : std::size_t{65536});
  std::size_t used = 0;
  for (;;) {
    const std::size_t want = buf.size() - used;
    const std::size_t got = std::fread(buf.data() + used, 1, want, f);
    used += got;
    if (got < want) break;  // end of file or error
    buf.resize(buf.size() * 2);
  }
  const bool bad = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (bad) throw std::system_error(err, std::generic_category(), "erlmr::data: cannot read " + path);
  buf.resize(used);
  buf.shrink_to_fit();
  return buf;
}

inline long process_id() {
#if defined(_WIN32)
  return static_cast<long>(_getpid());
#else
  return static_cast<long>(getpid());
#endif
}

/// Writes bytes to "<path>.tmp.<pid>.<n>" and renames it over path (atomic on POSIX; no fsync).
inline void write_file_atomic(const std::string& path, const std::vector<std::byte>& bytes) {
  static std::atomic<unsigned long> counter{0};
  const std::string tmp = path + ".tmp." + std::to_string(process_id()) + "." + std::to_string(counter++);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw std::system_error(errno, std::generic_category(), "erlmr::data: cannot create " + tmp);
  const bool wrote = bytes.empty() || std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  int err = errno;
  const bool closed = std::fclose(f) == 0;
  if (wrote && !closed) err = errno;
  if (!wrote || !closed) {
    std::remove(tmp.c_str());
    throw std::system_error(err, std::generic_category(), "erlmr::data: cannot write " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw std::system_error(ec, "erlmr::data: cannot rename " + tmp + " to " + path);
  }
}

inline std::uint32_t crc32_of(const std::byte* p, std::size_t n) {
  uLong crc = ::crc32(0L, Z_NULL, 0);
  while (n > 0) {
    const auto take = static_cast<uInt>(std::min<std::size_t>(n, 1u << 30));
    crc = ::crc32(crc, reinterpret_cast<const Bytef*>(p), take);
    p += take;
    n -= take;
  }
  return static_cast<std::uint32_t>(crc);
}

// ------------------------------------------------------------------------------------------
// NPY header: a Python dict literal such as
//   {'descr': '<f8', 'fortran_order': False, 'shape': (144, 288), }
// Keys in any order, any whitespace, optional trailing comma, '...' or "..." strings.
// ------------------------------------------------------------------------------------------

struct NpyHeader {
  DType dtype = DType::f8;
  bool big_endian = false;
  bool fortran = false;
  std::vector<std::int64_t> shape;
  std::uint64_t shape_offset = 0;  // file offset of the shape tuple, for messages
};

class HeaderParser {
 public:
  HeaderParser(const std::byte* text, std::size_t len, std::uint64_t base, const std::string& file)
      : text_(text), len_(len), base_(base), file_(file) {}

  NpyHeader parse() {
    NpyHeader h;
    bool have_descr = false, have_fortran = false, have_shape = false;
    skip_ws();
    expect('{', "the header dictionary's '{'");
    for (;;) {
      skip_ws();
      if (peek_is('}')) break;  // empty dict or trailing comma
      const std::size_t key_pos = pos_;
      const std::string key = parse_string("a key string");
      skip_ws();
      expect(':', "':' after a key");
      skip_ws();
      auto once = [&](bool& seen) {
        if (seen) fail_at(key_pos, "duplicate key " + printable(key));
        seen = true;
      };
      if (key == "descr") {
        once(have_descr);
        parse_descr(h);
      } else if (key == "fortran_order") {
        once(have_fortran);
        h.fortran = parse_bool();
      } else if (key == "shape") {
        once(have_shape);
        h.shape_offset = base_ + pos_;
        h.shape = parse_shape();
      } else {
        fail_at(key_pos, "unexpected key " + printable(key) + " in header");
      }
      skip_ws();
      if (peek_is(',')) {
        ++pos_;
        continue;
      }
      if (peek_is('}')) break;
      fail(at_end() ? "header ends inside the dictionary" : "expected ',' or '}' in header");
    }
    const std::size_t close = pos_;
    ++pos_;  // '}'
    skip_ws();
    if (!at_end()) fail("unexpected characters after the header dictionary");
    if (!have_descr) fail_at(close, "header lacks key 'descr'");
    if (!have_fortran) fail_at(close, "header lacks key 'fortran_order'");
    if (!have_shape) fail_at(close, "header lacks key 'shape'");
    return h;
  }

 private:
  bool at_end() const { return pos_ >= len_; }
  char cur() const { return static_cast<char>(u8(text_ + pos_)); }
  bool peek_is(char c) const { return !at_end() && cur() == c; }
  [[noreturn]] void fail(const std::string& msg) const { detail::fail(file_, base_ + pos_, msg); }
  [[noreturn]] void fail_at(std::size_t pos, const std::string& msg) const { detail::fail(file_, base_ + pos, msg); }

  void skip_ws() {
    while (!at_end()) {
      const char c = cur();
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v') break;
      ++pos_;
    }
  }

  void expect(char c, const char* what) {
    if (at_end()) fail(std::string("header ends early: expected ") + what);
    if (cur() != c) fail(std::string("expected ") + what + " in header");
    ++pos_;
  }

  std::string parse_string(const char* what) {
    if (peek_is('u') || peek_is('U') || peek_is('b') || peek_is('B')) {  // Python 2 / bytes prefixes
      if (pos_ + 1 < len_ && (u8(text_ + pos_ + 1) == '\'' || u8(text_ + pos_ + 1) == '"')) ++pos_;
    }
    if (at_end()) fail(std::string("header ends early: expected ") + what);
    const char q = cur();
    if (q != '\'' && q != '"') fail(std::string("expected ") + what + " in header");
    const std::size_t start = pos_;
    ++pos_;
    std::string s;
    for (;;) {
      if (at_end()) fail_at(start, "unterminated string in header");
      const char c = cur();
      if (c == q) break;
      if (c == '\\') fail("escape sequences in header strings are not supported");
      if (c == '\n') fail_at(start, "unterminated string in header");
      s += c;
      ++pos_;
    }
    ++pos_;
    return s;
  }

  void parse_descr(NpyHeader& h) {
    const std::size_t start = pos_;
    if (peek_is('[') || peek_is('{') || peek_is('('))
      fail("unsupported dtype: structured dtypes are not supported");
    const std::string d = parse_string("a descr string");
    static constexpr struct {
      const char* code;
      DType t;
    } kCodes[] = {{"f4", DType::f4}, {"f8", DType::f8}, {"i8", DType::i8}, {"i4", DType::i4},
                  {"u1", DType::u1}, {"b1", DType::b1}, {"c8", DType::c8}, {"c16", DType::c16}};
    if (d.size() >= 3) {
      const char order = d[0];
      const std::string_view code = std::string_view(d).substr(1);
      for (const auto& k : kCodes) {
        if (code != k.code) continue;
        const bool one_byte = dtype_size(k.t) == 1;
        if (order == '<' || order == '>' || (order == '|' && one_byte)) {
          h.dtype = k.t;
          h.big_endian = order == '>' && !one_byte;
          return;
        }
      }
    }
    fail_at(start, "unsupported dtype " + printable(d) + " (supported: <f4 <f8 <i8 <i4 |u1 |b1 <c8 <c16, and '>' forms)");
  }

  bool parse_bool() {
    const std::size_t start = pos_;
    std::string word;
    while (!at_end() && word.size() < 16) {
      const char c = cur();
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) break;
      word += c;
      ++pos_;
    }
    if (word == "True") return true;
    if (word == "False") return false;
    fail_at(start, "fortran_order must be True or False");
  }

  std::vector<std::int64_t> parse_shape() {
    const std::size_t open = pos_;
    if (!peek_is('(')) fail("shape must be a tuple");
    ++pos_;
    std::vector<std::int64_t> dims;
    skip_ws();
    if (peek_is(')')) {
      ++pos_;
      return dims;
    }
    for (;;) {
      if (dims.size() == kMaxDims) fail("shape has more than " + std::to_string(kMaxDims) + " dimensions");
      dims.push_back(parse_dim());
      skip_ws();
      if (peek_is(',')) {
        ++pos_;
        skip_ws();
        if (peek_is(')')) {
          ++pos_;
          return dims;
        }
        continue;
      }
      if (peek_is(')')) {
        if (dims.size() == 1) fail_at(open, "shape (n) is not a tuple: a 1-tuple needs a trailing comma");
        ++pos_;
        return dims;
      }
      fail(at_end() ? "header ends inside the shape tuple" : "expected ',' or ')' in the shape tuple");
    }
  }

  std::int64_t parse_dim() {
    const std::size_t start = pos_;
    bool negative = false;
    if (peek_is('-') || peek_is('+')) {
      negative = cur() == '-';
      ++pos_;
      skip_ws();
    }
    if (at_end() || cur() < '0' || cur() > '9') fail("expected an integer in the shape tuple");
    std::uint64_t v = 0;
    bool too_big = false;
    while (!at_end() && cur() >= '0' && cur() <= '9') {
      const auto digit = static_cast<std::uint64_t>(cur() - '0');
      if (v > (static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) - digit) / 10) too_big = true;
      else v = v * 10 + digit;
      ++pos_;
    }
    if (peek_is('L') || peek_is('l')) ++pos_;  // Python 2 long literal
    const std::string text(reinterpret_cast<const char*>(text_ + start), std::min<std::size_t>(pos_ - start, 40));
    if (negative && (v != 0 || too_big)) fail_at(start, "negative dimension " + text + " in shape");
    if (too_big) fail_at(start, "dimension " + text + " in shape exceeds 2^63-1");
    return static_cast<std::int64_t>(v);
  }

  const std::byte* text_;
  std::size_t len_;
  std::uint64_t base_;
  const std::string& file_;
  std::size_t pos_ = 0;
};

/// Reverses the bytes of every scalar component (complex numbers swap each half).
inline void byteswap_elements(std::vector<std::byte>& data, DType t) {
  const std::size_t comp = t == DType::c8 ? 4 : t == DType::c16 ? 8 : dtype_size(t);
  if (comp == 1) return;
  for (std::size_t i = 0; i + comp <= data.size(); i += comp) std::reverse(data.data() + i, data.data() + i + comp);
}

/// Reorders Fortran-order elements into C order.
inline std::vector<std::byte> fortran_to_c(const std::vector<std::byte>& f, const std::vector<std::int64_t>& shape,
                                           std::size_t es, std::size_t count) {
  std::vector<std::byte> c(f.size());
  const std::size_t nd = shape.size();
  std::vector<std::size_t> stride(nd), idx(nd, 0), dim(nd);
  std::size_t s = 1;
  for (std::size_t k = 0; k < nd; ++k) {  // Fortran strides in elements; all products <= count
    dim[k] = static_cast<std::size_t>(shape[k]);
    stride[k] = s;
    s *= dim[k];
  }
  std::size_t src = 0;
  for (std::size_t i = 0; i < count; ++i) {
    std::memcpy(c.data() + i * es, f.data() + src * es, es);
    // advance the C-order multi-index (last axis fastest), tracking the Fortran offset
    std::size_t k = nd;
    while (k-- > 0) {
      if (++idx[k] < dim[k]) {
        src += stride[k];
        break;
      }
      src -= stride[k] * (dim[k] - 1);
      idx[k] = 0;
    }
  }
  return c;
}

inline constexpr unsigned char kNpyMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

}  // namespace detail

// ------------------------------------------------------------------------------------------
// NPY
// ------------------------------------------------------------------------------------------

/// Parses an in-memory .npy file; name is used in error messages. Throws FormatError.
inline NpyArray parse_npy(const std::byte* data, std::size_t size, const std::string& name) {
  using namespace detail;
  if (size == 0 || data == nullptr) fail(name, 0, "empty input: not an NPY file");
  for (std::size_t i = 0; i < 6 && i < size; ++i)
    if (u8(data + i) != kNpyMagic[i]) fail(name, i, "bad magic: not an NPY file");
  if (size < 8) fail(name, size, "truncated: file ends inside the NPY preamble");
  const unsigned major = u8(data + 6), minor = u8(data + 7);
  if (minor != 0 || major < 1 || major > 3)
    fail(name, 6, "unsupported NPY format version " + std::to_string(major) + "." + std::to_string(minor));
  const std::size_t prefix = major == 1 ? 10 : 12;
  if (size < prefix) fail(name, size, "truncated: file ends inside the NPY preamble");
  const std::uint64_t hlen = major == 1 ? rd16(data + 8) : rd32(data + 8);
  if (hlen > size - prefix)
    fail(name, 8, "header length " + std::to_string(hlen) + " exceeds the " + std::to_string(size - prefix) +
                      " bytes that follow");
  NpyHeader h = HeaderParser(data + prefix, static_cast<std::size_t>(hlen), prefix, name).parse();
  const std::size_t data_off = prefix + static_cast<std::size_t>(hlen);

  const std::size_t es = dtype_size(h.dtype);
  std::uint64_t count = 0, bytes = 0;
  if (!shape_extent(h.shape, es, count, bytes))
    fail(name, h.shape_offset,
         "shape " + shape_str(h.shape) + " of " + dtype_name(h.dtype) + " overflows 64-bit sizes");
  if (bytes > size - data_off)
    fail(name, data_off,
         "truncated data: shape " + shape_str(h.shape) + " of " + dtype_name(h.dtype) + " needs " +
             std::to_string(bytes) + " bytes but only " + std::to_string(size - data_off) + " remain");

  NpyArray a;
  a.dtype = h.dtype;
  a.shape = std::move(h.shape);
  a.data.resize(static_cast<std::size_t>(bytes));
  if (bytes > 0) std::memcpy(a.data.data(), data + data_off, static_cast<std::size_t>(bytes));
  if (h.big_endian) byteswap_elements(a.data, a.dtype);
  if (h.fortran && a.shape.size() >= 2 && count > 1)
    a.data = fortran_to_c(a.data, a.shape, es, static_cast<std::size_t>(count));
  if (a.dtype == DType::b1)
    for (auto& b : a.data) b = std::byte{static_cast<unsigned char>(b != std::byte{0})};
  return a;
}

inline NpyArray parse_npy(const std::vector<std::byte>& bytes, const std::string& name) {
  return parse_npy(bytes.data(), bytes.size(), name);
}

/// Reads a .npy file. Throws FormatError (bad content) or std::system_error (I/O).
inline NpyArray read_npy(const std::string& path) {
  const std::vector<std::byte> bytes = detail::read_file(path);
  return parse_npy(bytes.data(), bytes.size(), path);
}

/// Serialises to NPY 1.0 (2.0 if the header exceeds 64 KiB), '<' little-endian, C order, header
/// padded with spaces and '\n' so that the data starts on a 64-byte boundary: byte for byte
/// what numpy 1.24's numpy.save writes for a C-ordered little-endian array.
/// Throws std::invalid_argument for an inconsistent array.
inline std::vector<std::byte> serialize_npy(const NpyArray& a) {
  detail::checked_count(a);
  std::string dict = std::string("{'descr': '") + dtype_descr(a.dtype) +
                     "', 'fortran_order': False, 'shape': " + detail::shape_str(a.shape) + ", }";
  // Like numpy >= 1.23, leave room for the first axis to grow to 21 digits in place.
  if (!a.shape.empty()) dict.append(21 - std::to_string(a.shape[0]).size(), ' ');
  std::size_t prefix = 10;
  std::size_t total = prefix + dict.size() + 1;
  if (total + 63 - prefix > 0xFFFF) {  // header length (with padding) must fit in 16 bits for 1.0
    prefix = 12;
    total = prefix + dict.size() + 1;
  }
  const std::size_t pad = (64 - total % 64) % 64;
  const std::size_t hlen = dict.size() + pad + 1;
  std::vector<std::byte> out;
  out.reserve(prefix + hlen + a.data.size());
  detail::put(out, detail::kNpyMagic, 6);
  out.push_back(std::byte{static_cast<unsigned char>(prefix == 10 ? 1 : 2)});
  out.push_back(std::byte{0});
  if (prefix == 10) detail::wr16(out, static_cast<std::uint16_t>(hlen));
  else detail::wr32(out, static_cast<std::uint32_t>(hlen));
  detail::put(out, dict.data(), dict.size());
  out.insert(out.end(), pad, std::byte{' '});
  out.push_back(std::byte{'\n'});
  const std::size_t data_off = out.size();
  detail::put(out, a.data.data(), a.data.size());
  if (a.dtype == DType::b1)
    for (std::size_t i = data_off; i < out.size(); ++i) out[i] = std::byte{static_cast<unsigned char>(out[i] != std::byte{0})};
  return out;
}

/// Writes a .npy file atomically (temporary file + rename).
inline void write_npy(const std::string& path, const NpyArray& a) { detail::write_file_atomic(path, serialize_npy(a)); }

// ------------------------------------------------------------------------------------------
// NPZ (ZIP)
// ------------------------------------------------------------------------------------------

/// Archive contents: key = entry name without its ".npy" suffix, e.g. "param/im.weight".
using NpzMap = std::map<std::string, NpyArray>;

namespace detail {

inline constexpr std::uint32_t kSigLocal = 0x04034b50;
inline constexpr std::uint32_t kSigCentral = 0x02014b50;
inline constexpr std::uint32_t kSigEocd = 0x06054b50;
inline constexpr std::uint32_t kSigZip64Eocd = 0x06064b50;
inline constexpr std::uint32_t kSigZip64Locator = 0x07064b50;
inline constexpr std::uint64_t kMaxDeflateRatio = 1032;
inline constexpr std::uint64_t kDeflateSlack = std::uint64_t{1} << 20;

struct ZipEntry {
  std::string name;
  std::uint64_t cd_offset = 0;  // of the central directory header
  std::uint16_t flags = 0, method = 0;
  std::uint32_t crc = 0;
  std::uint64_t csize = 0, usize = 0, local_offset = 0;
  std::uint64_t data_offset = 0;  // filled from the local header
};

/// Inflates a raw deflate stream of known compressed size, refusing to produce more than
/// `usize` bytes; the output grows only as inflate produces data.
inline std::vector<std::byte> inflate_entry(const std::byte* in, std::size_t csize, std::uint64_t usize,
                                            std::uint64_t file_offset, const std::string& file,
                                            const std::string& who) {
  z_stream zs{};
  if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) throw std::bad_alloc();
  struct Guard {
    z_stream* z;
    ~Guard() { inflateEnd(z); }
  } guard{&zs};
  constexpr std::size_t kChunk = 64 * 1024;
  constexpr std::size_t kFeed = std::size_t{1} << 30;  // zlib counts in 32-bit uInt
  std::vector<std::byte> out;
  std::size_t produced = 0, fed = 0;
  const std::uint64_t cap = usize + 1;  // one byte of room beyond the claim detects a lie
  for (;;) {
    if (zs.avail_in == 0 && fed < csize) {
      const std::size_t take = std::min(csize - fed, kFeed);
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in + fed));
      zs.avail_in = static_cast<uInt>(take);
      fed += take;
    }
    if (out.size() == produced) {
      const std::uint64_t want = std::min<std::uint64_t>(cap, produced + std::max(kChunk, produced));
      out.resize(static_cast<std::size_t>(want));
    }
    const std::size_t room = std::min(out.size() - produced, kFeed);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    zs.avail_out = static_cast<uInt>(room);
    const int ret = inflate(&zs, Z_NO_FLUSH);
    produced += room - zs.avail_out;
    const std::uint64_t consumed = fed - zs.avail_in;
    if (produced > usize)
      fail(file, file_offset + consumed,
           who + "inflates to more than its declared uncompressed size " + std::to_string(usize));
    if (ret == Z_STREAM_END) break;
    if (ret == Z_DATA_ERROR || ret == Z_NEED_DICT)
      fail(file, file_offset + consumed,
           who + "corrupt deflate stream: " + (zs.msg ? zs.msg : "invalid data"));
    if (ret == Z_MEM_ERROR) throw std::bad_alloc();
    if (ret != Z_OK && ret != Z_BUF_ERROR)
      fail(file, file_offset + consumed, who + "inflate failed with code " + std::to_string(ret));
    // inflate returns before the end marker only when it runs out of input or of output room.
    // With output room left and every compressed byte consumed, the stream is truncated.
    if (zs.avail_out > 0 && zs.avail_in == 0 && fed == csize)
      fail(file, file_offset + csize, who + "truncated deflate stream");
    if (ret == Z_BUF_ERROR && zs.avail_in > 0 && zs.avail_out > 0)
      fail(file, file_offset + consumed, who + "inflate made no progress");
  }
  if (produced != usize)
    fail(file, file_offset, who + "inflates to " + std::to_string(produced) + " bytes but declares " +
                                std::to_string(usize));
  out.resize(produced);
  return out;
}

/// Raw deflate (no zlib header), as ZIP method 8 requires.
inline std::vector<std::byte> deflate_raw(const std::vector<std::byte>& in) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::bad_alloc();
  struct Guard {
    z_stream* z;
    ~Guard() { deflateEnd(z); }
  } guard{&zs};
  constexpr std::size_t kFeed = std::size_t{1} << 30;
  std::vector<std::byte> out(static_cast<std::size_t>(deflateBound(&zs, static_cast<uLong>(in.size()))) + 64);
  std::size_t produced = 0, fed = 0;
  for (;;) {
    if (zs.avail_in == 0 && fed < in.size()) {
      const std::size_t take = std::min(in.size() - fed, kFeed);
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data() + fed));
      zs.avail_in = static_cast<uInt>(take);
      fed += take;
    }
    if (out.size() - produced < 1024) out.resize(out.size() * 2 + 1024);
    const std::size_t room = std::min(out.size() - produced, kFeed);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    zs.avail_out = static_cast<uInt>(room);
    const int flush = (fed == in.size() && zs.avail_in == 0) ? Z_FINISH : Z_NO_FLUSH;
    const int ret = deflate(&zs, flush);
    produced += room - zs.avail_out;
    if (ret == Z_STREAM_END) break;
    if (ret != Z_OK && ret != Z_BUF_ERROR) throw std::runtime_error("erlmr::data: deflate failed");
  }
  out.resize(produced);
  return out;
}

/// Applies a ZIP64 extended-information extra field (id 0x0001) to the fields set to their
/// 32-bit (or 16-bit) sentinels, in the order the format fixes.
inline void apply_zip64_extra(const std::byte* extra, std::size_t len, std::uint64_t extra_off, ZipEntry& e,
                              bool need_u, bool need_c, bool need_o, const std::string& file) {
  const std::string who = "entry " + printable(e.name) + ": ";
  std::size_t p = 0;
  while (p + 4 <= len) {
    const std::uint16_t id = rd16(extra + p), sz = rd16(extra + p + 2);
    if (sz > len - p - 4) fail(file, extra_off + p, who + "extra field runs past its record");
    if (id == 0x0001) {
      std::size_t q = p + 4;
      const std::size_t end = q + sz;
      auto take = [&](std::uint64_t& v) {
        if (q + 8 > end) fail(file, extra_off + q, who + "ZIP64 extra field too short");
        v = rd64(extra + q);
        q += 8;
      };
      if (need_u) take(e.usize);
      if (need_c) take(e.csize);
      if (need_o) take(e.local_offset);
      return;
    }
    p += 4 + sz;
  }
  fail(file, extra_off, who + "sizes or offset need a ZIP64 extra field, which is missing");
}

/// Parses the central directory and local headers; validates every range before any
/// decompression. Entries come back in archive order.
inline std::vector<ZipEntry> zip_directory(const std::byte* data, std::size_t size, const std::string& file) {
  if (size == 0 || data == nullptr) fail(file, 0, "empty input: not a ZIP archive");
  if (size < 22) fail(file, size, "end of central directory record not found (too short for a ZIP archive)");
  // --- end of central directory record: the last one whose comment fits in the file
  std::size_t eocd = 0;
  bool found = false;
  const std::size_t lowest = size - 22 > 0xFFFF ? size - 22 - 0xFFFF : 0;
  for (std::size_t p = size - 22 + 1; p-- > lowest;) {
    if (rd32(data + p) == kSigEocd && rd16(data + p + 20) <= size - p - 22) {
      eocd = p;
      found = true;
      break;
    }
  }
  if (!found) fail(file, size, "end of central directory record not found (not a ZIP archive, or truncated)");
  std::uint64_t disk = rd16(data + eocd + 4), cd_disk = rd16(data + eocd + 6);
  std::uint64_t n_disk = rd16(data + eocd + 8), n_total = rd16(data + eocd + 10);
  std::uint64_t cd_size = rd32(data + eocd + 12), cd_off = rd32(data + eocd + 16);
  std::uint64_t cd_limit = eocd;  // the central directory must end before this offset
  std::uint64_t count_field = eocd + 10;
  // --- ZIP64 end of central directory locator and record
  if (eocd >= 20 && rd32(data + eocd - 20) == kSigZip64Locator) {
    const std::size_t loc = eocd - 20;
    const std::uint64_t z64 = rd64(data + loc + 8);
    if (rd32(data + loc + 4) != 0 || rd32(data + loc + 16) > 1)
      fail(file, loc + 4, "multi-disk ZIP archives are not supported");
    if (z64 > loc || loc - z64 < 56)
      fail(file, loc + 8, "ZIP64 end of central directory offset " + std::to_string(z64) + " is invalid");
    const std::byte* r = data + z64;
    if (rd32(r) != kSigZip64Eocd) fail(file, z64, "bad ZIP64 end of central directory signature");
    disk = rd32(r + 16);
    cd_disk = rd32(r + 20);
    n_disk = rd64(r + 24);
    n_total = rd64(r + 32);
    cd_size = rd64(r + 40);
    cd_off = rd64(r + 48);
    cd_limit = z64;
    count_field = z64 + 32;
  }
  // Without a ZIP64 locator, 0xFFFF / 0xFFFFFFFF are taken literally and range-checked below.
  if (disk != 0 || cd_disk != 0 || n_disk != n_total)
    fail(file, eocd + 4, "multi-disk ZIP archives are not supported");
  if (cd_off > cd_limit || cd_size > cd_limit - cd_off)
    fail(file, eocd + 12, "central directory (offset " + std::to_string(cd_off) + ", size " +
                              std::to_string(cd_size) + ") lies outside the file");
  if (n_total > cd_size / 46)
    fail(file, count_field, "archive claims " + std::to_string(n_total) + " entries but its central directory of " +
                                std::to_string(cd_size) + " bytes holds at most " + std::to_string(cd_size / 46));

  // --- central directory
  std::vector<ZipEntry> entries;
  entries.reserve(static_cast<std::size_t>(n_total));  // <= cd_size / 46
  std::size_t q = static_cast<std::size_t>(cd_off);
  const std::size_t cd_end = static_cast<std::size_t>(cd_off + cd_size);
  for (std::uint64_t i = 0; i < n_total; ++i) {
    if (cd_end - q < 46) fail(file, q, "central directory ends inside an entry");
    const std::byte* h = data + q;
    if (rd32(h) != kSigCentral) fail(file, q, "bad central directory entry signature");
    ZipEntry e;
    e.cd_offset = q;
    e.flags = rd16(h + 8);
    e.method = rd16(h + 10);
    e.crc = rd32(h + 16);
    e.csize = rd32(h + 20);
    e.usize = rd32(h + 24);
    const std::size_t nlen = rd16(h + 28), elen = rd16(h + 30), clen = rd16(h + 32);
    const std::uint16_t disk_start = rd16(h + 34);
    e.local_offset = rd32(h + 42);
    if (cd_end - q - 46 < nlen + elen + clen) fail(file, q + 28, "central directory entry runs past the directory");
    e.name.assign(reinterpret_cast<const char*>(h + 46), nlen);
    const bool need_u = e.usize == 0xFFFFFFFF, need_c = e.csize == 0xFFFFFFFF, need_o = e.local_offset == 0xFFFFFFFF;
    if (need_u || need_c || need_o) apply_zip64_extra(h + 46 + nlen, elen, q + 46 + nlen, e, need_u, need_c, need_o, file);
    if (disk_start != 0 && disk_start != 0xFFFF) fail(file, q + 34, "multi-disk ZIP archives are not supported");
    if (nlen == 0) fail(file, q + 28, "entry with an empty name");
    entries.push_back(std::move(e));
    q += 46 + nlen + elen + clen;
  }

  // --- local headers: locate each entry's data and check that it lies before the directory
  struct Range {
    std::uint64_t begin, end;
    std::size_t index;
  };
  std::vector<Range> ranges;
  ranges.reserve(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    ZipEntry& e = entries[i];
    const std::string who = "entry " + printable(e.name) + ": ";
    if (e.flags & 0x0001) fail(file, e.cd_offset + 8, who + "encrypted entries are not supported");
    if (e.method != 0 && e.method != 8)
      fail(file, e.cd_offset + 10, who + "unsupported compression method " + std::to_string(e.method));
    if (e.local_offset > cd_off || cd_off - e.local_offset < 30)
      fail(file, e.cd_offset + 42, who + "local header offset " + std::to_string(e.local_offset) +
                                       " lies outside the archive's data area");
    const std::byte* l = data + e.local_offset;
    if (rd32(l) != kSigLocal) fail(file, e.local_offset, who + "bad local header signature");
    const std::uint64_t data_off = e.local_offset + 30 + rd16(l + 26) + rd16(l + 28);
    if (data_off > cd_off) fail(file, e.local_offset + 26, who + "local header runs into the central directory");
    if (e.csize > cd_off - data_off)
      fail(file, e.cd_offset + 20, who + "compressed size " + std::to_string(e.csize) + " at offset " +
                                       std::to_string(data_off) + " runs past the archive's data area");
    e.data_offset = data_off;
    ranges.push_back({e.local_offset, data_off + e.csize, i});
  }
  // Overlapping entries would let a small file expand many times over (a "zip bomb").
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (std::size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].begin < ranges[i - 1].end)
      fail(file, ranges[i].begin, "entry " + printable(entries[ranges[i].index].name) + " overlaps entry " +
                                      printable(entries[ranges[i - 1].index].name));
  return entries;
}

}  // namespace detail

/// Parses an in-memory .npz archive; name is used in messages. Throws FormatError.
inline NpzMap parse_npz(const std::byte* data, std::size_t size, const std::string& name) {
  using namespace detail;
  const std::vector<ZipEntry> entries = zip_directory(data, size, name);
  // Keys first, so that duplicates are reported before anything is decompressed.
  std::vector<std::string> keys;
  keys.reserve(entries.size());
  {
    std::map<std::string_view, std::size_t> seen;
    for (const ZipEntry& e : entries) {
      std::string key = e.name;
      if (key.size() > 4 && key.compare(key.size() - 4, 4, ".npy") == 0) key.resize(key.size() - 4);
      keys.push_back(std::move(key));
    }
    for (std::size_t i = 0; i < entries.size(); ++i)
      if (!seen.emplace(keys[i], i).second) fail(name, entries[i].cd_offset, "duplicate entry " + printable(entries[i].name));
  }
  NpzMap out;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const ZipEntry& e = entries[i];
    const std::string who = "entry " + printable(e.name) + ": ";
    const std::byte* l = data + e.local_offset;
    const std::size_t lnlen = rd16(l + 26);
    if (lnlen != e.name.size() || (lnlen > 0 && std::memcmp(l + 30, e.name.data(), lnlen) != 0))
      fail(name, e.local_offset + 30, who + "local header name differs from the central directory");
    const std::byte* src = data + e.data_offset;
    const auto csize = static_cast<std::size_t>(e.csize);
    std::vector<std::byte> raw;
    if (e.method == 0) {
      if (e.usize != e.csize)
        fail(name, e.cd_offset + 20, who + "stored entry declares compressed size " + std::to_string(e.csize) +
                                         " but uncompressed size " + std::to_string(e.usize));
      raw.assign(src, src + csize);
    } else {
      std::uint64_t bound = 0;
      const bool huge_bound = __builtin_mul_overflow(e.csize, kMaxDeflateRatio, &bound) ||
                              __builtin_add_overflow(bound, kDeflateSlack, &bound);
      if (!huge_bound && e.usize > bound)
        fail(name, e.cd_offset + 24, who + "declared uncompressed size " + std::to_string(e.usize) +
                                         " is impossible for " + std::to_string(e.csize) + " deflated bytes");
      raw = inflate_entry(src, csize, e.usize, e.data_offset, name, who);
    }
    const std::uint32_t crc = crc32_of(raw.data(), raw.size());
    if (crc != e.crc)
      fail(name, e.cd_offset + 16, who + "CRC-32 mismatch (stored " + std::to_string(e.crc) + ", computed " +
                                       std::to_string(crc) + ")");
    out.emplace(keys[i], parse_npy(raw.data(), raw.size(), name + "[" + e.name + "]"));
  }
  return out;
}

inline NpzMap parse_npz(const std::vector<std::byte>& bytes, const std::string& name) {
  return parse_npz(bytes.data(), bytes.size(), name);
}

/// Reads a .npz archive. Throws FormatError (bad content) or std::system_error (I/O).
inline NpzMap read_npz(const std::string& path) {
  const std::vector<std::byte> bytes = detail::read_file(path);
  return parse_npz(bytes.data(), bytes.size(), path);
}

/// Serialises arrays into an in-memory ZIP archive; entry names are key + ".npy". ZIP64 records
/// are written only where needed (force_zip64 writes them for every entry, for testing).
/// Throws std::invalid_argument for an empty or over-long key or an inconsistent array.
inline std::vector<std::byte> serialize_npz(const NpzMap& arrays, bool compress = true, bool force_zip64 = false) {
  using namespace detail;
  struct Written {
    std::string name;
    std::uint16_t method, flags;
    std::uint32_t crc;
    std::uint64_t csize, usize, offset;
  };
  constexpr std::uint64_t k32 = 0xFFFFFFFF;
  constexpr std::uint16_t kDosTime = 0, kDosDate = (0 << 9) | (1 << 5) | 1;  // 1980-01-01 00:00
  std::vector<Written> written;
  std::vector<std::byte> out;
  for (const auto& [key, array] : arrays) {
    if (key.empty()) throw std::invalid_argument("erlmr::data: empty npz key");
    Written w;
    w.name = key + ".npy";
    if (w.name.size() > 0xFFFF) throw std::invalid_argument("erlmr::data: npz key too long");
    w.flags = std::any_of(w.name.begin(), w.name.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; })
                  ? 0x0800  // UTF-8 name
                  : 0;
    std::vector<std::byte> npy = serialize_npy(array);
    w.crc = crc32_of(npy.data(), npy.size());
    w.usize = npy.size();
    std::vector<std::byte> payload = compress ? deflate_raw(npy) : std::move(npy);
    w.method = compress ? 8 : 0;
    w.csize = payload.size();
    w.offset = out.size();
    const bool z64 = force_zip64 || w.usize >= k32 || w.csize >= k32;
    wr32(out, kSigLocal);
    wr16(out, z64 ? 45 : 20);
    wr16(out, w.flags);
    wr16(out, w.method);
    wr16(out, kDosTime);
    wr16(out, kDosDate);
    wr32(out, w.crc);
    wr32(out, z64 ? static_cast<std::uint32_t>(k32) : static_cast<std::uint32_t>(w.csize));
    wr32(out, z64 ? static_cast<std::uint32_t>(k32) : static_cast<std::uint32_t>(w.usize));
    wr16(out, static_cast<std::uint16_t>(w.name.size()));
    wr16(out, z64 ? 20 : 0);
    put(out, w.name.data(), w.name.size());
    if (z64) {
      wr16(out, 0x0001);
      wr16(out, 16);
      wr64(out, w.usize);
      wr64(out, w.csize);
    }
    put(out, payload.data(), payload.size());
    written.push_back(std::move(w));
  }
  const std::uint64_t cd_off = out.size();
  for (const Written& w : written) {
    const bool big_u = force_zip64 || w.usize >= k32, big_c = force_zip64 || w.csize >= k32,
               big_o = force_zip64 || w.offset >= k32;
    const std::uint16_t extra = static_cast<std::uint16_t>((big_u + big_c + big_o) * 8);
    const bool z64 = extra > 0;
    wr32(out, kSigCentral);
    wr16(out, static_cast<std::uint16_t>((3 << 8) | (z64 ? 45 : 20)));  // made by: Unix
    wr16(out, z64 ? 45 : 20);
    wr16(out, w.flags);
    wr16(out, w.method);
    wr16(out, kDosTime);
    wr16(out, kDosDate);
    wr32(out, w.crc);
    wr32(out, big_c ? static_cast<std::uint32_t>(k32) : static_cast<std::uint32_t>(w.csize));
    wr32(out, big_u ? static_cast<std::uint32_t>(k32) : static_cast<std::uint32_t>(w.usize));
    wr16(out, static_cast<std::uint16_t>(w.name.size()));
    wr16(out, z64 ? static_cast<std::uint16_t>(extra + 4) : 0);
    wr16(out, 0);            // comment length
    wr16(out, 0);            // disk number start
    wr16(out, 0);            // internal attributes
    wr32(out, 0100644u << 16);  // external attributes: regular file, -rw-r--r--
    wr32(out, big_o ? static_cast<std::uint32_t>(k32) : static_cast<std::uint32_t>(w.offset));
    put(out, w.name.data(), w.name.size());
    if (z64) {
      wr16(out, 0x0001);
      wr16(out, extra);
      if (big_u) wr64(out, w.usize);
      if (big_c) wr64(out, w.csize);
      if (big_o) wr64(out, w.offset);
    }
  }
  const std::uint64_t cd_size = out.size() - cd_off;
  const std::uint64_t n = written.size();
  const bool z64_end = force_zip64 || n >= 0xFFFF || cd_off >= k32 || cd_size >= k32;
  if (z64_end) {
    const std::uint64_t rec = out.size();
    wr32(out, kSigZip64Eocd);
    wr64(out, 44);  // size of the rest of the record
    wr16(out, (3 << 8) | 45);
    wr16(out, 45);
    wr32(out, 0);
    wr32(out, 0);
    wr64(out, n);
    wr64(out, n);
    wr64(out, cd_size);
    wr64(out, cd_off);
    wr32(out, kSigZip64Locator);
    wr32(out, 0);
    wr64(out, rec);
    wr32(out, 1);
  }
  wr32(out, kSigEocd);
  wr16(out, 0);
  wr16(out, 0);
  const auto n16 = static_cast<std::uint16_t>(z64_end ? 0xFFFF : n);
  wr16(out, n16);
  wr16(out, n16);
  wr32(out, z64_end ? static_cast<std::uint32_t>(k32) : static_cast<std::uint32_t>(cd_size));
  wr32(out, z64_end ? static_cast<std::uint32_t>(k32) : static_cast<std::uint32_t>(cd_off));
  wr16(out, 0);  // comment length
  return out;
}

/// Writes a .npz archive atomically (temporary file + rename); readable by numpy.load.
inline void write_npz(const std::string& path, const NpzMap& arrays, bool compress = true) {
  detail::write_file_atomic(path, serialize_npz(arrays, compress));
}

}  // namespace erlmr::data
