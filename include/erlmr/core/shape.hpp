// erlmr/core/shape.hpp — shapes, row-major strides and broadcasting.
//
// A Shape is a small vector of extents (rank 0 to kMaxRank). Layout is always
// dense row-major (C order), the layout PyTorch uses, so a buffer moves between
// the two unchanged. Shape mismatches throw ShapeError whose message names the
// op and both shapes, e.g. "add: shapes (2, 3) and (4, 3) do not broadcast".
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <stdexcept>
#include <span>
#include <string>
#include <vector>

namespace erlmr {

class ShapeError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

class Shape {
 public:
  static constexpr int kMaxRank = 8;

  Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims) { assign(dims.begin(), dims.end()); }
  explicit Shape(const std::vector<std::int64_t>& dims) { assign(dims.begin(), dims.end()); }
  explicit Shape(std::span<const std::int64_t> dims) { assign(dims.begin(), dims.end()); }

  int rank() const { return rank_; }
  std::int64_t operator[](int i) const { return dims_[static_cast<std::size_t>(i)]; }
  std::int64_t& operator[](int i) { return dims_[static_cast<std::size_t>(i)]; }
  // Negative axes count from the end, as in NumPy.
  std::int64_t dim(int axis) const { return dims_[static_cast<std::size_t>(normalize_axis(axis, "dim"))]; }

  std::int64_t numel() const {
    for (int i = 0; i < rank_; ++i)  // a zero extent gives 0 without multiplying the others
      if (dims_[static_cast<std::size_t>(i)] == 0) return 0;
    std::int64_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[static_cast<std::size_t>(i)];
    return n;
  }
  // Row-major stride of axis i (in elements).
  std::int64_t stride(int i) const {
    std::int64_t s = 1;
    for (int j = rank_ - 1; j > i; --j) s *= dims_[static_cast<std::size_t>(j)];
    return s;
  }
  int normalize_axis(int axis, const char* op) const {
    int a = axis < 0 ? axis + rank_ : axis;
    if (a < 0 || a >= rank_)
      throw ShapeError(std::string(op) + ": axis " + std::to_string(axis) + " out of range for shape " + str());
    return a;
  }
  std::vector<std::int64_t> vec() const { return {dims_.begin(), dims_.begin() + rank_}; }
  std::span<const std::int64_t> dims() const { return {dims_.data(), static_cast<std::size_t>(rank_)}; }

  void push_back(std::int64_t d) {
    if (rank_ == kMaxRank) throw ShapeError("Shape: rank exceeds " + std::to_string(kMaxRank));
    dims_[static_cast<std::size_t>(rank_++)] = d;
  }

  friend bool operator==(const Shape& a, const Shape& b) {
    if (a.rank_ != b.rank_) return false;
    for (int i = 0; i < a.rank_; ++i)
      if (a[i] != b[i]) return false;
    return true;
  }

  std::string str() const {
    std::ostringstream os;
    os << '(';
    for (int i = 0; i < rank_; ++i) os << (i ? ", " : "") << dims_[static_cast<std::size_t>(i)];
    if (rank_ == 1) os << ',';
    os << ')';
    return os.str();
  }

 private:
  template <class It> void assign(It b, It e) {
    for (; b != e; ++b) {
      if (*b < 0) throw ShapeError("Shape: negative extent " + std::to_string(*b));
      push_back(*b);
    }
  }
  std::array<std::int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

inline std::string shapes_str(const Shape& a, const Shape& b) { return a.str() + " and " + b.str(); }

// NumPy broadcasting: align trailing axes; extents must match or be 1.
inline Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const int r = a.rank() > b.rank() ? a.rank() : b.rank();
  Shape out;
  for (int i = 0; i < r; ++i) {
    const int ia = a.rank() - r + i, ib = b.rank() - r + i;
    const std::int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    if (da != db && da != 1 && db != 1)
      throw ShapeError(std::string(op) + ": shapes " + shapes_str(a, b) + " do not broadcast");
    out.push_back(da == 1 ? db : da);
  }
  return out;
}

inline void check_same_shape(const Shape& a, const Shape& b, const char* op) {
  if (!(a == b)) throw ShapeError(std::string(op) + ": shapes " + shapes_str(a, b) + " differ");
}

// Strides of `in` read as if broadcast to `out` (0 along broadcast axes), aligned to out's rank.
inline std::array<std::int64_t, Shape::kMaxRank> broadcast_strides(const Shape& in, const Shape& out) {
  std::array<std::int64_t, Shape::kMaxRank> s{};
  const int off = out.rank() - in.rank();
  for (int i = 0; i < out.rank(); ++i) {
    const int j = i - off;
    s[static_cast<std::size_t>(i)] = (j < 0 || in[j] == 1) ? 0 : in.stride(j);
  }
  return s;
}

}  // namespace erlmr
