// erlmr/data/dataset.hpp — two-modality datasets: NPY directories and the built-in
// synthetic inertial-sensor data.
//
// A Split holds the two modalities x1 (N, ...) and x2 (N, ...) and integer labels in [0, K).
//
// The NPY directory layout (docs/data.md) — per split (train, test):
//   x1_<split>.npy  x2_<split>.npy  y_<split>.npy
// or the released sensor code's names x_<split>_1.npy x_<split>_2.npy y_<split>.npy,
// and optionally modalities.txt (two lines: the names of modality 1 and 2) and
// classes.txt (one class name per line). Modality arrays may have any real or integer
// dtype and any of these shapes, each modality its own:
//   (N, F)        feature vectors                → an MLP encoder
//   (N, H, W)     one-channel maps (read as (N, 1, H, W))
//   (N, C, H, W)  images, spectrograms           → a CNN encoder
// The sensor layout — both modalities (N, 3, T) or (N, 1, 3, T) with the same T — is what
// the released sensor model takes (Dataset::sensor_layout()). Labels are int64/int32/uint8
// of shape (N,). Each modality is standardised with the training split's mean and
// standard deviation (one scalar pair per modality). Every problem (missing file, wrong
// dtype, sample counts or per-sample shapes that disagree, label out of range, truncated
// file) is a DataError naming the file.
#pragma once
#include <cmath>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "erlmr/core/tensor.hpp"
#include "erlmr/data/npy.hpp"

namespace erlmr::data {

namespace detail {
// The shape of one sample of an (N, ...) array.
inline std::vector<std::int64_t> per_sample(const Shape& s) {
  auto v = s.vec();
  return std::vector<std::int64_t>(v.begin() + 1, v.end());
}
}  // namespace detail

template <RealScalar R> struct Split {
  Tensor<R> x1, x2;                // (N, ...) each
  std::vector<std::int64_t> y;     // (N,)
  std::int64_t size() const { return static_cast<std::int64_t>(y.size()); }
};

template <RealScalar R> struct Dataset {
  std::string name;
  Split<R> train, test;
  std::int64_t classes = 0;
  std::string modality_a = "acc", modality_g = "gyr";
  std::vector<std::string> class_names;  // empty when the directory names none
  // Per-sample shape of modality m (0 = x1, 1 = x2), e.g. {1, 28, 28}.
  std::vector<std::int64_t> sample_shape(int m) const {
    return detail::per_sample(m == 0 ? train.x1.shape() : train.x2.shape());
  }
  // Both modalities (N, 1, 3, T) with the same T: the sensor reference model's input.
  bool sensor_layout() const {
    const auto a = sample_shape(0), g = sample_shape(1);
    return a.size() == 3 && a[0] == 1 && a[1] == 3 && a[2] >= 3 && a == g;
  }
  // T of the sensor layout (0 for other layouts).
  std::int64_t window() const { return sensor_layout() ? train.x1.shape()[3] : 0; }
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
  if (s.size() == 3) s.insert(s.begin() + 1, 1);  // (N, H, W) -> (N, 1, H, W); sensor (N, 3, T) -> (N, 1, 3, T)
  if (s.size() != 2 && s.size() != 4)
    throw DataError(path + ": shape " + Shape(a.shape).str() + " is not (N, F), (N, H, W) or (N, C, H, W)");
  for (std::size_t i = 1; i < s.size(); ++i)
    if (s[i] < 1) throw DataError(path + ": shape " + Shape(a.shape).str() + " has an empty per-sample axis");
  auto v = a.as<R>();
  for (std::size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i])) throw DataError(path + ": element " + std::to_string(i) + " is NaN or infinite");
  return Tensor<R>::from_vector(Shape(s), v);
}

// Non-empty lines of a small text file (modalities.txt, classes.txt); {} if it is absent.
inline std::vector<std::string> read_lines(const std::filesystem::path& p, std::size_t max_lines) {
  std::vector<std::string> out;
  if (!std::filesystem::exists(p)) return out;
  if (std::filesystem::file_size(p) > (1u << 20)) throw DataError(p.string() + ": larger than 1 MiB, not a list of names");
  std::ifstream f(p);
  if (!f) throw DataError(p.string() + ": cannot open");
  std::string line;
  while (std::getline(f, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) out.push_back(line);
    if (out.size() > max_lines) throw DataError(p.string() + ": more than " + std::to_string(max_lines) + " lines");
  }
  return out;
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
    if (s.x2.shape()[0] != s.x1.shape()[0])
      throw DataError(f2 + ": " + std::to_string(s.x2.shape()[0]) + " samples, but " + f1 + " has " + std::to_string(s.x1.shape()[0]));
    if (s.x1.shape()[0] != s.size())
      throw DataError(fy + ": " + std::to_string(s.size()) + " labels for " + std::to_string(s.x1.shape()[0]) + " samples in " + f1);
    return std::make_tuple(s, fy, f1, f2);
  };
  auto [tr, fytr, f1tr, f2tr] = load_split("train");
  auto [te, fyte, f1te, f2te] = load_split("test");
  // The sensor layout pairs two (1, 3, T) windows: one with different T is a mistake, not a general dataset.
  {
    const auto sa = detail::per_sample(tr.x1.shape()), sg = detail::per_sample(tr.x2.shape());
    const bool a3 = sa.size() == 3 && sa[0] == 1 && sa[1] == 3, g3 = sg.size() == 3 && sg[0] == 1 && sg[1] == 3;
    if (a3 && g3 && sa != sg)
      throw DataError(f2tr + ": shape " + tr.x2.shape().str() + " does not match " + f1tr + " " + tr.x1.shape().str() +
                      " (sensor windows of different lengths)");
  }
  for (auto [a, b, fa, fb] : {std::tuple{&tr.x1, &te.x1, f1tr, f1te}, std::tuple{&tr.x2, &te.x2, f2tr, f2te}}) {
    const auto sa = detail::per_sample(a->shape()), sb = detail::per_sample(b->shape());
    if (sa != sb)
      throw DataError(fb + ": per-sample shape " + Shape(sb).str() + " differs from the training split's " + Shape(sa).str() + " in " + fa);
  }
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
  if (auto names = detail::read_lines(dir / "modalities.txt", 2); !names.empty()) {
    if (names.size() != 2) throw DataError((dir / "modalities.txt").string() + ": expected two lines (modality 1 and 2)");
    d.modality_a = names[0];
    d.modality_g = names[1];
  } else if (!d.sensor_layout()) {
    d.modality_a = "x1";
    d.modality_g = "x2";
  }
  d.class_names = detail::read_lines(dir / "classes.txt", 100000);
  if (!d.class_names.empty() && static_cast<std::int64_t>(d.class_names.size()) != k)
    throw DataError((dir / "classes.txt").string() + ": " + std::to_string(d.class_names.size()) + " names for " + std::to_string(k) +
                    " classes");
  return d;
}

}  // namespace erlmr::data
