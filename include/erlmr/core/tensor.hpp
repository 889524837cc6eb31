// erlmr/core/tensor.hpp — dense row-major tensors over a device.
//
// Tensor<T, D> is a shape plus a reference-counted buffer allocated by device D.
// Copying a Tensor is cheap and shares the buffer (like a PyTorch tensor);
// clone() makes a deep copy. Every tensor is contiguous row-major; reshape shares
// the buffer, every other view-like op (slice, transpose) copies. T is float,
// double, std::complex<float>, std::complex<double> (and std::int64_t for labels).
// On host devices, vec()/mat() give Eigen maps over the buffer so computation
// goes through Eigen.
#pragma once
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "erlmr/core/device.hpp"
#include "erlmr/core/rng.hpp"
#include "erlmr/core/small_pool.hpp"
#include "erlmr/core/scalar.hpp"
#include "erlmr/core/shape.hpp"

namespace erlmr {

template <class D>
class Storage {
 public:
  explicit Storage(std::size_t bytes) : ptr_(D::allocate(bytes)), bytes_(bytes) {}
  ~Storage() { D::deallocate(ptr_); }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }

 private:
  void* ptr_;
  std::size_t bytes_;
};

template <class T, class D = CpuDevice>
class Tensor {
 public:
  using value_type = T;
  using device_type = D;
  using RowMajorMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using MatMap = Eigen::Map<RowMajorMatrix, Eigen::Aligned64>;
  using VecMap = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>, Eigen::Aligned64>;

  Tensor() = default;  // an empty (undefined) tensor: defined() is false
  explicit Tensor(const Shape& s) : shape_(s), storage_(std::allocate_shared<Storage<D>>(PoolAllocator<Storage<D>>(), bytes_for(s))) {}

  static Tensor empty(const Shape& s) { return Tensor(s); }
  static Tensor zeros(const Shape& s) {
    Tensor t(s);
    D::zero(t.data(), t.nbytes());
    return t;
  }
  static Tensor full(const Shape& s, T v) {
    Tensor t(s);
    D::fill(t.data(), t.numel(), v);
    return t;
  }
  static Tensor ones(const Shape& s) { return full(s, T(1)); }
  static Tensor scalar(T v) { return full(Shape{}, v); }
  static Tensor from_vector(const Shape& s, const std::vector<T>& v) {
    if (static_cast<std::int64_t>(v.size()) != s.numel())
      throw ShapeError("Tensor::from_vector: " + std::to_string(v.size()) + " values for shape " + s.str());
    Tensor t(s);
    D::copy_from_host(t.data(), v.data(), t.nbytes());
    return t;
  }
  // Normal with the given standard deviation (complex: independent parts of
  // variance σ²/2 each, so E|z|² = σ²), drawn from g. On any device the values
  // are drawn on the host from the same counters, so they match the CPU's exactly.
  static Tensor randn(const Shape& s, Generator& g, real_t<T> stddev = 1) {
    const std::int64_t n = s.numel();
    std::vector<T> h(static_cast<std::size_t>(n));
    if constexpr (is_complex_v<T>) {
      const std::uint64_t o = g.reserve(static_cast<std::uint64_t>(2 * n));
      const real_t<T> k = stddev / std::sqrt(real_t<T>(2));
      for (std::int64_t i = 0; i < n; ++i)
        h[static_cast<std::size_t>(i)] = T(k * real_t<T>(g.normal(o + 2 * i)), k * real_t<T>(g.normal(o + 2 * i + 1)));
    } else {
      const std::uint64_t o = g.reserve(static_cast<std::uint64_t>(n));
      for (std::int64_t i = 0; i < n; ++i) h[static_cast<std::size_t>(i)] = stddev * static_cast<T>(g.normal(o + i));
    }
    return from_vector(s, h);
  }
  // Uniform on [lo, hi) (complex: both parts independently).
  static Tensor uniform(const Shape& s, Generator& g, real_t<T> lo, real_t<T> hi) {
    const std::int64_t n = s.numel();
    std::vector<T> h(static_cast<std::size_t>(n));
    const int parts = is_complex_v<T> ? 2 : 1;
    const std::uint64_t o = g.reserve(static_cast<std::uint64_t>(parts * n));
    for (std::int64_t i = 0; i < n; ++i) {
      const auto u = [&](std::int64_t k) { return static_cast<real_t<T>>(lo + (hi - lo) * g.uniform(o + k)); };
      if constexpr (is_complex_v<T>) h[static_cast<std::size_t>(i)] = T(u(2 * i), u(2 * i + 1));
      else h[static_cast<std::size_t>(i)] = u(i);
    }
    return from_vector(s, h);
  }

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  std::int64_t dim(int axis) const { return shape_.dim(axis); }
  std::int64_t numel() const { return shape_.numel(); }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * sizeof(T); }

  T* data() const { return static_cast<T*>(storage_->data()); }
  // Element access through the pointer: host devices only (a compile error elsewhere).
  T& operator[](std::int64_t i) const
    requires D::is_host
  {
    return data()[i];
  }
  // Element at a multi-index (host only; for tests and small utilities).
  T& at(std::initializer_list<std::int64_t> idx) const
    requires D::is_host
  {
    if (static_cast<int>(idx.size()) != rank())
      throw ShapeError("Tensor::at: " + std::to_string(idx.size()) + " indices for shape " + shape_.str());
    std::int64_t off = 0;
    int i = 0;
    for (auto v : idx) {
      if (v < 0 || v >= shape_[i]) throw ShapeError("Tensor::at: index out of range for shape " + shape_.str());
      off = off * shape_[i] + v;
      ++i;
    }
    return data()[off];
  }
  // The single element, copied to the host.
  T item() const {
    if (numel() != 1)
      throw ShapeError("Tensor::item: shape " + shape_.str() + " has " + std::to_string(numel()) + " elements");
    T v;
    D::copy_to_host(&v, data(), sizeof(T));
    return v;
  }
  // The elements, copied to host memory (from any device).
  std::vector<T> to_vector() const {
    std::vector<T> v(static_cast<std::size_t>(numel()));
    if (defined()) D::copy_to_host(v.data(), data(), nbytes());
    return v;
  }
  // The same values on device D2 (a deep copy, through host memory when neither
  // side is the host). The result never shares this tensor's buffer.
  template <class D2> Tensor<T, D2> to() const {
    Tensor<T, D2> t(shape_);
    if constexpr (std::is_same_v<D, D2>) {
      D::copy(t.data(), data(), nbytes());
    } else if constexpr (D::is_host) {
      D2::copy_from_host(t.data(), data(), nbytes());
    } else if constexpr (D2::is_host) {
      D::copy_to_host(t.data(), data(), nbytes());
    } else {
      const std::vector<T> h = to_vector();
      D2::copy_from_host(t.data(), h.data(), nbytes());
    }
    return t;
  }

  Tensor clone() const {
    Tensor t(shape_);
    D::copy(t.data(), data(), nbytes());
    return t;
  }
  // Shares the buffer. One extent may be -1 (inferred), as in PyTorch.
  Tensor reshape(std::span<const std::int64_t> dims) const {
    Tensor t;
    t.shape_ = infer_shape(dims, numel(), shape_);
    t.storage_ = storage_;
    return t;
  }
  Tensor reshape(const std::vector<std::int64_t>& dims) const { return reshape(std::span<const std::int64_t>(dims)); }
  Tensor reshape(std::initializer_list<std::int64_t> dims) const {
    return reshape(std::span<const std::int64_t>(dims.begin(), dims.size()));
  }
  Tensor reshape(const Shape& s) const { return reshape(s.dims()); }
  bool shares_storage(const Tensor& o) const { return storage_ == o.storage_; }
  // Number of Tensor handles sharing this buffer (0 for an undefined tensor).
  long use_count() const { return storage_.use_count(); }
  void zero_() const { D::zero(data(), nbytes()); }
  void fill_(T v) const { D::fill(data(), numel(), v); }
  void copy_(const Tensor& src) const {
    check_same_shape(shape_, src.shape(), "Tensor::copy_");
    D::copy(data(), src.data(), nbytes());
  }

  // Eigen views (host devices only).
  VecMap vec() const
    requires D::is_host
  {
    return VecMap(data(), numel());
  }
  MatMap mat(std::int64_t rows, std::int64_t cols) const
    requires D::is_host
  {
    return MatMap(data(), rows, cols);
  }
  // Rows = product of all but the last axis; cols = last axis.
  MatMap mat() const
    requires D::is_host
  {
    const std::int64_t c = rank() == 0 ? 1 : shape_[rank() - 1];
    return MatMap(data(), c == 0 ? 0 : numel() / c, c);
  }

  static Shape infer_shape(std::span<const std::int64_t> dims, std::int64_t n, const Shape& from) {
    auto fail = [&] {
      std::string t = "(";
      for (std::size_t i = 0; i < dims.size(); ++i) t += (i ? ", " : "") + std::to_string(dims[i]);
      return ShapeError("reshape: cannot reshape " + from.str() + " to " + t + ")");
    };
    std::int64_t known = 1;
    int infer = -1;
    for (std::size_t i = 0; i < dims.size(); ++i) {
      if (dims[i] == -1 && infer < 0) infer = static_cast<int>(i);
      else if (dims[i] < 0) throw fail();
      else known *= dims[i];
    }
    if (dims.size() > std::size_t(Shape::kMaxRank)) throw fail();
    if (infer >= 0) {
      if (known == 0 || n % known != 0) throw fail();
    } else if (known != n) {
      throw fail();
    }
    Shape out;
    for (std::size_t i = 0; i < dims.size(); ++i) out.push_back(int(i) == infer ? n / known : dims[i]);
    return out;
  }

 private:
  static std::size_t bytes_for(const Shape& s) { return static_cast<std::size_t>(s.numel()) * sizeof(T); }
  Shape shape_;
  std::shared_ptr<Storage<D>> storage_;
};

// The values on the host: `t` itself (shared) when it already lives there, else a copy.
// For the small host-side statistics (metrics, method signals) that follow a device step.
template <class T, class D> Tensor<T> as_host(const Tensor<T, D>& t) {
  if constexpr (std::is_same_v<D, CpuDevice>) return t;
  else return t.template to<CpuDevice>();
}
// The values on device D2: `t` itself (shared) when it already lives there, else a copy.
template <class D2, class T, class D> Tensor<T, D2> as_device(const Tensor<T, D>& t) {
  if constexpr (std::is_same_v<D, D2>) return t;
  else return t.template to<D2>();
}

}  // namespace erlmr
