// erlmr/data/dataset.hpp — two-modality datasets: NPY directories and the built-in
// synthetic inertial-sensor data.
//
// A Split holds x1 (N, 1, 3, T), x2 (N, 1, 3, T) and integer labels in [0, K).
// load_npy_dir reads the released code's layout:
//   x_train_1.npy x_train_2.npy y_train.npy x_test_1.npy x_test_2.npy y_test.npy
// or the variant x1_train.npy x2_train.npy y_train.npy x1_test.npy ...
// with arrays (N, 3, T) or (N, 1, 3, T) of any float or integer dtype. Each
// modality is standardised with the training split's mean and standard deviation.
// Every problem (missing file, wrong dtype, shape mismatch between modalities,
// label out of range, truncated file) is a std::runtime_error naming the file.
#pragma once
#include <cmath>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "erlmr/core/tensor.hpp"
#include "erlmr/data/npy.hpp"

namespace erlmr::data {

template <RealScalar R> struct Split {
  Tensor<R> x1, x2;                // (N, 1, 3, T)
  std::vector<std::int64_t> y;     // (N,)
  std::int64_t size() const { return static_cast<std::int64_t>(y.size()); }
};

template <RealScalar R> struct Dataset {
  std::string name;
  Split<R> train, test;
  std::int64_t classes = 0;
  std::int64_t window() const { return train.x1.shape()[3]; }
  std::string modality_a = "acc", modality_g = "gyr";
};

class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
inline std::string find_file(const std::filesystem::path& dir, const std::vector<std::string>& names) {
  for (const auto& n : names)
    if (std::filesystem::exists(dir / n)) return (dir / n).string();
  std::string all;
  for (const auto& n : names) all += (all.empty() ? "" : " or ") + n;
  throw DataError(dir.string() + ": missing " + all);
}

template <RealScalar R> Tensor<R> read_modality(const std::string& path) {
  NpyArray a;
  try {
    a = read_npy(path);
  } catch (const std::exception& e) {
    throw DataError(e.what());
  }
  if (dtype_is_complex(a.dtype) || a.dtype == DType::b1)
    throw DataError(path + ": dtype " + dtype_name(a.dtype) + " is not a real numeric array");
  std::vector<std::int64_t> s = a.shape;
  if (s.size() == 3) s.insert(s.begin() + 1, 1);
  if (s.size() != 4 || s[1] != 1 || s[2] != 3 || s[3] < 3)
    throw DataError(path + ": shape " + Shape(a.shape).str() + " is not (N, 3, T) or (N, 1, 3, T) with T >= 3");
  auto v = a.as<R>();
  for (R x : v)
    if (!std::isfinite(x)) throw DataError(path + ": contains NaN or infinity");
  return Tensor<R>::from_vector(Shape(s), v);
}

inline std::vector<std::int64_t> read_labels(const std::string& path) {
  NpyArray a;
  try {
    a = read_npy(path);
  } catch (const std::exception& e) {
    throw DataError(e.what());
  }
  if (a.dtype != DType::i8 && a.dtype != DType::i4 && a.dtype != DType::u1)
    throw DataError(path + ": labels must be integers, got dtype " + dtype_name(a.dtype));
  if (a.shape.size() != 1) throw DataError(path + ": labels have shape " + Shape(a.shape).str() + ", expected (N,)");
  return a.as<std::int64_t>();
}
}  // namespace detail

// Mean and (population) standard deviation of a whole array.
template <RealScalar R> std::pair<double, double> moments(const Tensor<R>& x) {
  double m = 0, v = 0;
  for (std::int64_t i = 0; i < x.numel(); ++i) m += double(x.data()[i]);
  m /= double(std::max<std::int64_t>(1, x.numel()));
  for (std::int64_t i = 0; i < x.numel(); ++i) v += (double(x.data()[i]) - m) * (double(x.data()[i]) - m);
  return {m, std::sqrt(v / double(std::max<std::int64_t>(1, x.numel())))};
}

// Standardises train and test of one modality with the training statistics.
template <RealScalar R> void standardise(Tensor<R>& train, Tensor<R>& test) {
  auto [m, s] = moments(train);
  if (s <= 0) s = 1;
  train.vec() = (train.vec() - R(m)) / R(s);
  test.vec() = (test.vec() - R(m)) / R(s);
}

template <RealScalar R> Dataset<R> load_npy_dir(const std::string& dir_s, std::int64_t classes = 0) {
  namespace fs = std::filesystem;
  const fs::path dir(dir_s);
  if (!fs::is_directory(dir)) throw DataError(dir_s + ": not a directory");
  Dataset<R> d;
  d.name = dir.filename().string();
  auto load_split = [&](const std::string& split) {
    Split<R> s;
    const std::string f1 = detail::find_file(dir, {"x_" + split + "_1.npy", "x1_" + split + ".npy"});
    const std::string f2 = detail::find_file(dir, {"x_" + split + "_2.npy", "x2_" + split + ".npy"});
    const std::string fy = detail::find_file(dir, {"y_" + split + ".npy"});
    s.x1 = detail::read_modality<R>(f1);
    s.x2 = detail::read_modality<R>(f2);
    s.y = detail::read_labels(fy);
    if (!(s.x1.shape() == s.x2.shape()))
      throw DataError(f2 + ": shape " + s.x2.shape().str() + " does not match " + f1 + " " + s.x1.shape().str());
    if (s.x1.shape()[0] != s.size())
      throw DataError(fy + ": " + std::to_string(s.size()) + " labels for " + std::to_string(s.x1.shape()[0]) + " samples in " + f1);
    return std::make_tuple(s, fy);
  };
  auto [tr, fytr] = load_split("train");
  auto [te, fyte] = load_split("test");
  if (tr.x1.shape()[3] != te.x1.shape()[3])
    throw DataError(dir_s + ": train windows have length " + std::to_string(tr.x1.shape()[3]) + " but test windows " +
                    std::to_string(te.x1.shape()[3]));
  std::int64_t k = classes;
  if (k == 0)
    for (auto v : tr.y) k = std::max(k, v + 1);
  for (auto [ys, f] : {std::pair{&tr.y, fytr}, std::pair{&te.y, fyte}})
    for (std::size_t i = 0; i < ys->size(); ++i)
      if ((*ys)[i] < 0 || (*ys)[i] >= k)
        throw DataError(f + ": label " + std::to_string((*ys)[i]) + " at index " + std::to_string(i) + " is outside [0, " +
                        std::to_string(k) + ")");
  if (k < 2) throw DataError(fytr + ": fewer than two classes");
  standardise(tr.x1, te.x1);
  standardise(tr.x2, te.x2);
  d.train = std::move(tr);
  d.test = std::move(te);
  d.classes = k;
  return d;
}

}  // namespace erlmr::data
