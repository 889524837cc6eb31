#pragma once
// erlmr/data/idx.hpp: IDX reader and writer (the MNIST / Fashion-MNIST format), plain or
// gzip-compressed, safe against hostile input.
//
// Contract
//   Reads   IDX files: bytes 0x00 0x00 <type> <ndims>, then ndims big-endian uint32 dimensions,
//           then the elements big-endian in C order. Types 0x08 uint8, 0x09 int8, 0x0B int16,
//           0x0C int32, 0x0D float32, 0x0E float64. ndims 0 is a 0-d array (one element).
//           Bytes after the elements are ignored. A file starting with the gzip magic 1f 8b is
//           inflated first (concatenated gzip members are read as one stream).
//   Result  IdxArray: type, shape, and the elements in native (little-endian) order.
//           as<T>() converts them to float, double, int64_t, int32_t or uint8_t.
//   Writes  plain IDX (serialize_idx / write_idx; write_idx gzips when compress is true).
//   Throws  FormatError "<file>: byte <offset>: <problem>" for every malformed input; for a
//           gzip file the offset is into the decompressed stream and the problem says so.
//           std::system_error for I/O failures, std::invalid_argument for an inconsistent
//           IdxArray given to the writer, std::range_error from as<T>() for a value that does
//           not fit an integer T.
//   Never   reads outside the buffer or allocates more than the input justifies: the element
//           count claimed by the header is checked against kIdxMaxBytes and against the bytes
//           present (plain) or against what the compressed size can inflate to (1032 x + 1 MiB,
//           the deflate limit); gzip output grows only as inflate produces it and stops at the
//           bytes the header needs, and a stream that ends early is "truncated data".

#include <erlmr/data/npy.hpp>

#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace erlmr::data {

/// IDX element types (the third header byte).
enum class IdxType : std::uint8_t { u8 = 0x08, i8 = 0x09, i16 = 0x0B, i32 = 0x0C, f32 = 0x0D, f64 = 0x0E };

/// The largest data size read (16 GiB; Fashion-MNIST's training images are 47 MB).
inline constexpr std::uint64_t kIdxMaxBytes = std::uint64_t{1} << 34;

/// Bytes per element; throws std::invalid_argument for a value outside the enumeration.
inline std::size_t idx_type_size(IdxType t) {
  switch (t) {
    case IdxType::u8: return 1;
    case IdxType::i8: return 1;
    case IdxType::i16: return 2;
    case IdxType::i32: return 4;
    case IdxType::f32: return 4;
    case IdxType::f64: return 8;
  }
  throw std::invalid_argument("erlmr::data: invalid IdxType value " + std::to_string(static_cast<int>(t)));
}

inline const char* idx_type_name(IdxType t) {
  switch (t) {
    case IdxType::u8: return "uint8";
    case IdxType::i8: return "int8";
    case IdxType::i16: return "int16";
    case IdxType::i32: return "int32";
    case IdxType::f32: return "float32";
    case IdxType::f64: return "float64";
  }
  return "invalid";
}

namespace detail {

inline bool idx_type_valid(unsigned code) {
  return code == 0x08 || code == 0x09 || code == 0x0B || code == 0x0C || code == 0x0D || code == 0x0E;
}

template <class F> decltype(auto) visit_idx_type(IdxType t, F&& f) {
  switch (t) {
    case IdxType::u8: return f.template operator()<std::uint8_t>();
    case IdxType::i8: return f.template operator()<std::int8_t>();
    case IdxType::i16: return f.template operator()<std::int16_t>();
    case IdxType::i32: return f.template operator()<std::int32_t>();
    case IdxType::f32: return f.template operator()<float>();
    case IdxType::f64: return f.template operator()<double>();
  }
  throw std::invalid_argument("erlmr::data: invalid IdxType value " + std::to_string(static_cast<int>(t)));
}

inline std::uint32_t rd32be(const std::byte* p) {
  return static_cast<std::uint32_t>(u8(p)) << 24 | static_cast<std::uint32_t>(u8(p + 1)) << 16 |
         static_cast<std::uint32_t>(u8(p + 2)) << 8 | static_cast<std::uint32_t>(u8(p + 3));
}

}  // namespace detail

/// An IDX array: element type, shape (empty = 0-d), elements in C order, native byte order.
/// Readers always produce data.size() == numel() * idx_type_size(type).
struct IdxArray {
  IdxType type = IdxType::u8;
  std::vector<std::int64_t> shape;
  std::vector<std::byte> data;

  /// Product of the dimensions (1 for 0-d); throws std::invalid_argument for a negative or
  /// overflowing shape.
  std::int64_t numel() const {
    std::uint64_t count = 0, bytes = 0;
    if (!detail::shape_extent(shape, 1, count, bytes))
      throw std::invalid_argument("erlmr::data: invalid IDX shape " + detail::shape_str(shape));
    return static_cast<std::int64_t>(count);
  }

  /// The elements converted to T (float, double, int64_t, int32_t, uint8_t). Throws
  /// std::range_error for a value that does not fit an integer T (negative int8 -> uint8, NaN,
  /// ...), std::invalid_argument when data does not match the shape.
  template <class T> std::vector<T> as() const {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::int64_t> ||
                      std::is_same_v<T, std::int32_t> || std::is_same_v<T, std::uint8_t>,
                  "IdxArray::as<T>: T must be float, double, int64_t, int32_t or uint8_t");
    const std::size_t es = idx_type_size(type);
    const auto n = static_cast<std::size_t>(numel());
    if (data.size() / es != n || data.size() % es != 0)
      throw std::invalid_argument("erlmr::data: IDX shape " + detail::shape_str(shape) + " of " +
                                  idx_type_name(type) + " does not match " + std::to_string(data.size()) +
                                  " data bytes");
    std::vector<T> out(n);
    detail::visit_idx_type(type, [&]<class S>() {
      for (std::size_t i = 0; i < n; ++i) {
        S s;
        std::memcpy(&s, data.data() + i * es, sizeof s);
        if constexpr (std::is_integral_v<S> && std::is_integral_v<T>) {
          if (!std::in_range<T>(s))
            throw std::range_error("erlmr::data: value " + std::to_string(s) +
                                   " does not fit the requested integer type");
          out[i] = static_cast<T>(s);
        } else {
          out[i] = detail::convert_real<T>(s);
        }
      }
    });
    return out;
  }

  /// Builds an array of the type matching S (uint8_t, int8_t, int16_t, int32_t, float, double).
  template <class S> static IdxArray make(std::vector<std::int64_t> shape, const std::vector<S>& values) {
    IdxArray a;
    if constexpr (std::is_same_v<S, std::uint8_t>) a.type = IdxType::u8;
    else if constexpr (std::is_same_v<S, std::int8_t>) a.type = IdxType::i8;
    else if constexpr (std::is_same_v<S, std::int16_t>) a.type = IdxType::i16;
    else if constexpr (std::is_same_v<S, std::int32_t>) a.type = IdxType::i32;
    else if constexpr (std::is_same_v<S, float>) a.type = IdxType::f32;
    else if constexpr (std::is_same_v<S, double>) a.type = IdxType::f64;
    else static_assert(detail::always_false<S>::value, "unsupported IDX element type");
    a.shape = std::move(shape);
    if (a.numel() != static_cast<std::int64_t>(values.size()))
      throw std::invalid_argument("erlmr::data: " + std::to_string(values.size()) + " values do not fill shape " +
                                  detail::shape_str(a.shape));
    a.data.resize(values.size() * sizeof(S));
    if (!values.empty()) std::memcpy(a.data.data(), values.data(), a.data.size());
    return a;
  }

  bool operator==(const IdxArray&) const = default;
};

namespace detail {

/// Header facts: where the data starts and how many bytes it needs.
struct IdxHeader {
  IdxType type = IdxType::u8;
  std::vector<std::int64_t> shape;
  std::uint64_t data_offset = 0, data_bytes = 0;
};

/// Parses the header from `avail` bytes (`more_may_come`: a gzip stream not yet fully
/// inflated, in which case returns false when more bytes are needed). `where` is appended to
/// problems ("" or " (offset in the decompressed gzip stream)").
inline bool parse_idx_header(const std::byte* p, std::size_t avail, bool more_may_come, const std::string& file,
                             const std::string& where, IdxHeader& h) {
  if (avail < 4) {
    if (more_may_come) return false;
    fail(file, avail, (avail == 0 ? std::string("empty input") : "ends inside the 4-byte IDX magic") + where);
  }
  if (u8(p) != 0 || u8(p + 1) != 0)
    fail(file, 0, "bad magic: expected 00 00 <type> <ndims>, got bytes " + std::to_string(u8(p)) + " " +
                      std::to_string(u8(p + 1)) + where);
  const unsigned code = u8(p + 2);
  if (!idx_type_valid(code)) fail(file, 2, "unsupported IDX element type 0x" + [&] {
    static const char* hex = "0123456789abcdef";
    return std::string{hex[code >> 4], hex[code & 15]};
  }() + where);
  h.type = static_cast<IdxType>(code);
  const std::size_t ndims = u8(p + 3);
  const std::size_t header = 4 + 4 * ndims;
  if (avail < header) {
    if (more_may_come) return false;
    fail(file, avail, "ends inside the dimensions: " + std::to_string(ndims) + " dimensions need " +
                          std::to_string(header) + " header bytes" + where);
  }
  h.shape.assign(ndims, 0);
  std::uint64_t count = 1;
  bool overflow = false;
  for (std::size_t i = 0; i < ndims; ++i) {
    h.shape[i] = rd32be(p + 4 + 4 * i);
    if (!overflow && __builtin_mul_overflow(count, static_cast<std::uint64_t>(h.shape[i]), &count)) overflow = true;
  }
  const std::uint64_t es = idx_type_size(h.type);
  if (overflow || count > kIdxMaxBytes / es)
    fail(file, 4, "dimensions " + shape_str(h.shape) + " of " + idx_type_name(h.type) + " exceed the " +
                      std::to_string(kIdxMaxBytes) + "-byte limit (overflow)" + where);
  h.data_offset = header;
  h.data_bytes = count * es;
  return true;
}

/// Converts big-endian elements to an IdxArray (the bytes are known to be present).
inline IdxArray idx_from_be(IdxHeader&& h, const std::byte* data) {
  IdxArray a;
  a.type = h.type;
  a.shape = std::move(h.shape);
  const auto bytes = static_cast<std::size_t>(h.data_bytes);
  a.data.resize(bytes);
  if (bytes) std::memcpy(a.data.data(), data, bytes);
  const std::size_t es = idx_type_size(a.type);
  if (es > 1)
    for (std::size_t i = 0; i < bytes; i += es) std::reverse(a.data.data() + i, a.data.data() + i + es);
  return a;
}

inline IdxArray parse_idx_plain(const std::byte* data, std::size_t size, const std::string& file) {
  IdxHeader h;
  parse_idx_header(data, size, false, file, "", h);
  const std::uint64_t have = size - h.data_offset;
  if (h.data_bytes > have)
    fail(file, size, "truncated data: shape " + shape_str(h.shape) + " of " + idx_type_name(h.type) + " needs " +
                         std::to_string(h.data_bytes) + " bytes after the " + std::to_string(h.data_offset) +
                         "-byte header but the file has " + std::to_string(have));
  return idx_from_be(std::move(h), data + h.data_offset);
}

/// Inflates a gzip IDX file just far enough to hold its header and data.
inline IdxArray parse_idx_gzip(const std::byte* in, std::size_t size, const std::string& file) {
  static const std::string where = " (offset in the decompressed gzip stream)";
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) throw std::bad_alloc();
  struct Guard {
    z_stream* z;
    ~Guard() { inflateEnd(z); }
  } guard{&zs};
  constexpr std::size_t kFeed = std::size_t{1} << 30;  // zlib counts in 32-bit uInt
  constexpr std::size_t kChunk = 64 * 1024;
  const std::uint64_t max_out = std::min<std::uint64_t>(
      kIdxMaxBytes + 4 + 4 * 255,
      std::uint64_t{1032} * size + (std::uint64_t{1} << 20));  // what `size` bytes can inflate to
  std::vector<std::byte> out;
  std::size_t produced = 0, fed = 0;
  bool ended = false;  // the last gzip member ended and no other follows
  // Inflates until `need` bytes are produced or the stream ends.
  auto fill = [&](std::uint64_t need) {
    while (produced < need && !ended) {
      if (zs.avail_in == 0 && fed < size) {
        const std::size_t take = std::min(size - fed, kFeed);
        zs.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in + fed));
        zs.avail_in = static_cast<uInt>(take);
        fed += take;
      }
      if (out.size() == produced)
        out.resize(static_cast<std::size_t>(std::min<std::uint64_t>(need, produced + std::max(kChunk, produced))));
      const std::size_t room = std::min(out.size() - produced, kFeed);
      zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
      zs.avail_out = static_cast<uInt>(room);
      const int ret = inflate(&zs, Z_NO_FLUSH);
      produced += room - zs.avail_out;
      const std::uint64_t consumed = fed - zs.avail_in;
      if (ret == Z_STREAM_END) {
        // another gzip member may follow (as `cat a.gz b.gz` makes)
        if (zs.avail_in == 0 && fed < size) {
          const std::size_t take = std::min(size - fed, kFeed);
          zs.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in + fed));
          zs.avail_in = static_cast<uInt>(take);
          fed += take;
        }
        if (zs.avail_in >= 2 && zs.next_in[0] == 0x1f && zs.next_in[1] == 0x8b) {
          if (inflateReset(&zs) != Z_OK) throw std::bad_alloc();
        } else {
          ended = true;  // bytes after the last member are ignored, like trailing bytes
        }
        continue;
      }
      if (ret == Z_DATA_ERROR || ret == Z_NEED_DICT)
        fail(file, consumed, std::string("corrupt gzip stream: ") + (zs.msg ? zs.msg : "invalid data"));
      if (ret == Z_MEM_ERROR) throw std::bad_alloc();
      if (ret != Z_OK && ret != Z_BUF_ERROR)
        fail(file, consumed, "inflate failed with code " + std::to_string(ret));
      if (zs.avail_out > 0 && zs.avail_in == 0 && fed == size) {
        if (produced >= need) break;
        fail(file, size, "truncated gzip stream: it ends after " + std::to_string(produced) +
                             " decompressed bytes, " + std::to_string(need) + " needed");
      }
      if (ret == Z_BUF_ERROR && zs.avail_in > 0 && zs.avail_out > 0)
        fail(file, consumed, "inflate made no progress");
    }
  };
  IdxHeader h;
  fill(4);
  if (!parse_idx_header(out.data(), produced, !ended, file, where, h)) {
    fill(4 + 4 * std::uint64_t{u8(out.data() + 3)});
    parse_idx_header(out.data(), produced, false, file, where, h);
  }
  const std::uint64_t total = h.data_offset + h.data_bytes;
  if (total > max_out)
    fail(file, 4, "shape " + shape_str(h.shape) + " of " + idx_type_name(h.type) + " needs " +
                      std::to_string(h.data_bytes) + " bytes, more than " + std::to_string(size) +
                      " compressed bytes can hold" + where);
  fill(total);
  if (produced < total)
    fail(file, produced, "truncated data: shape " + shape_str(h.shape) + " of " + idx_type_name(h.type) +
                             " needs " + std::to_string(h.data_bytes) + " bytes after the " +
                             std::to_string(h.data_offset) + "-byte header but the stream has " +
                             std::to_string(produced - h.data_offset) + where);
  const auto off = static_cast<std::size_t>(h.data_offset);
  return idx_from_be(std::move(h), out.data() + off);
}

}  // namespace detail

/// Parses an in-memory IDX file (gzip-compressed when it starts with 1f 8b); name is used in
/// messages. Throws FormatError.
inline IdxArray parse_idx(const std::byte* data, std::size_t size, const std::string& name) {
  if (size >= 2 && detail::u8(data) == 0x1f && detail::u8(data + 1) == 0x8b)
    return detail::parse_idx_gzip(data, size, name);
  return detail::parse_idx_plain(data, size, name);
}

inline IdxArray parse_idx(const std::vector<std::byte>& bytes, const std::string& name) {
  return parse_idx(bytes.data(), bytes.size(), name);
}

/// Reads an IDX file (plain or gzip). Throws FormatError (bad content) or std::system_error (I/O).
inline IdxArray read_idx(const std::string& path) {
  const auto bytes = detail::read_file(path);
  return parse_idx(bytes.data(), bytes.size(), path);
}

/// Serialises to plain IDX. Throws std::invalid_argument for an inconsistent array (more than
/// 255 dimensions, a dimension outside uint32, data not matching the shape).
inline std::vector<std::byte> serialize_idx(const IdxArray& a) {
  const std::size_t es = idx_type_size(a.type);
  if (a.shape.size() > 255)
    throw std::invalid_argument("erlmr::data: IDX allows at most 255 dimensions, got " +
                                std::to_string(a.shape.size()));
  for (auto d : a.shape)
    if (d < 0 || d > std::int64_t{0xFFFFFFFF})
      throw std::invalid_argument("erlmr::data: IDX dimension " + std::to_string(d) + " outside uint32");
  const auto n = static_cast<std::uint64_t>(a.numel());
  if (a.data.size() % es != 0 || a.data.size() / es != n)
    throw std::invalid_argument("erlmr::data: IDX shape " + detail::shape_str(a.shape) + " does not match " +
                                std::to_string(a.data.size()) + " data bytes");
  std::vector<std::byte> out;
  out.reserve(4 + 4 * a.shape.size() + a.data.size());
  out.push_back(std::byte{0});
  out.push_back(std::byte{0});
  out.push_back(std::byte{static_cast<std::uint8_t>(a.type)});
  out.push_back(std::byte{static_cast<unsigned char>(a.shape.size())});
  for (auto d : a.shape)
    for (int s = 24; s >= 0; s -= 8) out.push_back(std::byte{static_cast<unsigned char>((d >> s) & 0xFF)});
  const std::size_t start = out.size();
  out.insert(out.end(), a.data.begin(), a.data.end());
  if (es > 1)
    for (std::size_t i = start; i < out.size(); i += es) std::reverse(out.data() + i, out.data() + i + es);
  return out;
}

/// gzip-compresses bytes (a single gzip member).
inline std::vector<std::byte> gzip_bytes(const std::vector<std::byte>& in, int level = Z_DEFAULT_COMPRESSION) {
  z_stream zs{};
  if (deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw std::bad_alloc();
  struct Guard {
    z_stream* z;
    ~Guard() { deflateEnd(z); }
  } guard{&zs};
  if (in.size() > std::numeric_limits<uInt>::max()) throw std::invalid_argument("erlmr::data: gzip input too large");
  std::vector<std::byte> out(deflateBound(&zs, static_cast<uLong>(in.size())) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) throw std::runtime_error("erlmr::data: gzip compression failed");
  out.resize(zs.total_out);
  return out;
}

/// Writes an IDX file atomically, gzip-compressed when compress is true.
inline void write_idx(const std::string& path, const IdxArray& a, bool compress = false) {
  auto bytes = serialize_idx(a);
  detail::write_file_atomic(path, compress ? gzip_bytes(bytes) : bytes);
}

}  // namespace erlmr::data
